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

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
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

    def saetta(self, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the ``saetta`` command in ``cwd`` against this cluster (``env`` added)."""
        return subprocess.run(
            [str(Path(sys.executable).with_name("saetta")), *args],
            cwd=cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

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

    def job_nodes(self, job_name: str) -> dict[str, str]:
        """``{job id: node}`` of the jobs named ``job_name`` that SLURM lists now (the node
        is ``""`` while a job waits). Poll it with :func:`watch_jobs`: accounting is off on
        this cluster (no ``sacct``), and squeue lists a job only until MinJobAge after it ends.
        """
        out = subprocess.run(
            ["squeue", "-h", "-n", job_name, "-o", "%i %N"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {job: node for job, _, node in (line.partition(" ") for line in out.splitlines())}


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

    def condor_history(self, since: float) -> dict[str, str]:
        """``{"cluster.proc": host}`` of the jobs that left the queue and were submitted at
        or after ``since`` (``time.time()``): what the schedd itself says ran where."""
        out = self.run(
            "condor_history",
            "-constraint",
            f"QDate >= {int(since)}",
            "-af",
            "ClusterId",
            "ProcId",
            "LastRemoteHost",
        ).stdout
        jobs = {}
        for line in out.splitlines():
            cluster, proc, slot = line.split()
            jobs[f"{cluster}.{proc}"] = slot.rpartition("@")[2]  # slot1_1@host
        return jobs


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


# --------------------------------------------------------------------------------------------
# Where units ran


#: A unit's worker (``UnitOutcome.worker``) in a batch job: ``host:pid (slurm job 42)``,
#: ``host:pid (htcondor job 7.0)``; outside one it is ``host:pid``.
BATCH_WORKER = re.compile(
    r"(?P<host>[^\s:]+):(?P<pid>\d+) \((?P<system>slurm|htcondor) job (?P<job>\d+(?:\.\d+)?)\)"
)


def unit_workers(run_dir: Path) -> list[str]:
    """The worker of each unit recorded in a run directory (``units/*.jsonl``)."""
    return [
        json.loads(line)["worker"]
        for segment in sorted((run_dir / "units").glob("*.jsonl"))
        for line in segment.read_text().splitlines()
        if line.strip()
    ]


def short_host(name: str) -> str:
    return name.split(".", 1)[0].lower()


def assert_ran_in_jobs(workers: Iterable[str], system: str, jobs: Mapping[str, str]) -> set[str]:
    """Every unit ran in a ``system`` batch job that the batch system reported (``jobs``:
    job id to node), on that job's node, and not in this test process; return the job ids."""
    workers = list(workers)
    assert workers, "no unit recorded a worker"
    used = set()
    for worker in workers:
        found = BATCH_WORKER.fullmatch(worker)
        assert found, f"unit ran outside a batch job: worker {worker!r}"
        assert found["system"] == system, worker
        assert found["job"] in jobs, f"{worker}: not a job the batch system reported {jobs}"
        assert short_host(found["host"]) == short_host(jobs[found["job"]]), (worker, jobs)
        assert int(found["pid"]) != os.getpid(), worker
        used.add(found["job"])
    return used


@contextmanager
def watch_jobs(
    poll: Callable[[], Mapping[str, str]], every_s: float = 0.5
) -> Iterator[dict[str, str]]:
    """Call ``poll`` (job id to node, as :meth:`SlurmEnv.job_nodes`) in a thread while the
    block runs, and once after; yield the union of what it saw (a node once known is kept).
    A failed poll (a busy controller) is skipped; it is raised only if no poll succeeded."""
    seen: dict[str, str] = {}
    errors: list[Exception] = []
    answered = threading.Event()
    stop = threading.Event()

    def collect() -> None:
        try:
            jobs = poll()
        except (OSError, subprocess.SubprocessError, ServiceError) as exc:
            errors.append(exc)
            return
        answered.set()
        for job, node in jobs.items():
            if node or job not in seen:
                seen[job] = node

    def loop() -> None:
        collect()
        while not stop.wait(every_s):
            collect()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        collect()
    if not answered.is_set():
        raise errors[-1]


def wait_for(probe: Callable[[], Mapping[str, str]], timeout_s: float = 30) -> Mapping[str, str]:
    """``probe()`` once it is non-empty, or its last answer after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (answer := probe()) and time.monotonic() < deadline:
        time.sleep(1)
    return answer


__all__ = [
    "BATCH_WORKER",
    "HTCondorEnv",
    "ServiceError",
    "SlurmEnv",
    "assert_ran_in_jobs",
    "htcondor_env",
    "is_running",
    "run_script",
    "skip_reason",
    "slurm_cluster_env",
    "start_htcondor",
    "start_slurm",
    "stop_htcondor",
    "stop_slurm",
    "unit_workers",
    "wait_for",
    "watch_jobs",
]
