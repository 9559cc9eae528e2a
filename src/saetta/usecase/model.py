"""Stage: use cases (layer 7) — the scaling model: T(n) = t0 + tail · E / (n · r · e(n)), with its uncertainty."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from saetta.dataset import DEFAULT_CHUNK_SIZE
from saetta.errors import UseCaseError
from saetta.quantities import format_duration
from saetta.usecase.measure import Measurement, tail_factor
from saetta.usecase.spec import INTERVAL_Z

__all__ = ["Model", "Prediction", "fit_model"]


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted wall time and its stated ≈95 % interval ``low_s – high_s``.

    The interval is the one uncertainty: its 1σ, above and below apart, is the
    distance from ``time_s`` to either end divided by :data:`INTERVAL_Z`, so
    :meth:`sigmas` is ±``INTERVAL_Z`` exactly at the ends and :meth:`contains`
    means ``|sigmas| ≤ INTERVAL_Z``.

    Examples
    --------
    >>> p = Prediction(10.0, 8.0, 13.0, events=1e6, workers=2)
    >>> p.err_low_s, p.err_high_s
    (1.0, 1.5)
    >>> p.sigmas(11.5), p.sigmas(7.0), p.contains(12.9)
    (1.0, -3.0, True)
    """

    time_s: float
    low_s: float
    high_s: float
    events: float
    workers: int

    @property
    def err_low_s(self) -> float:
        """1σ below the prediction: ``(time_s − low_s) / INTERVAL_Z``."""
        return (self.time_s - self.low_s) / INTERVAL_Z

    @property
    def err_high_s(self) -> float:
        """1σ above the prediction: ``(high_s − time_s) / INTERVAL_Z``."""
        return (self.high_s - self.time_s) / INTERVAL_Z

    @property
    def relative_width(self) -> float:
        """``(high_s − low_s) / time_s``: 0.4 is ±20 %."""
        return (self.high_s - self.low_s) / self.time_s if self.time_s > 0 else math.inf

    def sigmas(self, seconds: float) -> float:
        """How many σ (of that side) ``seconds`` lies above (+) or below (−) the prediction."""
        offset = seconds - self.time_s
        err = self.err_high_s if offset > 0 else self.err_low_s
        if err > 0:
            return offset / err
        return 0.0 if offset == 0 else math.copysign(math.inf, offset)

    def contains(self, seconds: float) -> bool:
        """Whether a measured time lies within the stated interval (within ±``INTERVAL_Z`` σ)."""
        return self.low_s <= seconds <= self.high_s

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {"err_low_s": self.err_low_s, "err_high_s": self.err_high_s, "z": INTERVAL_Z}

    def __str__(self) -> str:
        low, high = format_duration(self.low_s), format_duration(self.high_s)
        return f"{format_duration(self.time_s)} {_plus_minus(self)} (≈95 %: {low} – {high})"


def _plus_minus(p: Prediction) -> str:
    up, down = format_duration(p.err_high_s), format_duration(p.err_low_s)
    return f"± {up}" if up == down else f"+{up} / −{down}"


@dataclass(frozen=True, slots=True)
class Model:
    """``T(n) = t0 + tail · E / (n · r · e(n))`` with ``e(n) = 1 / (1 + α (n − 1))``.

    ``r``: per-core steady event rate at ``chunk_size``; ``α``: efficiency lost per
    added worker, in the steady state; ``t0``: start-up (workers starting,
    compiled kernels loading, each worker's first unit, the final merge), as
    measured at the largest calibrated worker count; ``tail``: the last, partly
    filled wave of units. The errors are 1σ; :meth:`predict` turns them into the
    stated interval.

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

        The interval moves t0, r and α by ``INTERVAL_Z`` σ, one at a time, through
        the exact formula, and adds the shifts in quadrature, above and below
        apart (α and t0 never below 0), never beyond the model with all three
        moved together: asymmetric far beyond the measured workers, as it should
        be. Its σ (:attr:`Prediction.err_low_s`, ``err_high_s``) is each side / z.
        """
        units = max(1, math.ceil(events / self.chunk_size)) if units is None else units
        used = max(1, min(workers, units))  # a worker without a unit does not help
        tail = tail_factor(units, used) * events / used

        def time_at(rate: float, alpha: float, t0: float) -> float:
            return t0 + tail * (1 + alpha * (used - 1)) / rate

        r, a, t0, z = self.rate_hz, self.alpha, self.t0_s, INTERVAL_Z
        central = time_at(r, a, t0)
        slow_r, slow_a, slow_t0 = (
            r * max(0.05, 1 - z * self.rate_rel_err),
            a + z * self.alpha_err,
            t0 + z * self.t0_err,
        )
        fast_r, fast_a, fast_t0 = (
            r * (1 + z * self.rate_rel_err),
            max(0.0, a - z * self.alpha_err),
            max(0.0, t0 - z * self.t0_err),
        )
        up = math.hypot(
            time_at(slow_r, a, t0) - central,
            time_at(r, slow_a, t0) - central,
            time_at(r, a, slow_t0) - central,
        )
        down = math.hypot(
            central - time_at(fast_r, a, t0),
            central - time_at(r, fast_a, t0),
            central - time_at(r, a, fast_t0),
        )
        # never beyond all three moved together (when one shift dwarfs the others)
        low = max(central - down, time_at(fast_r, fast_a, fast_t0))
        high = min(central + up, time_at(slow_r, slow_a, slow_t0))
        return Prediction(central, low, high, events, workers)

    def predict_rate(self, workers: int) -> tuple[float, float, float]:
        """The aggregate steady rate ``n · r · e(n)`` on ``workers``, with its ≈95 % interval.

        The same parameter shifts as :meth:`predict`, without the start-up:
        ``(rate, low, high)``.
        """

        def rate_at(rate: float, alpha: float) -> float:
            return workers * rate / (1 + alpha * max(0, workers - 1))

        r, a, z = self.rate_hz, self.alpha, INTERVAL_Z
        central = rate_at(r, a)
        up = math.hypot(
            rate_at(r * (1 + z * self.rate_rel_err), a) - central,
            rate_at(r, max(0.0, a - z * self.alpha_err)) - central,
        )
        down = math.hypot(
            central - rate_at(r * max(0.05, 1 - z * self.rate_rel_err), a),
            central - rate_at(r, a + z * self.alpha_err),
        )
        return central, max(0.0, central - down), central + up

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

    def cores_range(self, events: float, time_s: float) -> tuple[int | None, int | None]:
        """Fewest workers at which the interval's fast end, and its slow end, meet ``time_s``.

        None where no number of workers up to 2⁴⁰ does. Assumes that adding
        workers never makes a run slower (α < 1), as :meth:`cores_needed` does.
        """
        fast = _fewest(lambda n: self.predict(events, n).low_s <= time_s)
        slow = _fewest(lambda n: self.predict(events, n).high_s <= time_s)
        return fast, slow

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formula": "T(n) = t0 + tail*E/(n*r*e(n)), e(n) = 1/(1+alpha*(n-1))"}
        out |= {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out


def _fewest(meets: Callable[[int], bool], limit: int = 2**40) -> int | None:
    """The smallest n ≥ 1 with ``meets(n)``, for ``meets`` false below some n and true above."""
    high = 1
    while not meets(high):
        if high >= limit:
            return None
        high *= 2
    low = high // 2  # fails (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def fit_model(runs: Sequence[Measurement], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Model:
    """Fit a :class:`Model` to timed runs of one sample at several worker counts.

    Repeated runs are combined with the median, so one run disturbed by another
    process does not move the model; their scatter (standard deviation) is part
    of the error, so it does not hide either: it widens the interval.

    - ``r``: median steady rate of the 1-worker runs; relative error: the runs'
      statistical error (each: relative std of its per-unit rates / √units) and
      the scatter between repeats, in quadrature; at least
      :data:`RATE_REL_ERR_FLOOR` (3 %), as is that of each ``R(n)``.
    - ``α``: least squares of ``1/e(n) − 1 = α (n − 1)``, ``e(n) = R(n) / (n r)``,
      ``R(n)`` the median steady rate of the n-worker runs, over n > 1; its error
      propagates the rate errors; clamped at 0.
    - ``t0``: median start-up of the runs at the largest worker count (that is
      where the use case runs: workers starting and loading kernels side by
      side take longer than one alone); error: their scatter, at least 10 % of t0.

    Raises
    ------
    UseCaseError
        No 1-worker run measured a rate.
    """
    singles = [m for m in runs if m.workers == 1 and m.rate_hz > 0]
    if not singles:
        msg = "calibration: no 1-worker run measured a rate; is the sample empty?"
        raise UseCaseError(msg)
    rate, rate_err = _median_rate(singles)
    numerator = denominator = variance = 0.0
    for n in sorted({m.workers for m in runs if m.workers > 1}):
        group = [m for m in runs if m.workers == n and m.rate_hz > 0]
        if group:
            rate_n, err_n = _median_rate(group)
            inverse = n * rate / rate_n  # 1 / e(n)
            numerator += (n - 1) * (inverse - 1)
            denominator += (n - 1) ** 2
            variance += (n - 1) ** 2 * inverse**2 * (rate_err**2 + err_n**2)
    widest = max(m.workers for m in runs)
    starts = [m.t0_s for m in runs if m.workers == widest]
    t0 = max(0.0, statistics.median(starts))
    return Model(
        rate_hz=rate,
        rate_rel_err=rate_err,
        alpha=max(0.0, numerator / denominator) if denominator else 0.0,
        alpha_err=math.sqrt(variance) / denominator if denominator else 0.0,
        t0_s=t0,
        t0_err=max(_scatter(starts), 0.1 * t0),
        chunk_size=chunk_size,
        measured_workers=tuple(sorted({m.workers for m in runs})),
    )


#: The smallest relative error of a measured rate. Two to six short runs estimate a
#: spread poorly (three can agree by chance), and the prediction is for one run:
#: the steady rates of repeated long runs on a quiet machine scatter by about 3 %
#: (docs/usecase.md, "Measured accuracy").
RATE_REL_ERR_FLOOR = 0.03


def _median_rate(runs: Sequence[Measurement]) -> tuple[float, float]:
    """Median rate of repeated runs, and its relative error (statistical ⊕ scatter)."""
    rates = [m.rate_hz for m in runs]
    middle = statistics.median(rates)
    within = math.sqrt(sum(m.rate_rel_err**2 for m in runs)) / len(runs)
    return middle, max(RATE_REL_ERR_FLOOR, math.hypot(within, _scatter(rates) / middle))


def _scatter(values: Sequence[float]) -> float:
    """The standard deviation of repeated measurements (0 for one)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0
