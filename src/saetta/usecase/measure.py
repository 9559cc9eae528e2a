"""Stage: use cases (layer 7) — timed runs of the analysis, and what they measured."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from saetta.dataset import Dataset
from saetta.errors import SaettaError, UseCaseError
from saetta.execute.outcome import Result, RunReport
from saetta.execute.run import run
from saetta.execute.testbeds import Testbed
from saetta.execute.testbeds import testbed as find_testbed
from saetta.usecase.spec import Analysis

__all__ = [
    "Measurement",
    "UnitRecord",
    "histogram_fills",
    "measure",
    "resolve_testbed",
    "tail_factor",
    "testbed_workers",
    "timed_run",
]


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class UnitRecord:
    """One unit of a timed run: worker, start (seconds after the run began), duration."""

    worker: str
    start_s: float
    seconds: float
    events: int
    bytes_read: int
    peak_memory: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.seconds


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed run of the analysis on ``workers`` workers.

    A run has two phases. **Start-up**: until every worker has finished its first
    unit (workers starting, imports, the compiled kernels loading, the first
    unit's own work), and the 2n + 1 units queued at the start have finished
    (they cannot prefetch columns); this is ``warmup_s``. **Steady state**: from
    then until the first worker runs out of units, every worker warm and busy. ``rate_hz`` is
    the aggregate event rate of the steady state (each unit's events spread over
    its worker's time from the end of the previous unit to its own end, so the
    gaps between units count); ``t0_s`` is all the rest of the wall time,
    ``wall_s − tail · events / rate_hz``. A worker's first unit, or a unit that
    ran while another worker was still starting, never enters the rate.
    """

    workers: int
    chunk_size: int
    events: int
    units: int
    wall_s: float  # around saetta.run: worker or cluster start-up included
    bytes_read: int
    peak_memory: int
    rate_hz: float
    rate_rel_err: float  # relative std of the steady units' rates / √(steady units)
    t0_s: float
    first_unit_s: float  # from the start of the run to the start of its first unit
    dispatch_s: float  # mean idle time of a worker between two units
    timeline: tuple[UnitRecord, ...] = field(repr=False)
    warmup_s: float = 0.0  # from the start of the run until every worker finished its first unit
    steady_units: int = 0  # units (or parts of units) the steady rate was measured on

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["timeline"] = [dataclasses.asdict(u) for u in self.timeline]
        return out


def tail_factor(units: int, workers: int) -> float:
    """How much the last, partly filled wave of units stretches ``units / workers`` waves."""
    if units <= 0 or workers <= 0:
        return 1.0
    return math.ceil(units / workers) / (units / workers)


def measure(
    report: RunReport, workers: int, wall_s: float, started_at: float, chunk_size: int = 0
) -> Measurement:
    """Start-up, steady rate and dispatch time of one run, from its per-unit records.

    Parameters
    ----------
    report
        The run's report; ``report.units`` has each unit's worker, start and duration.
    workers
        The number of workers the run was given.
    wall_s
        The run's wall time as the caller measured it.
    started_at
        ``time.time()`` when the caller started the run.
    chunk_size
        The run's chunk size (recorded only).
    """
    timeline = tuple(
        sorted(
            (
                UnitRecord(
                    o.worker,
                    o.started_at - started_at,
                    o.seconds,
                    o.events,
                    o.bytes_read,
                    o.peak_memory,
                )
                for o in report.units
            ),
            key=lambda u: u.start_s,
        )
    )
    by_worker: dict[str, list[UnitRecord]] = {}
    for record in timeline:
        by_worker.setdefault(record.worker, []).append(record)
    # Each unit after a worker's first, as (from the end of the previous unit, to its end, events).
    spans = [
        (previous.end_s, current.end_s, current.events)
        for records in by_worker.values()
        for previous, current in itertools.pairwise(records)
    ]
    gaps = [
        max(0.0, current.start_s - previous.end_s)
        for records in by_worker.values()
        for previous, current in itertools.pairwise(records)
    ]
    warm = max((records[0].end_s for records in by_worker.values()), default=0.0)
    queued = report.units[: _queued_at_start(workers)]  # report.units is in unit order
    warm = max([warm, *(o.started_at - started_at + o.seconds for o in queued)])
    busy_until = min((records[-1].end_s for records in by_worker.values()), default=0.0)
    if len(by_worker) < workers:  # a worker never got a unit: no steady state with all of them
        busy_until = warm
    rate, unit_rates = _steady_rate(spans, warm, busy_until)
    if not rate:  # no moment with every worker warm and busy: per worker, after its first unit
        rate, unit_rates = _per_worker_rate(by_worker, workers)
    if not rate:  # one unit per worker: no steady state seen at all
        busy = sum(r.seconds for r in timeline)
        rate = report.events_processed / busy * workers if busy > 0 else 0.0
    rel_err = 0.0
    if len(unit_rates) > 1:
        spread = statistics.stdev(unit_rates) / statistics.fmean(unit_rates)
        rel_err = spread / math.sqrt(len(unit_rates))
    work = tail_factor(len(timeline), workers) * report.events_processed / rate if rate else 0.0
    return Measurement(
        workers=workers,
        chunk_size=chunk_size,
        events=report.events_processed,
        units=len(timeline),
        wall_s=wall_s,
        bytes_read=report.bytes_read,
        peak_memory=report.peak_memory,
        rate_hz=rate,
        rate_rel_err=rel_err,
        t0_s=wall_s - work,
        first_unit_s=timeline[0].start_s if timeline else 0.0,
        dispatch_s=statistics.fmean(gaps) if gaps else 0.0,
        timeline=timeline,
        warmup_s=warm,
        steady_units=len(unit_rates),
    )


def _queued_at_start(workers: int) -> int:
    """Units saetta's executors queue before the first result is back: 2n + 1.

    Those cannot prefetch the columns that earlier units were seen to read (the
    run learns them from finished units) and take ~15 % longer than the units
    after them; in a long run they are a negligible share, in a calibration run a
    large one, so they belong to the start-up.
    """
    return 2 * workers + 1


def _steady_rate(
    spans: list[tuple[float, float, int]], begin: float, end: float
) -> tuple[float, list[float]]:
    """Aggregate rate in ``[begin, end]``, each unit's events spread evenly over its span."""
    if end - begin <= 0:
        return 0.0, []
    events = 0.0
    rates = []
    for start, stop, count in spans:
        overlap = min(stop, end) - max(start, begin)
        if overlap > 0 and stop > start:
            events += count * overlap / (stop - start)
            rates.append(count / (stop - start))
    return events / (end - begin), rates


def _per_worker_rate(
    by_worker: dict[str, list[UnitRecord]], workers: int
) -> tuple[float, list[float]]:
    """Mean over workers of each one's rate after its first unit, times ``workers``."""
    worker_rates, rates = [], []
    for records in by_worker.values():
        span = records[-1].end_s - records[0].end_s
        if len(records) > 1 and span > 0:
            worker_rates.append(sum(r.events for r in records[1:]) / span)
            rates += [
                current.events / (current.end_s - previous.end_s)
                for previous, current in itertools.pairwise(records)
                if current.end_s > previous.end_s
            ]
    return (statistics.fmean(worker_rates) * workers if worker_rates else 0.0), rates


def histogram_fills(result: Mapping[str, Any]) -> float:
    """Fills of every histogram in a result (``h.sum(flow=True)``; nested dicts searched)."""
    total = 0.0
    for value in result.values():
        if isinstance(value, Mapping):
            total += histogram_fills(value)
        elif hasattr(value, "axes") and hasattr(value, "sum"):
            fills = value.sum(flow=True)
            total += float(getattr(fills, "value", fills))  # a weighted sum has .value
    return total


def testbed_workers(bed: Testbed) -> int:
    """How many workers the testbed has when the use case does not say."""
    return bed.default_workers


def timed_run(
    analysis: Analysis,
    dataset: Dataset,
    bed: Testbed,
    workers: int,
    chunk_size: int,
    *,
    allow_partial: bool = False,
) -> tuple[Measurement, Result]:
    """Run ``analysis`` over ``dataset`` on ``bed`` with ``workers`` workers, and measure it."""
    if bed.address:
        msg = (
            f"testbed {bed.name!r} is a running Dask cluster at {bed.address}; saetta cannot "
            "choose its number of workers. Use a testbed saetta starts (local, dask with "
            "workers, slurm, htcondor)"
        )
        raise UseCaseError(msg)
    sized = dataclasses.replace(bed, workers=workers, adapt=None)
    # Journal the units as a real run does, into a folder that goes away afterwards.
    with tempfile.TemporaryDirectory(prefix="saetta-usecase-") as journal:
        started_at, started = time.time(), time.perf_counter()
        result = run(
            analysis,
            dataset,
            testbed=sized,
            chunk_size=chunk_size,
            progress=False,
            allow_partial=allow_partial,
            run_dir=journal,
        )
        wall = time.perf_counter() - started
    return measure(result.report, workers, wall, started_at, chunk_size), result


def resolve_testbed(name: str) -> Testbed:
    """The testbed named ``name``; a bad name is a :class:`UseCaseError`."""
    try:
        return find_testbed(name)
    except SaettaError as exc:
        msg = f"testbed: {exc}"
        raise UseCaseError(msg) from exc
