"""References for the gamma-ray analysis, sharing no code with saetta: gammapy's ON/OFF
counting (its reflected regions, its region selection, its WStat significance) and
astropy's per-row separations."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np


def gammapy_on_off(path: Path, radius_deg: float = 0.1, n_off: int = 3) -> tuple[int, int]:
    """N_on, N_off of one event file, as a gammapy user counts them."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from gammapy.data import EventList
    from gammapy.makers import WobbleRegionsFinder
    from regions import CircleSkyRegion

    with warnings.catch_warnings():
        # gammapy's reader notes keywords it does not know (ORIGIN): not our concern here
        warnings.simplefilter("ignore")
        events = EventList.read(path)
    header = events.table.meta
    source = SkyCoord(header["RA_OBJ"], header["DEC_OBJ"], unit="deg", frame="icrs")
    pointing = SkyCoord(header["RA_PNT"], header["DEC_PNT"], unit="deg", frame="icrs")
    on = CircleSkyRegion(center=source, radius=radius_deg * u.deg)
    offs, _ = WobbleRegionsFinder(n_off_regions=n_off).run(on, center=pointing)
    assert len(offs) == n_off
    n_on = len(events.select_region(on).table)
    n_off_total = sum(len(events.select_region(r).table) for r in offs)
    return n_on, n_off_total


def gammapy_significance(n_on: int, n_off: int, alpha: float) -> float:
    from gammapy.stats import WStatCountsStatistic

    return float(WStatCountsStatistic(n_on, n_off, alpha).sqrt_ts)


def li_ma_17(n_on: float, n_off: float, alpha: float) -> float:
    """Li & Ma (1983) eq. 17, written out from the paper (n_on, n_off > 0)."""
    total = n_on + n_off
    inside = n_on * np.log((1 + alpha) / alpha * n_on / total) + n_off * np.log(
        (1 + alpha) * n_off / total
    )
    return float(np.sign(n_on - alpha * n_off) * np.sqrt(2 * inside))


def astropy_theta2(path: Path) -> np.ndarray:
    """θ² (deg²) of every event around the file's RA_OBJ, DEC_OBJ, row by row (astropy)."""
    from astropy.coordinates import SkyCoord
    from astropy.io import fits

    with fits.open(path) as hdus:
        table: Any = hdus["EVENTS"]
        header = table.header
        ra = np.asarray(table.data["RA"], dtype=np.float64)
        dec = np.asarray(table.data["DEC"], dtype=np.float64)
    source = SkyCoord(header["RA_OBJ"], header["DEC_OBJ"], unit="deg")
    theta = SkyCoord(ra, dec, unit="deg").separation(source).deg
    return np.asarray(theta**2)
