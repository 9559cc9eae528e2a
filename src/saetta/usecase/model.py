"""Stage: use cases (layer 7) — the scaling model: T(n) = t0 + tail · E / (n · r · e(n)), with its uncertainty."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from saetta.dataset import DEFAULT_CHUNK_SIZE
from saetta.errors import UseCaseError
from saetta.usecase.measure import Measurement, tail_factor
from saetta.usecase.quantities import format_duration
from saetta.usecase.spec import INTERVAL_Z

__all__ = ["Model", "Prediction", "fit_model"]


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted wall time: its 1σ (linearised) and the stated ≈95 % interval ``low_s – high_s``."""

    time_s: float
    err_s: float
    low_s: float
    high_s: float
    events: float
    workers: int

    def contains(self, seconds: float) -> bool:
        """Whether a measured time lies within the stated interval."""
        return self.low_s <= seconds <= self.high_s

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        low, high = format_duration(self.low_s), format_duration(self.high_s)
        return f"{format_duration(self.time_s)} (≈95 %: {low} – {high})"


@dataclass(frozen=True, slots=True)
class Model:
    """``T(n) = t0 + tail · E / (n · r · e(n))`` with ``e(n) = 1 / (1 + α (n − 1))``.

    ``r``: per-core steady event rate at ``chunk_size``; ``α``: efficiency lost per
    added worker; ``t0``: start-up (workers starting, JIT caches loading, the first
    units' excess, the final merge); ``tail``: the last, partly filled wave of units.
    Uncertainties are 1σ; :meth:`predict` adds them in quadrature.

    Examples
    --------
    >>> model = Model(rate_hz=1e6, rate_rel_err=0.0, alpha=0.0, alpha_err=0.0, t0_s=1.0, t0_err=0.0)
    >>> model.predict(8e6, workers=4).time_s
    3.0
    >>> model.cores_needed(8e6, time_s=3.0)
    4
    """

    rate_hz: float
    rate_rel_err: float
    alpha: float
    alpha_err: float
    t0_s: float
    t0_err: float
    chunk_size: int = DEFAULT_CHUNK_SIZE
    measured_workers: tuple[int, ...] = (1,)

    def efficiency(self, workers: float) -> float:
        """Parallel efficiency ``e(n)``."""
        return 1.0 / (1.0 + self.alpha * max(0.0, workers - 1))

    def predict(self, events: float, workers: int, units: int | None = None) -> Prediction:
        """Wall time of ``events`` events in ``units`` units (default: at the chunk size) on ``workers``.

        ``err_s`` is the linearised 1σ, ``σ_T² = σ_t0² + (W σ_r/r)² + (W (n−1) e(n) σ_α)²``
        with W the work term. The interval moves t0, r and α by ±2σ one at a time
        through the exact formula and adds the shifts in quadrature, up and down
        apart, within the bounds of all three moved together: far beyond the
        measured workers it is asymmetric, as it should be.
        """
        units = max(1, math.ceil(events / self.chunk_size)) if units is None else units
        used = max(1, min(workers, units))  # a worker without a unit does not help
        tail = tail_factor(units, used) * events / used

        def time_at(rate: float, alpha: float, t0: float) -> float:
            return t0 + tail * (1 + alpha * (used - 1)) / rate

        r, a, t0, z = self.rate_hz, self.alpha, self.t0_s, INTERVAL_Z
        central = time_at(r, a, t0)
        work = central - t0
        e = self.efficiency(used)
        err = math.hypot(
            self.t0_err, work * self.rate_rel_err, work * (used - 1) * e * self.alpha_err
        )
        shifts = [
            (time_at(r, a, t0 + z * self.t0_err), time_at(r, a, max(0.0, t0 - z * self.t0_err))),
            (
                time_at(r * max(0.05, 1 - z * self.rate_rel_err), a, t0),
                time_at(r * (1 + z * self.rate_rel_err), a, t0),
            ),
            (
                time_at(r, a + z * self.alpha_err, t0),
                time_at(r, max(0.0, a - z * self.alpha_err), t0),
            ),
        ]
        up = math.hypot(*(slow - central for slow, _ in shifts))
        down = math.hypot(*(central - fast for _, fast in shifts))
        # and never beyond all three moved together (when one shift dwarfs the others)
        fastest = time_at(
            r * (1 + z * self.rate_rel_err),
            max(0.0, a - z * self.alpha_err),
            max(0.0, t0 - z * self.t0_err),
        )
        slowest = time_at(
            r * max(0.05, 1 - z * self.rate_rel_err), a + z * self.alpha_err, t0 + z * self.t0_err
        )
        low, high = max(fastest, central - down), min(slowest, central + up)
        return Prediction(central, err, low, high, events, workers)

    @property
    def max_rate_hz(self) -> float:
        """The rate no number of workers exceeds: ``r / α`` (infinite when α = 0)."""
        return self.rate_hz / self.alpha if self.alpha > 0 else math.inf

    def cores_needed(self, events: float, time_s: float) -> int | None:
        """Fewest workers that process ``events`` within ``time_s``; None if no number can.

        Solves ``t0 + E (1 + α (n − 1)) / (n r) ≤ Z`` (many units per worker: tail = 1).
        """
        budget = (time_s - self.t0_s) * self.rate_hz - events * self.alpha
        if time_s <= self.t0_s or budget <= 0:
            return None
        return max(1, math.ceil(events * (1 - self.alpha) / budget - 1e-9))

    def shifted(self, sigmas: float) -> Model:
        """This model with r, α and t0 each moved ``sigmas`` σ towards slower."""
        return dataclasses.replace(
            self,
            rate_hz=self.rate_hz * max(0.05, 1 - sigmas * self.rate_rel_err),
            alpha=max(0.0, self.alpha + sigmas * self.alpha_err),
            t0_s=max(0.0, self.t0_s + sigmas * self.t0_err),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formula": "T(n) = t0 + tail*E/(n*r*e(n)), e(n) = 1/(1+alpha*(n-1))"}
        out |= {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out


def fit_model(runs: Sequence[Measurement], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Model:
    """Fit a :class:`Model` to timed runs of one sample at several worker counts.

    - ``r``: mean steady rate of the 1-worker runs; relative error: each run's
      statistical error (relative std of per-unit rates / √units) and the scatter
      between repeats, in quadrature.
    - ``α``: least squares of ``1/e(n) − 1 = α (n − 1)``, ``e(n) = R(n) / (n r)``, over
      the runs with n > 1; its error propagates the rate errors; clamped at 0.
    - ``t0``: mean start-up term of all runs; error: their scatter, at least 10 % of t0.

    Raises
    ------
    UseCaseError
        No 1-worker run measured a rate.
    """
    singles = [m for m in runs if m.workers == 1 and m.rate_hz > 0]
    if not singles:
        msg = "calibration: no 1-worker run measured a rate; is the sample empty?"
        raise UseCaseError(msg)
    rate, rate_err = _mean_rate(singles)
    numerator = denominator = variance = 0.0
    for n in sorted({m.workers for m in runs if m.workers > 1}):
        group = [m for m in runs if m.workers == n and m.rate_hz > 0]
        if group:
            rate_n, err_n = _mean_rate(group)
            inverse = n * rate / rate_n  # 1 / e(n)
            numerator += (n - 1) * (inverse - 1)
            denominator += (n - 1) ** 2
            variance += (n - 1) ** 2 * inverse**2 * (rate_err**2 + err_n**2)
    starts = [m.t0_s for m in runs]
    t0 = max(0.0, statistics.fmean(starts))
    return Model(
        rate_hz=rate,
        rate_rel_err=rate_err,
        alpha=max(0.0, numerator / denominator) if denominator else 0.0,
        alpha_err=math.sqrt(variance) / denominator if denominator else 0.0,
        t0_s=t0,
        t0_err=max(statistics.stdev(starts) if len(starts) > 1 else 0.0, 0.1 * t0),
        chunk_size=chunk_size,
        measured_workers=tuple(sorted({m.workers for m in runs})),
    )


def _mean_rate(runs: Sequence[Measurement]) -> tuple[float, float]:
    rates = [m.rate_hz for m in runs]
    mean = statistics.fmean(rates)
    within = math.sqrt(sum(m.rate_rel_err**2 for m in runs)) / len(runs)
    between = statistics.stdev(rates) / mean if len(rates) > 1 else 0.0
    return mean, math.hypot(within, between)
