"""Stage: execute (layer 6) — run the analysis on one work unit, on whatever worker holds it.

This is the work-unit boundary: the one place where any exception is caught,
and turned into a :class:`~saetta.execute.outcome.Failure` naming the unit.

Longer than most modules because everything a unit's failure report needs sits
with the boundary: retries on transient storage errors, the time limit, the
measurements, and telling the file's errors from the analysis's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import functools
import os
import re
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cloudpickle
import numpy as np

from saetta._typing import Jagged, Reader
from saetta.accumulate import check
from saetta.dataset import FileInfo, WorkUnit
from saetta.errors import AnalysisError, DatasetError, FormatError, SaettaError, StorageError
from saetta.events import UnitColumns, build_events
from saetta.execute.journal import record_outcome
from saetta.execute.outcome import Failure, UnitOutcome
from saetta.execute.record import RecordError
from saetta.formats.column_cache import CachedReader
from saetta.formats.pool import forget_reader, shared_reader
from saetta.samples import wrapped_analysis
from saetta.storage import StorageOptions, cache_counters, file_identity, is_remote, redact

__all__ = ["Analysis", "UnitOptions", "UnitTimeout", "empty_result", "pickle_analysis", "run_unit"]

Analysis = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class UnitOptions:
    """How units read their columns; the same for every unit of a run."""

    column_cache: str | None = None  # folder of the decoded-column cache; None: off
    column_cache_bytes: int = 20 * 1024**3
    storage: StorageOptions = field(default_factory=StorageOptions)  # URLs, data cache tier
    journal: str | None = None  # run directory recording finished units; None: off
    unit_timeout: float | None = None  # seconds a unit may run; None: no limit


class UnitTimeout(Exception):
    """A unit ran longer than ``unit_timeout`` allows (``seconds``, when known)."""

    def __init__(self, seconds: float | None = None) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        limit = f"{self.seconds:g} s, " if self.seconds else ""
        return f"the unit ran longer than its time limit ({limit}--unit-timeout)"


def run_unit(
    analysis: Analysis | bytes,
    unit: WorkUnit,
    prefetch: Sequence[str] = (),
    options: UnitOptions = UnitOptions(),
) -> UnitOutcome:
    """Run ``analysis`` over ``unit``; never raises for a failure of the unit itself.

    ``analysis`` is the function, or its cloudpickle (so a worker deserialises
    it once, not once per unit). ``prefetch`` names columns earlier units
    touched, read here in one call before the analysis starts. A transient
    storage error (a server that stopped answering) is retried with backoff;
    a deterministic one (a corrupt basket, an exception in the analysis) is
    not. With ``options.journal``, a finished unit is recorded in the run
    directory before it is returned.
    """
    delay = options.storage.backoff
    for attempt in range(options.storage.retries + 1):
        outcome, transient, identity = _attempt(analysis, unit, prefetch, options)
        if outcome.failure is None or not transient or attempt == options.storage.retries:
            break
        forget_reader(unit.path)  # reconnect on the next attempt
        time.sleep(delay)
        delay *= 2
    if options.journal and outcome.failure is None:
        try:
            record_outcome(options.journal, outcome, identity)
        except (OSError, RecordError) as exc:
            message = f"cannot record the unit in {options.journal}: {exc}"
            failure = Failure(unit, "JournalError", options.storage.scrub(message))
            outcome = replace(outcome, result=None, failure=failure)
    return outcome


def _attempt(
    analysis: Analysis | bytes, unit: WorkUnit, prefetch: Sequence[str], options: UnitOptions
) -> tuple[UnitOutcome, bool, tuple[int, str]]:
    started = time.perf_counter()
    started_at = time.time()
    reader: Reader | None = None
    cached: CachedReader | None = None
    blocks_before = (0, 0, 0, 0)
    bytes_before = 0
    cache: UnitColumns | None = None
    identity = (0, "")

    def measured(**what: Any) -> UnitOutcome:
        return UnitOutcome(
            unit,
            columns=tuple(cache.touched) if cache else (),
            bytes_read=(reader.bytes_read - bytes_before) if reader else 0,
            seconds=time.perf_counter() - started,
            cache_hits=cached.hits if cached else 0,
            cache_misses=cached.misses if cached else 0,
            data_cache=_block_delta(options.storage, blocks_before),
            peak_memory=_peak_memory(),
            worker=f"{socket.gethostname()}:{os.getpid()}{_batch_job()}",
            started_at=started_at,
            **what,
        )

    try:
        # The time limit covers the whole unit: a stalled read as much as the analysis.
        with _deadline(options.unit_timeout):
            function = _load(analysis) if isinstance(analysis, bytes) else analysis
            identity = file_identity(unit.path, options.storage)
            reader = shared_reader(unit.path, unit.tree, unit.format, options.storage, identity)
            if unit.file_entries and reader.num_entries != unit.file_entries:
                msg = (
                    f"{redact(unit.path)} holds {reader.num_entries:,} entries, not the "
                    f"{unit.file_entries:,} the dataset was planned with: its catalog "
                    "entry (or the file) changed"
                )
                raise DatasetError(msg, path=unit.path)
            if options.column_cache:
                reader = cached = CachedReader(
                    reader, options.column_cache, identity, options.column_cache_bytes
                )
            blocks_before = _block_counters(options.storage)
            bytes_before = reader.bytes_read
            cache = UnitColumns(reader, unit.start, unit.stop)
            cache.prefetch(prefetch)
            events = build_events(
                cache,
                attrs={
                    "path": unit.path,
                    "tree": unit.tree,
                    "start": unit.start,
                    "stop": unit.stop,
                    # File-level facts the format keeps beside its columns (a FITS
                    # header's keywords: a gamma-ray observation's pointing).
                    "header": dict(getattr(reader, "header", {})),
                },
            )
            result = function(events)
            if not isinstance(result, dict):
                msg = (
                    f"the analysis returned a {type(result).__name__}; it must return a dict "
                    "of results, e.g. {'met': hist}"
                )
                raise AnalysisError(msg)
            check(result)
    except (Exception, SystemExit) as raised:  # noqa: BLE001 - the unit boundary names every failure
        exc = _reading_error(raised)
        if isinstance(exc, UnitTimeout) and exc.seconds is None:
            exc.seconds = options.unit_timeout  # raised on a thread, as a bare class
        scrub = options.storage.scrub
        failure = Failure(
            unit=unit,
            error=type(exc).__name__,
            message=scrub(_message(exc) + _near_miss(exc, reader)),
            traceback="" if isinstance(exc, SaettaError) else scrub(traceback.format_exc()),
        )
        transient = (isinstance(exc, StorageError) and exc.transient) or (
            is_remote(unit.path) and isinstance(exc, OSError | TimeoutError)
        )
        return measured(failure=failure), transient, identity
    return measured(result=result), False, identity


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`UnitTimeout` in this thread once ``seconds`` have passed.

    In a main thread (the local executor, process-pool workers) a timer signal
    interrupts the analysis, waits on I/O included; elsewhere (Dask's worker
    threads) the exception is set on the thread, and a wait in C (one long
    ``time.sleep``, a blocking read) ends first. Either way it arrives when
    Python code runs again: a compiled loop finishes its call first.
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is threading.main_thread():

        def expire(signum: int, frame: Any) -> None:
            raise UnitTimeout(seconds)

        previous = signal.signal(signal.SIGALRM, expire)
        outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
        started = time.monotonic()
        try:
            yield
        finally:
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
            finally:  # even if the alarm, come just now, raised on the line above
                signal.signal(signal.SIGALRM, previous)
                if outer:  # another alarm was set (pytest-timeout, the caller's): set it again
                    left = outer - (time.monotonic() - started)
                    signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)
        return
    thread = threading.get_ident()
    lock = threading.Lock()
    over = threading.Event()

    def expire_thread() -> None:
        with lock:
            if not over.is_set():
                exc = ctypes.py_object(UnitTimeout)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), exc)

    timer = threading.Timer(seconds, expire_thread)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            over.set()
            timer.cancel()


class _NoEntries:
    """A reader of a file's columns over no entries: what an analysis sees of an empty file."""

    def __init__(self, info: FileInfo) -> None:
        self.path, self.tree = info.path, info.tree
        self.columns = {c.name: c for c in info.columns}
        self.num_entries = 0
        self.boundaries = (0,)
        self.bytes_read = 0

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        empty = {}
        for name in columns:
            column = self.columns[name]
            values = np.empty(0, dtype=column.dtype)
            empty[name] = Jagged(np.zeros(1, np.int64), values) if column.jagged else values
        return empty

    def close(self) -> None:
        pass


def empty_result(analysis: Analysis, info: FileInfo, options: UnitOptions = UnitOptions()) -> Any:
    """What ``analysis`` returns for no events of ``info``'s file: its empty histograms.

    A dataset whose files hold no events still gives a result of the usual shape.
    An analysis that cannot take an empty input gives an empty result.
    """
    events = build_events(
        UnitColumns(_NoEntries(info), 0, 0),
        attrs={"path": info.path, "start": 0, "stop": 0, "tree": info.tree, "header": {}},
    )
    try:
        with _deadline(options.unit_timeout):
            result = analysis(events)
        check(result)
    except Exception:  # noqa: BLE001 - nothing was lost: there were no events
        return {}
    return result


def _block_counters(storage: StorageOptions) -> tuple[int, int, int, int]:
    if storage.cache_dir is None:
        return (0, 0, 0, 0)
    return cache_counters(storage.cache_dir, storage.cache_bytes)


def _block_delta(
    storage: StorageOptions, before: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    after = _block_counters(storage)
    return (after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3] - before[3])


def _peak_memory() -> int:
    """Peak resident memory of this worker process so far, in bytes (Linux: ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@functools.cache
def _batch_job() -> str:
    """The batch job this process runs in, for :attr:`UnitOutcome.worker`:
    ``" (slurm job 42)"``, ``" (htcondor job 7.0)"``, or ``""`` outside one."""
    if os.environ.get("SLURM_JOB_ID"):
        return f" (slurm job {os.environ['SLURM_JOB_ID']})"
    ad = os.environ.get("_CONDOR_JOB_AD")  # HTCondor puts no job id in the environment
    if not ad:
        return ""
    try:
        with open(ad, encoding="utf-8", errors="replace") as file:
            ids = dict(re.findall(r"(?m)^(ClusterId|ProcId) = (\d+)$", file.read()))
    except OSError:
        ids = {}
    return f" (htcondor job {ids.get('ClusterId', '?')}.{ids.get('ProcId', '?')})"


_NO_FIELD = re.compile(r"no field(?: named)? '([^']+)'")


def _near_miss(exc: BaseException, reader: Reader | None) -> str:
    """A 'did you mean' for a misspelt field, as awkward does not offer one."""
    found = _NO_FIELD.search(str(exc))
    if reader is None or found is None:
        return ""
    names = set(reader.columns)
    names |= {n.partition("_")[0] for n in names} | {n.partition("_")[2] for n in names}
    # The missing name may exist elsewhere (Jet has 'pt', MET_pt too): never suggest it.
    near = difflib.get_close_matches(found.group(1), sorted(names - {"", found.group(1)}), n=3)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


def _reading_error(exc: BaseException) -> BaseException:
    """What to report for ``exc``: the read (or time limit) behind it, if it wraps one.

    Columns are read while the analysis runs, and awkward turns an error raised as it
    gets a field (``events.Jet.pt`` reading ``nJet``) into an AttributeError from it:
    the file's error, not the analysis's. An analysis's own errors are reported as
    they are.
    """
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, FormatError | StorageError | UnitTimeout):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return exc


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def pickle_analysis(analysis: Analysis, *, remote: bool = False) -> bytes:
    """The analysis as bytes for workers; the user's own modules travel by value.

    cloudpickle sends functions of importable modules by reference. A module
    loaded from a file path (``my_analysis.py:analysis``) cannot be imported by
    name anywhere, so it always travels whole. For ``remote`` workers (a Dask
    cluster), so does any module outside the installed environment, which they
    lack; saetta's own modules always go by reference, so their compiled
    kernels are reused.
    """
    module = sys.modules.get(getattr(wrapped_analysis(analysis), "__module__", "") or "")
    if module is not None and module.__name__ != "__main__":
        path = getattr(module, "__file__", None) or ""
        installed = os.path.realpath(path).startswith(
            (os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix))
        )
        ours = module.__name__.split(".")[0] == "saetta"
        from_path = module.__name__.startswith("_saetta_user_")
        if from_path or (remote and path and not installed and not ours):
            cloudpickle.register_pickle_by_value(module)
    pickled: bytes = cloudpickle.dumps(analysis)
    return pickled


@functools.lru_cache(maxsize=4)
def _load(pickled: bytes) -> Analysis:
    function: Analysis = cloudpickle.loads(pickled)
    return function
