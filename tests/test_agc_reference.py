"""saetta's AGC ttbar analysis against the independent per-event reference, bin for bin.

The reference (``agc_reference.py``) is written from the docstrings only.  The inputs are
``agc_synthetic``'s random events (values exactly on the cuts, NaN, inf, empty
collections) and a handful of hand-made events (``edge_events`` below) that sit where
float32 and float64 arithmetic, the histogram edges or the tie rules decide the result.

Exactness: every comparison with the reference is ``assert_array_equal`` on the sums of
weights and of squared weights.  That is meaningful because each sample's file is read
as one chunk by the local executor (``chunk_size`` above the file sizes), so the product
adds each bin's weights in event order, as the reference does.  Where chunking or the
executor changes (the smearing test), the samples' normalisation is 1 and the generator
weights are 1, -1 or 0.5, whose sums are exact in any order, so equality stays exact.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import agc_reference as ref
from agc_synthetic import agc_events, write_parquet, write_root

import saetta
from saetta.analyses import agc
from saetta.analyses.agc import assignment
from saetta.samples import Sample, Samples

LUMI = 3378.0
TTBAR_XSEC = 729.84  # the AGC's
WJETS_XSEC = 3502.9  # any cross-section
GENERATED = 20000.0
BIG_CHUNK = 1_000_000  # one chunk per file

F32 = np.float32


# ---------------------------------------------------------------- hand-made events
def _prev32(x: float) -> float:
    return float(np.nextafter(F32(x), F32(0)))


# the float32 value just above 30/1.03: times the double 1.03 it is 30.0000014 (> 30);
# times float32(1.03) in float32 it is exactly 30.0 (not > 30)
EDGE_SCALE_PT = float(np.nextafter(F32(30 / 1.03), F32(100)))
TIGHT_MUON = {
    "pt": 40.0, "eta": 0.3, "phi": 1.0, "mass": 0.10566, "charge": 1, "tightId": True,
    "sip3d": 1.0, "pfRelIso04_all": 0.05,
}  # fmt: skip


def _jets(pts: list[float], **fields: list[Any]) -> dict[str, list[Any]]:
    n = len(pts)
    return {
        "pt": pts,
        "eta": fields.get("eta", [0.1 * (k + 1) for k in range(n)]),
        "phi": fields.get("phi", [-2.5 + 1.3 * k for k in range(n)]),
        "mass": fields.get("mass", [5.0] * n),
        "btagCSVV2": fields.get("btag", [0.9] + [0.1] * (n - 1)),
        "jetId": fields.get("jetId", [6] * n),
    }


TWO_B = [0.9, 0.8, 0.1, 0.1]
EDGE_JETS = {
    # 4j1b: HT = 150 - 3.8e-6 summed in double (bin 1); 150.0 if summed in float32 (bin 2)
    "ht_below_150": _jets([37.5, 37.5, 37.5, _prev32(37.5)]),
    # 4j1b: HT exactly on the lower edge of bin 2
    "ht_150": _jets([37.5] * 4),
    # 4j1b: HT = 550 - 1.5e-5 in double (bin 11); 550.0 (overflow) in float32
    "ht_below_550": _jets([137.5, 137.5, 137.5, _prev32(137.5)]),
    # 4j1b: HT exactly the upper edge: overflow
    "ht_550": _jets([137.5] * 4),
    # pt_scale_up: the 4th jet passes pT > 30 when scaled in double, fails in float32
    "scale_edge_1b": _jets([70.0, 60.0, 50.0, EDGE_SCALE_PT]),
    "scale_edge_2b": _jets([70.0, 60.0, 50.0, EDGE_SCALE_PT], btag=TWO_B),
    # 4j1b: an infinite jet pT passes pT > 30, HT = +inf goes to the overflow
    "inf_pt": _jets([math.inf, 60.0, 50.0, 40.0]),
    # 4j2b: a NaN jet mass makes m_bjj NaN: fills nothing
    "nan_mass": _jets([100.0, 90.0, 80.0, 70.0], mass=[math.nan, 5.0, 5.0, 5.0], btag=TWO_B),
    # 4j2b: two jets with NaN phi: every trijet's pT is NaN, none is chosen
    "nan_phi": _jets(
        [100.0, 90.0, 80.0, 70.0], phi=[math.nan, math.nan, 0.5, 1.5], btag=[0.1, 0.1, 0.9, 0.8]
    ),
    # 4j2b: trijets (0,2,3) and (1,2,3) tie in pT (jets 0 and 1 mirror images in phi,
    # jets 2 and 3 at phi 0) with different masses: the first must win
    "pt_tie": _jets(
        [100.0, 100.0, 60.0, 50.0],
        eta=[0.5, -1.0, 0.2, -0.3],
        phi=[2.0, -2.0, 0.0, 0.0],
        mass=[5.0, 9.0, 5.0, 5.0],
        btag=[0.1, 0.1, 0.9, 0.8],
    ),
    # 4j2b: an infinite jet mass: m_bjj = +inf, to the overflow
    "inf_mass": _jets([100.0, 90.0, 80.0, 70.0], mass=[5.0, math.inf, 5.0, 5.0], btag=TWO_B),
}
EDGE_NAMES = list(EDGE_JETS)

_TYPES = {
    "pt": F32, "eta": F32, "phi": F32, "mass": F32, "btagCSVV2": F32, "jetId": np.int32,
    "charge": np.int32, "cutBased": np.int32, "sip3d": F32, "tightId": np.bool_,
    "pfRelIso04_all": F32,
}  # fmt: skip
_FIELDS = {
    "Jet": ["pt", "eta", "phi", "mass", "btagCSVV2", "jetId"],
    "Electron": ["pt", "eta", "phi", "mass", "charge", "cutBased", "sip3d"],
    "Muon": ["pt", "eta", "phi", "mass", "charge", "tightId", "sip3d", "pfRelIso04_all"],
}


def edge_events() -> dict[str, Any]:
    """The hand-made events in agc_synthetic's branch layout (one tight muon each)."""
    events = [
        {"Jet": jets, "Muon": {k: [v] for k, v in TIGHT_MUON.items()}}
        for jets in EDGE_JETS.values()
    ]
    n = len(events)
    out: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.full(n, 999, dtype=np.uint32),
        "event": np.arange(1, n + 1, dtype=np.uint64),
        "genWeight": np.ones(n, dtype=F32),
    }
    for coll, names in _FIELDS.items():
        counts = np.array([len(e.get(coll, {}).get("pt", [])) for e in events])
        for f in names:
            flat = np.array(
                [v for e in events for v in e.get(coll, {}).get(f, [])], dtype=_TYPES[f]
            )
            out[f"{coll}_{f}"] = ak.unflatten(flat, counts)
    out["MET_pt"] = np.full(n, 30.0, dtype=F32)
    out["MET_phi"] = np.zeros(n, dtype=F32)
    return out


def concatenate(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ak.concatenate([p[k] for p in parts]) if isinstance(parts[0][k], ak.Array)
        else np.concatenate([p[k] for p in parts])
        for k in parts[0]
    }  # fmt: skip


# ------------------------------------------------------------------------ the run
# name -> (writer, events, seed, Sample keyword arguments, reference keyword arguments)
SAMPLES: dict[str, tuple[Any, ...]] = {
    "ttbar": (write_root, 8000, 11, {"role": "signal", "xsec_pb": TTBAR_XSEC}, {}),
    "wjets": (write_parquet, 6000, 12, {"role": "background", "xsec_pb": WJETS_XSEC},
              {"wjets": True}),
    "ttbar_ME_var": (write_root, 3000, 13, {"role": "signal", "xsec_pb": TTBAR_XSEC,
                     "variation_of": "ttbar", "variation": "ME_var"}, {"nominal_only": True}),
    "data": (write_root, 3000, 14, {"role": "data"}, {"nominal_only": True}),
    "ttbar_edges": (write_root, 0, 0, {"role": "signal", "xsec_pb": TTBAR_XSEC}, {}),
}  # fmt: skip


def _norm(xsec: float | None) -> float | None:
    return None if xsec is None else xsec * LUMI / GENERATED


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("agc_reference")
    out = {}
    for name, (writer, n, seed, _, _) in SAMPLES.items():
        branches = edge_events() if name == "ttbar_edges" else agc_events(n, seed)
        suffix = ".parquet" if writer is write_parquet else ".root"
        out[name] = writer(folder / f"{name}{suffix}", branches)
    return out


def _sample(name: str, path: Path) -> Sample:
    kwargs = dict(SAMPLES[name][3])
    if kwargs["role"] != "data":
        kwargs["generated"] = GENERATED
    return Sample(name, (str(path),), **kwargs)


@pytest.fixture(scope="module")
def product(files: dict[str, Path]) -> Any:
    samples = Samples([_sample(name, path) for name, path in files.items()], luminosity_pb=LUMI)
    return saetta.run(agc.analysis, samples, run_dir=False, chunk_size=BIG_CHUNK)


@pytest.fixture(scope="module")
def reference(files: dict[str, Path]) -> dict[str, ref.Reference]:
    return {
        name: ref.reference_histograms(
            path,
            binning=agc.BINNING,
            model=assignment.MODEL,
            norm=_norm(SAMPLES[name][3].get("xsec_pb")),
            **SAMPLES[name][4],
        )
        for name, path in files.items()
    }


def _differences(got: Any, want: ref.Hist1D) -> list[str]:
    view = got.view(flow=True)
    out = []
    for what, expected in (("value", want.values), ("variance", want.variances)):
        actual = view[what]
        expected_a = np.asarray(expected)
        same = (actual == expected_a) | (np.isnan(actual) & np.isnan(expected_a))
        for b in np.flatnonzero(~same):
            out.append(f"bin {b} {what}: product {actual[b]!r}, reference {expected_a[b]!r}")
    return out


# ------------------------------------------------------------------------ 1. bins
def test_constants_match_the_docstring() -> None:
    """The reference's variation names are the product's (the docstring's list)."""
    assert tuple(agc.variations_of(None)) == ref.ALL_VARIATIONS
    assert set(agc.BINNING) == {"4j1b", "4j2b", *ref.ML_HISTOGRAMS}
    assert agc.B_TAG == ref.B_TAG
    assert agc.LUMINOSITY_PB == ref.LUMINOSITY_PB


@pytest.mark.slow
@pytest.mark.parametrize("histogram", list(agc.BINNING))
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_bin_for_bin(
    product: Any, reference: dict[str, ref.Reference], sample: str, histogram: str
) -> None:
    got = product[sample][histogram]
    want = reference[sample].hists[histogram]
    assert list(got) == list(want), "the variations filled"
    problems = []
    for variation, h in got.items():
        lo, hi = want[variation].lo, want[variation].hi
        axis = h.axes[0]
        assert (len(axis), axis.edges[0], axis.edges[-1]) == (want[variation].nbins, lo, hi)
        diff = _differences(h, want[variation])
        if diff:
            problems.append(f"{variation}: {len(diff)} differences, first: " + "; ".join(diff[:2]))
    assert not problems, f"{sample}/{histogram}:\n" + "\n".join(problems)


# ------------------------------------------------------------------------ 2. edges
@pytest.mark.slow
def test_inputs_exercise_the_edges(
    files: dict[str, Path], reference: dict[str, ref.Reference]
) -> None:
    for name in ("ttbar", "wjets", "ttbar_ME_var", "data"):
        r = reference[name]
        assert r.jets_at_30 > 0, name  # candidate jets (|eta|, id pass) at exactly pT 30
        assert r.jets_just_below_30 > 0, name
        assert r.selected_btag_at_cut > 0, name  # selected jets with btag exactly 0.5
        assert r.nan_jet_pt > 0, name
        assert r.nan_muon_iso > 0, name
        for ovar in ("nominal",) if name in ("ttbar_ME_var", "data") else ref.OBJECT_VARIATIONS:
            for region in ("4j1b", "4j2b"):
                assert r.events[ovar][region] >= 5, (name, ovar, region)
        assert sum(r.hists["4j2b_ml_score"]["nominal"].entries) >= 20, name
    # the big samples also reach the infinities
    assert reference["ttbar"].inf_jet_mass_in_4j2b > 0
    # leptons exactly at |eta| = float32(2.1), which pass the double-precision cut
    cols = ref.read_events(files["ttbar"])
    at_21 = float(F32(2.1))
    assert any(abs(x) == at_21 for ev in cols["Muon_eta"] for x in ev)
    assert any(abs(x) == at_21 for ev in cols["Electron_eta"] for x in ev)
    # genWeight differs from 1 in data, so "data weigh 1" is tested
    assert any(w != 1.0 for w in ref.read_events(files["data"])["genWeight"])
    # the hand-made events land where they are meant to (in the reference)
    edges = reference["ttbar_edges"]
    ht = edges.hists["4j1b"]["nominal"].entries
    # 150 - 4e-6 in bin 1, 150 in bin 2, 550 - 2e-5 in bin 11, 550 and inf in the overflow
    assert [ht[1], ht[2], ht[11], ht[12]] == [1, 1, 1, 2]
    scaled = edges.events["pt_scale_up"]
    nominal = edges.events["nominal"]
    assert scaled["4j1b"] == nominal["4j1b"] + 1
    assert scaled["4j2b"] == nominal["4j2b"] + 1
    # nan_mass and nan_phi are in 4j2b but fill nothing; inf_mass fills the overflow
    m_bjj = edges.hists["4j2b"]["nominal"].entries
    assert nominal["4j2b"] == 4
    assert sum(m_bjj) == 2
    assert m_bjj[12] == 1


def test_reference_generator_is_the_documented_one() -> None:
    """The reference's SplitMix64 / Box-Muller normals equal the product's, bit for bit
    (checked directly so that a pt_res_up mismatch can be told from a generator one)."""
    from saetta.systematics import event_normal

    rng = np.random.default_rng(5)
    n = 200
    run = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    lumi = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    event = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    counts = rng.integers(0, 12, n)
    events = ak.zip({"run": run, "luminosityBlock": lumi, "event": event})
    stream = ref.stream_of(ref.RESOLUTION_STREAM)
    got = np.asarray(event_normal(events, counts, stream)).tolist()
    want = [
        ref.normal(stream, int(run[i]), int(lumi[i]), int(event[i]), j)
        for i in range(n)
        for j in range(int(counts[i]))
    ]
    differ = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    assert not differ, (
        f"{len(differ)} of {len(want)} normals differ from sqrt(-2 ln(1 - u1)) cos(2 pi u2) "
        f"evaluated with Python's math, e.g. product {differ[0][0]!r}, documented {differ[0][1]!r}"
    )


# ----------------------------------------------------------------- 3. scale on disk
def _product_scale_dtype() -> np.dtype:
    """The dtype the product's pt_scale_up gives float32 jet pT (it is float32 today:
    float32 values times float32(1.03), rounded to float32)."""
    jets = ak.zip({"pt": np.array([40.0], dtype=F32), "eta": np.array([0.0], dtype=F32)})
    events = ak.zip(
        {
            "Jet": ak.unflatten(jets, [1]),
            "run": np.ones(1, np.uint32),
            "luminosityBlock": np.ones(1, np.uint32),
            "event": np.ones(1, np.uint64),
        },
        depth_limit=1,
    )
    varied = agc.OBJECT_VARIATIONS["pt_scale_up"](events)
    return np.asarray(ak.flatten(varied.Jet.pt)).dtype


@pytest.mark.slow
def test_scale_on_disk_equals_pt_scale_up(tmp_path: Path) -> None:
    """Nominal on a file whose Jet_pt was multiplied by 1.03 on disk, in the arithmetic
    the product's variation uses, equals the product's pt_scale_up: bin for bin, exact.

    The on-disk values are computed as the product computes the varied pT (float32 x
    float32(1.03) -> float32 today; float64 and stored as float64 should the product
    scale in double), so every cut and sum sees the same numbers and no tolerance is
    needed.  Only 4j1b and 4j2b can be compared: the ML histograms of pt_scale_up are
    empty by the docstring ("nominal jets"), while a scaled file's nominal fills them.
    The hand-made event ``scale_edge_*`` (a jet whose scaled pT is 30.0 in float32 and
    30.0000014 in double) makes the comparison sensitive to that arithmetic."""
    branches = concatenate(agc_events(3000, 21), edge_events())
    original = write_root(tmp_path / "original.root", branches)
    dtype = _product_scale_dtype()
    pt = ak.values_astype(branches["Jet_pt"], dtype)
    scaled_branches = dict(branches, Jet_pt=pt * dtype.type(ref.SCALE))
    assert ak.flatten(scaled_branches["Jet_pt"]).type.content.primitive == dtype.name
    scaled = write_root(tmp_path / "scaled.root", scaled_branches)
    samples = Samples(
        [
            Sample(
                "ttbar", (str(original),), role="signal", xsec_pb=TTBAR_XSEC, generated=GENERATED
            ),
            Sample(
                "ttbar_scaled",
                (str(scaled),),
                role="signal",
                xsec_pb=TTBAR_XSEC,
                generated=GENERATED,
            ),
        ],
        luminosity_pb=LUMI,
    )
    result = saetta.run(agc.analysis, samples, run_dir=False, chunk_size=BIG_CHUNK)
    for region in ("4j1b", "4j2b"):
        want = result["ttbar"][region]["pt_scale_up"].view(flow=True)
        got = result["ttbar_scaled"][region]["nominal"].view(flow=True)
        np.testing.assert_array_equal(got["value"], want["value"], err_msg=region)
        np.testing.assert_array_equal(got["variance"], want["variance"], err_msg=region)
        nominal = result["ttbar"][region]["nominal"].view(flow=True)
        assert not np.array_equal(nominal["value"], want["value"]), "scaling changed nothing"


# ------------------------------------------------------------------ 4. smearing
@pytest.mark.slow
def test_smearing_independent_of_chunks_and_executor(tmp_path: Path) -> None:
    """pt_res_up is the same for chunk sizes 1, 7 and 1000 and for local vs processes:2.

    A unit costs the product ~0.1 s, so chunk_size=1 runs on a dense file: 45 events the
    reference selects (in some object variation) and 15 it does not, taken in file order
    from 3000 synthetic events, keeping their (run, luminosityBlock, event) numbers.
    Normalisation 1 (xsec x lumi / generated) and generator weights in {1, -1, 0.5} make
    every bin's sum exact in any order of addition, so equality is exact."""
    branches = agc_events(3000, 31)
    full = write_root(tmp_path / "full.root", branches)
    selected = ref.reference_histograms(
        full, binning=agc.BINNING, model=assignment.MODEL, norm=1.0
    ).selected
    rejected = sorted(set(range(3000)) - set(selected))
    keep = np.array(sorted(selected[:45] + rejected[:15]))
    path = write_root(tmp_path / "dense.root", {k: v[keep] for k, v in branches.items()})
    samples = Samples(
        [Sample("ttbar", (str(path),), role="signal", xsec_pb=1.0, generated=LUMI)],
        luminosity_pb=LUMI,
    )
    runs = {
        (executor, chunk): saetta.run(
            agc.analysis, samples, run_dir=False, chunk_size=chunk, executor=executor
        )["ttbar"]
        for executor, chunk in (("local", 1000), ("local", 1), ("local", 7), ("processes:2", 7))
    }
    base = runs["local", 1000]
    for region in ("4j1b", "4j2b"):
        smeared = base[region]["pt_res_up"].view(flow=True)
        assert smeared["value"].sum() != 0
        assert not np.array_equal(
            smeared["value"], base[region]["nominal"].view(flow=True)["value"]
        )
    for key, result in runs.items():
        for histogram in agc.BINNING:
            for variation in ("pt_res_up", "nominal"):
                if variation not in base[histogram]:
                    continue  # the ML observables: nominal jets only
                got = result[histogram][variation].view(flow=True)
                want = base[histogram][variation].view(flow=True)
                for what in ("value", "variance"):
                    np.testing.assert_array_equal(
                        got[what], want[what], err_msg=f"{key} {histogram} {variation} {what}"
                    )


# ------------------------------------------------------- the assignment, any model
def _linear_model(path: Path, weights: np.ndarray) -> Path:
    """An ONNX classifier shaped like the product's (input X: (N, 16) float32; outputs
    label and probabilities (N, 2)): p = sigmoid(X @ weights)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "assignment",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 16])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        [
            numpy_helper.from_array(weights.astype(F32).reshape(16, 1), "W"),
            numpy_helper.from_array(np.ones(1, dtype=F32), "one"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


# typical sizes of the 16 features, so that every feature moves the score
_FEATURE_SCALE = np.array([3, 3, 3, 3, 150, 100, 200, 150, 80, 80, 80, 80, 0.5, 0.5, 0.5, 0.5])
_W_ONLY = [1, 5, 8, 9, 12, 13]  # the features of the two W jets alone


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["every_feature", "ties"])
def test_assignment_with_a_known_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The ML histograms with models made here, so that the comparison does not depend on
    the shipped model (a stand-in today, whose scores are all 1.0: every event ties and
    the features are not tested by it).

    ``every_feature``: random weights on all 16 features, so a wrong feature, a wrong
    assignment order or a wrong best moves scores and masses between bins.
    ``ties``: weights on the W-jet features only, so the two assignments of each W pair
    (hadronic and leptonic b swapped) score exactly the same and the first must win.

    The product takes its model from ``assignment.best``'s ``model`` parameter, whose
    default is ``assignment.MODEL``: the test replaces that default (local executor, so
    in this process).  Leptons exactly at |eta| = float32(2.1) are moved to 2.05 in this
    file, so that this test is about the assignment alone (test_bin_for_bin covers
    that cut)."""
    rng = np.random.default_rng(3)
    weights = rng.normal(size=16) / _FEATURE_SCALE
    if kind == "ties":
        weights[[k for k in range(16) if k not in _W_ONLY]] = 0.0
    model = _linear_model(tmp_path / f"{kind}.onnx", weights)
    monkeypatch.setattr(assignment.best, "__defaults__", (model,))

    branches = concatenate(agc_events(6000, 41), edge_events())
    at_21 = F32(2.1)
    for name in ("Electron_eta", "Muon_eta"):
        eta = branches[name]
        branches[name] = ak.where(abs(eta) == at_21, eta * F32(2.05 / 2.1), eta)
    path = write_root(tmp_path / "ml.root", branches)
    samples = Samples(
        [Sample("ttbar", (str(path),), role="signal", xsec_pb=TTBAR_XSEC, generated=GENERATED)],
        luminosity_pb=LUMI,
    )
    result = saetta.run(agc.analysis, samples, run_dir=False, chunk_size=BIG_CHUNK)["ttbar"]
    want = ref.reference_histograms(path, binning=agc.BINNING, model=model, norm=_norm(TTBAR_XSEC))
    # not vacuous: the best assignment varies, the scores spread over the bins
    assert sum(c > 0 for c in want.best_counts) >= (6 if kind == "ties" else 10), want.best_counts
    if kind == "ties":  # the first of each tied pair: the hadronic b has the lower index
        assert all(
            want.best_counts[i] == 0 for i, (_, _, h, lb) in enumerate(ref.ASSIGNMENTS) if h > lb
        ), want.best_counts
    assert sum(e > 0 for e in want.hists["4j2b_ml_score"]["nominal"].entries) >= 10
    problems = []
    for histogram in ref.ML_HISTOGRAMS:
        for variation, h in result[histogram].items():
            diff = _differences(h, want.hists[histogram][variation])
            if diff:
                problems.append(f"{histogram} {variation}: {len(diff)}, first: {diff[0]}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------- 5. keyed by sample
@pytest.mark.slow
def test_samples_are_not_mixed(files: dict[str, Path], product: Any) -> None:
    assert set(product) == set(SAMPLES)
    alone = saetta.run(
        agc.analysis, Samples([_sample("wjets", files["wjets"])], luminosity_pb=LUMI),
        run_dir=False, chunk_size=BIG_CHUNK,
    )  # fmt: skip
    assert set(alone) == {"wjets"}
    for histogram, variations in product["wjets"].items():
        assert list(alone["wjets"][histogram]) == list(variations)
        for variation, h in variations.items():
            got = alone["wjets"][histogram][variation].view(flow=True)
            want = h.view(flow=True)
            np.testing.assert_array_equal(
                got["value"], want["value"], err_msg=f"{histogram} {variation}"
            )
            np.testing.assert_array_equal(got["variance"], want["variance"])
    # and the samples differ from each other (a run that gave every sample the same
    # histograms would pass the comparison above)
    a = product["ttbar"]["4j2b"]["nominal"].view(flow=True)["value"]
    b = product["wjets"]["4j2b"]["nominal"].view(flow=True)["value"]
    assert not np.array_equal(a, b)
