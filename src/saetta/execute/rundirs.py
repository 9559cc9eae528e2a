"""Stage: execute (layer 6) — run directories as their user sees them.

Where a new one goes, the command that finishes an interrupted run
(``saetta run --resume``), listing them and deleting old ones. What a run
directory holds and how a run writes it is :mod:`saetta.execute.journal`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saetta._config import runs_dir
from saetta.errors import JournalError
from saetta.execute.journal import RUN_KIND, Journal
from saetta.storage import is_remote, redact

__all__ = [
    "RunInfo",
    "default_run_dir",
    "list_runs",
    "read_command",
    "resume_command",
]


def default_run_dir() -> Path:
    """A new run directory under the user cache: ``~/.cache/saetta/runs/<time>-<id>``."""
    return runs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def resume_command(
    analysis: str,
    files: Sequence[str],
    *,
    tree: str,
    executor: str,
    testbed: str | None,
    outputs: Sequence[os.PathLike[str]] = (),
    plots: os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """What ``saetta run --resume`` needs to run this again, from any folder, without secrets.

    Relative paths become absolute; credentials in URLs are removed (and
    ``credentials_removed`` says so, for resume to ask for the files again).
    """
    where, sep, name = analysis.rpartition(":")
    if sep and where.endswith(".py"):
        analysis = f"{os.path.abspath(where)}:{name}"
    stored = [f if f.startswith("@") or is_remote(f) else os.path.abspath(f) for f in files]
    return {
        "analysis": analysis,
        "files": [redact(f) for f in stored],
        "credentials_removed": any(redact(f) != f for f in stored),
        "tree": tree,
        "executor": executor,
        "testbed": testbed,
        "outputs": [os.path.abspath(o) for o in outputs],
        "plots": os.path.abspath(plots) if plots else None,
    }


def read_command(directory: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The command recorded in a run directory (for ``saetta run --resume``), checked.

    Raises
    ------
    JournalError
        It is not a run directory, it is in use, or it holds no command.
    """
    journal = Journal(directory)
    try:
        command = journal.command
    finally:
        journal.close()
    if command is None:
        msg = f"{journal.directory} records no command to resume (it was run from Python)"
        raise JournalError(msg, path=str(journal.directory))
    analysis, files = command.get("analysis"), command.get("files")
    if not isinstance(analysis, str) or not (
        isinstance(files, list) and files and all(isinstance(f, str) for f in files)
    ):
        msg = f"cannot resume from {directory}: its run.json records no analysis and files"
        raise JournalError(msg, path=str(journal.directory))
    return command


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run directory as ``saetta runs list`` shows it."""

    directory: Path
    analysis: str
    created: str
    units_done: int
    complete: bool | None  # None: no session finished yet (running, or killed)
    bytes: int


def list_runs(base: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """The run directories under ``base`` (default ``~/.cache/saetta/runs``), oldest first."""
    root = Path(base) if base is not None else runs_dir()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if not (folder / f".saetta-{RUN_KIND}").is_file():
            continue
        try:
            document = json.loads((folder / "run.json").read_bytes())
            spec = document["spec"]
            analysis, created = str(spec["analysis"]), str(document["created"])
        except (OSError, ValueError, KeyError, TypeError):
            analysis, created = "?", "?"
        complete = None
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            complete = bool(json.loads((folder / "report.json").read_bytes()).get("complete"))
        units = size = 0
        for path in (folder / "units").glob("*.jsonl"):
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                units += data.count(b"\n")
                size += len(data)
        found.append(RunInfo(folder, analysis, created, units, complete, size))
    return found
