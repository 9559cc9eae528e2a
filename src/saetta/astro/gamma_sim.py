"""Stage: astro (layer 7) — simulated gamma-ray observations, as GADF DL3 event lists.

:func:`generate_gamma` writes observations of a point source (by default at the Crab's
position, RA 83.633°, Dec 22.0145°) over an isotropic background, taken in wobble
mode: observation ``k`` (0, 1, ...) is pointed 0.5° from the source at the position
angle 0°, 90°, 180°, 270° for ``k mod 4`` = 0, 1, 2, 3. Each observation is one file,
``obs_{OBS_ID:06d}.fits`` (``OBS_ID`` = ``k + 1``): an empty primary HDU, an
``EVENTS`` table (EVENT_ID, TIME, RA, DEC, ENERGY in TeV) and a ``GTI`` table, in the
layout of the gamma-astro-data-formats (GADF 0.3). Beside them: ``obs-index.fits.gz``
and ``hdu-index.fits.gz`` (the GADF index tables) and ``truth.json``.

The instrument (:class:`Instrument`), with ``E`` the true energy in TeV:

- effective area ``A(E) = A_max · x^k / (1 + x^k)``, ``x = E / E_turn``: a smooth
  turn-on, half of ``A_max`` (10⁵ m²) at ``E_turn`` = 0.15 TeV, with ``k`` = 3;
- point-spread function: a 2-D Gaussian in the tangent plane of width
  ``σ(E) = σ_0 + σ_1 · (E / 1 TeV)^(-1/2)`` (0.02° + 0.05°): an event's angular
  distance θ from the source is Rayleigh-distributed, its position angle uniform,
  so the fraction within ``r`` is ``1 - exp(-r² / 2σ²)``;
- energy resolution: ``ln E_reco = ln E + N(0, σ_E)``, ``σ_E`` = 0.15.

The source has the spectrum ``dN/dE = φ_0 (E / 1 TeV)^-Γ`` (φ_0 = 3.45·10⁻¹¹
cm⁻² s⁻¹ TeV⁻¹, Γ = 2.63, true energies 0.05 to 100 TeV): it gives
``R_src = ∫ φ(E) A(E) dE`` events per second of live time. The background (the
cosmic rays that pass as gammas) is isotropic on the sphere within ``fov_radius``
(2.5°) of the pointing, with reconstructed energies from its own power law
(index 2.7, 0.05 to 100 TeV), at ``background_rate_hz`` (20 Hz). The live time of an
observation is set so that ``events`` are expected in it: ``LIVETIME = events /
(R_src + R_bkg)``; the numbers of source and background events are Poisson draws
of their expectations.

Observation ``OBS_ID`` of a run with seed ``s`` draws from
``numpy.random.default_rng([s, OBS_ID])``: a file depends on nothing else, and the
same call writes the same bytes. Each file is written under a temporary name and
renamed into place, so a folder never holds a half-written one.

``truth.json`` records the seed, the source, the spectrum, the instrument, and per
observation the expected source and background counts, and the expected ON and OFF
counts of the default analysis (a circle of 0.1° around the source; three reflected
regions), from the formulas above (the PSF's fraction within an OFF circle at ``D``
from the source is a non-central χ² with two degrees of freedom).

The instrument, the source and the files it writes stay in one module, longer than
most, because they are one documented definition (``docs/gamma.md``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saetta.errors import DatasetError

__all__ = ["CRAB", "GammaObservations", "Instrument", "Source", "generate_gamma"]

#: The Crab nebula (ICRS, degrees).
CRAB = (83.633, 22.0145)

_MJDREFI, _MJDREFF = 51910, 7.428703703703703e-4  # 2001-01-01 TT, as GADF event lists use
_TSTART0 = 3.0e8  # seconds after MJDREF of the first observation's start
_DEADC = 0.95
_GRID = np.geomspace(0.05, 100.0, 4001)  # TeV; energy integrals and inverse CDFs


@dataclass(frozen=True, slots=True)
class Instrument:
    """The simulated instrument's response (see the module docstring for the formulas)."""

    area_max_m2: float = 1.0e5
    area_turn_tev: float = 0.15
    area_power: float = 3.0
    psf_sigma0_deg: float = 0.02
    psf_sigma1_deg: float = 0.05
    energy_sigma: float = 0.15
    fov_radius_deg: float = 2.5

    def area_cm2(self, energy_tev: np.ndarray) -> np.ndarray:
        """Effective area ``A(E)`` in cm² at true energies in TeV."""
        x = (np.asarray(energy_tev, dtype=np.float64) / self.area_turn_tev) ** self.area_power
        area: np.ndarray = self.area_max_m2 * 1e4 * x / (1.0 + x)
        return area

    def psf_sigma_deg(self, energy_tev: np.ndarray) -> np.ndarray:
        """The PSF's Gaussian width σ(E) in degrees at true energies in TeV."""
        sigma: np.ndarray = self.psf_sigma0_deg + self.psf_sigma1_deg / np.sqrt(energy_tev)
        return sigma


@dataclass(frozen=True, slots=True)
class Source:
    """A point source with a power-law spectrum ``φ_0 (E / 1 TeV)^-index``."""

    ra_deg: float = CRAB[0]
    dec_deg: float = CRAB[1]
    amplitude: float = 3.45e-11  # cm⁻² s⁻¹ TeV⁻¹ at 1 TeV
    index: float = 2.63
    name: str = "Crab"


@dataclass(frozen=True, slots=True)
class GammaObservations:
    """What :func:`generate_gamma` wrote: one event file per observation, the indexes."""

    folder: Path
    files: tuple[Path, ...]
    events: int
    truth: dict[str, Any] = field(repr=False)

    @property
    def hdu_index(self) -> Path:
        return self.folder / "hdu-index.fits.gz"

    @property
    def obs_index(self) -> Path:
        return self.folder / "obs-index.fits.gz"


def generate_gamma(
    folder: str | os.PathLike[str],
    *,
    observations: int = 4,
    events: int = 100_000,
    seed: int = 1,
    source: Source = Source(),
    instrument: Instrument = Instrument(),
    background_rate_hz: float = 20.0,
    background_index: float = 2.7,
    offset_deg: float = 0.5,
) -> GammaObservations:
    """Write ``observations`` simulated DL3 observations into ``folder``.

    Parameters
    ----------
    folder
        Created if missing; files of the same names are replaced.
    observations
        Number of observations (files), in wobble mode around the source.
    events
        Expected events (source and background) per observation.
    seed
        Observation ``OBS_ID`` draws from ``numpy.random.default_rng([seed, OBS_ID])``.
    source, instrument
        The source and the instrument response (see the module docstring).
    background_rate_hz, background_index
        Background events per second within the field of view, and the index of their
        power-law spectrum in reconstructed energy.
    offset_deg
        The wobble offset: the pointing's distance from the source.

    Returns
    -------
    GammaObservations
        The files written, in OBS_ID order, and the truth also written to ``truth.json``.

    Raises
    ------
    DatasetError
        A non-positive number of observations or events.

    Examples
    --------
    >>> made = generate_gamma(tmp_path, observations=2, events=1000)  # doctest: +SKIP
    >>> made.files[0].name  # doctest: +SKIP
    'obs_000001.fits'
    """
    if observations < 1 or events < 1:
        msg = f"give a positive number of observations and events, not {observations}, {events}"
        raise DatasetError(msg, path=str(folder))
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    rate_src = float(
        _integrate(source.amplitude * _GRID**-source.index * instrument.area_cm2(_GRID))
    )
    livetime = events / (rate_src + background_rate_hz)
    plan: list[tuple[int, float, float, float]] = []
    for k in range(observations):
        angle = math.radians(90.0 * (k % 4))
        pointing = _offset(source.ra_deg, source.dec_deg, angle, offset_deg)
        tstart = _TSTART0 + k * (livetime / _DEADC + 600.0)
        plan.append((k + 1, float(pointing[0]), float(pointing[1]), tstart))
    expected = _expected(source, instrument, livetime, rate_src, background_rate_hz, offset_deg)
    files: list[Path] = []
    rows: list[dict[str, Any]] = []
    total = 0
    for obs_id, ra_pnt, dec_pnt, tstart in plan:
        rng = np.random.default_rng([seed, obs_id])
        n_src = int(rng.poisson(rate_src * livetime))
        n_bkg = int(rng.poisson(background_rate_hz * livetime))
        columns = _draw(
            rng, n_src, n_bkg, source, instrument, background_index,
            (ra_pnt, dec_pnt), tstart, livetime,
        )  # fmt: skip
        header = _header(obs_id, source, ra_pnt, dec_pnt, tstart, livetime)
        path = root / f"obs_{obs_id:06d}.fits"
        _write_events(path, columns, header)
        files.append(path)
        total += n_src + n_bkg
        rows.append(
            {
                "obs_id": obs_id, "file": path.name, "ra_pnt": ra_pnt, "dec_pnt": dec_pnt,
                "livetime_s": livetime, "source_events": n_src, "background_events": n_bkg,
                **expected,
            }
        )  # fmt: skip
    _write_indexes(root, plan, source, livetime)
    truth = {
        "seed": seed,
        "observations": observations,
        "events_per_observation": events,
        "source": asdict(source),
        "instrument": asdict(instrument),
        "background": {"rate_hz": background_rate_hz, "index": background_index},
        "offset_deg": offset_deg,
        "source_rate_hz": rate_src,
        "default_analysis": {"on_radius_deg": 0.1, "off_regions": 3},
        "per_observation": rows,
        "expected_n_on": sum(r["expected_n_on"] for r in rows),
        "expected_n_off": sum(r["expected_n_off"] for r in rows),
    }
    _replace_text(root / "truth.json", json.dumps(truth, indent=1) + "\n")
    return GammaObservations(root, tuple(files), total, truth)


def _integrate(values: np.ndarray) -> float:
    """∫ values dE over the energy grid (trapezoids in ln E)."""
    weights = values * _GRID
    return float(np.sum(0.5 * (weights[1:] + weights[:-1]) * np.diff(np.log(_GRID))))


def _offset(
    ra_deg: np.ndarray | float, dec_deg: np.ndarray | float, angle: Any, distance_deg: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The point ``distance_deg`` from (ra, dec) at the position angle ``angle`` (rad, east of north)."""
    ra, dec, d = np.radians(ra_deg), np.radians(dec_deg), np.radians(distance_deg)
    sin_dec2 = np.sin(dec) * np.cos(d) + np.cos(dec) * np.sin(d) * np.cos(angle)
    dec2 = np.arcsin(np.clip(sin_dec2, -1.0, 1.0))
    ra2 = ra + np.arctan2(
        np.sin(angle) * np.sin(d) * np.cos(dec), np.cos(d) - np.sin(dec) * sin_dec2
    )
    return np.degrees(ra2) % 360.0, np.degrees(dec2)


def _inverse_cdf(rng: np.random.Generator, density: np.ndarray, n: int) -> np.ndarray:
    """``n`` energies (TeV) drawn from a density tabulated on the grid."""
    weights = density * _GRID
    cdf = np.concatenate(
        [[0.0], np.cumsum(0.5 * (weights[1:] + weights[:-1]) * np.diff(np.log(_GRID)))]
    )
    drawn: np.ndarray = np.exp(np.interp(rng.uniform(0.0, cdf[-1], n), cdf, np.log(_GRID)))
    return drawn


def _draw(
    rng: np.random.Generator,
    n_src: int,
    n_bkg: int,
    source: Source,
    instrument: Instrument,
    background_index: float,
    pointing: tuple[float, float],
    tstart: float,
    livetime: float,
) -> dict[str, np.ndarray]:
    true_e = _inverse_cdf(rng, _GRID**-source.index * instrument.area_cm2(_GRID), n_src)
    theta = instrument.psf_sigma_deg(true_e) * np.sqrt(-2.0 * np.log1p(-rng.uniform(size=n_src)))
    ra_src, dec_src = _offset(
        source.ra_deg, source.dec_deg, rng.uniform(0, 2 * np.pi, n_src), theta
    )
    e_src = true_e * np.exp(rng.normal(0.0, instrument.energy_sigma, n_src))
    cos_fov = math.cos(math.radians(instrument.fov_radius_deg))
    theta_bkg = np.degrees(np.arccos(rng.uniform(cos_fov, 1.0, n_bkg)))
    ra_bkg, dec_bkg = _offset(*pointing, rng.uniform(0, 2 * np.pi, n_bkg), theta_bkg)
    e_bkg = _inverse_cdf(rng, _GRID**-background_index, n_bkg)
    time = tstart + rng.uniform(0.0, livetime / _DEADC, n_src + n_bkg)
    order = np.argsort(time, kind="stable")
    return {
        "EVENT_ID": np.arange(1, n_src + n_bkg + 1, dtype=np.int64),
        "TIME": time[order],
        "RA": np.concatenate([ra_src, ra_bkg])[order].astype(np.float32),
        "DEC": np.concatenate([dec_src, dec_bkg])[order].astype(np.float32),
        "ENERGY": np.concatenate([e_src, e_bkg])[order].astype(np.float32),
    }


def _expected(
    source: Source,
    instrument: Instrument,
    livetime: float,
    rate_src: float,
    rate_bkg: float,
    offset_deg: float,
) -> dict[str, float]:
    """Expected counts of the default analysis (ON: 0.1°, three reflected regions)."""
    from scipy.stats import ncx2

    radius, n_off = 0.1, 3
    sigma = instrument.psf_sigma_deg(_GRID)
    weight = source.amplitude * _GRID**-source.index * instrument.area_cm2(_GRID) * livetime
    on_src = _integrate(weight * -np.expm1(-(radius**2) / (2 * sigma**2)))
    off_src = 0.0
    for k in range(1, n_off + 1):
        distance = 2 * offset_deg * math.sin(math.pi * k / (n_off + 1))  # chord, tangent plane
        off_src += _integrate(weight * ncx2.cdf(radius**2 / sigma**2, 2, distance**2 / sigma**2))
    cap = 1 - math.cos(math.radians(radius))
    fov = 1 - math.cos(math.radians(instrument.fov_radius_deg))
    bkg_per_region = rate_bkg * livetime * cap / fov
    return {
        "expected_source_events": rate_src * livetime,
        "expected_background_events": rate_bkg * livetime,
        "expected_n_on": on_src + bkg_per_region,
        "expected_n_off": off_src + n_off * bkg_per_region,
    }


def _header(
    obs_id: int, source: Source, ra_pnt: float, dec_pnt: float, tstart: float, livetime: float
) -> list[tuple[str, Any, str]]:
    ontime = livetime / _DEADC
    return [
        ("EXTNAME", "EVENTS", ""),
        ("HDUCLASS", "GADF", "FITS file following the GADF data format"),
        ("HDUDOC", "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats", ""),
        ("HDUVERS", "0.3", ""),
        ("HDUCLAS1", "EVENTS", ""),
        ("OBS_ID", obs_id, "observation identifier"),
        ("RA_PNT", ra_pnt, "[deg] pointing right ascension"),
        ("DEC_PNT", dec_pnt, "[deg] pointing declination"),
        ("RA_OBJ", source.ra_deg, "[deg] target right ascension"),
        ("DEC_OBJ", source.dec_deg, "[deg] target declination"),
        ("OBJECT", source.name, "observed object"),
        ("TSTART", tstart, "[s] start time, after MJDREF"),
        ("TSTOP", tstart + ontime, "[s] stop time, after MJDREF"),
        ("ONTIME", ontime, "[s] observation time"),
        ("LIVETIME", livetime, "[s] live time"),
        ("DEADC", _DEADC, "dead-time correction: LIVETIME / ONTIME"),
        ("MJDREFI", _MJDREFI, "integer part of the reference MJD"),
        ("MJDREFF", _MJDREFF, "fractional part of the reference MJD"),
        ("TIMEUNIT", "s", ""),
        ("TIMESYS", "TT", ""),
        ("TIMEREF", "LOCAL", ""),
        ("EQUINOX", 2000.0, ""),
        ("RADECSYS", "ICRS", ""),
        ("ORIGIN", "saetta generate gamma", ""),
    ]


def _write_events(
    path: Path, columns: dict[str, np.ndarray], header: list[tuple[str, Any, str]]
) -> None:
    from astropy.io import fits

    formats = {"EVENT_ID": "K", "TIME": "D", "RA": "E", "DEC": "E", "ENERGY": "E"}
    units = {"TIME": "s", "RA": "deg", "DEC": "deg", "ENERGY": "TeV"}
    events = fits.BinTableHDU.from_columns(
        [
            fits.Column(name=n, format=formats[n], unit=units.get(n), array=columns[n])
            for n in formats
        ]
    )
    for key, value, comment in header:
        events.header[key] = (value, comment)
    values = {key: value for key, value, _ in header}
    tstart, tstop = values["TSTART"], values["TSTOP"]
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", unit="s", array=np.array([tstart])),
            fits.Column(name="STOP", format="D", unit="s", array=np.array([tstop])),
        ],
        name="GTI",
    )
    shared = (
        "HDUCLASS",
        "HDUDOC",
        "HDUVERS",
        "OBS_ID",
        "MJDREFI",
        "MJDREFF",
        "TIMEUNIT",
        "TIMESYS",
    )
    for key, value, comment in header:
        if key in shared:
            gti.header[key] = (value, comment)
    gti.header["HDUCLAS1"] = "GTI"
    partial = path.with_name(path.name + ".partial")
    fits.HDUList([fits.PrimaryHDU(), events, gti]).writeto(partial, overwrite=True)
    os.replace(partial, path)


def _write_indexes(
    root: Path, plan: list[tuple[int, float, float, float]], source: Source, livetime: float
) -> None:
    from astropy.io import fits

    ids = np.array([p[0] for p in plan], dtype=np.int64)
    n = len(plan)
    obs = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="OBS_ID", format="K", array=ids),
            fits.Column(name="RA_PNT", format="D", unit="deg", array=np.array([p[1] for p in plan])),
            fits.Column(name="DEC_PNT", format="D", unit="deg", array=np.array([p[2] for p in plan])),
            fits.Column(name="OBJECT", format="16A", array=np.array([source.name] * n)),
            fits.Column(name="TSTART", format="D", unit="s", array=np.array([p[3] for p in plan])),
            fits.Column(name="TSTOP", format="D", unit="s",
                        array=np.array([p[3] + livetime / _DEADC for p in plan])),
            fits.Column(name="ONTIME", format="D", unit="s", array=np.full(n, livetime / _DEADC)),
            fits.Column(name="LIVETIME", format="D", unit="s", array=np.full(n, livetime)),
            fits.Column(name="DEADC", format="D", array=np.full(n, _DEADC)),
        ],
        name="OBS_INDEX",
    )  # fmt: skip
    names = [f"obs_{i:06d}.fits" for i in ids]
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="OBS_ID", format="K", array=np.repeat(ids, 2)),
            fits.Column(name="HDU_TYPE", format="6A", array=np.array(["events", "gti"] * n)),
            fits.Column(name="HDU_CLASS", format="6A", array=np.array(["events", "gti"] * n)),
            fits.Column(name="FILE_DIR", format="1A", array=np.array(["."] * (2 * n))),
            fits.Column(name="FILE_NAME", format="24A", array=np.repeat(names, 2)),
            fits.Column(name="HDU_NAME", format="6A", array=np.array(["EVENTS", "GTI"] * n)),
        ],
        name="HDU_INDEX",
    )
    for table, kind in ((obs, "OBS"), (hdu, "HDU")):
        table.header["HDUCLASS"] = "GADF"
        table.header["HDUDOC"] = "https://github.com/open-gamma-ray-astro/gamma-astro-data-formats"
        table.header["HDUVERS"] = "0.3"
        table.header["HDUCLAS1"] = "INDEX"
        table.header["HDUCLAS2"] = kind
        target = root / f"{kind.lower()}-index.fits.gz"
        partial = target.with_name(target.name + ".partial")
        # mtime=0: the same call writes the same bytes
        with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as stream:
            fits.HDUList([fits.PrimaryHDU(), table]).writeto(stream)
        os.replace(partial, target)


def _replace_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
