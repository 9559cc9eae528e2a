"""Stage: use cases (layer 7) — plan and validate: the loop that answers the requirement."""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from saetta.dataset import Dataset
from saetta.errors import UseCaseError
from saetta.usecase.calibration import Calibration, _now, calibrate
from saetta.usecase.measure import (
    Measurement,
    _resolve_testbed,
    _testbed_workers,
    _timed_run,
    histogram_fills,
)
from saetta.usecase.model import Prediction
from saetta.usecase.quantities import format_bytes, format_duration, format_rate
from saetta.usecase.spec import (
    MAX_INTERVAL_WIDTH,
    Analysis,
    UseCase,
    open_dataset,
    sample_dataset,
)

__all__ = ["Plan", "Validation", "plan", "validate"]


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Plan:
    """The calibration's answer: can Y be processed in Z on W, and if not, what binds?

    FEASIBLE: the whole ≈95 % interval of the time on W cores meets Z (and the
    memory fits); NOT FEASIBLE: even its fast end misses Z, or the memory does
    not fit (``binding``); UNCERTAIN: Z lies inside the interval (``uncertain``).
    """

    usecase: UseCase
    calibration: Calibration
    events: float  # Y in events
    data_bytes: float  # Y in bytes on disk
    prediction: Prediction  # on W cores
    cores_needed: int | None  # to meet Z; None: no number of cores can
    cores_range: tuple[int | None, int | None]  # where the interval's fast, slow end meets Z
    memory_ok: bool | None  # None: no memory limit stated
    binding: tuple[str, ...]  # the constraints not met: "memory", "time", "cores"
    uncertain: tuple[str, ...] = ()  # met or not within the uncertainty: "time" or "cores"

    @property
    def feasible(self) -> bool:
        return not self.binding and not self.uncertain

    @property
    def verdict(self) -> str:
        if self.binding:
            return "NOT FEASIBLE"
        return "UNCERTAIN" if self.uncertain else "FEASIBLE"

    @property
    def verdict_text(self) -> str:
        """The verdict and, unless FEASIBLE, the constraints with their numbers."""
        reasons = self.binding_text() or self.uncertain_text()
        return f"{self.verdict}: {reasons}" if reasons else self.verdict

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
        err = f" ± {model.alpha_err:.2g}" if model.alpha_err else ""
        return f"scaling saturates at {format_rate(model.max_rate_hz)}, α = {model.alpha:.3g}{err}"

    def binding_text(self) -> str:
        """The binding constraints, each with its numbers; empty when none binds."""
        r, out = self.usecase.requirement, []
        for name in self.binding:
            if name == "memory":
                peak, limit = self.calibration.peak_memory, r.memory_per_core or 0
                out.append(f"memory ({format_bytes(peak)} per worker > {format_bytes(limit)})")
            elif name == "cores" and self.cores_needed is None:
                fast = _range_end(self.cores_range[0])
                out.append(f"cores (needs {fast} even at the fast end of the ≈95 % interval)")
            elif name == "cores":
                out.append(f"cores (needs {self.cores_needed:,}, has {r.cores:,})")
            else:
                out.append(f"time (no number of cores meets {r.time_text}: {self._why()})")
        return "; ".join(out)

    def uncertain_text(self) -> str:
        """Why the verdict is UNCERTAIN, with the numbers; empty when it is not."""
        if not self.uncertain:
            return ""
        r, p = self.usecase.requirement, self.prediction
        inside = (
            f"{r.time_text} lies within the ≈95 % interval on {_cores(r.cores)}, "
            f"{format_duration(p.low_s)} – {format_duration(p.high_s)}"
        )
        if self.uncertain == ("time",):
            return f"time ({inside}; at the central values {self._why()})"
        fast, slow = self.cores_range
        needed = "none suffices" if self.cores_needed is None else f"{self.cores_needed:,}"
        return (
            f"cores (needs {needed}, ≈95 %: {_range_end(fast)} – {_range_end(slow)}; "
            f"has {r.cores:,}: {inside})"
        )

    def _rows(self) -> list[tuple[str, str]]:
        r = self.usecase.requirement
        fast, slow = self.cores_range
        needed = "none suffices" if self.cores_needed is None else f"{self.cores_needed:,}"
        cores = f"{needed} (≈95 %: {_range_end(fast)} – {_range_end(slow)})"
        return [
            ("verdict", self.verdict_text),
            (f"time on {r.cores:,} cores", f"{self.prediction}; required ≤ {r.time_text}"),
            (f"cores for {r.time_text}", cores),
            ("memory", _memory_text(self.calibration.peak_memory, r.memory_per_core)),
            ("projection", self.projection),
        ]

    def __str__(self) -> str:
        return f"{self.usecase.name}: plan\n{_table(self._rows())}"

    def _repr_html_(self) -> str:
        good = None if self.verdict == "UNCERTAIN" else self.feasible
        return _html_table(f"{self.usecase.name}: plan", self._rows(), good)

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
            "uncertain": list(self.uncertain),
            "verdict_text": self.verdict_text,
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

    FEASIBLE when the slow end of the ≈95 % interval on W cores meets Z and the
    peak memory per worker fits the memory per core. NOT FEASIBLE names what
    binds: ``memory``, ``time`` (no number of cores meets Z even at the fast end
    of the interval: the start-up alone exceeds it, or scaling saturates
    first), ``cores`` (the fast end on W cores misses Z: more are needed).
    UNCERTAIN when Z lies inside the interval on W cores: ``cores``, or ``time``
    when at the central values no number of cores meets Z. Cores and workers
    are one to one: each worker runs one unit at a time.

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
    prediction = model.predict(events, r.cores)
    fast, slow = model.cores_range(events, r.time_s)
    memory_ok = None if r.memory_per_core is None else calibration.peak_memory <= r.memory_per_core
    binding = ["memory"] if memory_ok is False else []
    uncertain: tuple[str, ...] = ()
    if prediction.low_s > r.time_s:  # even the fast end of the interval misses Z
        binding.append("time" if fast is None else "cores")
    elif prediction.high_s > r.time_s:  # Z lies inside the interval
        uncertain = ("time",) if needed is None else ("cores",)
    return Plan(
        usecase=usecase,
        calibration=calibration,
        events=events,
        data_bytes=size,
        prediction=prediction,
        cores_needed=needed,
        cores_range=(fast, slow),
        memory_ok=memory_ok,
        binding=tuple(binding),
        uncertain=uncertain,
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
        """Whether the model passed this test: see :attr:`accuracy_problems`."""
        return not self.accuracy_problems

    @property
    def accuracy_problems(self) -> tuple[str, ...]:
        """Why the model is not accurate; empty when it is.

        Three checks, all against the one stated uncertainty: the measured time
        lies within the ≈95 % interval; the steady rate on these workers lies
        within the interval of ``n · r · e(n)``; and the interval is no wider
        than :data:`MAX_INTERVAL_WIDTH` (a wider one would contain almost anything).
        """
        m, p, model = self.measurement, self.predicted, self.plan.calibration.model
        out = []
        if not p.contains(m.wall_s):
            out.append(
                f"measured {format_duration(m.wall_s)} lies outside the ≈95 % interval "
                f"({p.sigmas(m.wall_s):+.2f} σ)"
            )
        rate, low, high = model.predict_rate(m.workers)
        if m.rate_hz > 0 and not low <= m.rate_hz <= high:
            out.append(
                f"steady rate {format_rate(m.rate_hz)} on {m.workers} workers outside the "
                f"calibration's {format_rate(rate)} (≈95 %: {format_rate(low)} – "
                f"{format_rate(high)})"
            )
        if p.relative_width > MAX_INTERVAL_WIDTH:
            out.append(
                f"the interval is too wide to test the model (±{50 * p.relative_width:.0f} %, "
                f"more than ±{50 * MAX_INTERVAL_WIDTH:.0f} %)"
            )
        return tuple(out)

    @property
    def accuracy_text(self) -> str:
        """``"yes"``, or ``"no: "`` and the problems."""
        return "no: " + "; ".join(self.accuracy_problems) if self.accuracy_problems else "yes"

    @property
    def error_rel(self) -> float:
        """(measured − predicted) / predicted."""
        return self.measured_s / self.predicted.time_s - 1

    @property
    def deviation_text(self) -> str:
        """``"+3.1 %, +0.42 σ"``: the error, relative and in the prediction's σ."""
        return f"{100 * self.error_rel:+.1f} %, {self.predicted.sigmas(self.measured_s):+.2f} σ"

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
            ("measured", f"{format_duration(m.wall_s)} ({self.deviation_text} vs plan)"),
            ("predicted", str(p)),
            ("model accurate", self.accuracy_text),
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
            "sigmas": self.predicted.sigmas(self.measured_s),
            "model_accurate": self.model_accurate,
            "accuracy_problems": list(self.accuracy_problems),
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

    Runs the first ``usecase.fraction`` of the work units (file after
    file) on the testbed with ``usecase.validation_workers`` workers (default:
    the testbed's size), in fresh worker processes; the prediction is made for
    exactly those events and units. PASS when every unit succeeded, the peak
    memory per worker fits the memory per core, and this run's rate and start-up,
    extrapolated to Y on W cores with the calibrated efficiency, meet Z. Whether
    the model was accurate (the measured time and steady rate within their
    intervals, the interval not too wide) is reported apart
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


def _html_table(title: str, rows: Sequence[tuple[str, str]], good: bool | None) -> str:
    colour = "#a60" if good is None else "#070" if good else "#b00"  # None: uncertain
    body = "".join(
        f"<tr><th style='text-align:right'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<b style='color:{colour}'>{html.escape(title)}</b><table>{body}</table>"
