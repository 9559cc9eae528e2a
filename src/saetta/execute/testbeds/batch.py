"""Stage: execute (layer 6) — batch testbeds: a SLURM or HTCondor cluster of Dask workers.

Before a batch cluster starts, saetta checks in seconds that the batch system answers
(its commands are on ``PATH``, a cheap query such as ``squeue`` succeeds, and for SLURM
``sbatch --test-only`` accepts the job script), so a missing controller or a wrong
partition is one line, not a traceback and a five-minute wait. Clusters that saetta
starts it always stops — at the end of the run, on an error and on Ctrl-C — so no batch
job outlives the run.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from saetta.errors import ExecutorError
from saetta.storage import first_line

if TYPE_CHECKING:
    from saetta.execute.testbeds.spec import Testbed

__all__ = ["CHECK_TIMEOUT_S", "check_scheduler", "cluster"]

#: Seconds a batch system has to answer saetta's check before the run is refused.
CHECK_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _BatchSystem:
    """The commands of one batch system, and what to suggest when they fail."""

    submit: str
    query: tuple[str, ...]
    node: str
    hint: str
    config: str
    cluster_class: str  # dask-jobqueue's
    dry_run: tuple[str, ...] = ()  # a command that checks a job script without running it
    user_option: str = ""  # limits the query to this user's jobs


_SYSTEMS = MappingProxyType(
    {
        "slurm": _BatchSystem(
            "sbatch",
            ("squeue", "-h", "-o", "%i"),
            "a SLURM login node",
            "is slurmctld running and reachable?",
            "SLURM_CONF",
            "SLURMCluster",
            ("sbatch", "--test-only"),
            "-u",
        ),
        "htcondor": _BatchSystem(
            "condor_submit",
            ("condor_q", "-totals"),
            "an HTCondor submit node",
            "is the condor_schedd running?",
            "CONDOR_CONFIG",
            "HTCondorCluster",
        ),
    }
)


def check_scheduler(bed: Testbed, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Check in seconds that the batch system answers: its commands are on ``PATH``
    and a cheap query (``squeue``, ``condor_q -totals``) succeeds within ``timeout_s``.

    Raises
    ------
    ExecutorError
        Not a batch testbed, a command is missing, or the query fails or times out;
        the one-line message has the command, its first line of error and a hint.
    """
    system = _SYSTEMS[bed.kind]
    prefix = f"testbed {bed.name!r} ({bed.kind})"
    for command in (system.submit, system.query[0]):
        if shutil.which(command) is None:
            msg = f"{prefix}: {command} not found on PATH; is this {system.node}?"
            raise ExecutorError(msg, name=bed.name)
    query = [*system.query, *_own_jobs(system)]
    problem = _ask(query, timeout_s)
    if problem is not None:
        config = os.environ.get(system.config)
        setting = f"{system.config}={config}" if config else f"{system.config} unset"
        msg = f"{prefix}: '{shlex.join(query)}' failed ({problem}); {system.hint} ({setting})"
        raise ExecutorError(msg, name=bed.name)


@contextmanager
def cluster(bed: Testbed) -> Iterator[Any]:
    """Start the batch cluster, yield a connected ``distributed.Client``, always stop it.

    The batch system is checked first (:meth:`check_scheduler`); a job submission
    that fails while the workers start raises at once instead of after
    ``startup_timeout``.
    """
    try:
        import dask_jobqueue
        import distributed
    except ImportError as exc:
        msg = f"testbed {bed.name!r} ({bed.kind}) needs dask-jobqueue: pip install 'saetta[{bed.kind}]'"
        raise ExecutorError(msg, name=bed.name) from exc
    check_scheduler(bed)
    cls = getattr(dask_jobqueue, _SYSTEMS[bed.kind].cluster_class)
    options = dict(bed.options)
    # A Dask LocalCluster started earlier in this process (say, a notebook that ran
    # executor="dask" first) leaves __DASK_PARENT_PID in the environment; batch jobs
    # inherit it and their workers then watch the wrong parent and never start.
    options["job_script_prologue"] = [
        *(options.get("job_script_prologue") or []),
        "unset __DASK_PARENT_PID",
    ]
    try:
        cluster = cls(**options)
    except (TypeError, ValueError) as exc:
        msg = f"testbed {bed.name!r}: {cls.__name__} refused its options: {first_line(exc)}"
        raise ExecutorError(msg, name=bed.name) from exc
    client = None
    prefix = f"testbed {bed.name!r} ({bed.kind})"
    with _SubmitFailures.attached(prefix) as failures:
        try:
            _dry_run(bed, cluster)
            if bed.adapt:
                cluster.adapt(minimum=bed.adapt[0], maximum=bed.adapt[1])
                wanted = max(1, bed.adapt[0])
            else:
                wanted = bed.workers or 1
                cluster.scale(wanted)
            client = distributed.Client(cluster)
            _wait(bed, client, wanted, failures)
            failures.quiet = False  # from now on one log line per failed submission
            yield client
        finally:
            if client is not None:
                client.close()
            if failures.first is not None:
                _forget_unsubmitted(cluster)
            cluster.close()


def _dry_run(bed: Testbed, cluster: Any) -> None:
    """``sbatch --test-only`` the job script: a wrong partition or account fails here."""
    dry_run = _SYSTEMS[bed.kind].dry_run
    if not dry_run:  # HTCondor has none
        return
    with tempfile.TemporaryDirectory(prefix="saetta-") as folder:
        script = Path(folder) / "job.sh"
        script.write_text(cluster.job_script())
        problem = _ask([*dry_run, str(script)], CHECK_TIMEOUT_S)
    if problem is not None:
        msg = (
            f"testbed {bed.name!r} ({bed.kind}): '{shlex.join(dry_run)}' rejected the job script "
            f"({problem}); check queue, account, walltime and memory in {bed.source}"
        )
        raise ExecutorError(msg, name=bed.name)


def _wait(bed: Testbed, client: Any, wanted: int, failures: _SubmitFailures) -> None:
    deadline = time.monotonic() + bed.startup_timeout
    while True:
        left = deadline - time.monotonic()
        try:
            client.wait_for_workers(wanted, timeout=max(0.1, min(1.0, left)))
        except TimeoutError as exc:
            if failures.first is not None:
                msg = f"{failures.prefix}: {failures.first}"
                raise ExecutorError(msg, name=bed.name) from exc
            if left <= 1.0:
                msg = (
                    f"testbed {bed.name!r}: {wanted} {bed.kind} workers did not start "
                    f"within {bed.startup_timeout:.0f} s; check the queue and the job logs"
                )
                raise ExecutorError(msg, name=bed.name) from exc
        else:
            return


class _SubmitFailures(logging.Filter):
    """Keeps dask-jobqueue's tracebacks of failed job submissions from the user.

    A failed ``sbatch``/``condor_submit`` surfaces only as an exception that tornado or
    asyncio logs with its traceback. While the cluster starts, this filter drops those
    records and keeps the first as one line (the cluster then raises it); afterwards it
    shortens each to one line.
    """

    _LOGGERS = ("tornado.application", "asyncio")

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.first: str | None = None
        self.quiet = True

    @classmethod
    @contextmanager
    def attached(cls, prefix: str) -> Iterator[_SubmitFailures]:
        failures = cls(prefix)
        loggers = [logging.getLogger(name) for name in cls._LOGGERS]
        for logger in loggers:
            logger.addFilter(failures)
        try:
            yield failures
        finally:
            for logger in loggers:
                logger.removeFilter(failures)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        text = str(exc) if isinstance(exc, RuntimeError) else ""
        if not text.startswith("Command exited with non-zero exit code"):
            return True
        command = re.search(r"Command:\n(\S+)", text)
        code = re.search(r"Exit code: (-?\d+)", text)
        stderr = re.search(r"stderr:\s*(\S.*)", text)
        line = (
            f"{command.group(1) if command else 'the submit command'} failed to submit a job "
            f"(exit {code.group(1) if code else '?'}): "
            f"{stderr.group(1).strip() if stderr else 'no error message'}"
        )
        if self.first is None:
            self.first = line
        if self.quiet:
            return False
        record.msg, record.args = f"{self.prefix}: {line}", ()
        record.exc_info, record.exc_text = None, None
        return True


def _forget_unsubmitted(cluster: Any) -> None:
    """Mark jobs whose submission failed as closed: ``SpecCluster.close()`` asserts that
    every job it created was closed, and such a job never got as far as running."""
    from distributed.core import Status

    for job in list(cluster.workers.values()):
        if getattr(job, "job_id", None) is None and job.status == Status.created:
            job.status = Status.closed


def _own_jobs(system: _BatchSystem) -> tuple[str, ...]:
    """``-u USER`` for ``squeue`` so that the check stays cheap on a busy cluster."""
    if not system.user_option:
        return ()
    try:
        return (system.user_option, getpass.getuser())
    except (KeyError, OSError):  # no user name for this uid: ask about every job
        return ()


def _ask(command: list[str], timeout_s: float) -> str | None:
    """Run a batch system command; None if it succeeded, else what went wrong (one line)."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return f"cannot run it: {exc.strerror or exc}"
    if done.returncode == 0:
        return None
    lines = [ln.strip(" -") for ln in (done.stderr + "\n" + done.stdout).splitlines()]
    first = next((ln for ln in lines if ln), "no error message")
    return f"exit {done.returncode}: {first}"
