"""The ADL queries by hand: uproot + awkward + numpy, no numba, no saetta.

The floor a framework must not fall below: idiomatic columnar code
(``ak.zip``, ``ak.combinations``, ``ak.cartesian``, ``ak.argmin``), reading each
query's branches in chunks with ``uproot.iterate``. Kinematics in double
precision from the file's float32 (px = pt cos phi, ..., E = sqrt(p^2 + m^2),
m = -sqrt(-m^2) when space-like), ties to the first candidate, ROOT TH1 fill rules,
as in saetta's definitions, so the histograms can be compared bin for bin.

Run: ``python benchmarks/peers/handwritten.py --file F.root --queries q1,q5 --repeat 1``;
prints one JSON line (see ``adlspec.emit``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
import uproot
from adlspec import BRANCHES, HISTOGRAMS, NBINS, QUERY_HISTOGRAMS, emit, parse_queries, time_best

Counts = dict[str, np.ndarray]


def fill(counts: np.ndarray, values: Any, lo: float, hi: float) -> None:
    """ROOT's TH1::Fill: bin 1 + int(n (x - lo) / (hi - lo)); x < lo underflow; else overflow."""
    x = np.asarray(ak.to_numpy(values) if isinstance(values, ak.Array) else values, np.float64)
    index = np.where(x < lo, 0, NBINS + 1)
    inside = (x >= lo) & (x < hi)
    index[inside] = 1 + (NBINS * (x[inside] - lo) / (hi - lo)).astype(np.int64)
    counts += np.bincount(index, minlength=NBINS + 2)


def _f64(array: ak.Array) -> ak.Array:
    return ak.values_astype(array, np.float64)


def _p4(chunk: ak.Array, name: str, extra: tuple[str, ...] = ()) -> ak.Array:
    """A collection as double-precision (px, py, pz, E) records, plus ``extra`` fields."""
    pt = _f64(chunk[name + "_pt"])
    eta = _f64(chunk[name + "_eta"])
    phi = _f64(chunk[name + "_phi"])
    mass = _f64(chunk[name + "_mass"])
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    fields = {"px": px, "py": py, "pz": pz, "E": energy}
    fields.update({f: chunk[name + "_" + f] for f in extra})
    return ak.zip(fields)


def _mass(px: Any, py: Any, pz: Any, energy: Any) -> Any:
    m2 = energy * energy - px * px - py * py - pz * pz
    return np.where(m2 >= 0, np.sqrt(np.abs(m2)), -np.sqrt(np.abs(m2)))


def _delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    dphi = phi1 - phi2
    dphi = ak.where(dphi > np.pi, dphi - 2 * np.pi, ak.where(dphi < -np.pi, dphi + 2 * np.pi, dphi))
    deta = eta1 - eta2
    return np.sqrt(deta * deta + dphi * dphi)


def q1(chunk: ak.Array, counts: Counts) -> None:
    fill(counts["q1_met"], chunk.MET_pt, *HISTOGRAMS["q1_met"])


def q2(chunk: ak.Array, counts: Counts) -> None:
    fill(counts["q2_jet_pt"], ak.flatten(chunk.Jet_pt), *HISTOGRAMS["q2_jet_pt"])


def q3(chunk: ak.Array, counts: Counts) -> None:
    central = chunk.Jet_pt[abs(chunk.Jet_eta) < 1]
    fill(counts["q3_jet_pt"], ak.flatten(central), *HISTOGRAMS["q3_jet_pt"])


def q4(chunk: ak.Array, counts: Counts) -> None:
    selected = ak.sum(chunk.Jet_pt > 40, axis=1) >= 2
    fill(counts["q4_met"], chunk.MET_pt[selected], *HISTOGRAMS["q4_met"])


def q5(chunk: ak.Array, counts: Counts) -> None:
    muons = _p4(chunk, "Muon", ("charge",))
    a, b = ak.unzip(ak.combinations(muons, 2))
    mass = _mass(a.px + b.px, a.py + b.py, a.pz + b.pz, a.E + b.E)
    good = (a.charge * b.charge < 0) & (mass > 60) & (mass < 120)
    fill(counts["q5_met"], chunk.MET_pt[ak.any(good, axis=1)], *HISTOGRAMS["q5_met"])


def q6(chunk: ak.Array, counts: Counts) -> None:
    chunk = chunk[chunk.nJet >= 3]
    jets = _p4(chunk, "Jet", ("btag",))
    a, b, c = ak.unzip(ak.combinations(jets, 3))
    px = a.px + b.px + c.px
    py = a.py + b.py + c.py
    mass = _mass(px, py, a.pz + b.pz + c.pz, a.E + b.E + c.E)
    best = ak.argmin(abs(mass - 172.5), axis=1, keepdims=True)
    pt = np.sqrt(px[best] ** 2 + py[best] ** 2)
    btag = np.maximum(np.maximum(a.btag[best], b.btag[best]), c.btag[best])
    fill(counts["q6_trijet_pt"], ak.flatten(pt), *HISTOGRAMS["q6_trijet_pt"])
    fill(counts["q6_trijet_btag"], ak.flatten(btag), *HISTOGRAMS["q6_trijet_btag"])


def q7(chunk: ak.Array, counts: Counts) -> None:
    def objects(name: str, min_pt: float) -> ak.Array:
        pt = chunk[name + "_pt"]
        cut = pt > min_pt
        return ak.zip(
            {
                "pt": _f64(pt[cut]),
                "eta": _f64(chunk[name + "_eta"][cut]),
                "phi": _f64(chunk[name + "_phi"][cut]),
            }
        )

    jets = objects("Jet", 30.0)
    leptons = ak.concatenate([objects("Muon", 10.0), objects("Electron", 10.0)], axis=1)
    jet, lepton = ak.unzip(ak.cartesian([jets, leptons], nested=True))
    near = _delta_r(jet.eta, jet.phi, lepton.eta, lepton.phi) < 0.4
    clean = jets.pt[~ak.any(near, axis=2)]
    has = ak.num(clean, axis=1) > 0
    fill(counts["q7_sum_pt"], ak.sum(clean[has], axis=1), *HISTOGRAMS["q7_sum_pt"])


def q8(chunk: ak.Array, counts: Counts) -> None:
    enough = (chunk.nMuon + chunk.nElectron) >= 3
    chunk = chunk[enough]

    def leptons(name: str, flavour: int) -> ak.Array:
        p4 = _p4(chunk, name, ("charge",))
        return ak.with_field(
            ak.with_field(
                ak.with_field(p4, _f64(chunk[name + "_pt"]), "pt"),
                _f64(chunk[name + "_phi"]),
                "phi",
            ),
            ak.full_like(chunk[name + "_charge"], flavour),
            "flavour",
        )

    leps = ak.concatenate([leptons("Muon", 0), leptons("Electron", 1)], axis=1)
    pairs = ak.argcombinations(leps, 2, fields=["i", "j"])
    a, b = leps[pairs.i], leps[pairs.j]
    sfos = (a.flavour == b.flavour) & (a.charge * b.charge < 0)
    mass = _mass(a.px + b.px, a.py + b.py, a.pz + b.pz, a.E + b.E)
    distance = ak.where(sfos, abs(mass - 91.2), np.inf)
    has = ak.any(sfos, axis=1)
    leps, pairs, distance = leps[has], pairs[has], distance[has]
    best = ak.firsts(pairs[ak.argmin(distance, axis=1, keepdims=True)])
    index = ak.local_index(leps, axis=1)
    others = (index != best.i) & (index != best.j)
    lead = ak.firsts(leps[ak.argmax(ak.where(others, leps.pt, -np.inf), axis=1, keepdims=True)])
    met = ak.to_numpy(chunk.MET_pt[has]).astype(np.float64)
    met_phi = ak.to_numpy(chunk.MET_phi[has]).astype(np.float64)
    pt = ak.to_numpy(lead.pt)
    mt2 = 2.0 * pt * met * (1.0 - np.cos(ak.to_numpy(lead.phi) - met_phi))
    fill(counts["q8_mt"], np.sqrt(mt2), *HISTOGRAMS["q8_mt"])


QUERIES: dict[str, Callable[[ak.Array, Counts], None]] = {
    "q1": q1,
    "q2": q2,
    "q3": q3,
    "q4": q4,
    "q5": q5,
    "q6": q6,
    "q7": q7,
    "q8": q8,
}


def run_query(path: str, query: str, step_size: int) -> tuple[int, dict[str, list[float]]]:
    """One pass over the file; ``(events, {histogram: 102 bin counts})``."""
    counts = {h: np.zeros(NBINS + 2, np.float64) for h in QUERY_HISTOGRAMS[query]}
    events = 0
    with uproot.open(path) as f:
        for chunk in f["Events"].iterate(BRANCHES[query], step_size=step_size, library="ak"):
            QUERIES[query](chunk, counts)
            events += len(chunk)
    return events, {h: c.tolist() for h, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--step-size", type=int, default=250_000)
    parser.add_argument("--warmup", help="a small file of the same schema, run once untimed")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for query in parse_queries(args.queries):
        if args.warmup:
            run_query(args.warmup, query, args.step_size)
        results[query] = time_best(
            lambda q=query: run_query(args.file, q, args.step_size), args.repeat
        )
    emit(
        {
            "system": "handwritten",
            "versions": {
                "uproot": uproot.__version__,
                "awkward": ak.__version__,
                "numpy": np.__version__,
            },
            "queries": results,
        }
    )


if __name__ == "__main__":
    main()
