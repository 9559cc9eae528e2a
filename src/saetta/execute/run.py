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
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any

import cloudpickle

from saetta.dataset import DEFAULT_CHUNK_SIZE, Dataset, WorkUnit
from saetta.errors import UnitError
from saetta.execute.executors import resolve_executor
from saetta.execute.merge import MergeTree, Partial, combine
from saetta.execute.outcome import Failure, Result, RunReport, UnitOutcome
from saetta.execute.unit import Analysis, run_unit

__all__ = ["run"]


def run(
    analysis: Analysis,
    dataset: Dataset | str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    executor: str | Executor = "local",
    chunk_size: int | None = None,
    progress: bool | None = None,
    allow_partial: bool = False,
) -> Result:
    """Run ``analysis`` over every event of ``dataset`` and merge the results.

    Parameters
    ----------
    analysis
        A function ``events -> dict`` of ``hist.Hist``, numbers, arrays or dicts of those.
    dataset
        A :class:`~saetta.Dataset`, or paths / glob patterns to open as one.
    executor
        ``"local"`` (this process), ``"processes:N"``, or any ``concurrent.futures.Executor``.
    chunk_size
        Entries per work unit at most. By default ``DEFAULT_CHUNK_SIZE``
        (250,000), made smaller when that would leave workers idle (at
        least four units per worker, and never below 10,000 entries).
    progress
        Show a progress bar; by default only when stderr is a terminal or in Jupyter.
    allow_partial
        Return a partial result when units fail, instead of raising.

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
    placement = resolve_executor(executor)
    if chunk_size is None:
        chunk_size = _auto_chunk_size(dataset.num_entries, placement.workers)
    try:
        units = dataset.units(chunk_size)
    except BaseException:
        if placement.owned:
            placement.executor.shutdown(wait=False, cancel_futures=True)
        raise
    task: Analysis | bytes = cloudpickle.dumps(analysis) if placement.pickle_analysis else analysis
    started = time.perf_counter()
    bar = _progress_bar(len(units), dataset.num_entries, progress)
    try:
        root = _drive(placement.executor, placement.workers, task, units, bar)
    except BaseException:
        if placement.owned:
            placement.executor.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    if placement.owned:
        placement.executor.shutdown(wait=True)
    wall = time.perf_counter() - started
    outcomes = root.outcomes if root is not None else ()
    merged = root.result if root is not None else None
    failures = tuple(o.failure for o in outcomes if o.failure is not None)
    columns = dict.fromkeys(c for o in outcomes for c in o.columns)
    report = RunReport(
        dataset=dataset.name or _describe(dataset),
        executor=placement.name,
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
    )
    result = Result(merged if isinstance(merged, Mapping) else {}, report)
    if failures and not allow_partial:
        raise _failed(failures, report, result)
    return result


def _drive(
    executor: Executor,
    workers: int,
    task: Analysis | bytes,
    units: tuple[WorkUnit, ...],
    bar: Any,
) -> Partial | None:
    """Submit units progressively to a concurrent.futures executor; merge here, in tree order."""
    tree: MergeTree[Partial] = MergeTree(len(units), combine)
    pending: dict[Future[UnitOutcome], int] = {}
    columns: dict[str, None] = {}
    window = 2 * workers + 1
    next_submit = 0
    while next_submit < len(units) or pending:
        while next_submit < len(units) and len(pending) < window:
            future = executor.submit(run_unit, task, units[next_submit], tuple(columns))
            pending[future] = next_submit
            next_submit += 1
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            index = pending.pop(future)
            outcome = future.result()
            columns.update(dict.fromkeys(outcome.columns))
            tree.add(index, Partial.of(outcome))
            if bar is not None:
                bar.update(outcome.unit.num_entries)
    return tree.root


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
