"""The ADL queries in coffea (run with the Python of ``benchmarks/.venv-coffea``).

A ``processor.ProcessorABC`` per query, run by ``processor.Runner`` with the
``IterativeExecutor`` (one process) over NanoEvents (``NanoAODSchema``, virtual
arrays: only the branches a query touches are read). Written the coffea way:
``events.Muon``, ``ak.combinations``, ``(a + b).mass``, ``jet.delta_r(lepton)``.
One deviation from the most common idiom: the four-vector fields are cast to
float64 before any arithmetic (``ak.values_astype``), because saetta's
definitions compute kinematics in double precision; in float32, masses and mT
near bin edges and cut values land on the other side and the histograms cannot
agree bin for bin.

Run: ``python benchmarks/peers/coffea_adl.py --file F.root --queries q1,q5``;
prints one JSON line (see ``adlspec.emit``). This file is not named coffea.py,
which would shadow the package.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

import awkward as ak
import numpy as np
from adlspec import HISTOGRAMS, NBINS, QUERY_HISTOGRAMS, emit, parse_queries, time_best

Counts = dict[str, np.ndarray]


def fill(counts: np.ndarray, values: Any, lo: float, hi: float) -> None:
    """ROOT's TH1::Fill rules (as in handwritten.py)."""
    x = np.asarray(ak.to_numpy(ak.flatten(values, axis=None)), np.float64)
    index = np.where(x < lo, 0, NBINS + 1)
    inside = (x >= lo) & (x < hi)
    index[inside] = 1 + (NBINS * (x[inside] - lo) / (hi - lo)).astype(np.int64)
    counts += np.bincount(index, minlength=NBINS + 2)


def f64(collection: ak.Array) -> ak.Array:
    """The collection with its numbers in float64, keeping coffea's behaviours."""
    return ak.values_astype(collection, np.float64)


def q1(events: Any, counts: Counts) -> None:
    fill(counts["q1_met"], events.MET.pt, *HISTOGRAMS["q1_met"])


def q2(events: Any, counts: Counts) -> None:
    fill(counts["q2_jet_pt"], events.Jet.pt, *HISTOGRAMS["q2_jet_pt"])


def q3(events: Any, counts: Counts) -> None:
    jets = events.Jet
    fill(counts["q3_jet_pt"], jets.pt[abs(jets.eta) < 1], *HISTOGRAMS["q3_jet_pt"])


def q4(events: Any, counts: Counts) -> None:
    selected = ak.sum(events.Jet.pt > 40, axis=1) >= 2
    fill(counts["q4_met"], events.MET.pt[selected], *HISTOGRAMS["q4_met"])


def q5(events: Any, counts: Counts) -> None:
    events = events[ak.num(events.Muon) >= 2]
    a, b = ak.unzip(ak.combinations(f64(events.Muon), 2))
    mass = (a + b).mass
    good = (a.charge * b.charge < 0) & (mass > 60) & (mass < 120)
    fill(counts["q5_met"], events.MET.pt[ak.any(good, axis=1)], *HISTOGRAMS["q5_met"])


def q6(events: Any, counts: Counts) -> None:
    events = events[ak.num(events.Jet) >= 3]
    a, b, c = ak.unzip(ak.combinations(f64(events.Jet), 3))
    trijet = a + b + c
    best = ak.argmin(abs(trijet.mass - 172.5), axis=1, keepdims=True)
    btag = np.maximum(np.maximum(a.btag, b.btag), c.btag)
    fill(counts["q6_trijet_pt"], trijet.pt[best], *HISTOGRAMS["q6_trijet_pt"])
    fill(counts["q6_trijet_btag"], btag[best], *HISTOGRAMS["q6_trijet_btag"])


def q7(events: Any, counts: Counts) -> None:
    jets = f64(events.Jet)
    jets = jets[jets.pt > 30]

    def near(leptons: Any) -> Any:
        jet, lepton = ak.unzip(ak.cartesian([jets, f64(leptons[leptons.pt > 10])], nested=True))
        return ak.any(jet.delta_r(lepton) < 0.4, axis=2)

    clean = jets[~(near(events.Muon) | near(events.Electron))]
    sum_pt = ak.sum(clean.pt, axis=1)
    fill(counts["q7_sum_pt"], sum_pt[ak.num(clean) > 0], *HISTOGRAMS["q7_sum_pt"])


def lepton(collection: Any, flavour: int) -> Any:
    """Muons or electrons as one record type (PtEtaPhiMCandidate), so they concatenate."""
    from coffea.nanoevents.methods import candidate

    fields = {f: collection[f] for f in ("pt", "eta", "phi", "mass", "charge")}
    fields["flavour"] = ak.full_like(collection.charge, flavour)
    return f64(ak.zip(fields, with_name="PtEtaPhiMCandidate", behavior=candidate.behavior))


def q8(events: Any, counts: Counts) -> None:
    events = events[ak.num(events.Muon) + ak.num(events.Electron) >= 3]
    leptons = ak.concatenate([lepton(events.Muon, 0), lepton(events.Electron, 1)], axis=1)
    pairs = ak.argcombinations(leptons, 2, fields=["i", "j"])
    a, b = leptons[pairs.i], leptons[pairs.j]
    sfos = (a.flavour == b.flavour) & (a.charge * b.charge < 0)
    distance = ak.where(sfos, abs((a + b).mass - 91.2), np.inf)
    has = ak.any(sfos, axis=1)
    events, leptons, pairs, distance = events[has], leptons[has], pairs[has], distance[has]
    best = ak.firsts(pairs[ak.argmin(distance, axis=1, keepdims=True)])
    index = ak.local_index(leptons, axis=1)
    others = (index != best.i) & (index != best.j)
    lead = ak.firsts(
        leptons[ak.argmax(ak.where(others, leptons.pt, -np.inf), axis=1, keepdims=True)]
    )
    met = ak.values_astype(events.MET.pt, np.float64)
    met_phi = ak.values_astype(events.MET.phi, np.float64)
    mt = np.sqrt(2.0 * lead.pt * met * (1.0 - np.cos(lead.phi - met_phi)))
    fill(counts["q8_mt"], mt, *HISTOGRAMS["q8_mt"])


QUERIES: dict[str, Callable[[Any, Counts], None]] = {
    "q1": q1,
    "q2": q2,
    "q3": q3,
    "q4": q4,
    "q5": q5,
    "q6": q6,
    "q7": q7,
    "q8": q8,
}


def make_processor(query: str) -> Any:
    from coffea import processor

    class ADLQuery(processor.ProcessorABC):  # type: ignore[misc]
        def process(self, events: Any) -> dict[str, Any]:
            counts = {h: np.zeros(NBINS + 2, np.float64) for h in QUERY_HISTOGRAMS[query]}
            QUERIES[query](events, counts)
            return {"counts": counts, "events": len(events)}

        def postprocess(self, accumulator: Any) -> Any:
            return accumulator

    return ADLQuery()


def run_query(path: str, query: str, chunksize: int) -> tuple[int, dict[str, list[float]]]:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=NanoAODSchema,
        chunksize=chunksize,
    )
    out = runner({"adl": {"files": {path: "Events"}}}, make_processor(query))
    return int(out["events"]), {h: c.tolist() for h, c in out["counts"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--chunksize", type=int, default=250_000)
    parser.add_argument("--warmup", help="a small file of the same schema, run once untimed")
    args = parser.parse_args()
    # our synthetic NanoAOD lacks the cross-reference branches: NanoAODSchema warns per branch
    warnings.filterwarnings("ignore", message="Missing cross-reference")
    import coffea

    results: dict[str, Any] = {}
    for query in parse_queries(args.queries):
        if args.warmup:
            run_query(args.warmup, query, args.chunksize)
        results[query] = time_best(
            lambda q=query: run_query(args.file, q, args.chunksize), args.repeat
        )
    emit(
        {
            "system": "coffea",
            "versions": {"coffea": coffea.__version__, "awkward": ak.__version__},
            "executor": "IterativeExecutor (1 process)",
            "queries": results,
        }
    )


if __name__ == "__main__":
    main()
