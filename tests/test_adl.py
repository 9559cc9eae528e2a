"""The shipped ADL queries against the independent per-event reference, bin for bin; the
numpy fill of q1-q4 against ROOT's TH1 rules written out here; numba imported only for
the queries with compiled kernels, and those kernels reaching worker processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from conftest import flow_values

import saetta
from saetta import kernels
from saetta.analyses import adl


def test_histogram_names_and_binning() -> None:
    assert list(adl.HISTOGRAMS) == [
        "q1_met", "q2_jet_pt", "q3_jet_pt", "q4_met", "q5_met",
        "q6_trijet_pt", "q6_trijet_btag", "q7_sum_pt", "q8_mt",
    ]  # fmt: skip


@pytest.mark.parametrize("fixture", ["sample_root", "sample_parquet", "sample_rntuple"])
def test_all_queries_match_reference(
    fixture: str, request: pytest.FixtureRequest, reference: dict[str, np.ndarray]
) -> None:
    path: Path = request.getfixturevalue(fixture)
    result = saetta.run(adl.analysis, path, chunk_size=6_000, progress=False)
    assert set(result) == set(reference)
    for name, expected in reference.items():
        h = result[name]
        lo, hi, _ = adl.HISTOGRAMS[name]
        assert h.axes[0].edges[0] == lo
        assert h.axes[0].edges[-1] == hi
        assert len(h.axes[0]) == 100
        np.testing.assert_array_equal(flow_values(result, name), expected, err_msg=name)
    # the sample must exercise every query, or the comparison proves little
    assert all(expected[1:-1].sum() > 100 for expected in reference.values())


@pytest.mark.parametrize("query", sorted(adl.QUERIES))
def test_each_query_alone(query: str, sample_root: Path, reference: dict[str, np.ndarray]) -> None:
    result = saetta.run(adl.QUERIES[query], sample_root, progress=False)
    assert all(name.startswith(query + "_") for name in result)
    for name in result:
        np.testing.assert_array_equal(flow_values(result, name), reference[name])


# --------------------------------------------------------------------------- flat fills


def th1_bin(x: float, lo: float, hi: float, nbins: int) -> int:
    """ROOT's TAxis::FindBin for a regular axis, in Python floats (double precision)."""
    if x < lo:
        return 0
    if not x < hi:
        return nbins + 1
    return 1 + int(nbins * (x - lo) / (hi - lo))


def th1_counts(values: Iterable[float], lo: float, hi: float, nbins: int = 100) -> np.ndarray:
    counts = np.zeros(nbins + 2)
    for x in values:
        counts[th1_bin(float(x), lo, hi, nbins)] += 1.0
    return counts


def edge_values(lo: float, hi: float, nbins: int = 100) -> np.ndarray:
    """Every bin edge, computed three ways, each with its float64 and float32 neighbours,
    and the values that are not numbers, zeros, the smallest and largest doubles."""
    width = hi - lo
    edges = np.concatenate(
        [
            lo + np.arange(nbins + 1) * (width / nbins),
            lo + np.arange(nbins + 1) * width / nbins,
            np.linspace(lo, hi, nbins + 1),
        ]
    )
    near = [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]
    as32 = edges.astype(np.float32)
    near += [as32, np.nextafter(as32, np.float32(-np.inf)), np.nextafter(as32, np.float32(np.inf))]
    special = [lo, hi, np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308, 3e38]
    return np.concatenate([np.asarray(v, dtype=np.float64) for v in near] + [np.array(special)])


def as_float32(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # 1e308 as float32 is inf
        return values.astype(np.float32)


RANGES = sorted({(lo, hi) for lo, hi, _ in adl.HISTOGRAMS.values()} | {(0.1, 0.7), (-3.0, 1e-3)})


@pytest.mark.parametrize(("lo", "hi"), RANGES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_fill_puts_edges_and_non_numbers_where_th1_does(
    lo: float, hi: float, dtype: type[np.generic]
) -> None:
    values = {
        np.float64: edge_values(lo, hi),
        np.float32: as_float32(edge_values(lo, hi)),  # the file's precision: each value rounded
        np.int32: np.arange(-5, 300, dtype=np.int32),  # converted exactly
    }[dtype]
    counts = np.zeros(102)
    kernels.fill(counts, values, lo, hi)
    np.testing.assert_array_equal(counts, th1_counts(values, lo, hi))
    # the compiled rule inside q5-q8 agrees value by value (find_bin is the numba kernel)
    assert [kernels.find_bin(x, lo, hi, 100) for x in values] == [
        th1_bin(float(x), lo, hi, 100) for x in values
    ]


def test_fill_adds_to_counts_over_many_blocks_and_of_nothing() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(100.0, 80.0, 300_001)  # several of fill's blocks, the last one short
    values[::97] = np.nan
    values[::101] = 200.0
    values[::103] = 0.0
    counts = np.full(102, 7.0)
    kernels.fill(counts, values[::-1], 0.0, 200.0)  # a view with negative strides
    np.testing.assert_array_equal(counts, 7.0 + th1_counts(values, 0.0, 200.0))
    kernels.fill(counts, np.array([], dtype=np.float32), 0.0, 200.0)
    np.testing.assert_array_equal(counts, 7.0 + th1_counts(values, 0.0, 200.0))
    empty = np.zeros(102)
    kernels.fill(empty, np.empty(0), 0.0, 200.0)
    assert not empty.any()


def test_weighted_fill_sums_weights_and_squares_per_th1_bin() -> None:
    rng = np.random.default_rng(6)
    values = np.concatenate([edge_values(110.0, 550.0), rng.uniform(0.0, 700.0, 200_000)])
    weights = rng.normal(1.0, 2.0, len(values))
    sumw, sumw2 = np.full(13, 1.5), np.zeros(13)
    kernels.fill(sumw, values, 110.0, 550.0, weights, sumw2)
    want, want2 = np.full(13, 1.5), np.zeros(13)
    for x, w in zip(values.tolist(), weights.tolist(), strict=True):  # one value at a time
        b = th1_bin(x, 110.0, 550.0, 11)
        want[b] += w
        want2[b] += w * w
    np.testing.assert_allclose(sumw, want, rtol=1e-12)
    np.testing.assert_allclose(sumw2, want2, rtol=1e-12)
    with pytest.raises(ValueError, match="3 weights for 4 values"):
        kernels.fill(np.zeros(13), np.ones(4), 0.0, 1.0, np.ones(3))


@pytest.fixture(scope="module")
def flat_edges_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MET and jet pT on every edge of q1's and q2's axes, and not numbers; jets of |eta| on
    and around 1, events of 0 to 3 jets above and on 40 GeV (q3's and q4's cuts)."""
    import awkward as ak
    import uproot

    met = as_float32(edge_values(0.0, 200.0))
    pt = as_float32(edge_values(15.0, 60.0))
    pt = np.concatenate([pt, [40.0, np.nextafter(np.float32(40.0), np.float32(99))] * 20])
    eta = np.resize(
        np.array([0.0, 1.0, -1.0, 0.99999994, -1.0000001, np.nan, np.inf, 0.5]), len(pt)
    )
    # jets per event cycle 0, 1, 2, 3 until the jets run out; the rest have none
    counts = np.resize(np.array([0, 1, 2, 3]), len(met))
    cut = np.searchsorted(np.cumsum(counts), len(pt), side="right")
    counts[cut:] = 0
    pt, eta = pt[: counts.sum()], eta[: counts.sum()]
    jets = ak.zip(
        {
            "pt": ak.unflatten(pt.astype(np.float32), counts),
            "eta": ak.unflatten(eta.astype(np.float32), counts),
        }
    )
    path = tmp_path_factory.mktemp("flat") / "flat_edges.root"
    data = {"MET_pt": met, "MET_phi": np.zeros_like(met), "Jet": jets}
    with uproot.recreate(path) as f:  # a TTree of NanoAOD's layout: nJet, Jet_pt, Jet_eta
        tree = f.mktree(
            "Events", {"MET_pt": met.dtype, "MET_phi": met.dtype, "Jet": jets.type.content}
        )
        tree.extend(data)
    return path


def test_flat_queries_fill_edges_as_th1(flat_edges_root: Path) -> None:
    import uproot

    arrays = uproot.open(flat_edges_root)["Events"].arrays(["MET_pt", "Jet_pt", "Jet_eta"])
    met = [float(x) for x in arrays["MET_pt"]]
    jets = [
        list(zip(map(float, pts), map(float, etas), strict=True))
        for pts, etas in zip(arrays["Jet_pt"].tolist(), arrays["Jet_eta"].tolist(), strict=True)
    ]
    expected = {
        "q1_met": th1_counts(met, 0.0, 200.0),
        "q2_jet_pt": th1_counts([pt for ev in jets for pt, _ in ev], 15.0, 60.0),
        "q3_jet_pt": th1_counts([pt for ev in jets for pt, eta in ev if abs(eta) < 1], 15.0, 60.0),
        "q4_met": th1_counts(
            [m for m, ev in zip(met, jets, strict=True) if sum(pt > 40 for pt, _ in ev) >= 2],
            0.0,
            200.0,
        ),
    }
    assert expected["q4_met"].sum() > 5  # the file does exercise q4's cut
    for query in ("q1", "q2", "q3", "q4"):
        result = saetta.run(adl.QUERIES[query], flat_edges_root, chunk_size=50, progress=False)
        for name in result:
            np.testing.assert_array_equal(flow_values(result, name), expected[name], name)


# --------------------------------------------------------------------------- numba on demand

NUMBA_AFTER = """
import sys
import saetta
from saetta.analyses import adl

assert "numba" not in sys.modules, "importing the ADL queries imported numba"
for query in sys.argv[2:]:
    saetta.run(adl.QUERIES[query], sys.argv[1], run_dir=False, progress=False)
print("numba" in sys.modules)
"""


@pytest.mark.parametrize(
    ("queries", "imported"), [(["q1", "q2", "q3", "q4"], "False"), (["q1", "q5"], "True")]
)
def test_numba_is_imported_only_for_a_compiled_kernel(
    queries: list[str], imported: str, sample_root: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NUMBA_AFTER, str(sample_root), *queries],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == imported  # q5 is the positive control


USER_KERNEL = """
from __future__ import annotations

import hist
import numpy as np

from saetta.kernels import find_bin, jit


@jit
def _met_of_jetty(counts, offsets, met):
    for e in range(len(met)):
        if offsets[e + 1] - offsets[e] >= 3:
            counts[find_bin(met[e], 0.0, 200.0, len(counts) - 2)] += 1.0


def analysis(events):
    import awkward as ak

    counts = np.zeros(102)
    offsets = np.asarray(ak.to_layout(events.Jet.pt).offsets.data)
    _met_of_jetty(counts, offsets, np.asarray(events.MET.pt))
    h = hist.Hist(hist.axis.Regular(100, 0.0, 200.0))
    h.view(flow=True)[...] = counts
    return {"met": h}
"""


def test_kernels_reach_worker_processes(tmp_path: Path, small_files: list[Path]) -> None:
    import cloudpickle
    import uproot

    from saetta.analyses import load_analysis

    # saetta's own kernels travel by name: the worker's module has them (and numba's cache)
    assert cloudpickle.loads(cloudpickle.dumps(adl._dimuon)) is adl._dimuon
    assert cloudpickle.loads(cloudpickle.dumps(kernels.find_bin)) is kernels.find_bin
    # a kernel in a file of the user's goes by value, and still calls saetta's by name
    (tmp_path / "jetty.py").write_text(USER_KERNEL)
    user = load_analysis(f"{tmp_path / 'jetty.py'}:analysis")
    kernel = sys.modules[user.__module__]._met_of_jetty
    sent = cloudpickle.loads(cloudpickle.dumps(kernel))
    assert sent is not kernel
    assert sent.py_func.__globals__["find_bin"] is kernels.find_bin
    expected = np.zeros(102)
    for path in small_files:
        tree = uproot.open(path)["Events"]
        columns = tree["MET_pt"].array(library="np"), tree["nJet"].array(library="np")
        for met, n in zip(*columns, strict=True):
            expected[th1_bin(float(met), 0.0, 200.0, 100)] += n >= 3
    assert expected.sum() > 10
    # twice: the second run's fresh workers must not trip over anything the first left
    # (a numba cache of a kernel whose module they cannot import)
    runs = [(user, "processes:2"), (user, "processes:2"), (user, "local"), (adl.q5, "processes:2")]
    for query, executor in runs:
        result = saetta.run(
            query, small_files, executor=executor, chunk_size=100, run_dir=False, progress=False
        )
        if query is user:
            np.testing.assert_array_equal(flow_values(result, "met"), expected, executor)
        else:
            local = saetta.run(query, small_files, run_dir=False, progress=False)
            np.testing.assert_array_equal(
                flow_values(result, "q5_met"), flow_values(local, "q5_met")
            )
