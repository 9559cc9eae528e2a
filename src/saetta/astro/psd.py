"""Stage: astro (layer 7) — noise power spectral densities, and their Welch estimate.

A gravitational-wave detector's noise is Gaussian but coloured: its one-sided power
spectral density :math:`S_n(f)` (in 1/Hz) falls steeply from the seismic wall near
10 Hz to a minimum near 200 Hz and rises again with shot noise. :func:`aligo_psd` is
an analytic fit of the advanced-LIGO design curve (zero-detuned, high power), which
the strain generator colours its noise with; :func:`welch` estimates the PSD of
measured data as a search does; :func:`truncate_inverse` shortens the inverse PSD's
impulse response so a whitening filter corrupts only a few seconds at each edge.

The conventions are PyCBC's (``pycbc.psd.welch``, ``pycbc.psd.interpolate``,
``pycbc.psd.inverse_spectrum_truncation``), so the same data give the same PSD.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from saetta.errors import AnalysisError

__all__ = ["aligo_psd", "interpolate", "truncate_inverse", "welch"]

_AVERAGES = ("mean", "median")


def aligo_psd(frequencies: np.ndarray) -> np.ndarray:
    r"""The advanced-LIGO design noise PSD, an analytic fit, in 1/Hz.

    The fit is Ajith's (2011, arXiv:1107.1267, eq. 4.7) to the zero-detuned,
    high-power design curve: :math:`S(f) = 10^{-48}\,(0.0152\,x^{-4} +
    0.2935\,x^{9/4} + 2.7951\,x^{3/2} - 6.5080\,x^{3/4} + 17.7622)` with
    :math:`x = f / 245.4` Hz. It is meant for :math:`f \gtrsim 10` Hz; below, it
    grows as :math:`f^{-4}`, huge but finite.

    Parameters
    ----------
    frequencies
        Frequencies in Hz, all positive.

    Returns
    -------
    np.ndarray
        One-sided PSD at each frequency, in 1/Hz.

    Raises
    ------
    AnalysisError
        If a frequency is zero or negative.

    Examples
    --------
    >>> round(float(aligo_psd(np.array([245.4]))[0]) ** 0.5 * 1e24, 2)  # strain/sqrt(Hz)
    3.79
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if np.any(f <= 0):
        msg = "aligo_psd: frequencies must be positive (the fit diverges at 0 Hz)"
        raise AnalysisError(msg)
    x = f / 245.4
    value: np.ndarray = 1e-48 * (
        0.0152 * x**-4.0 + 0.2935 * x**2.25 + 2.7951 * x**1.5 - 6.5080 * x**0.75 + 17.7622
    )
    return value


def _median_bias(n: int) -> float:
    # The median of n exponential variates over their mean (gr-qc/0509116, eq. B12).
    return 1.0 + sum(1.0 / (2 * i + 1) - 1.0 / (2 * i) for i in range(1, (n - 1) // 2 + 1))


def welch(
    samples: np.ndarray,
    rate: float,
    segment: float = 4.0,
    stride: float | None = None,
    average: str = "median",
) -> tuple[np.ndarray, np.ndarray]:
    """Welch estimate of the one-sided PSD of real samples, as ``pycbc.psd.welch``.

    The samples are cut into segments of ``segment`` seconds every ``stride``
    seconds (half a segment unless given; if they do not tile exactly, the excess is
    dropped evenly from both ends), each is multiplied by a symmetric Hann window
    (``numpy.hanning``) and Fourier transformed. The segments' periodograms are
    averaged per frequency by their median, divided by the median's bias for that
    many exponential variates, which makes the estimate robust against a loud
    transient in one segment; ``average="mean"`` takes the plain mean. The DC and
    Nyquist bins are halved, as PyCBC does.

    Parameters
    ----------
    samples
        The time series, 1-d.
    rate
        Its sampling rate in Hz.
    segment
        Segment length in seconds; the frequency resolution is ``1/segment``.
    stride
        Step between segment starts in seconds; ``segment / 2`` by default.
    average
        ``"median"`` (bias-corrected) or ``"mean"``.

    Returns
    -------
    frequencies, psd
        ``segment * rate // 2 + 1`` frequencies from 0 Hz, and the PSD in 1/Hz.

    Raises
    ------
    AnalysisError
        If the samples are shorter than one segment, or ``average`` is unknown.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> f, p = welch(rng.normal(0.0, 1.0, 64 * 256), 256.0, average="mean")
    >>> len(f), round(float(np.mean(p[1:-1])), 1)  # white noise: 2 sigma^2 / rate
    (513, 0.0)
    """
    if average not in _AVERAGES:
        msg = f"welch: unknown average {average!r}; available: {', '.join(_AVERAGES)}"
        raise AnalysisError(msg)
    x = np.asarray(samples, dtype=np.float64)
    seg_len = round(segment * rate)
    seg_stride = round((segment / 2 if stride is None else stride) * rate)
    if seg_len <= 0 or seg_stride <= 0 or len(x) < seg_len:
        msg = (
            f"welch: {len(x) / rate:g} s of data cannot hold a {segment:g} s segment "
            f"(stride {seg_stride / rate:g} s)"
        )
        raise AnalysisError(msg)
    count = len(x) // seg_stride
    if (count - 1) * seg_stride + seg_len > len(x):
        count -= 1
    excess = len(x) - ((count - 1) * seg_stride + seg_len)
    start = excess // 2 + excess % 2
    x = x[start : start + (count - 1) * seg_stride + seg_len]
    window = np.hanning(seg_len)
    starts = np.arange(count) * seg_stride
    segments = np.lib.stride_tricks.sliding_window_view(x, seg_len)[starts]
    periodograms = np.abs(scipy.fft.rfft(segments * window, axis=1) / rate) ** 2
    periodograms[:, 0] /= 2
    periodograms[:, -1] /= 2
    if average == "median":
        mean = np.median(periodograms, axis=0) / _median_bias(count)
    else:
        mean = periodograms.mean(axis=0)
    delta_f = rate / seg_len
    psd: np.ndarray = mean * (2.0 * delta_f * seg_len / float(np.sum(window * window)))
    return np.arange(len(psd)) * delta_f, psd


def interpolate(psd: np.ndarray, delta_f: float, new_delta_f: float, length: int) -> np.ndarray:
    """A PSD sampled every ``delta_f`` Hz, linearly interpolated to ``length`` bins of
    ``new_delta_f`` Hz (``pycbc.psd.interpolate``)."""
    old = np.arange(len(psd)) * delta_f
    values: np.ndarray = np.interp(np.arange(length) * new_delta_f, old, psd)
    return values


def truncate_inverse(
    psd: np.ndarray, max_filter_len: int, f_lower: float, delta_f: float
) -> np.ndarray:
    """The PSD whose inverse square root has an impulse response of at most
    ``max_filter_len`` samples, Hann-tapered (``pycbc.psd.inverse_spectrum_truncation``
    with ``trunc_method="hann"``).

    The inverse ASD is zero below ``f_lower`` and at Nyquist; its time-domain
    response is cut to ``max_filter_len`` samples centred on zero lag, so whitening
    (and filtering with ``1/psd``) corrupts only that many samples at each edge.
    """
    n = (len(psd) - 1) * 2
    kmin = int(f_lower / delta_f) if f_lower else 1
    inverse = np.zeros(len(psd), dtype=np.float64)
    inverse[kmin : n // 2] = 1.0 / np.sqrt(psd[kmin : n // 2])
    q = scipy.fft.irfft(inverse, n)
    half = max_filter_len // 2
    if n - half < half:
        msg = f"truncate_inverse: a {max_filter_len}-sample filter exceeds {n} samples"
        raise AnalysisError(msg)
    taper = np.hanning(max_filter_len)
    q[:half] *= taper[-half:]
    q[n - half :] *= taper[:half]
    q[half : n - half] = 0.0
    truncated: np.ndarray = 1.0 / np.abs(scipy.fft.rfft(q)) ** 2
    return truncated
