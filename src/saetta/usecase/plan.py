"""Stage: use cases (layer 7) — plan: can the requirement be met, and if not, what binds?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from saetta.dataset import Dataset
from saetta.errors import UseCaseError
from saetta.quantities import format_bytes, format_duration, format_rate
from saetta.usecase.answer import Answer, Rows, cores_text, count_text, memory_text
from saetta.usecase.calibration import Calibration, calibrate
from saetta.usecase.measure import Measurement
from saetta.usecase.model import Prediction
from saetta.usecase.spec import Analysis, UseCase

__all__ = ["Plan", "plan"]


@dataclass(frozen=True, slots=True)
class Plan(Answer):
    """The calibration's answer: can Y be processed in Z on W, and if not, what binds?

    FEASIBLE: the whole ≈95 % interval of the time on W cores meets Z (and the
    memory fits); NOT FEASIBLE: even its fast end misses Z, or the memory does
    not fit (``binding``); UNCERTAIN: Z lies inside the interval (``uncertain``).
    """

    usecase: UseCase
    calibration: Calibration
    events: float  # Y in events (times the epochs of a training)
    data_bytes: float  # Y in bytes on disk (times the epochs of a training)
    prediction: Prediction  # on W cores
    cores_needed: int | None  # to meet Z; None: no number of cores can
    cores_range: tuple[int | None, int | None]  # where the interval's fast, slow end meets Z
    memory_ok: bool | None  # None: no memory limit stated
    binding: tuple[str, ...]  # the constraints not met: "memory", "time", "cores"
    uncertain: tuple[str, ...] = ()  # met or not within the uncertainty: "time" or "cores"

    kind: ClassVar[str] = "plan"

    @property
    def plan(self) -> Plan:
        return self

    @property
    def met(self) -> bool:
        return self.feasible

    @property
    def mood(self) -> str:
        return {"FEASIBLE": "good", "UNCERTAIN": "unsure"}.get(self.verdict, "bad")

    @property
    def shown_run(self) -> Measurement:
        return max(self.calibration.runs, key=lambda m: (m.workers, m.events))

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
            f"{r.data_text} in {r.time_text} needs {cores_text(self.ideal_cores)} at this rate "
            f"({format_rate(model.rate_hz)} per core)"
        )
        if self.cores_needed is not None:
            return f"{head}; {cores_text(self.cores_needed)} with the start-up and scaling losses"
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
                fast = count_text(self.cores_range[0])
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
            f"{r.time_text} lies within the ≈95 % interval on {cores_text(r.cores)}, "
            f"{format_duration(p.low_s)} – {format_duration(p.high_s)}"
        )
        if self.uncertain == ("time",):
            return f"time ({inside}; at the central values {self._why()})"
        fast, slow = self.cores_range
        needed = "none suffices" if self.cores_needed is None else f"{self.cores_needed:,}"
        return (
            f"cores (needs {needed}, ≈95 %: {count_text(fast)} – {count_text(slow)}; "
            f"has {r.cores:,}: {inside})"
        )

    def summary_rows(self) -> Rows:
        r = self.usecase.requirement
        fast, slow = self.cores_range
        needed = "none suffices" if self.cores_needed is None else f"{self.cores_needed:,}"
        cores = f"{needed} (≈95 %: {count_text(fast)} – {count_text(slow)})"
        return [
            ("verdict", self.verdict_text),
            (f"time on {r.cores:,} cores", f"{self.prediction}; required ≤ {r.time_text}"),
            (f"cores for {r.time_text}", cores),
            ("memory", memory_text(self.calibration.peak_memory, r.memory_per_core)),
            ("projection", self.projection),
        ]

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
        events = r.events * r.epochs
        size = events * calibration.bytes_per_event_disk
    else:
        size = (r.data_bytes or 0.0) * r.epochs
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
