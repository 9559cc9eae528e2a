"""Stage: analyses (layer 9) — the IRIS-HEP ADL benchmark queries, q1 to q8.

Each query is a plain analysis function ``events -> dict[str, hist.Hist]``;
:func:`analysis` runs all eight in one pass. Histogram names, ranges and the
definitions below are part of saetta's interface (100 bins each, ROOT TH1 fill
rules, four-vectors in double precision):

========  ===================  ==========  ==============================================
query     histogram            range       content
========  ===================  ==========  ==============================================
q1        ``q1_met``           [0, 200]    MET_pt of all events
q2        ``q2_jet_pt``        [15, 60]    pT of all jets
q3        ``q3_jet_pt``        [15, 60]    pT of jets with abs(eta) < 1
q4        ``q4_met``           [0, 200]    MET_pt of events with >= 2 jets of pT > 40
q5        ``q5_met``           [0, 200]    MET_pt of events with an opposite-charge muon
                                           pair of 60 < m < 120
q6        ``q6_trijet_pt``     [0, 250]    events with >= 3 jets: pT of the trijet (i<j<k)
          ``q6_trijet_btag``   [0, 1]      of mass closest to 172.5 (first on ties), and
                                           the max Jet_btag of its jets
q7        ``q7_sum_pt``        [15, 200]   scalar sum of pT of jets of pT > 30 not within
                                           dR < 0.4 of a muon or electron of pT > 10
                                           (events with at least one such jet)
q8        ``q8_mt``            [0, 200]    >= 3 leptons (muons then electrons) with a
                                           same-flavour opposite-charge pair: mT of MET
                                           and the highest-pT lepton outside the pair of
                                           mass closest to 91.2
========  ===================  ==========  ==============================================

Values that are not numbers follow the same rules: NaN and +inf fill the
overflow bin, -inf the underflow; every comparison with a NaN is false (a NaN
pT passes no pT cut, a NaN ΔR is not within 0.4); a pair or trijet whose mass
is NaN (from a NaN or infinite input) is never the closest, and an event left
without one fills nothing.

q1–q4 are numpy: masks, and :func:`saetta.kernels.fill` for the histograms. The
combinatorial queries (q5–q8) loop over events in numba kernels instead of
materialising every pair or triplet; numba is imported when one first runs, so
the first four never import it. The eight queries and their kernels stay in
one module, longer than most, because they are one published benchmark read
side by side with its definition above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import awkward as ak
import hist
import numpy as np

from saetta.kernels import delta_r, fill, find_bin, jit, mass_of, p4

__all__ = ["HISTOGRAMS", "QUERIES", "analysis", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"]

NBINS = 100

#: name -> (lo, hi, axis label)
HISTOGRAMS: dict[str, tuple[float, float, str]] = {
    "q1_met": (0.0, 200.0, r"$p_T^{miss}$ [GeV]"),
    "q2_jet_pt": (15.0, 60.0, r"jet $p_T$ [GeV]"),
    "q3_jet_pt": (15.0, 60.0, r"jet $p_T$ ($|\eta| < 1$) [GeV]"),
    "q4_met": (0.0, 200.0, r"$p_T^{miss}$ ($\geq 2$ jets $p_T > 40$) [GeV]"),
    "q5_met": (0.0, 200.0, r"$p_T^{miss}$ (OS $\mu\mu$, $60 < m < 120$) [GeV]"),
    "q6_trijet_pt": (0.0, 250.0, r"trijet $p_T$ [GeV]"),
    "q6_trijet_btag": (0.0, 1.0, "trijet max b-tag"),
    "q7_sum_pt": (15.0, 200.0, r"$\sum p_T$ of clean jets [GeV]"),
    "q8_mt": (0.0, 200.0, r"$m_T$(MET, third lepton) [GeV]"),
}


def _hist(name: str, counts: np.ndarray) -> Any:
    lo, hi, label = HISTOGRAMS[name]
    h: Any = hist.Hist(hist.axis.Regular(NBINS, lo, hi, name="x", label=label), name=name)
    h.view(flow=True)[...] = counts
    return h


def _counts() -> np.ndarray:
    return np.zeros(NBINS + 2, dtype=np.float64)


def _flat(array: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_layout(array).data)


def _jagged(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    layout = ak.to_layout(array)
    return np.asarray(layout.offsets.data), np.asarray(layout.content.data)


def _angles(objects: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """The flat eta and phi of a collection (its offsets are its pt's)."""
    return _jagged(objects.eta)[1], _jagged(objects.phi)[1]


def _kinematics(
    objects: ak.Array, extra: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The flat eta, phi, mass and ``extra`` (charge, btag) of a collection."""
    eta, phi = _angles(objects)
    return eta, phi, _jagged(objects.mass)[1], _jagged(objects[extra])[1]


def _fill_flat(name: str, values: np.ndarray) -> Any:
    counts = _counts()
    lo, hi, _ = HISTOGRAMS[name]
    fill(counts, values, lo, hi)
    return _hist(name, counts)


def q1(events: ak.Array) -> dict[str, Any]:
    """MET of all events."""
    return {"q1_met": _fill_flat("q1_met", _flat(events.MET.pt))}


def q2(events: ak.Array) -> dict[str, Any]:
    """pT of all jets."""
    offsets, pt = _jagged(events.Jet.pt)
    return {"q2_jet_pt": _fill_flat("q2_jet_pt", pt[offsets[0] : offsets[-1]])}


def q3(events: ak.Array) -> dict[str, Any]:
    """pT of jets with abs(eta) < 1."""
    offsets, pt = _jagged(events.Jet.pt)
    _, eta = _jagged(events.Jet.eta)
    jets = slice(offsets[0], offsets[-1])
    # a float32 eta against 1.0 compares as in double precision: 1.0 is exact in both
    central = np.abs(eta[jets]) < 1.0
    return {"q3_jet_pt": _fill_flat("q3_jet_pt", pt[jets][central])}


def q4(events: ak.Array) -> dict[str, Any]:
    """MET of events with at least two jets of pT > 40."""
    offsets, pt = _jagged(events.Jet.pt)
    # hard jets before each offset, so an event's count is a difference (empty events too);
    # int32 counts while they cannot overflow: half the memory to scan
    before = np.zeros(len(pt) + 1, dtype=np.int32 if len(pt) < 2**31 else np.int64)
    np.cumsum(pt > 40.0, out=before[1:])  # 40.0, like 1.0 above, is exact in float32
    hard = np.diff(before[offsets])
    return {"q4_met": _fill_flat("q4_met", _flat(events.MET.pt)[hard >= 2])}


@jit
def _dimuon(
    counts: np.ndarray,
    offsets: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    mass: np.ndarray,
    charge: np.ndarray,
    met: np.ndarray,
) -> None:
    nbins = len(counts) - 2
    for e in range(len(met)):
        found = False
        for i in range(offsets[e], offsets[e + 1]):
            for j in range(i + 1, offsets[e + 1]):
                if charge[i] * charge[j] < 0:
                    ax, ay, az, ae = p4(
                        np.float64(pt[i]),
                        np.float64(eta[i]),
                        np.float64(phi[i]),
                        np.float64(mass[i]),
                    )
                    bx, by, bz, be = p4(
                        np.float64(pt[j]),
                        np.float64(eta[j]),
                        np.float64(phi[j]),
                        np.float64(mass[j]),
                    )
                    m = mass_of(ax + bx, ay + by, az + bz, ae + be)
                    if 60.0 < m < 120.0:
                        found = True
                        break
            if found:
                break
        if found:
            counts[find_bin(met[e], 0.0, 200.0, nbins)] += 1.0


def q5(events: ak.Array) -> dict[str, Any]:
    """MET of events with an opposite-charge muon pair of 60 < m < 120."""
    muons = events.Muon
    offsets, pt = _jagged(muons.pt)
    counts = _counts()
    _dimuon(
        counts,
        offsets,
        pt,
        *_kinematics(muons, "charge"),
        _flat(events.MET.pt),
    )
    return {"q5_met": _hist("q5_met", counts)}


@jit
def _trijet(
    pt_counts: np.ndarray,
    btag_counts: np.ndarray,
    offsets: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    mass: np.ndarray,
    btag: np.ndarray,
) -> None:
    nbins = len(pt_counts) - 2
    px = np.empty(0)
    py = np.empty(0)
    pz = np.empty(0)
    en = np.empty(0)
    for e in range(len(offsets) - 1):
        start = offsets[e]
        n = offsets[e + 1] - start
        if n < 3:
            continue
        if len(px) < n:
            px = np.empty(n)
            py = np.empty(n)
            pz = np.empty(n)
            en = np.empty(n)
        for a in range(n):
            j = start + a
            px[a], py[a], pz[a], en[a] = p4(
                np.float64(pt[j]), np.float64(eta[j]), np.float64(phi[j]), np.float64(mass[j])
            )
        best = np.inf
        bi = bj = bk = -1  # stays -1 when no trijet has a mass (a NaN or inf in its jets)
        for i in range(n):
            for j in range(i + 1, n):
                sx = px[i] + px[j]
                sy = py[i] + py[j]
                sz = pz[i] + pz[j]
                se = en[i] + en[j]
                for k in range(j + 1, n):
                    diff = abs(mass_of(sx + px[k], sy + py[k], sz + pz[k], se + en[k]) - 172.5)
                    if diff < best:
                        best = diff
                        bi, bj, bk = i, j, k
        if bi < 0:
            continue
        tx = px[bi] + px[bj] + px[bk]
        ty = py[bi] + py[bj] + py[bk]
        pt_counts[find_bin(math.sqrt(tx * tx + ty * ty), 0.0, 250.0, nbins)] += 1.0
        top = max(btag[start + bi], btag[start + bj], btag[start + bk])
        btag_counts[find_bin(np.float64(top), 0.0, 1.0, nbins)] += 1.0


def q6(events: ak.Array) -> dict[str, Any]:
    """Trijet of mass closest to 172.5: its pT and the max b-tag of its jets."""
    jets = events.Jet
    offsets, pt = _jagged(jets.pt)
    pt_counts, btag_counts = _counts(), _counts()
    _trijet(
        pt_counts,
        btag_counts,
        offsets,
        pt,
        *_kinematics(jets, "btag"),
    )
    return {
        "q6_trijet_pt": _hist("q6_trijet_pt", pt_counts),
        "q6_trijet_btag": _hist("q6_trijet_btag", btag_counts),
    }


@jit
def _far_from_all(
    eta: float,
    phi: float,
    start: int,
    stop: int,
    pt: np.ndarray,
    lepton_eta: np.ndarray,
    lepton_phi: np.ndarray,
) -> bool:
    """No lepton of pT > 10 in [start, stop) within dR < 0.4 of (eta, phi)."""
    for m in range(start, stop):
        if (
            pt[m] > 10.0
            and delta_r(eta, phi, np.float64(lepton_eta[m]), np.float64(lepton_phi[m])) < 0.4
        ):
            return False
    return True


@jit
def _clean_sum_pt(
    counts: np.ndarray,
    jet_offsets: np.ndarray,
    jet_pt: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    mu_offsets: np.ndarray,
    mu_pt: np.ndarray,
    mu_eta: np.ndarray,
    mu_phi: np.ndarray,
    el_offsets: np.ndarray,
    el_pt: np.ndarray,
    el_eta: np.ndarray,
    el_phi: np.ndarray,
) -> None:
    nbins = len(counts) - 2
    for e in range(len(jet_offsets) - 1):
        total = 0.0
        counted = 0
        for j in range(jet_offsets[e], jet_offsets[e + 1]):
            if not jet_pt[j] > 30.0:
                continue
            eta = np.float64(jet_eta[j])
            phi = np.float64(jet_phi[j])
            clean = _far_from_all(eta, phi, mu_offsets[e], mu_offsets[e + 1], mu_pt, mu_eta, mu_phi)
            clean = clean and _far_from_all(
                eta, phi, el_offsets[e], el_offsets[e + 1], el_pt, el_eta, el_phi
            )
            if clean:
                total += np.float64(jet_pt[j])
                counted += 1
        if counted > 0:
            counts[find_bin(total, 15.0, 200.0, nbins)] += 1.0


def q7(events: ak.Array) -> dict[str, Any]:
    """Scalar sum of pT of jets (pT > 30) away from light leptons (pT > 10)."""
    jets, muons, electrons = events.Jet, events.Muon, events.Electron
    jo, jpt = _jagged(jets.pt)
    mo, mpt = _jagged(muons.pt)
    eo, ept = _jagged(electrons.pt)
    counts = _counts()
    _clean_sum_pt(
        counts,
        jo,
        jpt,
        *_angles(jets),
        mo,
        mpt,
        *_angles(muons),
        eo,
        ept,
        *_angles(electrons),
    )
    return {"q7_sum_pt": _hist("q7_sum_pt", counts)}


@jit
def _trilepton_mt(
    counts: np.ndarray,
    met: np.ndarray,
    met_phi: np.ndarray,
    mu_offsets: np.ndarray,
    mu_pt: np.ndarray,
    mu_eta: np.ndarray,
    mu_phi: np.ndarray,
    mu_mass: np.ndarray,
    mu_charge: np.ndarray,
    el_offsets: np.ndarray,
    el_pt: np.ndarray,
    el_eta: np.ndarray,
    el_phi: np.ndarray,
    el_mass: np.ndarray,
    el_charge: np.ndarray,
) -> None:
    nbins = len(counts) - 2
    cap = 0  # the most leptons in any event: one set of buffers serves every event
    for e in range(len(met)):
        cap = max(cap, mu_offsets[e + 1] - mu_offsets[e] + el_offsets[e + 1] - el_offsets[e])
    pt = np.empty(cap)
    phi = np.empty(cap)
    px = np.empty(cap)
    py = np.empty(cap)
    pz = np.empty(cap)
    en = np.empty(cap)
    charge = np.empty(cap, dtype=np.int64)
    muon = np.empty(cap, dtype=np.bool_)
    for e in range(len(met)):
        nmu = mu_offsets[e + 1] - mu_offsets[e]
        n = nmu + el_offsets[e + 1] - el_offsets[e]
        if n < 3:
            continue
        for a in range(n):
            if a < nmu:
                j = mu_offsets[e] + a
                p, h, f, m, q = mu_pt[j], mu_eta[j], mu_phi[j], mu_mass[j], mu_charge[j]
            else:
                j = el_offsets[e] + a - nmu
                p, h, f, m, q = el_pt[j], el_eta[j], el_phi[j], el_mass[j], el_charge[j]
            pt[a] = p
            phi[a] = f
            charge[a] = q
            muon[a] = a < nmu
            px[a], py[a], pz[a], en[a] = p4(
                np.float64(p), np.float64(h), np.float64(f), np.float64(m)
            )
        best = np.inf
        bi = bj = -1
        for i in range(n):
            for j in range(i + 1, n):
                if muon[i] == muon[j] and charge[i] * charge[j] < 0:
                    diff = abs(
                        mass_of(px[i] + px[j], py[i] + py[j], pz[i] + pz[j], en[i] + en[j]) - 91.2
                    )
                    if diff < best:
                        best = diff
                        bi, bj = i, j
        if bi < 0:
            continue
        lead = -1
        for a in range(n):
            if a not in (bi, bj) and (lead < 0 or pt[a] > pt[lead]):
                lead = a
        mt2 = (
            2.0
            * pt[lead]
            * np.float64(met[e])
            * (1.0 - math.cos(phi[lead] - np.float64(met_phi[e])))
        )
        counts[find_bin(math.sqrt(mt2), 0.0, 200.0, nbins)] += 1.0


def q8(events: ak.Array) -> dict[str, Any]:
    """mT of MET and the leading lepton outside the SFOS pair closest to the Z mass."""
    muons, electrons = events.Muon, events.Electron
    mo, mpt = _jagged(muons.pt)
    eo, ept = _jagged(electrons.pt)
    counts = _counts()
    _trilepton_mt(
        counts,
        _flat(events.MET.pt),
        _flat(events.MET.phi),
        mo,
        mpt,
        *_kinematics(muons, "charge"),
        eo,
        ept,
        *_kinematics(electrons, "charge"),
    )
    return {"q8_mt": _hist("q8_mt", counts)}


QUERIES: dict[str, Callable[[ak.Array], dict[str, Any]]] = {
    "q1": q1,
    "q2": q2,
    "q3": q3,
    "q4": q4,
    "q5": q5,
    "q6": q6,
    "q7": q7,
    "q8": q8,
}


def analysis(events: ak.Array) -> dict[str, Any]:
    """All eight ADL queries in one pass over the events."""
    out: dict[str, Any] = {}
    for query in QUERIES.values():
        out.update(query(events))
    return out
