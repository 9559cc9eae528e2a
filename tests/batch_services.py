"""Real batch systems on this host for tests: a single-node SLURM cluster and an HTCondor pool.

The services are started and stopped by the scripts in ``.ci/services/`` (read their headers):

* ``slurm.sh``: slurm-wlm + munge from Debian; slurmctld/slurmd/munged run on this host with all
  state in ``$SAETTA_SLURM_DIR`` (default ``/tmp/saetta-slurm``); clients find it through
  ``SLURM_CONF``. Jobs run as root, with the same Python as the tests.
* ``htcondor.sh``: a personal HTCondor pool inside a cached Debian 13 chroot (Debian 12 has no
  condor), run by an unprivileged pool user (HTCondor refuses root's jobs). The project is
  bind-mounted at its own path and installed editable in the chroot's venv (Python 3.13) with
  dask, distributed and dask-jobqueue, so a Dask client must run *inside* the chroot: use
  :meth:`HTCondorEnv.run` (``htcondor.sh exec``).

Use from ``conftest.py``::

    from batch_services import htcondor_env, slurm_cluster_env  # noqa: F401 (fixtures)

The fixtures are session-scoped. They skip only where these services cannot exist (not Linux,
or not root); anywhere else (CI runs as root) a failure to install or start is a test error with
the script's output. A service that was already running when the session began (started by hand,
``.ci/services/slurm.sh start``) is reused and left running; one the fixture started is stopped at
session end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / ".ci" / "services"
SLURM_SCRIPT = SERVICES / "slurm.sh"
HTCONDOR_SCRIPT = SERVICES / "htcondor.sh"

#: Seconds allowed for ``install`` (a cold HTCondor chroot takes about a minute, more on a slow
#: mirror) and for ``start``/``stop``.
INSTALL_TIMEOUT = 1800
START_TIMEOUT = 300


class ServiceError(RuntimeError):
    """A service script failed; the message carries its output."""


def skip_reason() -> str | None:
    """Why real batch services cannot run here, or None when they can (Linux, as root)."""
    if not sys.platform.startswith("linux"):
        return f"real SLURM/HTCondor services need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "real SLURM/HTCondor services need root (CI runs as root)"
    return None


def run_script(
    script: Path, *args: str, timeout: float = START_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a service script; raise :class:`ServiceError` with its output when it fails."""
    try:
        result = subprocess.run(
            ["bash", str(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(
            f"{script.name} {' '.join(args)} timed out after {timeout} s\n"
            f"{_text(exc.stdout)}\n{_text(exc.stderr)}"
        ) from exc
    if check and result.returncode != 0:
        raise ServiceError(
            f"{script.name} {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def is_running(script: Path) -> bool:
    """Whether the service is up (``status`` exits 0)."""
    return run_script(script, "status", check=False).returncode == 0


# --------------------------------------------------------------------------------------------
# SLURM


@dataclass(frozen=True)
class SlurmEnv:
    """What a client needs to use the local SLURM cluster (``SLURM_CONF`` is set in os.environ
    for the session by the fixture)."""

    partition: str
    python: str
    interface: str
    slurm_conf: Path
    state_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (sbatch, squeue, a client in another process)."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}

    def cluster_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``dask_jobqueue.SLURMCluster`` that work on this cluster."""
        kwargs: dict[str, Any] = {
            "queue": self.partition,
            "interface": self.interface,
            "python": self.python,
            "cores": 1,
            "processes": 1,
            "memory": "1GB",
            "walltime": "00:10:00",
            # Job output beside SLURM's state, not slurm-<id>.out in the working directory.
            "log_directory": str(slurm_state_dir() / "job-logs"),
            # Loopback only, any free port: no "port 8787 in use" warning (an error in pytest).
            "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
        }
        kwargs.update(overrides)
        return kwargs

    def squeue(self) -> list[str]:
        """Job ids still known to SLURM."""
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i"], env=self.env, capture_output=True, text=True, check=True
        ).stdout
        return out.split()


def slurm_state_dir() -> Path:
    return Path(os.environ.get("SAETTA_SLURM_DIR", "/tmp/saetta-slurm"))


def start_slurm() -> SlurmEnv:
    """Install (idempotent) and start the SLURM cluster; return how to reach it."""
    run_script(SLURM_SCRIPT, "install", timeout=INSTALL_TIMEOUT)
    run_script(SLURM_SCRIPT, "start")
    state = slurm_state_dir()
    return SlurmEnv(
        partition="debug",
        python=sys.executable,
        interface="lo",
        slurm_conf=state / "slurm.conf",
        state_dir=state,
    )


def stop_slurm() -> None:
    run_script(SLURM_SCRIPT, "stop")


@pytest.fixture(scope="session")
def slurm_cluster_env() -> Iterator[SlurmEnv]:
    """A running single-node SLURM cluster (partition ``debug``) for the session."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    was_running = is_running(SLURM_SCRIPT)
    try:
        env = start_slurm()
    except ServiceError as exc:
        pytest.fail(f"could not start SLURM:\n{exc}", pytrace=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(env.slurm_conf))
        try:
            yield env
        finally:
            if not was_running:
                stop_slurm()


# --------------------------------------------------------------------------------------------
# HTCondor


@dataclass(frozen=True)
class HTCondorEnv:
    """How to use the HTCondor pool, whose submit side lives inside a chroot.

    Paths ``project_dir`` and ``shared_dir`` are the same inside and outside the chroot.
    Commands run inside as ``pool_user``, which can read the project but not write it: put
    files that jobs or an in-chroot client must write in :meth:`make_shared_dir`.
    """

    script: Path
    chroot: Path
    project_dir: Path
    shared_dir: Path
    python: str
    pool_user: str

    def command(self, *args: str) -> list[str]:
        """Argv that runs ``args`` inside the chroot as the pool user (``htcondor.sh exec``)."""
        return ["bash", str(self.script), "exec", "--", *args]

    def run(
        self,
        *args: str,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside the chroot (e.g. ``env.run("python", "client.py")``).

        ``cwd`` (default: the project) must be visible inside: under ``project_dir`` or
        ``shared_dir``. Variables in ``env`` named ``SAETTA_*``, ``DASK_*``, ``PYTEST_*``,
        ``HYPOTHESIS_*`` or ``CI`` are passed through; others are dropped by the script.
        """
        result = subprocess.run(
            self.command(*args),
            cwd=cwd or self.project_dir,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise ServiceError(
                f"in the HTCondor chroot: {' '.join(args)} exited {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result

    def run_python(self, code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run Python source with the chroot venv's interpreter."""
        return self.run(self.python, "-c", code, *args, **kwargs)

    def make_shared_dir(self, prefix: str = "test-") -> Path:
        """A new directory that the pool user, its jobs and the tests can all write."""
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.shared_dir))
        path.chmod(0o777)
        return path

    def cluster_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``dask_jobqueue.HTCondorCluster`` (for code run inside)."""
        kwargs: dict[str, Any] = {
            "cores": 1,
            "processes": 1,
            "memory": "1GB",
            "disk": "1GB",
            "python": self.python,
            "scheduler_options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
        }
        kwargs.update(overrides)
        return kwargs

    def condor_q(self) -> list[str]:
        """Job ids still in the queue."""
        return self.run("condor_q", "-af", "GlobalJobId").stdout.split()


def htcondor_info() -> dict[str, str]:
    out = run_script(HTCONDOR_SCRIPT, "info").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def start_htcondor() -> HTCondorEnv:
    """Install (cached chroot; idempotent) and start the pool; return how to use it."""
    run_script(HTCONDOR_SCRIPT, "install", timeout=INSTALL_TIMEOUT)
    run_script(HTCONDOR_SCRIPT, "start")
    info = htcondor_info()
    return HTCondorEnv(
        script=HTCONDOR_SCRIPT,
        chroot=Path(info["chroot"]),
        project_dir=Path(info["project"]),
        shared_dir=Path(info["shared_dir"]),
        python=info["python"],
        pool_user=info["pool_user"],
    )


def stop_htcondor() -> None:
    run_script(HTCONDOR_SCRIPT, "stop")


@pytest.fixture(scope="session")
def htcondor_env() -> Iterator[HTCondorEnv]:
    """A running HTCondor personal pool for the session (submit from inside the chroot)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    was_running = is_running(HTCONDOR_SCRIPT)
    try:
        env = start_htcondor()
    except ServiceError as exc:
        pytest.fail(f"could not start HTCondor:\n{exc}", pytrace=False)
    try:
        yield env
    finally:
        if not was_running:
            stop_htcondor()


__all__ = [
    "HTCondorEnv",
    "ServiceError",
    "SlurmEnv",
    "htcondor_env",
    "is_running",
    "run_script",
    "skip_reason",
    "slurm_cluster_env",
    "start_htcondor",
    "start_slurm",
    "stop_htcondor",
    "stop_slurm",
]
