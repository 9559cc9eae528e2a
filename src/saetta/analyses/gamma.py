"""Stage: analyses (layer 9) — a gamma-ray point-source analysis: ON/OFF counts, Li & Ma.

:class:`OnOff` is an analysis ``events -> dict`` over DL3 event lists (one work unit:
a row range of one observation's ``EVENTS`` table, with its header in
``events.attrs["header"]``). Around the source (by default each file's ``RA_OBJ``,
``DEC_OBJ``) it counts the events of the ON region, a circle of ``on_radius``, and of
``off_regions`` reflected regions: the ON circle rotated about the observation's
pointing (``RA_PNT``, ``DEC_PNT``) by ``2πk / (n + 1)``, ``k = 1 … n``, on the sphere,
as gammapy's ``WobbleRegionsFinder`` places them. Each OFF region sees as much
background as the ON region, so ``α = 1 / n``.

Its results, summed over work units and files by :func:`saetta.run`:

=================  =====================================================================
``n_on``           events in the ON region
``n_off``          events in the OFF regions (together)
``theta2_on``      θ² (deg²) of events around the source, [0, ``theta2_max``)
``theta2_off``     θ² around each OFF centre, summed: times α, the background on the plot
``energy_on``      reconstructed energy (TeV, log bins) of the ON events
``energy_off``     the same for the OFF events
``counts_map``     the events in a square of ``map_width`` degrees around the source, in
                   the tangent plane at the source (gnomonic, x towards east)
``livetime_s``     the observations' ``LIVETIME`` (counted by each file's first unit)
``n_excluded``     events with a NaN or infinite RA or DEC: in none of the results
``observations``   per ``OBS_ID``: its ``n_on`` and ``n_off``
=================  =====================================================================

Rules: an event is in a region when its great-circle distance θ from the centre,
in double precision, is *strictly* less than the radius (``θ < r``, as the
``regions`` package decides; an event exactly on the circle is outside); the θ²
bins are half-open, ``[lo, hi)``. An event with a NaN energy is counted, and falls
in the overflow of the energy histograms. An observation whose pointing is too close
to the source for ``n`` circles of ``on_radius`` to fit around it without overlapping
(``offset < r / sin(π / (n + 1))``; the reflected regions of an observation pointed
at the source are undefined) is an :class:`~saetta.errors.AnalysisError` naming the
file, as is a missing header keyword.

After the merge: :func:`excess`, :func:`li_ma_significance` (Li & Ma 1983, eq. 17)
and :meth:`OnOff.summary`, which gives an :class:`OnOffSummary` (text, HTML, θ² plot).

The analysis, its numba kernel and its summary stay in one module, longer than
most: they are one definition read side by side with the rules above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import hist
import numpy as np

from saetta.errors import AnalysisError
from saetta.kernels import jit

__all__ = ["OnOff", "OnOffSummary", "excess", "li_ma_significance", "separation_deg"]

_SLACK = 1e-9  # relative: the chord prefilter keeps every event the exact θ < r test could take


def separation_deg(ra1: Any, dec1: Any, ra2: Any, dec2: Any) -> np.ndarray:
    """Great-circle distance in degrees between points given in degrees, in double precision:
    ``2 asin(|u1 - u2| / 2)`` of their unit vectors (precise at small angles)."""
    chord = np.sqrt(_chord2(_unit(ra1, dec1), _unit(ra2, dec2)))
    separation: np.ndarray = np.degrees(2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0)))
    return separation


def excess(n_on: float, n_off: float, alpha: float) -> float:
    """``n_on - α n_off``."""
    return float(n_on - alpha * n_off)


def li_ma_significance(n_on: float, n_off: float, alpha: float) -> float:
    """Li & Ma (1983) eq. 17, with the sign of the excess:

    ``S = √2 {N_on ln[(1+α)/α · N_on/(N_on+N_off)] + N_off ln[(1+α) N_off/(N_on+N_off)]}^½``

    A term whose count is zero is zero (its limit); no counts at all give 0.

    Examples
    --------
    >>> round(li_ma_significance(10, 20, 0.25), 4)
    1.5788
    """
    total = n_on + n_off
    if total <= 0:
        return 0.0
    on = n_on * math.log((1 + alpha) / alpha * n_on / total) if n_on > 0 else 0.0
    off = n_off * math.log((1 + alpha) * n_off / total) if n_off > 0 else 0.0
    # Rounding can take an excess of exactly zero a hair below zero.
    value = math.sqrt(2.0 * max(on + off, 0.0))
    return math.copysign(value, excess(n_on, n_off, alpha)) if value else 0.0


@dataclass(frozen=True, slots=True)
class OnOff:
    """ON/OFF counting around a point source with reflected regions (see the module docstring).

    Parameters
    ----------
    source
        (RA, Dec) in degrees; ``None`` takes each file's ``RA_OBJ``, ``DEC_OBJ``.
    on_radius
        Radius of the ON region (and of each OFF region), degrees.
    off_regions
        Number of reflected OFF regions; ``α = 1 / off_regions``.
    theta2_max, theta2_bins
        Range [0, theta2_max) in deg² and bins of the θ² histograms.
    energy_edges
        Edges (TeV) of the energy histograms: ``energy_bins`` log-spaced bins.
    map_width, map_bins
        Side (degrees) and bins per side of the counts map.
    counts_map
        Fill the counts map; ``False`` leaves it out of the results (the θ² and ON/OFF
        counting alone, about a third faster: most events lie in no region but the map).

    Examples
    --------
    >>> result = saetta.run(OnOff(), "obs/obs_*.fits")  # doctest: +SKIP
    >>> print(OnOff().summary(result))  # doctest: +SKIP
    """

    source: tuple[float, float] | None = None
    on_radius: float = 0.1
    off_regions: int = 3
    theta2_max: float = 0.3
    theta2_bins: int = 60
    energy_edges: tuple[float, float] = (0.05, 100.0)
    energy_bins: int = 20
    map_width: float = 2.0
    map_bins: int = 50
    counts_map: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.on_radius < 90 or self.off_regions < 1:
            msg = (
                f"OnOff needs 0 < on_radius < 90 deg and at least one OFF region, "
                f"not on_radius={self.on_radius}, off_regions={self.off_regions}"
            )
            raise AnalysisError(msg)

    @property
    def alpha(self) -> float:
        """The ON/OFF exposure ratio, ``1 / off_regions``."""
        return 1.0 / self.off_regions

    def empty(self) -> dict[str, Any]:
        """The results of no events: every histogram empty, every count zero."""
        return {
            "n_on": 0,
            "n_off": 0,
            "theta2_on": self._theta2("ON"),
            "theta2_off": self._theta2("OFF (sum of regions)"),
            "energy_on": self._energy(),
            "energy_off": self._energy(),
            "livetime_s": 0.0,
            "n_excluded": 0,
            "observations": {},
        } | ({"counts_map": self._map()} if self.counts_map else {})

    def __call__(self, events: Any) -> dict[str, Any]:
        attrs = events.attrs or {}
        path = str(attrs.get("path", "<events>"))
        header = attrs.get("header") or {}
        ra_pnt, dec_pnt = _keyword(header, "RA_PNT", path), _keyword(header, "DEC_PNT", path)
        if self.source is None:
            source = (_keyword(header, "RA_OBJ", path), _keyword(header, "DEC_OBJ", path))
        else:
            source = (float(self.source[0]), float(self.source[1]))
        centres = self._centres(source, (ra_pnt, dec_pnt), path)
        out = self.empty()
        if attrs.get("start", 0) == 0 and "LIVETIME" in header:
            out["livetime_s"] = float(header["LIVETIME"])
        theta2 = np.zeros((2, self.theta2_bins + 2))
        energy = np.zeros((2, self.energy_bins + 2))
        sky = np.zeros((self.map_bins + 2, self.map_bins + 2))
        inside = np.zeros(2, dtype=np.int64)
        reach = max(math.sqrt(self.theta2_max), self.on_radius)
        half = self.map_width / 2
        # no event farther from the source than the map's corners is in it (tan²θ = x² + y²)
        map_reach = math.degrees(math.atan(math.sqrt(2) * math.tan(math.radians(half))))
        if self.map_width >= 90:  # the map's half of the sky is no cap
            map_reach = 180.0
        caps = _caps(
            [*centres, _unit(*source)] if self.counts_map else centres,
            [reach] * len(centres) + ([map_reach] if self.counts_map else []),
        )
        e_lo, e_hi = (math.log(e) for e in self.energy_edges)
        out["n_excluded"] = int(
            _on_off(
                _column(events.RA),
                _column(events.DEC),
                _column(events.ENERGY),
                caps,
                np.ascontiguousarray(np.concatenate(centres, axis=1).T),
                _chord_of(reach) ** 2 * (1 + _SLACK),
                self.on_radius,
                self.theta2_max,
                e_lo,
                e_hi - e_lo,
                _frame(source),
                # no event is in front of an infinite bound: without the map, none is mapped
                math.cos(math.radians(self.map_width)) if self.counts_map else math.inf,
                math.tan(math.radians(half)),
                -half,
                half - -half,
                theta2,
                energy,
                sky,
                inside,
            )
        )
        for index, key in enumerate(("on", "off")):
            out[f"n_{key}"] = int(inside[index])
            out[f"theta2_{key}"].view(flow=True)[...] = theta2[index]
            out[f"energy_{key}"].view(flow=True)[...] = energy[index]
        if self.counts_map:
            out["counts_map"].view(flow=True)[...] = sky
        obs_id = header.get("OBS_ID")
        name = str(obs_id) if obs_id is not None else path
        out["observations"] = {name: {"n_on": out["n_on"], "n_off": out["n_off"]}}
        return out

    def summary(self, result: Mapping[str, Any]) -> OnOffSummary:
        """The merged ``result``'s counts, excess and significance (Li & Ma eq. 17)."""
        return OnOffSummary(
            n_on=int(result.get("n_on", 0)),
            n_off=int(result.get("n_off", 0)),
            alpha=self.alpha,
            livetime_s=float(result.get("livetime_s", 0.0)),
            theta2_on=result.get("theta2_on"),
            theta2_off=result.get("theta2_off"),
            on_radius=self.on_radius,
        )

    def _centres(
        self, source: tuple[float, float], pointing: tuple[float, float], path: str
    ) -> list[np.ndarray]:
        """The ON centre, then the OFF centres: the source rotated about the pointing."""
        offset = float(separation_deg(*source, *pointing)[0])
        needed = self.on_radius / math.sin(math.pi / (self.off_regions + 1))
        if offset < needed:
            msg = (
                f"{path}: the source is {offset:.4f} deg from the pointing (RA_PNT, DEC_PNT); "
                f"{self.off_regions} reflected regions of {self.on_radius} deg need an offset "
                f"of at least {needed:.4f} deg"
            )
            raise AnalysisError(msg)
        s = _unit(*source)[:, 0]
        p = _unit(*pointing)[:, 0]
        centres = [s[:, None]]
        for k in range(1, self.off_regions + 1):
            phi = 2 * math.pi * k / (self.off_regions + 1)
            # Rodrigues' rotation of s about the axis p by phi.
            r = s * math.cos(phi) + np.cross(p, s) * math.sin(phi)
            r = r + p * float(p @ s) * (1 - math.cos(phi))
            centres.append((r / np.linalg.norm(r))[:, None])
        return centres

    def _theta2(self, label: str) -> Any:
        axis = hist.axis.Regular(
            self.theta2_bins, 0.0, self.theta2_max, name="theta2", label=r"$\theta^2$ [deg$^2$]"
        )
        return hist.Hist(axis, name=f"theta2 {label}")

    def _energy(self) -> Any:
        lo, hi = self.energy_edges
        axis = hist.axis.Regular(
            self.energy_bins, lo, hi, transform=hist.axis.transform.log, name="energy",
            label="energy [TeV]",
        )  # fmt: skip
        return hist.Hist(axis)

    def _map(self) -> Any:
        half = self.map_width / 2
        return hist.Hist(
            hist.axis.Regular(self.map_bins, -half, half, name="x", label="east offset [deg]"),
            hist.axis.Regular(self.map_bins, -half, half, name="y", label="north offset [deg]"),
        )


@dataclass(frozen=True)
class OnOffSummary:
    """What an ON/OFF analysis found: counts, excess, significance; text, HTML and a θ² plot."""

    n_on: int
    n_off: int
    alpha: float
    livetime_s: float = 0.0
    theta2_on: Any = field(default=None, repr=False)
    theta2_off: Any = field(default=None, repr=False)
    on_radius: float = 0.1

    @property
    def excess(self) -> float:
        return excess(self.n_on, self.n_off, self.alpha)

    @property
    def significance(self) -> float:
        """Li & Ma eq. 17, signed."""
        return li_ma_significance(self.n_on, self.n_off, self.alpha)

    def to_dict(self) -> dict[str, float]:
        return {
            "n_on": self.n_on,
            "n_off": self.n_off,
            "alpha": self.alpha,
            "excess": self.excess,
            "significance": self.significance,
            "livetime_s": self.livetime_s,
        }

    def __str__(self) -> str:
        hours = f", live time {self.livetime_s / 3600:.2f} h" if self.livetime_s else ""
        return (
            f"N_on {self.n_on:,}  N_off {self.n_off:,}  alpha {self.alpha:.4g}  "
            f"excess {self.excess:,.1f}  significance {self.significance:.2f} sigma "
            f"(Li & Ma eq. 17){hours}"
        )

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th>{k}</th><td>{v:,.4g}</td></tr>" for k, v in self.to_dict().items()
        )
        return f"<table>{cells}</table>"

    def plot_theta2(self, path: str | None = None) -> Any:
        """The θ² distribution of the ON events, with the OFF events times α; saved to
        ``path`` (PNG, PDF, SVG) if given. Returns the matplotlib figure."""
        if self.theta2_on is None or self.theta2_off is None:
            msg = "no theta2 histograms in this result to plot"
            raise AnalysisError(msg)
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        edges = self.theta2_on.axes[0].edges
        figure, axes = plt.subplots(figsize=(6, 4))
        centres = 0.5 * (edges[1:] + edges[:-1])
        on = self.theta2_on.values()
        axes.errorbar(centres, on, yerr=np.sqrt(on), fmt="o", ms=3, label="ON")
        axes.stairs(self.theta2_off.values() * self.alpha, edges, label=r"OFF $\times\,\alpha$")
        axes.axvline(self.on_radius**2, ls="--", color="grey", label="ON radius²")
        axes.set_xlabel(r"$\theta^2$ [deg$^2$]")
        axes.set_ylabel("events")
        axes.set_title(str(self).split("  (")[0][:80], fontsize=7)
        axes.legend()
        if path is not None:
            figure.savefig(path, dpi=120)
            plt.close(figure)
        return figure


_DEGREES = 180.0 / math.pi  # numpy's degrees() and radians() multiply by these constants
_RADIANS = math.pi / 180.0
_BLOCK = 4_096  # events selected at a time: their indices stay in the CPU's cache


@jit
def _regular(x: float, lo: float, width: float, nbins: int) -> int:
    """The flow-bin index (0 underflow, ``nbins + 1`` overflow and NaN) that a boost-histogram
    regular axis of ``nbins`` over ``[lo, lo + width)`` gives ``x``: its float operations,
    so the counts equal what ``hist.fill`` would make of the same values."""
    z = (x - lo) / width
    if z < 1.0:
        if z >= 0.0:
            return 1 + int(z * nbins)
        return 0
    return nbins + 1


@jit
def _on_off(
    ra: np.ndarray,
    dec: np.ndarray,
    energy: np.ndarray,
    caps: np.ndarray,
    centres: np.ndarray,
    near2: float,
    on_radius: float,
    theta2_max: float,
    energy_lo: float,
    energy_width: float,
    frame: np.ndarray,
    front: float,
    half: float,
    map_lo: float,
    map_width: float,
    theta2: np.ndarray,
    energy_counts: np.ndarray,
    counts_map: np.ndarray,
    inside: np.ndarray,
) -> int:
    """Every result of one unit in one pass over its events, in double precision; returns
    the number of events with a non-finite RA or DEC (in no result).

    ``caps`` rows (RA, Dec, radius, RA half-width; degrees) hold between them every point
    that can count: an event outside all of them is passed over without its unit vector,
    whose sines and cosines are most of the cost. Their margins are far beyond rounding,
    so the results are those of the exact test alone.
    ``centres`` (ON first, then the OFF ones) and ``frame`` (source, east, north) are unit
    vectors, rows; row 0 of ``theta2``, ``energy_counts`` and ``inside`` is ON, row 1 the
    OFF regions together. θ is computed only within the chord ``near2`` (a bound just above
    the θ² range and the radius), as ``2 asin(chord / 2)``, which stays precise near zero.
    """
    theta2_bins = theta2.shape[1] - 2
    energy_bins = energy_counts.shape[1] - 2
    map_bins = counts_map.shape[0] - 2
    excluded = 0
    chosen = np.empty(min(len(ra), _BLOCK), dtype=np.int64)
    for start in range(0, len(ra), _BLOCK):
        # First the events any cap holds, without branches on the data (which the CPU
        # would mispredict for every other event): each index is written, and kept when
        # the next one does not overwrite it.
        kept = 0
        for i in range(start, min(start + _BLOCK, len(ra))):
            r = np.float64(ra[i])
            d = np.float64(dec[i])
            if not (math.isfinite(r) and math.isfinite(d)):
                excluded += 1
                continue
            if not 0.0 <= r < 360.0:
                r %= 360.0
            wanted = False
            for c in range(caps.shape[0]):
                turn = abs(r - caps[c, 0])
                wanted |= (abs(d - caps[c, 1]) <= caps[c, 2]) & (
                    min(turn, 360.0 - turn) <= caps[c, 3]
                )
            chosen[kept] = i
            kept += wanted
        for j in range(kept):
            i = chosen[j]
            r = np.float64(ra[i]) * _RADIANS
            d = np.float64(dec[i]) * _RADIANS
            cos_d = math.cos(d)
            x = cos_d * math.cos(r)
            y = cos_d * math.sin(r)
            z = math.sin(d)
            for k in range(centres.shape[0]):
                # differences, not a dot product: no cancellation at small angles
                chord2 = (
                    (x - centres[k, 0]) ** 2 + (y - centres[k, 1]) ** 2 + (z - centres[k, 2]) ** 2
                )
                if not chord2 < near2:
                    continue
                theta = 2.0 * math.asin(math.sqrt(chord2) / 2.0) * _DEGREES
                row = 0 if k == 0 else 1
                if theta * theta < theta2_max:
                    theta2[row, _regular(theta * theta, 0.0, theta2_max, theta2_bins)] += 1.0
                if theta < on_radius:
                    inside[row] += 1
                    e = math.log(np.float64(energy[i]))
                    energy_counts[row, _regular(e, energy_lo, energy_width, energy_bins)] += 1.0
            # the counts map: gnomonic, so only the hemisphere facing the source projects
            along = frame[0, 0] * x + frame[0, 1] * y + frame[0, 2] * z
            if along > front:
                east = (frame[1, 0] * x + frame[1, 1] * y + frame[1, 2] * z) / along
                north = (frame[2, 0] * x + frame[2, 1] * y + frame[2, 2] * z) / along
                if abs(east) < half and abs(north) < half:
                    bx = _regular(math.atan(east) * _DEGREES, map_lo, map_width, map_bins)
                    by = _regular(math.atan(north) * _DEGREES, map_lo, map_width, map_bins)
                    counts_map[bx, by] += 1.0
    return excluded


def _caps(centres: list[np.ndarray], radii: list[float]) -> np.ndarray:
    """Rows (RA, Dec, radius, RA half-width) in degrees, each holding every point within
    ``radius`` of its centre (a unit vector): |ΔDec| <= θ, and |ΔRA| <= asin(sin θ / cos Dec)
    away from the poles (a cap around a pole has no RA bound)."""
    rows = []
    for centre, exact in zip(centres, radii, strict=True):
        x, y, z = (float(v) for v in np.ravel(centre))
        ra, dec = math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(z))
        radius = _widened(exact)
        if abs(dec) + radius < 90.0:
            s = math.sin(math.radians(radius)) / math.cos(math.radians(dec))
            width = _widened(math.degrees(math.asin(min(s, 1.0))))
        else:
            width = 360.0
        rows.append((ra, dec, radius, width))
    return np.array(rows)


def _widened(angle_deg: float) -> float:
    # a millionth, and a microdegree: rounding in the bounds is some 1e-14 deg
    return angle_deg * (1 + 1e-6) + 1e-6


def _column(values: Any) -> np.ndarray:
    """A flat column as numpy, in its stored type (the kernel converts each value)."""
    return np.ascontiguousarray(np.asarray(values))


def _frame(source: tuple[float, float]) -> np.ndarray:
    """Rows: the source's unit vector, and the tangent plane's east and north there."""
    ra0, dec0 = math.radians(source[0]), math.radians(source[1])
    east = [-math.sin(ra0), math.cos(ra0), 0.0]
    north = [-math.sin(dec0) * math.cos(ra0), -math.sin(dec0) * math.sin(ra0), math.cos(dec0)]
    return np.array([_unit(*source)[:, 0], east, north])


def _unit(ra_deg: Any, dec_deg: Any) -> np.ndarray:
    """Unit vectors (3, N) of points given in degrees."""
    ra = np.radians(np.atleast_1d(np.asarray(ra_deg, dtype=np.float64)))
    dec = np.radians(np.atleast_1d(np.asarray(dec_deg, dtype=np.float64)))
    cos_dec = np.cos(dec)
    return np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)])


def _chord2(u: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Squared chord lengths between unit vectors: differences, so no cancellation."""
    d: np.ndarray = (u[0] - centre[0]) ** 2
    d += (u[1] - centre[1]) ** 2
    d += (u[2] - centre[2]) ** 2
    return d


def _chord_of(theta_deg: float) -> float:
    return 2.0 * math.sin(math.radians(theta_deg) / 2.0)


def _keyword(header: Mapping[str, Any], key: str, path: str) -> float:
    try:
        return float(header[key])
    except KeyError:
        msg = f"{path}: the EVENTS header has no {key} keyword"
        raise AnalysisError(msg) from None
    except (TypeError, ValueError):
        msg = f"{path}: the EVENTS header's {key} is not a number: {header[key]!r}"
        raise AnalysisError(msg) from None
