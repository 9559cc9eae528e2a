"""Stage: astro (layer 7) — strain files in the GWOSC layout: coloured noise with chirps.

:func:`generate_strain` writes files as the Gravitational Wave Open Science Center
publishes them (``H-H1_SAETTA-1000000000-4096.hdf5``: dataset ``strain/Strain``
with ``Xstart``, ``Xspacing``, ``Npoints``, ``Xunits``; groups ``meta`` and
``quality``), read back by :mod:`saetta.formats.strain`, and ``injections.parquet``
listing the chirps added, so a search's triggers can be checked against the truth.

The noise is stationary Gaussian noise coloured by :func:`~saetta.astro.psd.aligo_psd`,
drawn in the frequency domain. For ``N`` samples ``dt`` apart (``df = 1/(N dt)``), each
frequency bin ``f_k`` at or above ``f_min`` gets an independent complex Gaussian whose
real and imaginary parts have standard deviation ``sqrt(S(f_k) / (4 df)) / dt``, so
that the continuous-transform estimate ``dt·X_k`` has ``<|dt·X_k|²> = S(f_k) / (2 df)``,
the one-sided PSD's definition; ``numpy.fft.irfft`` makes the samples, whose
variance is then ``∫ S df``. Bins below ``f_min`` (10 Hz), the DC and the Nyquist
bins are zero: below the seismic wall the fit grows without physical bound, and its
power would leak into every spectral estimate of the band a search uses.

The chirps are TaylorF2 inspirals (:func:`~saetta.astro.waveforms.taylorf2`, from
``f_lower``), placed at their GPS coalescence time by a phase ``exp(-2πi f t)`` (exact
to a fraction of a sample), scaled to the requested optimal SNR
(:func:`~saetta.astro.waveforms.sigma` with ``aligo_psd`` over the file's own
frequency grid from ``f_lower`` to Nyquist), and added to the noise before the one
inverse transform. A file is generated in memory (a 4096 s file at 4096 Hz is 16.8 M
samples, 134 MB) and written under a temporary name renamed into place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saetta.astro.psd import aligo_psd
from saetta.astro.waveforms import chirp_times, f_isco, sigma, taylorf2
from saetta.errors import DatasetError
from saetta.storage import atomic_path

__all__ = ["Injection", "StrainFiles", "generate_strain"]

_KEYS = ("time", "mass1", "mass2", "snr")


@dataclass(frozen=True, slots=True)
class Injection:
    """One chirp: GPS coalescence time (s), component masses (M☉), optimal SNR, and the
    distance (Mpc) that gives it."""

    time: float
    mass1: float
    mass2: float
    snr: float
    distance: float = 0.0


@dataclass(frozen=True, slots=True)
class StrainFiles:
    """What :func:`generate_strain` wrote: the strain files in time order, the injection
    table, and the chirps it lists."""

    paths: tuple[Path, ...]
    injections: Path
    chirps: tuple[Injection, ...]

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (*self.paths, self.injections))


def generate_strain(
    folder: str | os.PathLike[str],
    *,
    duration: int = 4096,
    rate: int = 4096,
    files: int = 1,
    detector: str = "H1",
    gps_start: int = 1_000_000_000,
    injections: int | Sequence[Mapping[str, float]] = 10,
    masses: tuple[float, float] = (10.0, 30.0),
    snrs: tuple[float, float] = (8.0, 40.0),
    f_lower: float = 20.0,
    f_min: float = 10.0,
    guard: float = 8.0,
    noise: bool = True,
    seed: int = 1,
) -> StrainFiles:
    """Write ``files`` consecutive strain files of ``duration`` s at ``rate`` Hz.

    Parameters
    ----------
    folder
        Where the files go (made if missing).
    duration, rate
        Seconds per file and samples per second (whole numbers, as GWOSC's).
    files, detector, gps_start
        How many files, the detector (``"H1"``, ``"L1"``, ...), and the GPS time
        of the first file's first sample; file ``i`` starts at ``gps_start + i·duration``.
    injections
        Chirps per file, drawn: masses uniform in ``masses`` (M☉), optimal SNR uniform
        in ``snrs``, one coalescence per equal slice of the file, at least its chirp's
        length plus ``guard`` seconds from the slice's edges (so chirps never overlap,
        nor touch a file's edges). Or the chirps themselves, ``[{"time": GPS,
        "mass1": ..., "mass2": ..., "snr": ...}, ...]``, each wholly inside one file.
    f_lower
        Where the chirps start, and the lower end of the SNR's integral (Hz).
    f_min
        Below this frequency (Hz) the noise is zero.
    noise
        ``False`` writes the chirps alone (for tests).
    seed
        Same seed, same files: file ``i``'s noise and draws come from ``(seed, i)``.

    Returns
    -------
    StrainFiles
        The files and ``injections.parquet`` (columns ``time``, ``mass1``, ``mass2``,
        ``snr``, ``distance``, ``file``).

    Raises
    ------
    DatasetError
        Bad sizes, more chirps than a file holds, or a given chirp outside every file.

    Examples
    --------
    >>> out = generate_strain(tmp, duration=64, injections=1)  # doctest: +SKIP
    >>> out.paths[0].name  # doctest: +SKIP
    'H-H1_SAETTA-1000000000-64.hdf5'
    """
    target = Path(folder)
    samples = duration * rate
    if not (duration > 0 and rate > 0 and files > 0 and samples % 2 == 0 and len(detector) >= 1):
        msg = (
            f"cannot generate {files} file(s) of {duration} s at {rate} Hz for {detector!r} "
            f"in {target}: files, duration and rate must be positive, with an even sample count"
        )
        raise DatasetError(msg, path=str(target))
    starts = [gps_start + i * duration for i in range(files)]
    if isinstance(injections, int):
        planned = [
            _draw(np.random.default_rng([seed, i, 1]), start, duration, injections, masses, snrs,
                  f_lower, guard, target)
            for i, start in enumerate(starts)
        ]  # fmt: skip
    else:
        planned = _assign(injections, starts, duration, f_lower, target)
    paths: list[Path] = []
    chirps: list[Injection] = []
    names: list[str] = []
    for i, (start, wanted) in enumerate(zip(starts, planned, strict=True)):
        path = target / f"{detector[0]}-{detector}_SAETTA-{start}-{duration}.hdf5"
        rng = np.random.default_rng([seed, i, 0])
        strain, done = _strain(rng, start, duration, rate, wanted, f_lower, f_min, noise)
        _write(path, strain, start, duration, rate, detector)
        paths.append(path)
        chirps += done
        names += [path.name] * len(done)
    table = target / "injections.parquet"
    columns = {key: [getattr(c, key) for c in chirps] for key in (*_KEYS, "distance")}
    with atomic_path(table) as temporary:
        pq.write_table(pa.table({**columns, "file": pa.array(names, pa.string())}), temporary)
    return StrainFiles(tuple(paths), table, tuple(chirps))


def _length(mass1: float, mass2: float, f_lower: float) -> float:
    """A chirp's duration from ``f_lower`` (an overestimate), s."""
    return float(sum(chirp_times(mass1, mass2, f_lower)))


def _draw(
    rng: np.random.Generator,
    start: int,
    duration: int,
    count: int,
    masses: tuple[float, float],
    snrs: tuple[float, float],
    f_lower: float,
    guard: float,
    target: Path,
) -> list[Injection]:
    if count < 0 or not (0 < masses[0] <= masses[1] and 0 < snrs[0] <= snrs[1]):
        msg = f"bad injections for {target}: {count} chirps, masses {masses}, SNRs {snrs}"
        raise DatasetError(msg, path=str(target))
    slot = duration / max(count, 1)
    drawn = []
    for j in range(count):
        m1, m2 = sorted(rng.uniform(*masses, size=2), reverse=True)
        snr = float(rng.uniform(*snrs))
        room = _length(m1, m2, f_lower) + guard
        if slot < 2 * room:
            msg = (
                f"{count} chirps do not fit in {duration} s files (for {target}): each needs "
                f"{2 * room:.0f} s; inject fewer or make the files longer"
            )
            raise DatasetError(msg, path=str(target))
        time = start + j * slot + room + float(rng.uniform()) * (slot - 2 * room)
        drawn.append(Injection(time, float(m1), float(m2), snr))
    return drawn


def _assign(
    given: Sequence[Mapping[str, float]],
    starts: Sequence[int],
    duration: int,
    f_lower: float,
    target: Path,
) -> list[list[Injection]]:
    """The given chirps, per file; each must lie wholly inside its file."""
    per_file: list[list[Injection]] = [[] for _ in starts]
    for item in given:
        missing = [key for key in _KEYS if key not in item]
        if missing:
            msg = f"injection {dict(item)} lacks {', '.join(missing)} (needs {', '.join(_KEYS)})"
            raise DatasetError(msg, path=str(target))
        chirp = Injection(*(float(item[key]) for key in _KEYS))
        index = math.floor((chirp.time - starts[0]) / duration)
        begins = chirp.time - _length(chirp.mass1, chirp.mass2, f_lower)
        if not (0 <= index < len(starts)) or begins < starts[index] or chirp.snr <= 0:
            msg = (
                f"injection at GPS {chirp.time} (SNR {chirp.snr}) does not lie wholly inside "
                f"one file of [{starts[0]}, {starts[-1] + duration}) with a positive SNR"
            )
            raise DatasetError(msg, path=str(target))
        per_file[index].append(chirp)
    return per_file


def _strain(
    rng: np.random.Generator,
    start: int,
    duration: int,
    rate: int,
    chirps: Sequence[Injection],
    f_lower: float,
    f_min: float,
    noise: bool,
) -> tuple[np.ndarray, list[Injection]]:
    """One file's samples, and its chirps with their distances."""
    n = duration * rate
    dt = 1.0 / rate
    df = 1.0 / duration
    frequencies = np.arange(n // 2 + 1) * df
    psd = np.full(len(frequencies), np.inf)
    psd[1:] = aligo_psd(frequencies[1:])
    spectrum = np.zeros(len(frequencies), dtype=np.complex128)
    if noise:
        low = max(1, math.ceil(f_min / df))
        scale = np.sqrt(psd[low:-1] / (4.0 * df)) / dt
        draws = rng.standard_normal((2, len(scale)))
        spectrum[low:-1] = scale * (draws[0] + 1j * draws[1])
    done = []
    for chirp in chirps:
        top = min(math.floor(f_isco(chirp.mass1, chirp.mass2) / df) + 1, len(frequencies) - 1)
        band = slice(max(1, math.floor(f_lower / df)), top)
        htilde = np.zeros(len(frequencies), dtype=np.complex128)
        htilde[band] = taylorf2(chirp.mass1, chirp.mass2, frequencies[band], f_lower)
        at_1mpc = sigma(htilde, psd, df, f_lower)
        shift = np.exp(-2j * np.pi * frequencies[band] * (chirp.time - start))
        spectrum[band] += htilde[band] * shift * (chirp.snr / at_1mpc / dt)
        done.append(Injection(chirp.time, chirp.mass1, chirp.mass2, chirp.snr, at_1mpc / chirp.snr))
    strain: np.ndarray = np.fft.irfft(spectrum, n)
    return strain, done


def _write(
    path: Path, strain: np.ndarray, start: int, duration: int, rate: int, detector: str
) -> None:
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
        ds = f.create_dataset("strain/Strain", data=strain, dtype="f8")
        ds.attrs["Xstart"] = np.int64(start)
        ds.attrs["Xspacing"] = 1.0 / rate
        ds.attrs["Npoints"] = np.int64(len(strain))
        ds.attrs["Xunits"] = "second"
        ds.attrs["Xlabel"] = "GPS time"
        meta = f.create_group("meta")
        meta["GPSstart"] = np.int64(start)
        meta["Duration"] = np.int64(duration)
        meta["Detector"] = detector
        meta["Observatory"] = detector[0]
        meta["Description"] = "Simulated strain: aLIGO-like coloured noise with chirps (saetta)"
        meta["Type"] = "StrainTimeSeries"
        # Every second has data (bit 0, DATA), as GWOSC's data-quality mask says it.
        simple = f.create_group("quality/simple")
        mask = simple.create_dataset("DQmask", data=np.ones(duration, dtype=np.int32))
        mask.attrs["Xstart"] = np.int64(start)
        mask.attrs["Xspacing"] = 1.0
        mask.attrs["Npoints"] = np.int64(duration)
        simple["DQShortnames"] = np.array([b"DATA"])
        simple["DQDescriptions"] = np.array([b"Data available"])
