"""Stage: kernels (layer 4) — numba-compiled loops for the hot parts of analyses.

Columnar code that would materialise every pair or triplet of objects is
written here as a loop over events instead: no intermediate arrays, one pass.
Kernels take plain numpy arrays (a jagged column is ``offsets`` + ``content``)
and compute in double precision.

Histogram filling follows ROOT's ``TH1::Fill`` rules exactly: bin
``1 + int(nbins * (x - lo) / (hi - lo))``, ``x < lo`` to underflow, ``x >= hi``
(and NaN) to overflow — so results match ROOT bin for bin, edges included.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["delta_phi", "delta_r", "fill", "find_bin", "mass_of", "p4"]

jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@jit
def find_bin(x: float, lo: float, hi: float, nbins: int) -> int:
    """ROOT's TAxis::FindBin for a regular axis: 0 underflow, nbins + 1 overflow."""
    xd = np.float64(x)
    if xd < lo:
        return 0
    if not xd < hi:
        return nbins + 1
    return 1 + int(nbins * (xd - lo) / (hi - lo))


@jit
def fill(counts: np.ndarray, values: np.ndarray, lo: float, hi: float) -> None:
    """Add 1 to ``counts`` (length nbins + 2, flow bins at the ends) for each value."""
    nbins = len(counts) - 2
    for x in values:
        counts[find_bin(x, lo, hi, nbins)] += 1.0


@jit
def p4(pt: float, eta: float, phi: float, m: float) -> tuple[float, float, float, float]:
    """(px, py, pz, E) of a (pt, eta, phi, mass) vector, in double precision."""
    px = pt * math.cos(phi)
    py = pt * math.sin(phi)
    pz = pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m)


@jit
def mass_of(px: float, py: float, pz: float, e: float) -> float:
    """Invariant mass; negative for a space-like vector, as ROOT's ``M()``."""
    m2 = e * e - px * px - py * py - pz * pz
    return math.sqrt(m2) if m2 >= 0 else -math.sqrt(-m2)


@jit
def delta_phi(phi1: float, phi2: float) -> float:
    """phi1 - phi2 wrapped once into [-pi, pi]."""
    d = phi1 - phi2
    if d > math.pi:
        d -= 2 * math.pi
    elif d < -math.pi:
        d += 2 * math.pi
    return d


@jit
def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    """sqrt(deta^2 + dphi^2) with dphi wrapped."""
    deta = eta1 - eta2
    dphi = delta_phi(phi1, phi2)
    return math.sqrt(deta * deta + dphi * dphi)
