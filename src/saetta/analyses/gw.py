"""Stage: analyses (layer 9) — a matched-filter search for compact-binary inspirals.

Each entry of a strain dataset (:mod:`saetta.formats.strain`) is a time window:
its own span plus padding either side. :func:`search_window` treats one window as
PyCBC's ``matched_filter`` would:

1. the PSD is Welch's estimate of the window's padded samples
   (:func:`saetta.astro.psd.welch`: ``psd_segment``-second Hann segments at half
   overlap, bias-corrected median), linearly interpolated to the window's frequency
   grid, then truncated so its inverse's impulse response lasts ``psd_segment``
   seconds (:func:`~saetta.astro.psd.truncate_inverse`);
2. for every template of the bank, the complex SNR time series
   :math:`z(t) = 4\\Delta f \\sum_k \\tilde h_k^* \\tilde d_k e^{2\\pi i f_k t} / S_k / \\sigma`
   comes from one inverse FFT over ``[f_lower, Nyquist)``. The templates stop at
   their ISCO frequency (about 220 Hz at most here), so the series is evaluated on
   every ``D``-th sample only (``D`` the largest power of two leaving a rate of at
   least four times the bank's highest frequency): an inverse FFT ``D`` times
   shorter gives those samples exactly, not an approximation;
3. a *trigger* is a sample of the window's own span where the SNR maximised over
   templates exceeds ``threshold`` and is the largest within ``± cluster`` seconds,
   judged on the padded series. The padding covers that, the longest template and
   the whitening filter, so whether a sample is a trigger depends on the data around
   it, not on where a window boundary falls: every peak is reported by exactly one
   window. Near a file's edges, where no padding exists, samples closer than that
   reach are not searched (``seconds`` counts the searched ones).

:class:`Search` is the analysis over the events, ``events -> {"triggers": Table,
"windows": n, "seconds": s}``. Tables merge in unit order (file, then time), so
the triggers come out time-ordered per file. A window costs about a second of
filtering per core with the default bank, so run it with ``chunk_size=1`` (one window
per unit, as ``saetta gw`` does): saetta's default chunk size counts entries as if
they were events, and would give a whole file to one worker.

The filter and its clustering rule stay in one module, longer than most: which
sample is a trigger depends on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft
import scipy.ndimage

from saetta.astro.psd import interpolate, truncate_inverse, welch
from saetta.astro.waveforms import TemplateBank, default_bank, f_isco, taylorf2
from saetta.errors import AnalysisError
from saetta.tables import Table

__all__ = ["COLUMNS", "Search", "search_window", "snr_series"]

#: Trigger columns and their dtypes.
COLUMNS = {
    "time": "float64",
    "snr": "float64",
    "phase": "float64",
    "mass1": "float64",
    "mass2": "float64",
    "template": "int64",
}
_BATCH = 16  # templates per batched inverse FFT: large enough to amortise, small for cache


def _empty() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, dtype=v) for k, v in COLUMNS.items()}


@dataclass(frozen=True, slots=True)
class _Templates:
    """A bank on one frequency grid: conj(h) over [kmin, kmax) as one (T, K) array."""

    conj: np.ndarray
    power: np.ndarray  # |h|^2, float64
    kmin: int


def _templates(bank: TemplateBank, f_lower: float, n: int, rate: float, dtype: Any) -> _Templates:
    df = rate / n
    kmin = int(f_lower / df)
    kmax = min(int(max(f_isco(*m) for m in bank) / df) + 2, n // 2)
    f = np.arange(kmin, kmax) * df
    h = np.stack([taylorf2(m1, m2, f, f_lower) for m1, m2 in bank])
    return _Templates(np.conj(h).astype(dtype), h.real**2 + h.imag**2, kmin)


def _decimation(n: int, before: int, kmax: int) -> int:
    # The largest power of two that divides the window (so every window's SNR grid
    # falls on the same absolute samples) and keeps m = n / D above 4 kmax.
    d = 1
    while n % (2 * d) == 0 and before % (2 * d) == 0 and n // (2 * d) >= 4 * kmax:
        d *= 2
    return d


def snr_series(
    samples: np.ndarray,
    rate: float,
    *,
    bank: TemplateBank,
    f_lower: float = 20.0,
    psd_segment: float = 4.0,
    precision: str = "single",
    before: int = 0,
    templates: _Templates | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The complex SNR of the loudest template at every ``D``-th sample.

    Returns
    -------
    snr, template, D
        Complex SNR (its modulus maximised over the bank) at samples ``0, D, 2D, ...``
        of ``samples``, the index of the template that gave it, and ``D``. ``before``
        (a window's padding) must be a multiple of ``D``, which bounds ``D``.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = len(x)
    dtype = {"single": np.complex64, "double": np.complex128}.get(precision)
    if dtype is None:
        msg = f"search: unknown precision {precision!r}; available: double, single"
        raise AnalysisError(msg)
    filter_len = round(psd_segment * rate)
    if n < 2 * filter_len:
        msg = f"search: a window of {n / rate:g} s is shorter than two PSD segments ({psd_segment:g} s)"
        raise AnalysisError(msg)
    df = rate / n
    freqs, estimate = welch(x, rate, segment=psd_segment)
    psd = interpolate(estimate, freqs[1], df, n // 2 + 1)
    psd = truncate_inverse(psd, filter_len, f_lower, df)

    t = templates or _templates(bank, f_lower, n, rate, dtype)
    kmin, kmax = t.kmin, t.kmin + t.conj.shape[1]
    dtilde = scipy.fft.rfft(x)[kmin:kmax] / rate
    weighted = (dtilde / psd[kmin:kmax]).astype(dtype)
    sigmas = np.sqrt(4.0 * df * (t.power @ (1.0 / psd[kmin:kmax])))
    d = _decimation(n, before, kmax)
    m = n // d
    # z_j = 4 df sum_k q_k e^{2 pi i k j / m} / sigma: ifft divides by m.
    scale = (4.0 * df * m / sigmas).astype(np.float32 if precision == "single" else np.float64)
    best = np.zeros(m, dtype=scale.dtype)
    which = np.zeros(m, dtype=np.int64)
    value: np.ndarray = np.zeros(m, dtype=dtype)
    buffer: np.ndarray = np.zeros((_BATCH, m), dtype=dtype)
    for start in range(0, len(bank), _BATCH):
        stop = min(start + _BATCH, len(bank))
        rows = buffer[: stop - start]
        rows[:, kmin:kmax] = t.conj[start:stop] * weighted
        rows[:, kmax:] = 0
        z = scipy.fft.ifft(rows, axis=1)
        z *= scale[start:stop, None]
        amplitude = np.abs(z)
        top = np.argmax(amplitude, axis=0)
        peak = np.take_along_axis(amplitude, top[None], axis=0)[0]
        better = np.flatnonzero(peak > best)
        best[better] = peak[better]
        which[better] = top[better] + start
        value[better] = z[top[better], better]
    return value, which, d


def search_window(
    samples: np.ndarray,
    rate: float,
    before: int,
    span: int,
    time0: float,
    *,
    bank: TemplateBank,
    f_lower: float = 20.0,
    threshold: float = 8.0,
    cluster: float = 1.0,
    psd_segment: float = 4.0,
    precision: str = "single",
    templates: _Templates | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """Triggers in one window's own span, and the seconds of it searched.

    Parameters
    ----------
    samples
        The window's strain including its padding, 1-d.
    rate
        Sampling rate in Hz.
    before, span
        Padding samples before the own span, and the own span's length.
    time0
        GPS time of the own span's first sample.
    bank, f_lower, threshold, cluster, psd_segment, precision
        As :class:`Search`.

    Returns
    -------
    triggers, seconds
        Columns as :data:`COLUMNS` (time-ordered), and the own-span seconds searched.
    """
    z, which, d = snr_series(
        samples,
        rate,
        bank=bank,
        f_lower=f_lower,
        psd_segment=psd_segment,
        precision=precision,
        before=before,
        templates=templates,
    )
    best = np.abs(z)
    m = len(z)
    # Only samples whose whole filter reach lies inside the data are trusted: a
    # window's padding covers that everywhere but at a file's edges.
    reach_lo = bank.longest(f_lower) + psd_segment + cluster
    reach_hi = psd_segment + cluster
    valid_lo = math.ceil(reach_lo * rate / d)
    valid_hi = m - math.ceil(reach_hi * rate / d)
    own_lo = max(math.ceil(before / d), valid_lo)
    own_hi = min(math.ceil((before + span) / d), valid_hi)
    seconds = max(own_hi - own_lo, 0) * d / rate
    if own_hi <= own_lo:
        return _empty(), seconds
    trusted = best[max(valid_lo, 0) : valid_hi]
    width = 2 * round(cluster * rate / d) + 1
    local = scipy.ndimage.maximum_filter1d(trusted, width, mode="constant", cval=0.0)
    offset = max(valid_lo, 0)
    own = slice(own_lo - offset, own_hi - offset)
    hits = np.flatnonzero((trusted[own] > threshold) & (trusted[own] >= local[own])) + own_lo
    masses = np.asarray(bank.masses, dtype=np.float64).reshape(-1, 2)
    picked = which[hits]
    triggers = {
        "time": time0 + (hits * d - before) / rate,
        "snr": best[hits].astype(np.float64),
        "phase": np.angle(z[hits]).astype(np.float64),
        "mass1": masses[picked, 0],
        "mass2": masses[picked, 1],
        "template": picked,
    }
    return triggers, seconds


@dataclass(frozen=True)
class Search:
    """A matched-filter search over strain windows: ``events -> dict``.

    Parameters
    ----------
    bank
        The templates; :func:`~saetta.astro.waveforms.default_bank` by default.
    f_lower
        Lowest frequency filtered, Hz.
    threshold
        SNR above which a clustered peak is a trigger.
    cluster
        A trigger is the loudest sample within this many seconds either side.
    psd_segment
        Welch segment length, s; also the whitening filter's length.
    precision
        ``"single"`` or ``"double"`` filtering.

    Returns
    -------
    dict
        ``{"triggers": Table (COLUMNS), "windows": int, "seconds": float}``.

    Examples
    --------
    >>> result = saetta.run(Search(), dataset)  # doctest: +SKIP
    >>> result["triggers"].write_parquet("triggers.parquet")  # doctest: +SKIP
    """

    bank: TemplateBank = field(default_factory=default_bank)
    f_lower: float = 20.0
    threshold: float = 8.0
    cluster: float = 1.0
    psd_segment: float = 4.0
    precision: str = "single"
    # Templates on one frequency grid, per process: not pickled, rebuilt on first use.
    _cache: dict[tuple[int, float], _Templates] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in self.__dataclass_fields__}
        state["_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def _on_grid(self, n: int, rate: float) -> _Templates:
        key = (n, rate)
        if key not in self._cache:
            # One grid (the full windows' length) is almost always all there is;
            # the edge windows' grids are kept too, which bounds the cache at three.
            dtype = np.complex64 if self.precision == "single" else np.complex128
            self._cache[key] = _templates(self.bank, self.f_lower, n, rate, dtype)
        return self._cache[key]

    def __call__(self, events: Any) -> dict[str, Any]:
        header = events.attrs.get("header", {}) if hasattr(events, "attrs") else {}
        if "rate" not in header:
            msg = "search: the events carry no strain header (open them with format='strain')"
            raise AnalysisError(msg)
        rate = float(header["rate"])
        pad = float(header.get("pad", 0.0))
        needed = self.bank.longest(self.f_lower) + self.psd_segment + self.cluster
        if pad < needed:
            msg = (
                f"search: padding of {pad:g} s is shorter than the filter's reach ({needed:.1f} s)"
            )
            raise AnalysisError(msg)
        parts = [_empty()]
        seconds = 0.0
        times = np.asarray(events.time)
        befores = np.asarray(events.before)
        spans = np.asarray(events.span)
        for i in range(len(times)):
            samples = np.asarray(events.strain.value[i])
            found, searched = search_window(
                samples,
                rate,
                int(befores[i]),
                int(spans[i]),
                float(times[i]),
                bank=self.bank,
                f_lower=self.f_lower,
                threshold=self.threshold,
                cluster=self.cluster,
                psd_segment=self.psd_segment,
                precision=self.precision,
                templates=self._on_grid(len(samples), rate),
            )
            parts.append(found)
            seconds += searched
        triggers = Table({k: np.concatenate([p[k] for p in parts]) for k in COLUMNS})
        return {"triggers": triggers, "windows": len(times), "seconds": seconds}
