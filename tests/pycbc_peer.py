"""PyCBC as an independent peer: a Python with pycbc 2.11.0, and a way to run code in it.

PyCBC pins numpy and scipy below the versions saetta uses, so it lives in its own
virtual environment: ``$SAETTA_PYCBC_PYTHON`` if set, otherwise one built once
(about a minute, 700 MB) under ``~/.cache/saetta-peers/pycbc-2.11.0`` in the real
home (tests redirect ``XDG_CACHE_HOME``), behind a file lock so that two test
processes never build it together. Arrays cross as ``.npz`` files.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

__all__ = ["pycbc_python", "run_peer"]

VERSION = "2.11.0"


def _home() -> Path:
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def pycbc_python() -> Path:
    """The interpreter of a virtual environment holding pycbc ``VERSION``."""
    given = os.environ.get("SAETTA_PYCBC_PYTHON")
    if given:
        return Path(given)
    root = _home() / ".cache" / "saetta-peers" / f"pycbc-{VERSION}"
    python = root / "bin" / "python"
    ready = root / ".ready"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"pycbc-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            steps = [
                [sys.executable, "-m", "venv", "--clear", str(root)],
                [str(python), "-m", "pip", "install", "--quiet", f"pycbc=={VERSION}"],
            ]
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    msg = f"building the PyCBC peer in {root} failed: {' '.join(step)}\n{done.stderr[-2000:]}"
                    raise RuntimeError(msg)
            ready.touch()
    return python


_PRELUDE = """\
import sys
import numpy as np
inputs = dict(np.load(sys.argv[1], allow_pickle=False))
outputs = {}
"""
_EPILOGUE = """
np.savez(sys.argv[2], **{k: np.asarray(v) for k, v in outputs.items()})
"""


def run_peer(script: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``script`` in the PyCBC peer: it reads the dict ``inputs`` and fills ``outputs``."""
    with tempfile.TemporaryDirectory(prefix="saetta-pycbc-") as folder:
        given, taken = Path(folder, "in.npz"), Path(folder, "out.npz")
        np.savez(given, **inputs)
        code = Path(folder, "peer.py")
        code.write_text(_PRELUDE + textwrap.dedent(script) + _EPILOGUE)
        done = subprocess.run(
            [str(pycbc_python()), str(code), str(given), str(taken)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            msg = f"the PyCBC peer failed:\n{done.stderr[-3000:]}"
            raise RuntimeError(msg)
        with np.load(taken, allow_pickle=False) as loaded:
            return {k: loaded[k] for k in loaded.files}
