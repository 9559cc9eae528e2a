"""The AGC ttbar analysis in coffea (run with the Python of ``benchmarks/.venv-coffea``).

A ``processor.ProcessorABC`` run by ``processor.Runner`` with the
``IterativeExecutor`` (one process) over NanoEvents (``NanoAODSchema``), per
sample, written the coffea way from the Analysis Grand Challenge's published
definitions as saetta's ``saetta.analyses.agc`` docstring restates them, but
without saetta (it is not installed here): object cuts as boolean masks on
``events.Electron``/``events.Muon``/``events.Jet``, ``ak.combinations`` for the
trijets, four-vector sums and masses through coffea's vector behaviours, the
jet-pT variations as new pT columns, the weight variations as factors, and the
jet-parton assignment's 16 features per assignment scored by ONNX Runtime
(``intra_op_num_threads=1``), one batch per chunk.

As in ``coffea_adl.py``, every number is cast to float64 before any arithmetic or
cut (the definitions compute in double precision on the file's values);
``pt_res_up``'s normal numbers are the counter-based generator of
``saetta.systematics``' docstring, re-implemented here in numpy from that text.

Input: ``--samples F.json``, ``{"samples": {name: {"files": [...], "tree": "Events",
"weight": xsec*lumi/generated, "role": ..., "variation_of": ... or null}}}``
(the driver, ``benchmarks/agc.py``, writes it), ``--model`` (the ``.onnx``).
Output: one JSON line (``adlspec.emit``): best wall time, events, and every
histogram's sums of weights and of their squares, flow bins included, under
``"<sample>/<histogram>/<variation>/sumw"`` (and ``.../sumw2``), and under
``"<sample>/_features/bits"`` the sums of the assignment features' float32 bit
patterns (an exact, order-independent fingerprint of the features, compared apart).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from typing import Any

import awkward as ak
import numpy as np
from adlspec import emit, time_best

# ----------------------------------------------------------------------------- definitions

B_TAG = 0.5

#: histogram -> (bins, lo, hi); ROOT's TH1::Fill rule, NaN and +inf to the overflow.
BINNING: dict[str, tuple[int, float, float]] = {
    "4j1b": (11, 110.0, 550.0),
    "4j2b": (11, 110.0, 550.0),
    "4j2b_ml_m_tophad": (25, 50.0, 550.0),
    "4j2b_ml_m_w": (25, 0.0, 250.0),
    "4j2b_ml_score": (21, 0.0, 1.05),
}
ML_HISTOGRAMS = ("4j2b_ml_m_tophad", "4j2b_ml_m_w", "4j2b_ml_score")

OBJECT_VARIATIONS = ("nominal", "pt_scale_up", "pt_res_up")
WEIGHT_VARIATIONS = (
    *(f"btag_var_{i}_{d}" for i in range(4) for d in ("up", "down")),
    "scale_var_up",
    "scale_var_down",
)
RESOLUTION_STREAM = "Jet.pt resolution"

#: (12, 4): W jet 1, W jet 2, hadronic b, leptonic b; for h, for l != h, W jets ascending.
ASSIGNMENTS = np.array(
    [
        (*(j for j in range(4) if j not in (h, lep)), h, lep)
        for h in range(4)
        for lep in range(4)
        if lep != h
    ],
    dtype=np.int64,
)


def variations_of(info: dict[str, Any]) -> tuple[str, ...]:
    """Nominal simulated samples get every variation; data and alternative samples nominal."""
    if info["role"] == "data" or info.get("variation_of"):
        return ("nominal",)
    return (*OBJECT_VARIATIONS, *WEIGHT_VARIATIONS)


# ----------------------------------------------------------------------------- helpers

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, modulo 2^64."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


def normal_numbers(events: Any, counts: np.ndarray, name: str) -> np.ndarray:
    """``counts[i]`` standard normal numbers for event ``i`` (flat), keyed by the event's
    (run, luminosityBlock, event) and the object's index in its event, stream ``name``."""
    n = len(counts)
    stream = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    key = mix(np.full(n, stream, dtype=np.uint64))
    for field in ("run", "luminosityBlock", "event"):
        ids = (
            np.asarray(events[field]).astype(np.uint64)
            if field in events.fields
            else np.zeros(n, dtype=np.uint64)
        )
        key = mix(key ^ ids)
    starts = np.concatenate([[0], np.cumsum(counts)])
    flat_index = (np.arange(starts[-1]) - np.repeat(starts[:-1], counts)).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = np.repeat(key, counts) + np.uint64(2) * flat_index
        h1 = mix(base)
        h2 = mix(base + np.uint64(1))
    u1 = (h1 >> np.uint64(11)).astype(np.float64) / 2.0**53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    z: np.ndarray = np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)
    return z


def f64(values: Any) -> Any:
    return ak.values_astype(values, np.float64)


def fill(sums: list[np.ndarray], values: Any, weights: Any, lo: float, hi: float) -> None:
    """ROOT's TH1::Fill rule with weights: sums of weights and of their squares."""
    x = np.asarray(values, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    nbins = len(sums[0]) - 2
    index = np.where(x < lo, 0, nbins + 1)
    inside = (x >= lo) & (x < hi)
    index[inside] = 1 + (nbins * (x[inside] - lo) / (hi - lo)).astype(np.int64)
    sums[0] += np.bincount(index, weights=w, minlength=nbins + 2)
    sums[1] += np.bincount(index, weights=w * w, minlength=nbins + 2)


def four_vectors(fields: dict[str, Any]) -> Any:
    """A PtEtaPhiMLorentzVector collection (coffea's behaviours) of float64 fields."""
    from coffea.nanoevents.methods import vector

    return ak.zip(
        {k: f64(v) for k, v in fields.items()},
        with_name="PtEtaPhiMLorentzVector",
        behavior=vector.behavior,
    )


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """sqrt(deta^2 + dphi^2), dphi wrapped once into [-pi, pi] (the definition's rule)."""
    dphi = phi1 - phi2
    dphi = np.where(dphi > np.pi, dphi - 2 * np.pi, np.where(dphi < -np.pi, dphi + 2 * np.pi, dphi))
    deta = eta1 - eta2
    return np.sqrt(deta * deta + dphi * dphi)


# ----------------------------------------------------------------------------- the processor


class Inference:
    """The assignment classifier: one ONNX Runtime session, one thread, loaded once."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._session: Any = None

    def scores(self, features: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            with open(self.model, "rb") as f:
                self._session = onnxruntime.InferenceSession(
                    f.read(), options, providers=["CPUExecutionProvider"]
                )
        name = self._session.get_inputs()[0].name
        out: np.ndarray = self._session.run(None, {name: features})[1][:, 1]
        return out


def feature_bits(rows: np.ndarray) -> np.ndarray:
    """Per feature, the sum of the float32 values' bit patterns (-0 as 0, one NaN): equal
    sums mean equal features, whatever the order of the rows (a check, not the analysis)."""
    canonical = np.where(np.isnan(rows), np.float32(np.nan), rows + np.float32(0.0))
    bits: np.ndarray = canonical.astype(np.float32).view(np.int32).astype(np.int64).sum(axis=0)
    return bits


def best_assignment(
    jets: Any, lepton: Any, inference: Inference
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(score, m_tophad, m_w) of each event's best assignment of its first four jets, and
    the features' :func:`feature_bits`."""
    n = len(jets)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(16, dtype=np.int64)
    four = ak.to_regular(jets[:, :4], axis=1)
    w1, w2 = four[:, ASSIGNMENTS[:, 0]], four[:, ASSIGNMENTS[:, 1]]
    bh, bl = four[:, ASSIGNMENTS[:, 2]], four[:, ASSIGNMENTS[:, 3]]
    lep = lepton[:, np.zeros(len(ASSIGNMENTS), dtype=np.int64)]  # (n, 12): the lepton
    ww = w1 + w2
    top = ww + bh
    columns = [
        delta_r(lep.eta, lep.phi, bl.eta, bl.phi),
        delta_r(w1.eta, w1.phi, w2.eta, w2.phi),
        delta_r(w1.eta, w1.phi, bh.eta, bh.phi),
        delta_r(w2.eta, w2.phi, bh.eta, bh.phi),
        (lep + bl).mass,
        ww.mass,
        top.mass,
        top.pt,
        w1.pt,
        w2.pt,
        bh.pt,
        bl.pt,
        w1.btag,
        w2.btag,
        bh.btag,
        bl.btag,
    ]
    features = np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=-1)
    rows = np.ascontiguousarray(features.reshape(n * len(ASSIGNMENTS), 16), dtype=np.float32)
    scores = inference.scores(rows).reshape(n, len(ASSIGNMENTS))
    # a NaN score never wins; an event whose scores are all NaN takes the first
    best = np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=1)
    pick = np.arange(n)
    m_tophad = np.asarray(top.mass, dtype=np.float64)[pick, best]
    m_w = np.asarray(ww.mass, dtype=np.float64)[pick, best]
    return scores[pick, best].astype(np.float64), m_tophad, m_w, feature_bits(rows)


def varied_pt(events: Any, variation: str) -> Any:
    """The jets' pT under an object variation, float64."""
    pt = f64(events.Jet.pt)
    if variation == "pt_scale_up":
        return pt * 1.03
    if variation == "pt_res_up":
        counts = np.asarray(ak.num(pt, axis=1))
        z = normal_numbers(events, counts, RESOLUTION_STREAM)
        return ak.unflatten(np.asarray(ak.flatten(pt)) * (1.0 + 0.05 * z), counts)
    return pt


def trijet_mass(jets: Any) -> np.ndarray:
    """m_bjj: the mass of the trijet (at least one b tag) of largest pT, NaN if none."""
    a, b, c = ak.unzip(ak.combinations(jets, 3))
    trijet = a + b + c
    tagged = (a.btag >= B_TAG) | (b.btag >= B_TAG) | (c.btag >= B_TAG)
    pt = trijet.pt
    rank = ak.where(tagged & ~np.isnan(pt), pt, -np.inf)
    best = ak.argmax(rank, axis=1, keepdims=True)
    found = ak.fill_none(ak.firsts(rank[best]), -np.inf) > -np.inf
    mass = ak.fill_none(ak.firsts(trijet.mass[best]), np.nan)
    return np.where(np.asarray(found), np.asarray(mass, dtype=np.float64), np.nan)


def analyse(
    events: Any, info: dict[str, Any], name: str, inference: Inference | None
) -> dict[str, list[np.ndarray]]:
    """The AGC histograms of one chunk of one sample."""
    names = variations_of(info)
    full = len(names) > 1
    wjets = name.startswith("wjets")
    # the ML histograms come from the nominal jets: nominal and weight variations only
    sums = {
        f"{h}/{v}": [np.zeros(b + 2), np.zeros(b + 2)]
        for h, (b, _, _) in BINNING.items()
        for v in names
        if h not in ML_HISTOGRAMS or v not in OBJECT_VARIATIONS[1:]
    }
    if inference is not None:
        sums["_features/bits"] = [np.zeros(16), np.zeros(0)]
    norm = float(info["weight"])
    if info["role"] != "data" and "genWeight" in events.fields:
        weights = norm * np.asarray(events.genWeight, dtype=np.float64)
    else:
        weights = np.full(len(events), norm)

    el, mu = events.Electron, events.Muon
    el = el[(f64(el.pt) > 30) & (abs(f64(el.eta)) < 2.1) & (el.cutBased == 4) & (f64(el.sip3d) < 4)]
    mu = mu[
        (f64(mu.pt) > 30)
        & (abs(f64(mu.eta)) < 2.1)
        & mu.tightId
        & (f64(mu.sip3d) < 4)
        & (f64(mu.pfRelIso04_all) < 0.15)
    ]
    n_leptons = np.asarray(ak.num(el) + ak.num(mu))
    leptons = ak.concatenate(
        [four_vectors({k: c[k] for k in ("pt", "eta", "phi", "mass")}) for c in (el, mu)],
        axis=1,
    )
    raw = events.Jet
    for variation in OBJECT_VARIATIONS if full else ("nominal",):
        pt = varied_pt(events, variation)
        good = (pt > 30) & (abs(f64(raw.eta)) < 2.4) & ((raw.jetId & 4) != 0)
        jets = four_vectors(
            {
                "pt": pt[good],
                "eta": raw.eta[good],
                "phi": raw.phi[good],
                "mass": raw.mass[good],
                "btag": raw.btagCSVV2[good],
            }
        )
        n_jets = np.asarray(ak.num(jets))
        n_b = np.asarray(ak.sum(jets.btag >= B_TAG, axis=1))
        selected = (n_leptons == 1) & (n_jets >= 4) & (n_b >= 1)
        for region, in_region in (("4j1b", selected & (n_b == 1)), ("4j2b", selected & (n_b >= 2))):
            sub = jets[in_region]
            if region == "4j1b":
                observable = np.asarray(ak.sum(sub.pt, axis=1), dtype=np.float64)
            else:
                observable = trijet_mass(sub)
            nominal_w = weights[in_region]
            fills = [(variation, nominal_w)]
            if full and variation == "nominal":
                pt_i = [np.asarray(sub.pt[:, i], dtype=np.float64) for i in range(4)]
                for i in range(4):
                    fills.append((f"btag_var_{i}_up", nominal_w * (1 + 0.075 * pt_i[i] / 50)))
                    fills.append((f"btag_var_{i}_down", nominal_w * (1 - 0.075 * pt_i[i] / 50)))
                fills.append(("scale_var_up", nominal_w * (1.025 if wjets else 1.0)))
                fills.append(("scale_var_down", nominal_w * (0.975 if wjets else 1.0)))
            ok = ~np.isnan(observable)
            _, lo, hi = BINNING[region]
            for label, w in fills:
                fill(sums[f"{region}/{label}"], observable[ok], w[ok], lo, hi)
            if region == "4j2b" and variation == "nominal" and inference is not None:
                lepton = leptons[in_region]
                score, m_tophad, m_w, bits = best_assignment(sub, lepton, inference)
                sums["_features/bits"][0] += bits.astype(np.float64)
                for label, w in fills:
                    for hist, values in (
                        ("4j2b_ml_m_tophad", m_tophad),
                        ("4j2b_ml_m_w", m_w),
                        ("4j2b_ml_score", score),
                    ):
                        _, lo, hi = BINNING[hist]
                        fill(sums[f"{hist}/{label}"], values, w, lo, hi)
    return sums


def make_processor(samples: dict[str, dict[str, Any]], inference: Inference | None) -> Any:
    from coffea import processor

    class AGC(processor.ProcessorABC):  # type: ignore[misc]
        def process(self, events: Any) -> dict[str, Any]:
            name = events.metadata["dataset"]
            sums = analyse(events, samples[name], name, inference)
            flat = {f"{name}/{key}": pair for key, pair in sums.items()}
            return {
                "sumw": {k: v[0] for k, v in flat.items()},
                "sumw2": {k: v[1] for k, v in flat.items()},
                "events": len(events),
            }

        def postprocess(self, accumulator: Any) -> Any:
            return accumulator

    return AGC()


def run_once(
    samples: dict[str, dict[str, Any]], inference: Inference | None, chunksize: int
) -> tuple[int, dict[str, list[float]]]:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=NanoAODSchema,
        chunksize=chunksize,
    )
    fileset = {
        name: {"files": {path: info.get("tree", "Events") for path in info["files"]}}
        for name, info in samples.items()
    }
    out = runner(fileset, make_processor(samples, inference))
    hists: dict[str, list[float]] = {}
    for key in sorted(out["sumw"]):
        if "/_features/" in key:  # exact integers (< 2^53), compared apart
            hists[key] = [float(v) for v in out["sumw"][key]]
            continue
        hists[f"{key}/sumw"] = [float(v) for v in out["sumw"][key]]
        hists[f"{key}/sumw2"] = [float(v) for v in out["sumw2"][key]]
    return int(out["events"]), hists


def _samples(path: str) -> dict[str, dict[str, Any]]:
    with open(path) as f:
        document: dict[str, Any] = json.load(f)
    samples: dict[str, dict[str, Any]] = document["samples"]
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", required=True, help="the samples, as JSON (see above)")
    parser.add_argument("--warmup", help="samples JSON of a few events, run once untimed")
    parser.add_argument("--model", required=True, help="the assignment classifier (.onnx)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--chunksize", type=int, default=250_000)
    parser.add_argument("--no-ml", action="store_true", help="skip the jet-parton assignment")
    args = parser.parse_args()
    # NanoAODSchema warns per missing cross-reference branch (genPartIdx, ...)
    warnings.filterwarnings("ignore", message="Missing cross-reference")
    import coffea
    import onnxruntime

    inference = None if args.no_ml else Inference(args.model)
    samples = _samples(args.samples)
    warmup_seconds = None
    if args.warmup:
        started = time.perf_counter()
        run_once(_samples(args.warmup), inference, args.chunksize)
        warmup_seconds = time.perf_counter() - started
    result = time_best(lambda: run_once(samples, inference, args.chunksize), args.repeat)
    result["warmup_seconds"] = warmup_seconds
    emit(
        {
            "system": "coffea",
            "versions": {
                "coffea": coffea.__version__,
                "awkward": ak.__version__,
                "numpy": np.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            "executor": "IterativeExecutor (1 process)",
            "ml": not args.no_ml,
            "chunksize": args.chunksize,
            "result": result,
        }
    )


if __name__ == "__main__":
    main()
