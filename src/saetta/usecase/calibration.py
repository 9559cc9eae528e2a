"""Stage: use cases (layer 7) — calibration: time the analysis on a sample at 1 and k workers, fit the model."""

from __future__ import annotations

import dataclasses
import datetime
import socket
import statistics
from dataclasses import dataclass
from typing import Any

from saetta._version import __version__
from saetta.dataset import Dataset
from saetta.errors import UseCaseError
from saetta.usecase.measure import (
    Measurement,
    histogram_fills,
    resolve_testbed,
    testbed_workers,
    timed_run,
)
from saetta.usecase.model import Model, fit_model
from saetta.usecase.spec import Analysis, UseCase, open_dataset, sample_dataset

__all__ = ["Calibration", "calibrate", "now"]


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class Calibration:
    """What calibrating the analysis on the testbed measured, and the model fitted to it."""

    usecase: str
    analysis: str
    testbed: str
    testbed_kind: str
    dataset_events: int
    dataset_bytes: int
    sample_events: int
    sample_units: int
    chunk_size: int
    bytes_per_event_disk: float  # compressed bytes on disk per event, whole dataset
    bytes_per_event_read: float  # bytes this analysis actually read per event
    runs: tuple[Measurement, ...]  # the fitted runs
    overhead_run: Measurement | None  # 1 worker at half the chunk size, run first
    model: Model
    peak_memory: int  # largest peak resident memory of a worker, bytes
    histogram_fills: float  # on the sample
    host: str
    saetta_version: str
    date: str  # ISO 8601, UTC

    @property
    def rate_hz(self) -> float:
        """Per-core steady event rate."""
        return self.model.rate_hz

    @property
    def fills_per_event(self) -> float:
        return self.histogram_fills / self.sample_events if self.sample_events else 0.0

    @property
    def first_unit_s(self) -> float:
        """Mean time from the start of a run to its first unit starting."""
        return statistics.fmean(m.first_unit_s for m in self.runs)

    @property
    def dispatch_s(self) -> float:
        """Mean idle time of a worker between two units."""
        return statistics.fmean(m.dispatch_s for m in self.runs)

    @property
    def unit_overhead_s(self) -> float | None:
        """Fixed cost of a unit, whatever its size: ``2 t(c/2) − t(c)`` per unit (None: unmeasured)."""
        half = self.overhead_run
        if half is None or half.rate_hz <= 0 or half.units <= self.sample_units:
            return None
        full_size = self.sample_events / self.sample_units
        half_size = half.events / half.units
        t_full, t_half = full_size / self.rate_hz, half_size / half.rate_hz
        overhead = (t_half * full_size - t_full * half_size) / (full_size - half_size)
        return max(0.0, overhead)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out |= {
            "model": self.model.to_dict(),
            "runs": [m.to_dict() for m in self.runs],
            "overhead_run": self.overhead_run.to_dict() if self.overhead_run else None,
            "rate_hz_per_core": self.rate_hz,
            "read_bytes_per_s_per_core": self.rate_hz * self.bytes_per_event_read,
            "disk_bytes_per_s_per_core": self.rate_hz * self.bytes_per_event_disk,
            "startup_s": self.model.t0_s,
            "first_unit_s": self.first_unit_s,
            "dispatch_s": self.dispatch_s,
            "unit_overhead_s": self.unit_overhead_s,
            "fills_per_event": self.fills_per_event,
        }
        return out


def calibrate(
    usecase: UseCase, analysis: Analysis, *, dataset: Dataset | None = None
) -> Calibration:
    """Time ``analysis`` on a sample of the use case's work units at 1 and k workers; fit the model.

    The sample is the first ``usecase.sample_units`` units (at least three per
    worker of the largest run), file after file. First one run on 1
    worker at half the chunk size (it measures the fixed cost per unit, and warms
    this process up: its start-up time is not fitted); then each worker count
    ``usecase.repeats`` times, interleaved (1, k, 1, k, ...), in fresh worker processes.

    Parameters
    ----------
    usecase
        The use case.
    analysis
        The analysis function (``saetta.analyses.load_analysis(usecase.analysis)``).
    dataset
        The use case's dataset, if already open.

    Raises
    ------
    UseCaseError
        The testbed is unknown or cannot be sized, or the dataset is empty.
    UnitError
        A unit of the sample failed.
    """
    bed = resolve_testbed(usecase.testbed)
    dataset = dataset if dataset is not None else open_dataset(usecase)
    if dataset.num_entries == 0:
        msg = f"dataset: {', '.join(usecase.dataset)} holds no events"
        raise UseCaseError(msg)
    workers = usecase.calibration_workers or (1, testbed_workers(bed))
    workers = tuple(sorted({1, *workers}))
    chunk = usecase.chunk_size
    sample = sample_dataset(dataset, max(usecase.sample_units, 3 * max(workers)), chunk)
    overhead = None
    if chunk >= 2:
        overhead, _ = timed_run(analysis, sample, bed, 1, chunk // 2)
    runs: list[Measurement] = []
    fills = 0.0
    for _ in range(usecase.repeats):
        for n in workers:
            measurement, result = timed_run(analysis, sample, bed, n, chunk)
            runs.append(measurement)
            fills = histogram_fills(result)
    return Calibration(
        usecase=usecase.name,
        analysis=usecase.analysis,
        testbed=bed.name,
        testbed_kind=bed.kind,
        dataset_events=dataset.num_entries,
        dataset_bytes=dataset.size_bytes,
        sample_events=sample.num_entries,
        sample_units=len(sample.units(chunk)),
        chunk_size=chunk,
        bytes_per_event_disk=dataset.size_bytes / dataset.num_entries,
        bytes_per_event_read=statistics.fmean(m.bytes_read / m.events for m in runs),
        runs=tuple(runs),
        overhead_run=overhead,
        model=fit_model(runs, chunk),
        peak_memory=max(m.peak_memory for m in runs),
        histogram_fills=fills,
        host=socket.gethostname(),
        saetta_version=__version__,
        date=now(),
    )


def now() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
