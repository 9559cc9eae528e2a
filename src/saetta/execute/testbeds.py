"""Stage: execute (layer 6) — testbeds: named places to run, read from ``testbeds.yaml``.

A testbed names an execution target and how big it is, so a notebook or a
command line says ``testbed="leonardo"`` instead of twenty cluster options.
saetta looks for the file, first found wins:

1. ``$SAETTA_TESTBEDS`` (a path);
2. ``./testbeds.yaml``;
3. ``$XDG_CONFIG_HOME/saetta/testbeds.yaml`` (default ``~/.config/saetta/testbeds.yaml``).

Example::

    testbeds:
      laptop:      {type: local, workers: 4}                 # worker processes
      dask-here:   {type: dask, workers: 2}                  # a Dask LocalCluster
      lab:         {type: dask, address: "tcp://10.0.0.5:8786"}
      slurm-local:                                           # dask-jobqueue SLURMCluster
        type: slurm
        workers: 2                                           # or adapt: {minimum: 1, maximum: 50}
        startup_timeout: 10 min # or 600 (seconds); default 300 s
        queue: debug            # partition
        account: null
        cores: 1                # per job
        processes: 1            # Dask workers per job
        memory: 2GB             # per job
        walltime: "01:00:00"
        job_extra_directives: ["--exclusive"]
        python: /opt/venv/bin/python
        interface: ib0
      condor:                                                # dask-jobqueue HTCondorCluster
        type: htcondor
        workers: 2
        cores: 1
        memory: 2GB
        disk: 1GB

``type`` is one of local, dask, slurm, htcondor. ``workers`` is a positive integer;
``adapt`` (slurm and htcondor only, instead of ``workers``) is ``{minimum: m, maximum: n}``;
``address`` (dask only) is ``"tcp://host:port"`` or ``"host:port"``; ``startup_timeout``
is seconds or a duration such as ``"5 min"``. Every other key of a slurm or htcondor
testbed goes to the dask-jobqueue cluster class as is. Anything malformed is an
:class:`~saetta.errors.ExecutorError` naming the testbed, the file and the field. Two
testbeds always exist unless a file redefines them: ``local`` (one process per core)
and ``dask`` (a LocalCluster, one worker per core).

Before a batch cluster starts, saetta checks in seconds that the batch system answers
(its commands are on ``PATH``, a cheap query such as ``squeue`` succeeds, and for SLURM
``sbatch --test-only`` accepts the job script), so a missing controller or a wrong
partition is one line, not a traceback and a five-minute wait. Clusters that saetta
starts it always stops — at the end of the run, on an error and on Ctrl-C — so no batch
job outlives the run.
"""

from __future__ import annotations

import difflib
import getpass
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeGuard

import yaml

from saetta.errors import ExecutorError

__all__ = ["Testbed", "find_testbeds_file", "load_testbeds", "testbed"]

KINDS = ("local", "dask", "slurm", "htcondor")
_BATCH = ("slurm", "htcondor")
_OWN_KEYS = ("type", "workers", "adapt", "address", "startup_timeout")
#: dask-jobqueue options that take a list of strings.
_LIST_OPTIONS = frozenset(
    {
        "job_extra_directives",
        "job_directives_skip",
        "job_script_prologue",
        "worker_extra_args",
        "submit_command_extra",
        "cancel_command_extra",
    }
)
#: Seconds a batch system has to answer saetta's check before the run is refused.
CHECK_TIMEOUT_S = 10.0
_ADDRESS = re.compile(r"(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9_.-]*):(\d{1,5})")
_DURATION = re.compile(r"\s*(\d+\.?\d*|\.\d+)\s*([A-Za-z]*)\s*")
_SECONDS = MappingProxyType(
    {
        **dict.fromkeys(("", "s", "sec", "secs", "second", "seconds"), 1.0),
        **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
        **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    }
)


@dataclass(frozen=True, slots=True)
class _BatchSystem:
    """The commands of one batch system, and what to suggest when they fail."""

    submit: str
    query: tuple[str, ...]
    node: str
    hint: str
    config: str


_SYSTEMS = MappingProxyType(
    {
        "slurm": _BatchSystem(
            "sbatch",
            ("squeue", "-h", "-o", "%i"),
            "a SLURM login node",
            "is slurmctld running and reachable?",
            "SLURM_CONF",
        ),
        "htcondor": _BatchSystem(
            "condor_submit",
            ("condor_q", "-totals"),
            "an HTCondor submit node",
            "is the condor_schedd running?",
            "CONDOR_CONFIG",
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Testbed:
    """One named execution target."""

    name: str
    kind: str
    workers: int | None = None
    adapt: tuple[int, int] | None = None
    address: str | None = None
    startup_timeout: float = 300.0
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "built in"

    @classmethod
    def from_dict(cls, name: str, spec: object, source: str) -> Testbed:
        """The testbed ``name`` from its YAML mapping ``spec`` (read from ``source``).

        Raises
        ------
        ExecutorError
            Any field is malformed; the one-line message names the testbed, the file,
            the field and what it should be.
        """
        try:
            fields = _read_spec(spec)
        except _Malformed as exc:
            msg = f"testbed {name!r} in {source}: {exc}"
            raise ExecutorError(msg, name=name) from None
        return cls(name=name, source=source, **fields)

    @property
    def executor(self) -> str | None:
        """The executor name when the testbed needs no cluster of its own."""
        if self.kind == "local":
            return f"processes:{self.workers}" if self.workers else "processes"
        if self.kind == "dask" and self.address:
            return "dask://" + self.address.split("://", 1)[-1]
        if self.kind == "dask":
            return f"dask:{self.workers or os.cpu_count() or 1}"
        return None

    def describe(self) -> str:
        if self.adapt:
            size = f"adaptive {self.adapt[0]}-{self.adapt[1]} workers"
        elif self.workers:
            size = f"{self.workers} workers"
        else:
            size = "one worker per core"
        where = f" at {self.address}" if self.address else ""
        return f"{self.name}: {self.kind}{where}, {size} ({self.source})"

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A connected ``distributed.Client`` for a Dask or batch testbed, closed on exit."""
        if self.kind in _BATCH:
            with self.cluster() as client:
                yield client
            return
        if self.kind != "dask" or self.executor is None:
            msg = f"testbed {self.name!r} is {self.kind}; it has no Dask client"
            raise ExecutorError(msg, name=self.name)
        from saetta.execute.dask import connect

        placement = connect(self.executor.partition(":")[2])
        try:
            yield placement.client
        finally:
            placement.close()

    def check_scheduler(self, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        """Check in seconds that the batch system answers: its commands are on ``PATH``
        and a cheap query (``squeue``, ``condor_q -totals``) succeeds within ``timeout_s``.

        Raises
        ------
        ExecutorError
            Not a batch testbed, a command is missing, or the query fails or times out;
            the one-line message has the command, its first line of error and a hint.
        """
        system = _SYSTEMS.get(self.kind)
        if system is None:
            msg = f"testbed {self.name!r} is {self.kind}, not a batch system"
            raise ExecutorError(msg, name=self.name)
        prefix = f"testbed {self.name!r} ({self.kind})"
        for command in (system.submit, system.query[0]):
            if shutil.which(command) is None:
                msg = f"{prefix}: {command} not found on PATH; is this {system.node}?"
                raise ExecutorError(msg, name=self.name)
        query = [*system.query, *_own_jobs(self.kind)]
        problem = _ask(query, timeout_s)
        if problem is not None:
            config = os.environ.get(system.config)
            setting = f"{system.config}={config}" if config else f"{system.config} unset"
            msg = f"{prefix}: '{shlex.join(query)}' failed ({problem}); {system.hint} ({setting})"
            raise ExecutorError(msg, name=self.name)

    @contextmanager
    def cluster(self) -> Iterator[Any]:
        """Start the batch cluster, yield a connected ``distributed.Client``, always stop it.

        The batch system is checked first (:meth:`check_scheduler`); a job submission
        that fails while the workers start raises at once instead of after
        ``startup_timeout``.
        """
        if self.kind not in _BATCH:
            msg = f"testbed {self.name!r} is {self.kind}, not a batch system"
            raise ExecutorError(msg, name=self.name)
        try:
            import distributed
            from dask_jobqueue import HTCondorCluster, SLURMCluster
        except ImportError as exc:
            msg = f"testbed {self.name!r} ({self.kind}) needs dask-jobqueue: pip install 'saetta[{self.kind}]'"
            raise ExecutorError(msg, name=self.name) from exc
        self.check_scheduler()
        cls = SLURMCluster if self.kind == "slurm" else HTCondorCluster
        options = dict(self.options)
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
            msg = f"testbed {self.name!r}: {cls.__name__} refused its options: {_one_line(exc)}"
            raise ExecutorError(msg, name=self.name) from exc
        client = None
        prefix = f"testbed {self.name!r} ({self.kind})"
        with _SubmitFailures.attached(prefix) as failures:
            try:
                self._dry_run(cluster)
                if self.adapt:
                    cluster.adapt(minimum=self.adapt[0], maximum=self.adapt[1])
                    wanted = max(1, self.adapt[0])
                else:
                    wanted = self.workers or 1
                    cluster.scale(wanted)
                client = distributed.Client(cluster)
                self._wait(client, wanted, failures)
                failures.quiet = False  # from now on one log line per failed submission
                yield client
            finally:
                if client is not None:
                    client.close()
                if failures.first is not None:
                    _forget_unsubmitted(cluster)
                cluster.close()

    def _dry_run(self, cluster: Any) -> None:
        """``sbatch --test-only`` the job script: a wrong partition or account fails here."""
        if self.kind != "slurm":
            return
        with tempfile.TemporaryDirectory(prefix="saetta-") as folder:
            script = Path(folder) / "job.sh"
            script.write_text(cluster.job_script())
            problem = _ask(["sbatch", "--test-only", str(script)], CHECK_TIMEOUT_S)
        if problem is not None:
            msg = (
                f"testbed {self.name!r} (slurm): 'sbatch --test-only' rejected the job script "
                f"({problem}); check queue, account, walltime and memory in {self.source}"
            )
            raise ExecutorError(msg, name=self.name)

    def _wait(self, client: Any, wanted: int, failures: _SubmitFailures) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            left = deadline - time.monotonic()
            try:
                client.wait_for_workers(wanted, timeout=max(0.1, min(1.0, left)))
            except TimeoutError as exc:
                if failures.first is not None:
                    msg = f"{failures.prefix}: {failures.first}"
                    raise ExecutorError(msg, name=self.name) from exc
                if left <= 1.0:
                    msg = (
                        f"testbed {self.name!r}: {wanted} {self.kind} workers did not start "
                        f"within {self.startup_timeout:.0f} s; check the queue and the job logs"
                    )
                    raise ExecutorError(msg, name=self.name) from exc
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


def _show(value: object) -> str:
    """A YAML value for a one-line message: its type and a short repr (``list [1, 5]``)."""
    if value is None:
        return "null"
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _one_line(exc: BaseException) -> str:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Malformed(Exception):
    """A testbed field is malformed; the message says which and what it should be."""


def _read_spec(spec: object) -> dict[str, Any]:
    """The :class:`Testbed` fields of one YAML testbed mapping (``null`` means not given)."""
    if not isinstance(spec, Mapping):  # it comes from YAML: anything is possible
        msg = f"must be a mapping like {{type: local, workers: 4}}, not {_show(spec)}"
        raise _Malformed(msg)
    for key in spec:
        if not isinstance(key, str):
            msg = f"option names must be strings, not {_show(key)}"
            raise _Malformed(msg)
    kind = spec.get("type")
    if kind not in KINDS:
        msg = f"type must be one of {', '.join(KINDS)}, not {_show(kind)}"
        raise _Malformed(msg)
    given = {k for k in _OWN_KEYS if spec.get(k) is not None}
    options = {k: v for k, v in spec.items() if k not in _OWN_KEYS}
    _check_kind(kind, given, options)
    return {
        "kind": kind,
        "workers": _read_workers(spec.get("workers")),
        "adapt": _read_adapt(spec.get("adapt")),
        "address": _read_address(spec.get("address")),
        "startup_timeout": _read_seconds(spec.get("startup_timeout")),
        "options": options,
    }


def _check_kind(kind: str, given: set[str], options: Mapping[str, Any]) -> None:
    if "address" in given and kind != "dask":
        msg = f"address is only for type dask (a running Dask scheduler), not {kind}"
        raise _Malformed(msg)
    if "adapt" in given and kind not in _BATCH:
        msg = f"adapt is only for types slurm and htcondor, not {kind}"
        raise _Malformed(msg)
    if {"adapt", "workers"} <= given:
        msg = "give workers or adapt, not both"
        raise _Malformed(msg)
    if kind not in _BATCH and options:
        key = next(iter(options))
        near = difflib.get_close_matches(key, _OWN_KEYS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        takes = "type, workers, address, startup_timeout" if kind == "dask" else "type, workers"
        msg = f"unknown key {key!r}{hint} (a {kind} testbed takes {takes})"
        raise _Malformed(msg)
    for key in sorted(_LIST_OPTIONS & options.keys()):
        value = options[key]
        if value is not None and not (
            isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        ):
            msg = f"{key} must be a list of strings, not {_show(value)}"
            raise _Malformed(msg)


def _read_workers(workers: object) -> int | None:
    if workers is None or (_is_int(workers) and workers >= 1):
        return workers
    msg = f"workers must be a positive integer, not {_show(workers)}"
    raise _Malformed(msg)


def _read_adapt(adapt: object) -> tuple[int, int] | None:
    if adapt is None:
        return None
    expected = "adapt must be a mapping like {minimum: 1, maximum: 10}"
    if not isinstance(adapt, Mapping):
        msg = f"{expected}, not {_show(adapt)}"
        raise _Malformed(msg)
    for key in adapt:
        if key not in {"minimum", "maximum"}:
            msg = f"{expected}; unknown key {_show(key)}"
            raise _Malformed(msg)
    low, high = adapt.get("minimum", 0), adapt.get("maximum")
    if high is None:
        msg = f"{expected}; maximum is missing"
        raise _Malformed(msg)
    if not (_is_int(low) and low >= 0):
        msg = f"adapt: minimum must be an integer >= 0, not {_show(low)}"
        raise _Malformed(msg)
    if _is_int(high) and high >= max(1, low):
        return low, high
    msg = f"adapt: maximum must be an integer >= {max(1, low)}, not {_show(high)}"
    raise _Malformed(msg)


def _read_address(address: object) -> str | None:
    if address is None:
        return None
    if _is_int(address):
        msg = f'address must be a string like "tcp://host:{address}", not the number {address}'
        raise _Malformed(msg)
    found = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if found is not None and 1 <= int(found.group(2)) <= 65535:
        return found.string
    msg = f'address must be like "tcp://host:8786" or "host:8786", not {_show(address)}'
    raise _Malformed(msg)


def _read_seconds(value: object) -> float:
    """Seconds in ``300``, ``"300 s"``, ``"5 min"``, ``"1 h"``; 300 if not given."""
    if value is None:
        return 300.0
    number, scale = math.nan, 1.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and (found := _DURATION.fullmatch(value)):
        number, scale = float(found.group(1)), _SECONDS.get(found.group(2).lower(), math.nan)
    seconds = number * scale
    if not (math.isfinite(seconds) and seconds > 0):
        msg = (
            "startup_timeout must be a positive number of seconds or a duration like "
            f"'5 min', not {_show(value)}"
        )
        raise _Malformed(msg)
    return seconds


def _own_jobs(kind: str) -> tuple[str, ...]:
    """``-u USER`` for ``squeue`` so that the check stays cheap on a busy cluster."""
    if kind != "slurm":
        return ()
    try:
        return ("-u", getpass.getuser())
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


def find_testbeds_file() -> Path | None:
    """The testbeds file saetta would read, or None."""
    candidates = []
    if os.environ.get("SAETTA_TESTBEDS"):
        candidates.append(Path(os.environ["SAETTA_TESTBEDS"]))
    candidates.append(Path("testbeds.yaml"))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidates.append(config / "saetta" / "testbeds.yaml")
    return next((p for p in candidates if p.is_file()), None)


def load_testbeds(path: str | os.PathLike[str] | None = None) -> dict[str, Testbed]:
    """The built-in testbeds, overridden and extended by those in the testbeds file.

    Raises
    ------
    ExecutorError
        The file cannot be read or parsed, or any part of it is malformed.
    """
    testbeds = {
        "local": Testbed("local", "local"),
        "dask": Testbed("dask", "dask"),
    }
    file = Path(path) if path is not None else find_testbeds_file()
    if file is None:
        return testbeds
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    # PyYAML's constructors raise plain ValueError/KeyError/TypeError for bad tagged
    # scalars (``!!int x``, a date 2001-02-30) and RecursionError for deep nesting.
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError, RecursionError) as exc:
        msg = f"cannot read testbeds file {file}: {_one_line(exc)}"
        raise ExecutorError(msg, name=str(file)) from exc
    expected = "'testbeds: {name: {type: ...}}'"
    if document is None:
        return testbeds
    if not isinstance(document, Mapping):
        msg = f"{file} must hold a mapping {expected}, not {_show(document)}"
        raise ExecutorError(msg, name=str(file))
    extra = [key for key in document if key != "testbeds"]
    if extra:
        msg = f"{file}: unknown top-level key {_show(extra[0])}; expected {expected}"
        raise ExecutorError(msg, name=str(file))
    entries = document.get("testbeds") or {}
    if not isinstance(entries, Mapping):
        msg = f"{file}: 'testbeds:' must map names to testbeds {expected}, not {_show(entries)}"
        raise ExecutorError(msg, name=str(file))
    for name, spec in entries.items():
        if not isinstance(name, str) or not name.strip():
            msg = f"{file}: testbed names must be non-empty strings, not {_show(name)}; quote it"
            raise ExecutorError(msg, name=str(file))
        testbeds[name] = Testbed.from_dict(name, spec, str(file))
    return testbeds


def testbed(name: str) -> Testbed:
    """Look a testbed up by name; an unknown name lists the known ones."""
    known = load_testbeds()
    try:
        return known[name]
    except KeyError:
        where = find_testbeds_file()
        source = f" (from {where} and built-ins)" if where else " (no testbeds.yaml found)"
        msg = f"unknown testbed {name!r}; available: {', '.join(sorted(known))}{source}"
        raise ExecutorError(msg, name=name) from None
