"""Stage: use cases (layer 7) — calibrate, plan, validate: the loop that answers the requirement."""

from __future__ import annotations

import dataclasses
import datetime
import html
import math
import socket
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from saetta._version import __version__
from saetta.dataset import Dataset
from saetta.errors import UseCaseError
from saetta.usecase.measure import (
    Measurement,
    _resolve_testbed,
    _testbed_workers,
    _timed_run,
    histogram_fills,
)
from saetta.usecase.model import Model, Prediction, fit_model
from saetta.usecase.quantities import format_bytes, format_duration, format_rate
from saetta.usecase.spec import INTERVAL_Z, Analysis, UseCase, open_dataset, sample_dataset

__all__ = ["Calibration", "Plan", "Validation", "calibrate", "plan", "validate"]


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
    worker of the largest run), round-robin across the files. First one run on 1
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
    bed = _resolve_testbed(usecase.testbed)
    dataset = dataset if dataset is not None else open_dataset(usecase)
    if dataset.num_entries == 0:
        msg = f"dataset: {', '.join(usecase.dataset)} holds no events"
        raise UseCaseError(msg)
    workers = usecase.calibration_workers or (1, _testbed_workers(bed))
    workers = tuple(sorted({1, *workers}))
    chunk = usecase.chunk_size
    sample = sample_dataset(dataset, max(usecase.sample_units, 3 * max(workers)), chunk)
    overhead = None
    if chunk >= 2:
        overhead, _ = _timed_run(analysis, sample, bed, 1, chunk // 2)
    runs: list[Measurement] = []
    fills = 0.0
    for _ in range(usecase.repeats):
        for n in workers:
            measurement, result = _timed_run(analysis, sample, bed, n, chunk)
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
        date=_now(),
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Plan:
    """The calibration's answer: can Y be processed in Z on W, and if not, what binds?"""

    usecase: UseCase
    calibration: Calibration
    events: float  # Y in events
    data_bytes: float  # Y in bytes on disk
    prediction: Prediction  # on W cores
    cores_needed: int | None  # to meet Z; None: no number of cores can
    cores_range: tuple[int | None, int | None]  # with the model 2σ faster, 2σ slower
    memory_ok: bool | None  # None: no memory limit stated
    binding: tuple[str, ...]  # the constraints not met: "memory", "time", "cores"

    @property
    def feasible(self) -> bool:
        return not self.binding

    @property
    def verdict(self) -> str:
        return "FEASIBLE" if self.feasible else "NOT FEASIBLE"

    @property
    def ideal_cores(self) -> int:
        """Cores that process Y in Z at the measured per-core rate, with no losses at all."""
        rate = self.calibration.model.rate_hz * self.usecase.requirement.time_s
        return max(1, math.ceil(self.events / rate - 1e-9))

    @property
    def projection(self) -> str:
        """``"1 PB in 1 h needs N cores at this rate"`` in the use case's own Y and Z, then
        what the start-up time and the measured scaling losses make of it."""
        r, model = self.usecase.requirement, self.calibration.model
        head = (
            f"{r.data_text} in {r.time_text} needs {_cores(self.ideal_cores)} at this rate "
            f"({format_rate(model.rate_hz)} per core)"
        )
        if self.cores_needed is not None:
            return f"{head}; {_cores(self.cores_needed)} with the start-up and scaling losses"
        return f"{head}; with the start-up and scaling losses no number suffices ({self._why()})"

    def _why(self) -> str:
        model, r = self.calibration.model, self.usecase.requirement
        if model.t0_s >= r.time_s:
            return f"the start-up alone takes {format_duration(model.t0_s)}"
        return f"scaling saturates at {format_rate(model.max_rate_hz)}, α = {model.alpha:.3g}"

    def binding_text(self) -> str:
        """The binding constraints, each with its numbers; empty when feasible."""
        r, out = self.usecase.requirement, []
        for name in self.binding:
            if name == "memory":
                peak, limit = self.calibration.peak_memory, r.memory_per_core or 0
                out.append(f"memory ({format_bytes(peak)} per worker > {format_bytes(limit)})")
            elif name == "cores":
                out.append(f"cores (needs {self.cores_needed:,}, has {r.cores:,})")
            else:
                out.append(f"time (no number of cores meets {r.time_text}: {self._why()})")
        return "; ".join(out)

    def _rows(self) -> list[tuple[str, str]]:
        r = self.usecase.requirement
        fast, slow = self.cores_range
        needed = "none suffices" if self.cores_needed is None else f"{self.cores_needed:,}"
        cores = f"{needed} (≈95 %: {_range_end(fast)} – {_range_end(slow)})"
        verdict = self.verdict + (f": {self.binding_text()}" if self.binding else "")
        return [
            ("verdict", verdict),
            (f"time on {r.cores:,} cores", f"{self.prediction}; required ≤ {r.time_text}"),
            (f"cores for {r.time_text}", cores),
            ("memory", _memory_text(self.calibration.peak_memory, r.memory_per_core)),
            ("projection", self.projection),
        ]

    def __str__(self) -> str:
        return f"{self.usecase.name}: plan\n{_table(self._rows())}"

    def _repr_html_(self) -> str:
        return _html_table(f"{self.usecase.name}: plan", self._rows(), self.feasible)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "plan",
            "usecase": self.usecase.to_dict(),
            "calibration": self.calibration.to_dict(),
            "events": self.events,
            "data_bytes": self.data_bytes,
            "histogram_fills": self.events * self.calibration.fills_per_event,
            "prediction": self.prediction.to_dict(),
            "cores_needed": self.cores_needed,
            "cores_needed_range": list(self.cores_range),
            "memory_ok": self.memory_ok,
            "verdict": self.verdict,
            "binding": list(self.binding),
            "projection": self.projection,
        }


def _range_end(n: int | None) -> str:
    return "∞" if n is None else f"{n:,}"


def _cores(n: int) -> str:
    return f"{n:,} core{'s' * (n != 1)}"


def _memory_text(peak: int, limit: float | None) -> str:
    if limit is None:
        return f"{format_bytes(peak)} per worker (no limit stated)"
    ok = peak <= limit
    return (
        f"{format_bytes(peak)} per worker {'≤' if ok else '>'} {format_bytes(limit)} per core: "
        + ("ok" if ok else "TOO LITTLE")
    )


def plan(
    usecase: UseCase,
    analysis: Analysis | None = None,
    *,
    calibration: Calibration | None = None,
    dataset: Dataset | None = None,
) -> Plan:
    """Calibrate (unless a calibration is given) and say whether the requirement can be met.

    NOT FEASIBLE names what binds: ``memory`` (peak memory per worker above the
    memory per core), ``time`` (no number of cores meets Z: start-up alone
    exceeds it, or scaling saturates first), ``cores`` (more than W needed).
    Cores and workers are one to one: each worker runs one unit at a time.

    Raises
    ------
    UseCaseError
        Neither ``analysis`` nor ``calibration`` is given, or calibrating fails.
    """
    if calibration is None:
        if analysis is None:
            msg = "plan: give the analysis function, or a calibration"
            raise UseCaseError(msg)
        calibration = calibrate(usecase, analysis, dataset=dataset)
    r, model = usecase.requirement, calibration.model
    if r.events is not None:
        events, size = r.events, r.events * calibration.bytes_per_event_disk
    else:
        size = r.data_bytes or 0.0
        events = size / calibration.bytes_per_event_disk
    needed = model.cores_needed(events, r.time_s)
    memory_ok = None if r.memory_per_core is None else calibration.peak_memory <= r.memory_per_core
    binding = ["memory"] if memory_ok is False else []
    if needed is None or needed > r.cores:
        binding.append("time" if needed is None else "cores")
    return Plan(
        usecase=usecase,
        calibration=calibration,
        events=events,
        data_bytes=size,
        prediction=model.predict(events, r.cores),
        cores_needed=needed,
        cores_range=(
            model.shifted(-INTERVAL_Z).cores_needed(events, r.time_s),
            model.shifted(INTERVAL_Z).cores_needed(events, r.time_s),
        ),
        memory_ok=memory_ok,
        binding=tuple(binding),
    )


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class Validation:
    """A real run of the use case (or of a stated fraction), against the plan and the requirement."""

    plan: Plan
    fraction: float
    measurement: Measurement
    predicted: Prediction  # for this run: its events and units on its workers
    events_total: int  # in the validated part of the dataset
    histogram_fills: float
    complete: bool
    extrapolated_s: float  # Y on W cores, from this run's rate and start-up
    binding: tuple[str, ...]  # what failed: "incomplete", "memory", "time"
    date: str

    @property
    def measured_s(self) -> float:
        return self.measurement.wall_s

    @property
    def model_accurate(self) -> bool:
        """Whether the measured time lies within the prediction's stated (≈95 %) interval."""
        return self.predicted.contains(self.measured_s)

    @property
    def error_rel(self) -> float:
        """(measured − predicted) / predicted."""
        return self.measured_s / self.predicted.time_s - 1

    @property
    def passed(self) -> bool:
        return not self.binding

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    @property
    def rate_hz(self) -> float:
        """The per-core rate of this run, corrected to one worker with the model's e(n)."""
        m, model = self.measurement, self.plan.calibration.model
        return m.rate_hz / (m.workers * model.efficiency(m.workers))

    def _rows(self) -> list[tuple[str, str]]:
        m, r = self.measurement, self.plan.usecase.requirement
        p = self.predicted
        return [
            ("verdict", self.verdict + (f": {', '.join(self.binding)}" if self.binding else "")),
            ("ran", f"{m.events:,} events on {m.workers} workers ({100 * self.fraction:g} %)"),
            ("measured", f"{format_duration(m.wall_s)} ({100 * self.error_rel:+.1f} % vs plan)"),
            ("predicted", str(p)),
            ("model accurate", "yes" if self.model_accurate else "no"),
            (
                f"{r.data_text} on {r.cores:,} cores",
                f"{format_duration(self.extrapolated_s)} from this run; required ≤ {r.time_text}",
            ),
            ("memory", _memory_text(m.peak_memory, r.memory_per_core)),
        ]

    def __str__(self) -> str:
        return f"{self.plan.usecase.name}: validation\n{_table(self._rows())}"

    def _repr_html_(self) -> str:
        return _html_table(f"{self.plan.usecase.name}: validation", self._rows(), self.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "validation",
            "plan": self.plan.to_dict(),
            "fraction": self.fraction,
            "events_total": self.events_total,
            "events_processed": self.measurement.events,
            "histogram_fills": self.histogram_fills,
            "complete": self.complete,
            "measurement": self.measurement.to_dict(),
            "predicted": self.predicted.to_dict(),
            "measured_s": self.measured_s,
            "error_rel": self.error_rel,
            "model_accurate": self.model_accurate,
            "rate_hz_per_core": self.rate_hz,
            "extrapolated_s": self.extrapolated_s,
            "verdict": self.verdict,
            "binding": list(self.binding),
            "date": self.date,
        }


def validate(
    usecase: UseCase,
    analysis: Analysis,
    *,
    planned: Plan | None = None,
    dataset: Dataset | None = None,
) -> Validation:
    """Run the use case for real and compare with the plan and the requirement.

    Runs the first ``usecase.fraction`` of the work units (round-robin across
    files) on the testbed with ``usecase.validation_workers`` workers (default:
    the testbed's size), in fresh worker processes; the prediction is made for
    exactly those events and units. PASS when every unit succeeded, the peak
    memory per worker fits the memory per core, and this run's rate and start-up,
    extrapolated to Y on W cores with the calibrated efficiency, meet Z. Whether
    the measured time lies in the prediction's interval is reported apart
    (:attr:`Validation.model_accurate`).

    Parameters
    ----------
    usecase
        The use case.
    analysis
        The analysis function.
    planned
        The plan to compare with; by default :func:`plan` calibrates first.
    dataset
        The use case's dataset, if already open.
    """
    dataset = dataset if dataset is not None else open_dataset(usecase)
    the_plan = planned if planned is not None else plan(usecase, analysis, dataset=dataset)
    bed = _resolve_testbed(usecase.testbed)
    workers = usecase.validation_workers or _testbed_workers(bed)
    chunk = usecase.chunk_size
    total_units = len(dataset.units(chunk))
    part = sample_dataset(dataset, max(1, round(usecase.fraction * total_units)), chunk)
    model = the_plan.calibration.model
    predicted = model.predict(part.num_entries, workers, len(part.units(chunk)))
    measurement, result = _timed_run(analysis, part, bed, workers, chunk, allow_partial=True)
    r = usecase.requirement
    measured = dataclasses.replace(
        model,
        rate_hz=measurement.rate_hz / (workers * model.efficiency(workers)) or model.rate_hz,
        t0_s=max(0.0, measurement.t0_s),
    )
    extrapolated = measured.predict(the_plan.events, r.cores).time_s
    binding = [] if result.report.complete else ["incomplete"]
    if r.memory_per_core is not None and measurement.peak_memory > r.memory_per_core:
        binding.append("memory")
    if extrapolated > r.time_s:
        binding.append("time")
    return Validation(
        plan=the_plan,
        fraction=usecase.fraction,
        measurement=measurement,
        predicted=predicted,
        events_total=part.num_entries,
        histogram_fills=histogram_fills(result),
        complete=result.report.complete,
        extrapolated_s=extrapolated,
        binding=tuple(binding),
        date=_now(),
    )


# --------------------------------------------------------------------------- text and HTML


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:>{width}}: {v}" for k, v in rows)


def _html_table(title: str, rows: Sequence[tuple[str, str]], good: bool) -> str:
    colour = "#070" if good else "#b00"
    body = "".join(
        f"<tr><th style='text-align:right'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<b style='color:{colour}'>{html.escape(title)}</b><table>{body}</table>"
