"""Stage: use cases (layer 7) — validate: run the use case for real, against the plan."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from saetta.dataset import Dataset
from saetta.quantities import format_duration, format_rate
from saetta.usecase.answer import Answer, Rows, memory_text
from saetta.usecase.calibration import now
from saetta.usecase.measure import (
    Measurement,
    histogram_fills,
    resolve_testbed,
    testbed_workers,
    timed_run,
)
from saetta.usecase.model import Prediction
from saetta.usecase.plan import Plan, plan
from saetta.usecase.spec import MAX_INTERVAL_WIDTH, Analysis, UseCase, open_dataset, sample_dataset

__all__ = ["Validation", "judge", "validate"]


@dataclass(frozen=True, slots=True)
class Validation(Answer):
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

    kind: ClassVar[str] = "validation"

    @property
    def met(self) -> bool:
        return self.passed

    @property
    def mood(self) -> str:
        return "good" if self.passed else "bad"

    @property
    def shown_run(self) -> Measurement:
        return self.measurement

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

    def summary_rows(self) -> Rows:
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
            ("memory", memory_text(m.peak_memory, r.memory_per_core)),
        ]

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


def judge(plan: Plan, measurement: Measurement, *, complete: bool) -> tuple[float, tuple[str, ...]]:
    """This run's rate and start-up extrapolated to Y on W (with the calibrated
    efficiency), and what failed: ``incomplete``, ``memory``, ``time``."""
    model, r, workers = plan.calibration.model, plan.usecase.requirement, measurement.workers
    measured = dataclasses.replace(
        model,
        rate_hz=measurement.rate_hz / (workers * model.efficiency(workers)) or model.rate_hz,
        t0_s=max(0.0, measurement.t0_s),
    )
    extrapolated = measured.predict(plan.events, r.cores).time_s
    binding = [] if complete else ["incomplete"]
    if r.memory_per_core is not None and measurement.peak_memory > r.memory_per_core:
        binding.append("memory")
    if extrapolated > r.time_s:
        binding.append("time")
    return extrapolated, tuple(binding)


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
    bed = resolve_testbed(usecase.testbed)
    workers = usecase.validation_workers or testbed_workers(bed)
    chunk = usecase.chunk_size
    total_units = len(dataset.units(chunk))
    part = sample_dataset(dataset, max(1, round(usecase.fraction * total_units)), chunk)
    model = the_plan.calibration.model
    predicted = model.predict(part.num_entries, workers, len(part.units(chunk)))
    measurement, result = timed_run(analysis, part, bed, workers, chunk, allow_partial=True)
    extrapolated, binding = judge(the_plan, measurement, complete=result.report.complete)
    return Validation(
        plan=the_plan,
        fraction=usecase.fraction,
        measurement=measurement,
        predicted=predicted,
        events_total=part.num_entries,
        histogram_fills=histogram_fills(result),
        complete=result.report.complete,
        extrapolated_s=extrapolated,
        binding=binding,
        date=now(),
    )
