"""A deliberately plain reference for the eight IRIS-HEP ADL benchmark queries.

Everything here is per-event Python: loops over lists, the ``math`` module, and
double-precision arithmetic on values converted from the file's float32.  It
shares no code and no structure with saetta's columnar implementation, so the
tests can compare the two bin for bin without a bug being repeated in both.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

NBINS = 100

HISTOGRAMS: dict[str, tuple[float, float]] = {
    "q1_met": (0.0, 200.0),
    "q2_jet_pt": (15.0, 60.0),
    "q3_jet_pt": (15.0, 60.0),
    "q4_met": (0.0, 200.0),
    "q5_met": (0.0, 200.0),
    "q6_trijet_pt": (0.0, 250.0),
    "q6_trijet_btag": (0.0, 1.0),
    "q7_sum_pt": (15.0, 200.0),
    "q8_mt": (0.0, 200.0),
}

COLLECTIONS: dict[str, list[str]] = {
    "Jet": ["pt", "eta", "phi", "mass", "btag"],
    "Muon": ["pt", "eta", "phi", "mass", "charge"],
    "Electron": ["pt", "eta", "phi", "mass", "charge"],
}
BRANCHES: list[str] = ["MET_pt", "MET_phi"]
for _name, _fields in COLLECTIONS.items():
    BRANCHES.append("n" + _name)
    BRANCHES.extend(_name + "_" + _field for _field in _fields)

Vec = tuple[float, float, float, float]  # (px, py, pz, E)


def find_bin(x: float, lo: float, hi: float, nbins: int = NBINS) -> int:
    """ROOT's TAxis::FindBin: 0 is underflow, nbins + 1 is overflow (and NaN)."""
    if x < lo:
        return 0
    if not (x < hi):
        return nbins + 1
    return 1 + int(nbins * (x - lo) / (hi - lo))


def p4(pt: float, eta: float, phi: float, m: float) -> Vec:
    px = pt * math.cos(phi)
    py = pt * math.sin(phi)
    pz = pt * math.sinh(eta)
    return (px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m))


def add(*vectors: Vec) -> Vec:
    px = py = pz = e = 0.0
    for v in vectors:
        px += v[0]
        py += v[1]
        pz += v[2]
        e += v[3]
    return (px, py, pz, e)


def mass(v: Vec) -> float:
    m2 = v[3] * v[3] - v[0] * v[0] - v[1] * v[1] - v[2] * v[2]
    if m2 >= 0:
        return math.sqrt(m2)
    return -math.sqrt(-m2)


def pt_of(v: Vec) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1])


def delta_phi(phi1: float, phi2: float) -> float:
    d = phi1 - phi2
    if d > math.pi:
        d -= 2 * math.pi
    elif d < -math.pi:
        d += 2 * math.pi
    return d


def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    deta = eta1 - eta2
    dphi = delta_phi(phi1, phi2)
    return math.sqrt(deta * deta + dphi * dphi)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def read_events(path: str, tree: str = "Events") -> list[dict[str, Any]]:
    """One dict per event, holding Python floats/ints and lists of them."""
    path = os.fspath(path)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[b for b in BRANCHES if b in names])
        events: list[dict[str, Any]] = table.to_pylist()
    else:
        import uproot

        with uproot.open(path) as f:
            t = f[tree]
            present = set(t.keys())
            arrays = t.arrays([b for b in BRANCHES if b in present], library="np")
        columns = {name: [_plain(v) for v in arr.tolist()] for name, arr in arrays.items()}
        n = len(next(iter(columns.values()))) if columns else 0
        events = [{name: col[i] for name, col in columns.items()} for i in range(n)]
    for ev in events:
        _fill_counts(ev)
    return events


def _fill_counts(ev: dict[str, Any]) -> None:
    """Set a missing nJet/nMuon/nElectron from its list; check one that is present."""
    for name, fields in COLLECTIONS.items():
        length = len(ev[name + "_" + fields[0]])
        count = ev.setdefault("n" + name, length)
        if count != length:
            raise ValueError(f"n{name} = {count} but {name}_{fields[0]} has {length} entries")


def _objects(ev: dict[str, Any], name: str) -> list[dict[str, float]]:
    fields = COLLECTIONS[name]
    return [
        {field: float(ev[name + "_" + field][i]) for field in fields} for i in range(ev["n" + name])
    ]


def _fill(hists: dict[str, np.ndarray], name: str, x: float) -> None:
    lo, hi = HISTOGRAMS[name]
    hists[name][find_bin(x, lo, hi)] += 1.0


def _vec(obj: dict[str, float]) -> Vec:
    return p4(obj["pt"], obj["eta"], obj["phi"], obj["mass"])


def process_event(ev: dict[str, Any], hists: dict[str, np.ndarray]) -> None:
    met = float(ev["MET_pt"])
    met_phi = float(ev["MET_phi"])
    jets = _objects(ev, "Jet")
    muons = _objects(ev, "Muon")
    electrons = _objects(ev, "Electron")

    # q1: MET of every event.
    _fill(hists, "q1_met", met)

    # q2, q3: jet pT, all jets and central jets.
    for jet in jets:
        _fill(hists, "q2_jet_pt", jet["pt"])
        if abs(jet["eta"]) < 1.0:
            _fill(hists, "q3_jet_pt", jet["pt"])

    # q4: MET of events with at least two jets above 40 GeV.
    n_hard = 0
    for jet in jets:
        if jet["pt"] > 40.0:
            n_hard += 1
    if n_hard >= 2:
        _fill(hists, "q4_met", met)

    # q5: MET of events with an opposite-charge muon pair, 60 < m < 120.
    found = False
    for i in range(len(muons)):
        for j in range(i + 1, len(muons)):
            if muons[i]["charge"] * muons[j]["charge"] < 0:
                m = mass(add(_vec(muons[i]), _vec(muons[j])))
                if 60.0 < m < 120.0:
                    found = True
    if found:
        _fill(hists, "q5_met", met)

    # q6: the trijet with mass nearest 172.5 GeV.
    if len(jets) >= 3:
        best: tuple[int, int, int] | None = None
        best_diff = math.inf
        for i in range(len(jets)):
            for j in range(i + 1, len(jets)):
                for k in range(j + 1, len(jets)):
                    diff = abs(mass(add(_vec(jets[i]), _vec(jets[j]), _vec(jets[k]))) - 172.5)
                    if diff < best_diff:
                        best_diff = diff
                        best = (i, j, k)
        if best is not None:
            i, j, k = best
            _fill(hists, "q6_trijet_pt", pt_of(add(_vec(jets[i]), _vec(jets[j]), _vec(jets[k]))))
            btag = max(jets[i]["btag"], jets[j]["btag"], jets[k]["btag"])
            _fill(hists, "q6_trijet_btag", btag)

    # q7: scalar sum of pT of jets above 30 GeV not within dR 0.4 of a light lepton above 10 GeV.
    leptons = [lep for lep in muons + electrons if lep["pt"] > 10.0]
    total = 0.0
    n_counted = 0
    for jet in jets:
        if not jet["pt"] > 30.0:
            continue
        isolated = True
        for lep in leptons:
            if delta_r(jet["eta"], jet["phi"], lep["eta"], lep["phi"]) < 0.4:
                isolated = False
        if isolated:
            total += jet["pt"]
            n_counted += 1
    if n_counted > 0:
        _fill(hists, "q7_sum_pt", total)

    # q8: transverse mass of MET and the leading lepton outside the best Z candidate.
    flavoured = [("mu", lep) for lep in muons] + [("e", lep) for lep in electrons]
    if len(flavoured) >= 3:
        pair: tuple[int, int] | None = None
        pair_diff = math.inf
        for i in range(len(flavoured)):
            for j in range(i + 1, len(flavoured)):
                (fi, li), (fj, lj) = flavoured[i], flavoured[j]
                if fi == fj and li["charge"] * lj["charge"] < 0:
                    diff = abs(mass(add(_vec(li), _vec(lj))) - 91.2)
                    if diff < pair_diff:
                        pair_diff = diff
                        pair = (i, j)
        if pair is not None:
            lead: dict[str, float] | None = None
            for idx, (_, lep) in enumerate(flavoured):
                if idx not in pair and (lead is None or lep["pt"] > lead["pt"]):
                    lead = lep
            if lead is not None:
                mt2 = 2.0 * lead["pt"] * met * (1.0 - math.cos(lead["phi"] - met_phi))
                _fill(hists, "q8_mt", math.sqrt(mt2))


def empty_histograms() -> dict[str, np.ndarray]:
    return {name: np.zeros(NBINS + 2, dtype=np.float64) for name in HISTOGRAMS}


def reference_histograms(
    path_or_events: str | os.PathLike[str] | list[dict[str, Any]], tree: str = "Events"
) -> dict[str, np.ndarray]:
    """All nine histograms, each [underflow, bins 1..100, overflow] as float64 counts."""
    if isinstance(path_or_events, str | os.PathLike):
        events = read_events(os.fspath(path_or_events), tree)
    else:
        events = path_or_events
    hists = empty_histograms()
    for original in events:
        ev = dict(original)
        _fill_counts(ev)
        process_event(ev, hists)
    return hists
