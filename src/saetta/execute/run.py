"""Stage: execute (layer 6) — ``run()``: map the analysis over work units, merge in order.

Units are submitted progressively (a bounded window in flight), so a dataset of
a million units never becomes a million pending tasks. Results merge along a
fixed tree over unit positions (:mod:`saetta.execute.merge`), whatever order
they finish in, so the merged result is the same for any executor. Each unit's
result enters the tree exactly once, keyed by its position.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

from saetta.dataset import DEFAULT_CHUNK_SIZE, Dataset
from saetta.errors import UnitError
from saetta.execute.executors import resolve_executor
from saetta.execute.journal import Journal, RunSpec, default_run_dir
from saetta.execute.outcome import Failure, Result, RunReport, UnitOutcome
from saetta.execute.testbeds import Testbed
from saetta.execute.testbeds import testbed as find_testbed
from saetta.execute.unit import Analysis, UnitOptions
from saetta.storage import parse_size

__all__ = ["run"]


def run(
    analysis: Analysis,
    dataset: Dataset | str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    executor: Any = "local",
    chunk_size: int | None = None,
    progress: bool | None = None,
    allow_partial: bool = False,
    testbed: str | Testbed | None = None,
    column_cache: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    cache_size: int | str = "50GB",
    run_dir: str | os.PathLike[str] | bool | None = None,
) -> Result:
    """Run ``analysis`` over every event of ``dataset`` and merge the results.

    Parameters
    ----------
    analysis
        A function ``events -> dict`` of ``hist.Hist``, numbers, arrays or dicts of those.
    dataset
        A :class:`~saetta.Dataset`, or paths / glob patterns to open as one.
    executor
        ``"local"`` (this process), ``"processes:N"``, ``"dask"`` / ``"dask:N"`` (a local
        Dask cluster), ``"dask://host:port"`` (a running scheduler), or an instance of
        ``concurrent.futures.Executor`` or ``distributed.Client``.
    chunk_size
        Entries per work unit at most. By default ``DEFAULT_CHUNK_SIZE``
        (250,000), made smaller when that would leave workers idle (at
        least four units per worker, and never below 10,000 entries).
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
        run. By default a new directory under ``~/.cache/saetta/runs``; ``False``
        keeps no record.

    Returns
    -------
    Result
        The merged dict, with ``.report`` saying what was processed.

    Raises
    ------
    UnitError
        Some units failed and ``allow_partial`` is false. Every other unit still
        ran; ``exc.result`` holds the partial result and its report.

    Examples
    --------
    >>> result = saetta.run(analysis, ["data/*.root"], executor="processes:2")  # doctest: +SKIP
    >>> result["met"].plot()  # doctest: +SKIP
    """
    if not isinstance(dataset, Dataset):
        dataset = Dataset.open(dataset)
    if chunk_size is not None:
        dataset.units(chunk_size)  # refuse an absurd chunk size before starting workers
    with ExitStack() as stack:
        label = None
        if testbed is not None:
            target = testbed if isinstance(testbed, Testbed) else find_testbed(testbed)
            label = f"{target.name} ({target.kind})"
            executor = target.executor or stack.enter_context(target.cluster())
        storage = dataset.storage
        if cache is not None:
            storage = replace(
                storage, cache_dir=os.fspath(cache), cache_bytes=parse_size(cache_size)
            )
        options = UnitOptions(
            column_cache=os.fspath(column_cache) if column_cache else None, storage=storage
        )
        return _run(
            analysis,
            dataset,
            executor,
            chunk_size,
            progress,
            allow_partial,
            label,
            options,
            run_dir,
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
    run_dir: str | os.PathLike[str] | bool | None,
) -> Result:
    placement = resolve_executor(executor)
    bar = None
    journal = None
    try:
        if chunk_size is None:
            chunk_size = _auto_chunk_size(dataset.num_entries, placement.workers)
        units = dataset.units(chunk_size)
        done: dict[int, UnitOutcome] = {}
        if run_dir is not False:
            directory = default_run_dir() if run_dir in (None, True) else run_dir
            spec = RunSpec.of(analysis, dataset, chunk_size, len(units))
            journal = Journal(directory, spec)  # type: ignore[arg-type]
            done = journal.done(units)
            options = replace(options, journal=str(journal.directory))
        started = time.perf_counter()
        started_at = time.time()
        bar = _progress_bar(len(units), dataset.num_entries, progress)
        if bar is not None and done:
            bar.update(sum(o.unit.num_entries for o in done.values()))
        root = placement.drive(analysis, units, bar, options, done)
    except BaseException as exc:
        placement.close(cancel=True)
        if isinstance(exc, KeyboardInterrupt) and journal is not None:
            raise Interrupted(journal.directory) from exc
        raise
    finally:
        if bar is not None:
            bar.close()
    placement.close()
    wall = time.perf_counter() - started
    outcomes = root.outcomes if root is not None else ()
    merged = root.result if root is not None else None
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
    )
    if failures and not allow_partial:
        raise _failed(failures, report, result)
    return result


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` says where to resume from."""

    def __init__(self, run_dir: Any) -> None:
        super().__init__(f"interrupted; finished units are kept in {run_dir}")
        self.run_dir = run_dir


def _auto_chunk_size(entries: int, workers: int) -> int:
    balanced = -(-entries // (4 * workers)) if workers > 1 else DEFAULT_CHUNK_SIZE
    return max(1, min(DEFAULT_CHUNK_SIZE, max(10_000, balanced)))


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
    error = UnitError(msg, unit=first.unit)
    error.result = result  # type: ignore[attr-defined]
    error.failures = failures  # type: ignore[attr-defined]
    return error


def _describe(dataset: Dataset) -> str:
    if len(dataset.files) == 1:
        return dataset.files[0].path
    return f"{len(dataset.files)} files"


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
