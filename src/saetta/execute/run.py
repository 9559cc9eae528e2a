"""Stage: execute (layer 6) — ``run()``: map the analysis over work units, merge in order.

Units are submitted progressively (a bounded window in flight), so a dataset of
a million units never becomes a million pending tasks. Results merge along a
fixed tree over unit positions (:mod:`saetta.execute.merge`), whatever order
they finish in, so the merged result is the same for any executor. Each unit's
result enters the tree exactly once, keyed by its position.

Longer than most modules because :func:`run` is the public entry point: its
docstring (every parameter, what it raises) is a third of the file, and its
setup (testbed, caches, journal) reads best in one place.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

from saetta._config import DEFAULT_CACHE_SIZE
from saetta.dataset import DEFAULT_CHUNK_SIZE, Dataset
from saetta.errors import ExecutorError, Interrupted, UnitError
from saetta.execute.fingerprint import RunSpec
from saetta.execute.journal import Journal
from saetta.execute.merge import settle
from saetta.execute.outcome import Failure, Result, RunReport, UnitOutcome
from saetta.execute.placement import Job, resolve_executor
from saetta.execute.rundirs import default_run_dir
from saetta.execute.testbeds import Testbed
from saetta.execute.testbeds import testbed as find_testbed
from saetta.execute.unit import Analysis, UnitOptions, empty_result
from saetta.formats.column_cache import claim_column_cache
from saetta.quantities import parse_bytes
from saetta.samples import Samples, wrapped_analysis

__all__ = ["auto_chunk_size", "run"]


def run(
    analysis: Analysis,
    dataset: Dataset | Samples | str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    executor: Any = "local",
    chunk_size: int | None = None,
    progress: bool | None = None,
    allow_partial: bool = False,
    testbed: str | Testbed | None = None,
    column_cache: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    cache_size: int | str = DEFAULT_CACHE_SIZE,
    run_dir: str | os.PathLike[str] | bool | None = None,
    unit_timeout: float | None = None,
    command: Mapping[str, Any] | None = None,
) -> Result:
    """Run ``analysis`` over every event of ``dataset`` and merge the results.

    Parameters
    ----------
    analysis
        A function ``events -> dict`` of ``hist.Hist``, numbers, arrays or dicts of those.
    dataset
        A :class:`~saetta.Dataset`, or paths / glob patterns to open as one; or
        :class:`~saetta.Samples`: then the analysis runs per sample, its result is
        keyed by sample name, and the result's ``metadata`` records the samples
        (see :mod:`saetta.samples`).
    executor
        ``"local"`` (this process), ``"processes:N"``, ``"dask"`` / ``"dask:N"`` (a local
        Dask cluster), ``"dask://host:port"`` (a running scheduler), or an instance of
        ``concurrent.futures.Executor`` or ``distributed.Client``.
    chunk_size
        Entries per work unit at most. By default ``DEFAULT_CHUNK_SIZE``
        (250,000), made smaller when that would leave workers idle (at
        least four units per worker), but never smaller than the file's own
        clusters (row groups), so each basket is read once. A resumed run keeps
        the chunk size it started with.
    progress
        Show a progress bar; by default only when stderr is a terminal or in Jupyter.
    allow_partial
        Return a partial result when units fail, instead of raising.
    testbed
        A testbed name from ``testbeds.yaml`` (or a :class:`Testbed`); replaces
        ``executor``. A batch cluster it starts is always stopped at the end.
    column_cache
        A folder for saetta's cache of decoded columns (off by default): a
        second run over the same files reads the columns from there, several
        times faster than decompressing them again.
    cache, cache_size
        A folder for the data cache tier (off by default): byte ranges read
        from remote files (``root://``, ``https://``, ``s3://``) are kept there,
        so the next run reads them locally; at most ``cache_size`` (bytes, or
        ``"50GB"``), least recently used first out.
    run_dir
        The run directory (:mod:`saetta.execute.journal`): each finished unit is
        recorded there, and calling ``run`` again with the same directory runs
        only the units not yet done, giving the same result as an uninterrupted
        run; it refuses a directory that holds a different run. By default a new
        directory under ``~/.cache/saetta/runs``; ``False`` keeps no record.
    unit_timeout
        Seconds a unit may run; one that runs longer fails (``UnitTimeout``) and
        the others go on. By default no limit.
    command
        JSON-able facts to record in the run directory (the command line records
        how to resume the run from it).

    Returns
    -------
    Result
        The merged dict, with ``.report`` saying what was processed.

    Raises
    ------
    UnitError
        Some units failed and ``allow_partial`` is false. Every other unit still
        ran; ``exc.result`` holds the partial result and its report.
    JournalError
        The run directory holds another run, or another saetta process is using it.

    Examples
    --------
    >>> result = saetta.run(analysis, ["data/*.root"], executor="processes:2")  # doctest: +SKIP
    >>> result["met"].plot()  # doctest: +SKIP
    """
    _refuse_in_a_bootstrapping_worker()
    metadata: dict[str, Any] = {}
    if isinstance(dataset, Samples):
        metadata = dataset.to_dict()
        analysis, dataset = dataset.analysis(analysis)
    elif not isinstance(dataset, Dataset):
        dataset = Dataset.open(dataset)
    if chunk_size is not None:
        Dataset(()).units(chunk_size)  # refuse an absurd chunk size before starting workers
    if unit_timeout is not None and not unit_timeout > 0:
        msg = f"the unit timeout must be a positive number of seconds, not {unit_timeout!r}"
        raise ExecutorError(msg, name="unit_timeout")
    with ExitStack() as stack:
        label = None
        if testbed is not None:
            target = testbed if isinstance(testbed, Testbed) else find_testbed(testbed)
            label = f"{target.name} ({target.kind})"
            executor = target.executor or stack.enter_context(target.cluster())
        storage = dataset.storage
        if cache is not None:
            storage = replace(
                storage,
                cache_dir=os.fspath(cache),
                cache_bytes=int(parse_bytes(cache_size, "cache size", plain_number=True)),
            )
        if column_cache:  # refuse a folder that is not saetta's before any unit starts
            claim_column_cache(column_cache)
        options = UnitOptions(
            column_cache=os.fspath(column_cache) if column_cache else None,
            storage=storage,
            unit_timeout=unit_timeout,
        )
        journal = None
        if run_dir is not False:
            directory = default_run_dir() if run_dir in (None, True) else run_dir
            journal = Journal(directory)  # type: ignore[arg-type]
            stack.callback(journal.close)
        return _run(
            analysis,
            dataset,
            executor,
            chunk_size,
            progress,
            allow_partial,
            label,
            options,
            journal,
            command,
            metadata,
        )


def _run(
    analysis: Analysis,
    dataset: Dataset,
    executor: Any,
    chunk_size: int | None,
    progress: bool | None,
    allow_partial: bool,
    label: str | None,
    options: UnitOptions,
    journal: Journal | None,
    command: Mapping[str, Any] | None,
    metadata: Mapping[str, Any],
) -> Result:
    bar = None
    placement = None
    try:
        placement = resolve_executor(executor, preload=_preload(analysis))
        if chunk_size is None:
            recorded = journal.chunk_size if journal is not None else None
            chunk_size = recorded or auto_chunk_size(dataset, placement.workers)
        units = dataset.units(chunk_size)
        done: dict[int, UnitOutcome] = {}
        if journal is not None:
            journal.start(RunSpec.of(analysis, dataset, chunk_size), command)
            done = journal.done(units, dataset)
            options = replace(options, journal=str(journal.directory))
        started = time.perf_counter()
        started_at = time.time()
        bar = _progress_bar(len(units), dataset.num_entries, progress)
        if bar is not None and done:
            bar.update(sum(o.unit.num_entries for o in done.values()))
        root = settle(placement.drive(Job(analysis, units, options, done, bar)))
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        with _second_interrupt_stops_at_once():
            if placement is not None:
                placement.close(cancel=True)
            if journal is not None:  # a run that failed setting up leaves nothing behind
                journal.close(discard=not interrupted)
        if interrupted and journal is not None:
            raise Interrupted(journal.directory) from exc
        raise
    finally:
        if bar is not None:
            bar.close()
    placement.close()
    wall = time.perf_counter() - started
    outcomes = root.outcomes if root is not None else ()
    merged = root.result if root is not None else _empty_result(analysis, dataset, options)
    failures = tuple(o.failure for o in outcomes if o.failure is not None)
    columns = dict.fromkeys(c for o in outcomes for c in o.columns)
    report = RunReport(
        dataset=dataset.name or _describe(dataset),
        executor=label or placement.name,
        chunk_size=chunk_size,
        files=len(dataset.files),
        units_total=len(units),
        units_done=len(units) - len(failures),
        events_total=dataset.num_entries,
        events_processed=sum(o.unit.num_entries for o in outcomes if o.failure is None),
        bytes_read=sum(o.bytes_read for o in outcomes),
        wall_seconds=wall,
        unit_seconds=sum(o.seconds for o in outcomes),
        columns=tuple(columns),
        failures=failures,
        cache_hits=sum(o.cache_hits for o in outcomes),
        cache_misses=sum(o.cache_misses for o in outcomes),
        peak_memory=max((o.peak_memory for o in outcomes), default=0),
        units=tuple(outcomes),
        data_cache=tuple(sum(o.data_cache[i] for o in outcomes) for i in range(4)),  # type: ignore[arg-type]
        started_at=started_at,
    )
    if journal is not None:
        journal.write_summary(report)
    result = Result(
        merged if isinstance(merged, Mapping) else {},
        report,
        run_dir=journal.directory if journal else None,
        metadata=metadata,
    )
    if failures and not allow_partial:
        raise _failed(failures, report, result)
    return result


@contextmanager
def _second_interrupt_stops_at_once() -> Iterator[None]:
    """While a run winds down after Ctrl-C, a second Ctrl-C ends the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        sys.stderr.write("\nsaetta: stopped\n")
        os._exit(128 + signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _refuse_in_a_bootstrapping_worker() -> None:
    """A worker process that re-imports a script without ``if __name__ == "__main__":``
    would start a run of its own; it stops with a status the driver recognises."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        sys.stderr.write(
            "saetta: error: a worker process re-ran the script that calls saetta.run(); "
            "put that call under 'if __name__ == \"__main__\":'\n"
        )
        sys.stderr.flush()
        from saetta.execute.processes import UNGUARDED_EXIT

        os._exit(UNGUARDED_EXIT)


def _preload(analysis: Analysis) -> tuple[str, ...]:
    """Modules for worker processes to import once, before their first unit: the
    analysis' own module where it is importable by name, and the saetta modules it
    uses (an analysis file that calls the ADL queries: their numba kernels' module).
    A module that cannot be imported there is skipped by the forkserver."""
    function = wrapped_analysis(analysis)
    while isinstance(function, functools.partial):
        function = function.func
    name = getattr(function, "__module__", None)
    module = sys.modules.get(name) if isinstance(name, str) else None
    if module is None:
        return ()
    found: dict[str, None] = {} if name == "__main__" else {module.__name__: None}
    for value in vars(module).values():
        used = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(used, str) and used.startswith("saetta.") and used in sys.modules:
            found[used] = None
    if _calls_a_kernel(function):  # numba loads when a kernel first runs: once, for all workers
        found["numba"] = None
    return tuple(found)


def _calls_a_kernel(function: Any, depth: int = 4) -> bool:
    """Whether ``function``, or a function it names (directly, or in a dict or tuple of
    them, as ``adl.analysis`` its queries), is a compiled kernel (:mod:`saetta.kernels`)."""
    code, names = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    if code is None or depth == 0:
        return False
    for name in code.co_names:
        value = names.get(name)
        if isinstance(value, dict):
            value = tuple(value.values())
        for used in value if isinstance(value, tuple | list) else (value,):
            if type(used).__name__ == "_Kernel":
                return True
            if (
                inspect.isfunction(used)
                and used is not function
                and _calls_a_kernel(used, depth - 1)
            ):
                return True
    return False


def _empty_result(analysis: Analysis, dataset: Dataset, options: UnitOptions) -> Any:
    """A dataset without events still gets the analysis' (empty) histograms."""
    if not dataset.files:
        return {}
    first = dataset.files[0]
    if not first.scanned:  # described by a catalog: its columns are those of the dataset
        first = replace(first, columns=tuple(dataset.columns.values()))
    return empty_result(analysis, first, options)


def auto_chunk_size(dataset: Dataset, workers: int) -> int:
    """At most ``DEFAULT_CHUNK_SIZE``; smaller when that leaves fewer than four units per
    worker, but not below 10,000 entries nor below the files' largest cluster (row group),
    which would then be read once per unit that cuts it."""
    entries = dataset.num_entries
    if workers <= 1:
        return DEFAULT_CHUNK_SIZE
    balanced = -(-entries // (4 * workers))
    cluster = max((f.largest_cluster for f in dataset.files), default=1)
    return max(1, min(DEFAULT_CHUNK_SIZE, max(10_000, cluster, balanced)))


def _failed(failures: tuple[Failure, ...], report: RunReport, result: Result) -> UnitError:
    first = failures[0]
    if len(failures) == 1:
        msg = f"unit {first}; {report.events_missing:,} of {report.events_total:,} events not processed"
    else:
        msg = (
            f"{len(failures)} of {report.units_total} units failed "
            f"({report.events_missing:,} of {report.events_total:,} events not processed); "
            f"first: {first}"
        )
    return UnitError(msg, unit=first.unit, result=result, failures=failures)


def _describe(dataset: Dataset) -> str:
    if len(dataset.files) == 1:
        return dataset.files[0].path
    return f"{len(dataset.files):,} files"


def _progress_bar(units: int, events: int, progress: bool | None) -> Any:
    if progress is False or units == 0:
        return None
    from tqdm.auto import tqdm

    if progress is None:
        import sys

        in_notebook = "ipykernel" in sys.modules
        if not (in_notebook or sys.stderr.isatty()):
            return None
    return tqdm(total=events, unit="ev", unit_scale=True, desc="saetta", leave=False)
