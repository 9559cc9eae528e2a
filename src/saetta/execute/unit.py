"""Stage: execute (layer 6) — run the analysis on one work unit, on whatever worker holds it.

This is the work-unit boundary: the one place where any exception is caught,
and turned into a :class:`~saetta.execute.outcome.Failure` naming the unit.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import resource
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cloudpickle

from saetta._typing import Reader
from saetta.accumulate import check
from saetta.dataset import WorkUnit, forget_reader, shared_reader
from saetta.errors import AnalysisError, SaettaError, StorageError
from saetta.events import UnitColumns, build_events
from saetta.execute.journal import record_outcome
from saetta.execute.outcome import Failure, UnitOutcome
from saetta.formats.column_cache import CachedReader
from saetta.storage import StorageOptions, cache_counters, file_identity, is_remote

__all__ = ["Analysis", "UnitOptions", "pickle_analysis", "run_unit"]

Analysis = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class UnitOptions:
    """How units read their columns; the same for every unit of a run."""

    column_cache: str | None = None  # folder of the decoded-column cache; None: off
    column_cache_bytes: int = 20 * 1024**3
    storage: StorageOptions = field(default_factory=StorageOptions)  # URLs, data cache tier
    journal: str | None = None  # run directory recording finished units; None: off


def run_unit(
    analysis: Analysis | bytes,
    unit: WorkUnit,
    prefetch: Sequence[str] = (),
    options: UnitOptions = UnitOptions(),
    index: int = -1,
) -> UnitOutcome:
    """Run ``analysis`` over ``unit``; never raises for a failure of the unit itself.

    ``analysis`` is the function, or its cloudpickle (so a worker deserialises
    it once, not once per unit). ``prefetch`` names columns earlier units
    touched, read here in one call before the analysis starts. A transient
    storage error (a server that stopped answering) is retried with backoff;
    a deterministic one (a corrupt basket, an exception in the analysis) is
    not. With ``options.journal``, the outcome of unit ``index`` is recorded
    in the run directory before it is returned.
    """
    delay = options.storage.backoff
    for attempt in range(options.storage.retries + 1):
        outcome, transient = _attempt(analysis, unit, prefetch, options)
        if outcome.failure is None or not transient or attempt == options.storage.retries:
            break
        forget_reader(unit.path)  # reconnect on the next attempt
        time.sleep(delay)
        delay *= 2
    if options.journal and index >= 0 and outcome.failure is None:
        try:
            record_outcome(options.journal, index, outcome)
        except OSError as exc:
            failure = Failure(
                unit, "JournalError", f"cannot record the unit in {options.journal}: {exc}"
            )
            outcome = replace(outcome, result=None, failure=failure)
    return outcome


def _attempt(
    analysis: Analysis | bytes, unit: WorkUnit, prefetch: Sequence[str], options: UnitOptions
) -> tuple[UnitOutcome, bool]:
    started = time.perf_counter()
    started_at = time.time()
    reader: Reader | None = None
    cached: CachedReader | None = None
    blocks_before = (0, 0, 0, 0)
    bytes_before = 0
    cache: UnitColumns | None = None

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
            worker=f"{socket.gethostname()}:{os.getpid()}",
            started_at=started_at,
            **what,
        )

    try:
        function = _load(analysis) if isinstance(analysis, bytes) else analysis
        identity = file_identity(unit.path, options.storage)
        reader = shared_reader(unit.path, unit.tree, unit.format, options.storage, identity)
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
            attrs={"path": unit.path, "tree": unit.tree, "start": unit.start, "stop": unit.stop},
        )
        result = function(events)
        if not isinstance(result, dict):
            msg = (
                f"the analysis returned a {type(result).__name__}; it must return a dict "
                "of results, e.g. {'met': hist}"
            )
            raise AnalysisError(msg)
        check(result)
    except Exception as exc:  # noqa: BLE001 - the work-unit boundary names every failure
        failure = Failure(
            unit=unit,
            error=type(exc).__name__,
            message=_message(exc) + _near_miss(exc, reader),
            traceback="" if isinstance(exc, SaettaError) else traceback.format_exc(),
        )
        transient = (isinstance(exc, StorageError) and exc.transient) or (
            is_remote(unit.path) and isinstance(exc, OSError | TimeoutError)
        )
        return measured(failure=failure), transient
    return measured(result=result), False


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


_NO_FIELD = re.compile(r"no field(?: named)? '([^']+)'")


def _near_miss(exc: BaseException, reader: Reader | None) -> str:
    """A 'did you mean' for a misspelt field, as awkward does not offer one."""
    found = _NO_FIELD.search(str(exc))
    if reader is None or found is None:
        return ""
    names = set(reader.columns)
    names |= {n.partition("_")[0] for n in names} | {n.partition("_")[2] for n in names}
    near = difflib.get_close_matches(found.group(1), sorted(names - {""}), n=3)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


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
    module = sys.modules.get(getattr(analysis, "__module__", "") or "")
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
