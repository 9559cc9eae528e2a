"""saetta.output: every histogram to ROOT and JSON, read back against numpy; describe()."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
import pytest
import uproot

import saetta
from saetta.datagen import generate_nanoaod
from saetta.errors import FormatError, SaettaError
from saetta.execute.outcome import Result, RunReport
from saetta.output import describe, save, to_json

RNG = np.random.default_rng(13)
X = RNG.normal(0.0, 1.5, 2_000)
Y = RNG.normal(0.0, 1.0, 2_000)
Z = RNG.uniform(-1.2, 1.2, 2_000)
W = RNG.uniform(0.2, 3.0, 2_000)
LABELS = RNG.choice(["ee", "mumu", "emu"], 2_000)  # "emu" is not a category: overflow
EDGES = np.linspace(-3.0, 3.0, 13)
Y_EDGES = np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 2.5])


def _report(events: int = 2_000, processed: int | None = None) -> RunReport:
    done = events if processed is None else processed
    return RunReport(
        dataset="test", executor="local", chunk_size=events, files=1, units_total=1,
        units_done=1, events_total=events, events_processed=done, bytes_read=0,
        wall_seconds=1.0, unit_seconds=1.0, columns=(),
    )  # fmt: skip


def _flow(edges: np.ndarray) -> np.ndarray:
    """``edges`` with an underflow and an overflow bin, as numpy.histogram bins."""
    return np.concatenate([[-np.inf], edges, [np.inf]])


def _histograms() -> dict[str, Any]:
    int64 = hist.Hist.new.Reg(12, -3, 3, name="x", label="x [GeV]").Int64().fill(X)
    weight = hist.Hist.new.Reg(12, -3, 3, name="x").Weight().fill(X, weight=W)
    two = hist.Hist.new.Reg(12, -3, 3, name="x").Var(Y_EDGES, name="y").Weight()
    three = hist.Hist.new.Reg(12, -3, 3).Var(Y_EDGES).Reg(4, -1, 1).Double()
    category = hist.Hist.new.StrCat(["ee", "mumu"], name="channel").Reg(12, -3, 3).Int64()
    return {
        "int64": int64,
        "nested": {
            "weight": weight,
            "deeper": {"two": two.fill(X, Y, weight=W), "three": three.fill(X, Y, Z)},
        },
        "category": category.fill(LABELS, X),
        "n_events": 2_000,
        "sums": np.array([1.5, 2.5]),
    }


@pytest.fixture(scope="module")
def result() -> Result:
    return Result(_histograms(), _report())


@pytest.fixture(scope="module")
def root_file(result: Result, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(result, tmp_path_factory.mktemp("out") / "out.root")


def test_int64_and_weight_storages_read_back_as_numpy_counts(root_file: Path) -> None:
    counts = np.histogram(X, _flow(EDGES))[0]
    sumw = np.histogram(X, _flow(EDGES), weights=W)[0]
    sumw2 = np.histogram(X, _flow(EDGES), weights=W**2)[0]
    with uproot.open(root_file) as f:
        ints, weighted = f["int64"], f["nested/weight"]
        assert (ints.classname, weighted.classname) == ("TH1D", "TH1D")
        values, edges = ints.to_numpy(flow=True)
        np.testing.assert_array_equal(values, counts)
        np.testing.assert_array_equal(edges[1:-1], EDGES)
        np.testing.assert_array_equal(ints.variances(flow=True), counts)  # sqrt(N) errors
        assert ints.axis().member("fTitle") == "x [GeV]"
        assert ints.member("fEntries") == len(X)
        np.testing.assert_allclose(weighted.values(flow=True), sumw, rtol=1e-12)
        np.testing.assert_allclose(weighted.variances(flow=True), sumw2, rtol=1e-12)


def test_2d_and_3d_histograms_keep_every_bin_with_flow(root_file: Path) -> None:
    bins2 = [_flow(EDGES), _flow(Y_EDGES)]
    sumw = np.histogramdd((X, Y), bins2, weights=W)[0]
    sumw2 = np.histogramdd((X, Y), bins2, weights=W**2)[0]
    counts3 = np.histogramdd((X, Y, Z), [*bins2, _flow(np.linspace(-1, 1, 5))])[0]
    with uproot.open(root_file) as f:
        two, three = f["nested/deeper/two"], f["nested/deeper/three"]
        assert (two.classname, three.classname) == ("TH2D", "TH3D")
        np.testing.assert_allclose(two.values(flow=True), sumw, rtol=1e-12)
        np.testing.assert_allclose(two.variances(flow=True), sumw2, rtol=1e-12)
        np.testing.assert_array_equal(two.axis(1).edges(), Y_EDGES)
        np.testing.assert_array_equal(three.values(flow=True), counts3)
        assert three.values().sum() == counts3[1:-1, 1:-1, 1:-1].sum()


def test_category_axis_becomes_labelled_bins_and_keeps_the_overflow(root_file: Path) -> None:
    expected = np.zeros((4, 14))  # ROOT: underflow, ee, mumu, overflow (emu)
    for row, name in [(1, "ee"), (2, "mumu"), (3, "emu")]:
        expected[row] = np.histogram(X[name == LABELS], _flow(EDGES))[0]
    with uproot.open(root_file) as f:
        h = f["category"]
        assert h.classname == "TH2D"
        assert h.axis(0).labels() == ["ee", "mumu"]
        np.testing.assert_array_equal(h.values(flow=True), expected)
        assert h.member("fEntries") == len(X)  # nothing dropped, not even the flow bins


def test_nested_dicts_become_folders_and_the_record_holds_the_rest(root_file: Path) -> None:
    with uproot.open(root_file) as f:
        classes = f.classnames(cycle=False, recursive=True)
        document = json.loads(str(f["saetta"]))
    assert classes == {
        "int64": "TH1D",
        "nested": "TDirectory",
        "nested/weight": "TH1D",
        "nested/deeper": "TDirectory",
        "nested/deeper/two": "TH2D",
        "nested/deeper/three": "TH3D",
        "category": "TH2D",
        "saetta": "TObjString",
    }
    assert document["values"] == {"n_events": 2_000, "sums": [1.5, 2.5]}
    assert document["report"]["events_processed"] == 2_000
    assert document["complete"] is True


def test_mean_storage_becomes_a_tprofile(tmp_path: Path) -> None:
    edges = np.linspace(-3, 3, 7)
    h = hist.Hist.new.Reg(6, -3, 3, flow=False).Mean().fill(X, sample=Y)
    path = save(Result({"profile": h}, _report()), tmp_path / "p.root")
    inside = (edges[0] <= X) & (edges[-1] > X)
    index = np.digitize(X[inside], edges) - 1
    counts = np.bincount(index, minlength=6)
    means = np.bincount(index, weights=Y[inside], minlength=6) / counts
    with uproot.open(path) as f:
        profile = f["profile"]
        assert profile.classname == "TProfile"
        np.testing.assert_allclose(profile.values(), means, rtol=1e-12)
        np.testing.assert_array_equal(profile.counts(flow=True)[1:-1], counts)


@pytest.mark.parametrize(
    ("content", "key", "reason"),
    [
        (
            {"fine": "1d", "deep": {"m": hist.Hist.new.Reg(2, 0, 1).Reg(2, 0, 1).Mean()}},
            "deep/m",
            "2-D mean profile",
        ),
        ({"h4": hist.Hist.new.Reg(2, 0, 1).Reg(2, 0, 1).Reg(2, 0, 1).Reg(2, 0, 1).Double()},
         "h4", "4 axes"),
        ({"a": "1d", "a/b": "1d"}, "a/b", "both a histogram and a folder"),
        ({"a/b": "1d", "a": {"b": "1d"}}, "a/b", "two histograms"),
        ({"saetta": "1d"}, "saetta", "saetta's own record"),
        ({"x//y": "1d"}, "x//y", "empty"),
    ],
    ids=["2d-mean", "4d", "folder-clash", "duplicate", "record-name", "empty-part"],
)  # fmt: skip
def test_unwritable_histograms_name_their_key_and_write_nothing(
    content: dict[str, Any], key: str, reason: str, tmp_path: Path
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return hist.Hist.new.Reg(3, 0, 1).Double() if value == "1d" else value

    target = tmp_path / "out" / "bad.root"
    with pytest.raises(SaettaError, match=rf"histogram {key!r} to ROOT: .*{reason}"):
        save(Result(fill(content), _report()), target)
    assert not target.parent.exists() or list(target.parent.iterdir()) == []
    good = save(Result({"h": fill("1d")}, _report()), target)  # positive control
    assert uproot.open(good)["h"].classname == "TH1D"


def test_json_round_trips_every_histogram(result: Result, tmp_path: Path) -> None:
    path = save(result, tmp_path / "out.json")
    document = json.loads(path.read_text())
    assert document == json.loads(json.dumps(to_json(result)))
    histograms = document["histograms"]
    assert set(histograms) == {
        "int64", "nested/weight", "nested/deeper/two", "nested/deeper/three", "category",
    }  # fmt: skip
    ints = histograms["int64"]
    assert ints["storage"] == "int64"
    assert ints["axes"] == [
        {"name": "x", "label": "x [GeV]", "type": "regular", "bins": 12, "lo": -3.0, "hi": 3.0}
    ]
    assert ints["values"] == np.histogram(X, _flow(EDGES))[0].tolist()
    two = histograms["nested/deeper/two"]
    assert two["storage"] == "weight"
    assert two["axes"][1]["edges"] == Y_EDGES.tolist()
    bins2 = [_flow(EDGES), _flow(Y_EDGES)]
    np.testing.assert_allclose(two["values"], np.histogramdd((X, Y), bins2, weights=W)[0])
    np.testing.assert_allclose(two["variances"], np.histogramdd((X, Y), bins2, weights=W**2)[0])
    category = histograms["category"]
    assert category["axes"][0] == {
        "name": "channel", "label": "channel", "type": "category",
        "categories": ["ee", "mumu"], "underflow": False,
    }  # fmt: skip
    rows = [np.histogram(X[n == LABELS], _flow(EDGES))[0] for n in ("ee", "mumu", "emu")]
    assert category["values"] == np.array(rows).tolist()  # no underflow row
    assert document["values"] == {"n_events": 2_000, "sums": [1.5, 2.5]}


def test_json_says_which_axes_lack_flow_bins(tmp_path: Path) -> None:
    h = (
        hist.Hist.new.Reg(4, 0, 4, underflow=False)
        .Mean()
        .fill([-1, 0.5, 0.5, 9], sample=[1, 2, 4, 8])
    )
    document = to_json(Result({"m": h}, _report()))["histograms"]["m"]
    assert document["axes"][0]["underflow"] is False
    assert "overflow" not in document["axes"][0]
    assert document["storage"] == "mean"
    assert document["values"] == [3.0, 0.0, 0.0, 0.0, 8.0]
    assert document["counts"] == [2.0, 0.0, 0.0, 0.0, 1.0]


def test_a_value_json_cannot_hold_is_named(tmp_path: Path) -> None:
    bad = Result({"fine": 1, "deep": {"thing": object()}}, _report())
    with pytest.raises(SaettaError, match=r"'deep/thing' \(object\)"):
        save(bad, tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".root", ".json"])
def test_concurrent_saves_to_one_path_both_succeed(suffix: str, tmp_path: Path) -> None:
    target = tmp_path / f"same{suffix}"
    results = [
        Result({"h": hist.Hist.new.Reg(10, -3, 3).Int64().fill(X[: 500 * (i + 1)])}, _report())
        for i in range(4)
    ]
    for _ in range(3):
        barrier = threading.Barrier(len(results))
        errors: list[Exception] = []

        def write(
            r: Result, barrier: threading.Barrier = barrier, errors: list[Any] = errors
        ) -> None:
            barrier.wait()
            try:
                save(r, target)
            except Exception as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(r,)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left
        summary = describe(target)
        totals = {float(r["h"].sum(flow=True)) for r in results}
        assert summary.histograms[0].sum_of_weights in totals  # one whole result won


def test_a_failed_write_leaves_no_temporary_file(result: Result, tmp_path: Path) -> None:
    occupied = tmp_path / "out.root"
    occupied.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(SaettaError, match=r"cannot write .*out\.root"):
        save(result, occupied)
    assert [p.name for p in tmp_path.iterdir()] == ["out.root"]
    assert occupied.is_dir()


# --------------------------------------------------------------------------- describe


def _analysis(events: Any) -> dict[str, Any]:
    met = hist.Hist.new.Reg(20, 0, 200, name="met", label="MET [GeV]").Weight()
    jets = hist.Hist.new.Integer(0, 10, name="njet").Reg(5, 0, 250, name="ht").Int64()
    return {
        "met": met.fill(events.MET.pt, weight=events.genWeight),
        "jets": {"n_vs_ht": jets.fill(ak.num(events.Jet), events.MET.pt)},
        "n": len(events),
    }


@pytest.fixture(scope="module")
def run_result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    data = generate_nanoaod(tmp_path_factory.mktemp("data") / "events.root", 500, seed=1)
    return saetta.run(_analysis, data, progress=False, run_dir=False)


@pytest.mark.parametrize("suffix", [".root", ".json"])
def test_describe_lists_the_histograms_of_a_saetta_output(
    suffix: str, run_result: Result, tmp_path: Path
) -> None:
    path = save(run_result, tmp_path / f"out{suffix}")
    summary = describe(path)
    assert summary.is_saetta
    assert summary.format == suffix[1:].upper()
    assert (summary.events_processed, summary.events_total, summary.complete) == (500, 500, True)
    found = {h.key: h for h in summary.histograms}
    assert set(found) == {"met", "jets/n_vs_ht"}
    met, jets = run_result["met"], run_result["jets"]["n_vs_ht"]
    assert found["met"].bins == (20,)
    assert found["jets/n_vs_ht"].bins == (10, 5)
    assert found["met"].sum_of_weights == pytest.approx(float(met.sum(flow=True).value))
    assert found["jets/n_vs_ht"].entries == 500 == found["jets/n_vs_ht"].sum_of_weights
    assert found["met"].kind == ("TH1D" if suffix == ".root" else "weight")
    text = str(summary)
    assert "500 of 500 events processed, complete" in text
    assert "jets/n_vs_ht" in text
    assert str(path) in text.splitlines()[0]
    assert np.isclose(float(np.sum(met.values(flow=True))), found["met"].sum_of_weights)
    assert jets.sum(flow=True) == 500


def test_describe_says_when_a_run_was_incomplete(tmp_path: Path) -> None:
    h = hist.Hist.new.Reg(2, 0, 1).Double()
    path = save(Result({"h": h}, _report(1_000, processed=600)), tmp_path / "part.json")
    summary = describe(path)
    assert (summary.events_processed, summary.complete) == (600, False)
    assert "600 of 1,000 events processed, INCOMPLETE" in str(summary)


def test_describe_a_root_file_saetta_did_not_write(tmp_path: Path) -> None:
    data = generate_nanoaod(tmp_path / "events.root", 50, seed=2)
    summary = describe(data)
    assert not summary.is_saetta
    assert summary.histograms == ()
    assert "not written by saetta" in str(summary)


def _truncated(tmp_path: Path, root_file: Path) -> Path:
    with uproot.open(root_file) as f:  # cut the file in the middle of one histogram
        key = f.key("nested/deeper/three")
        cut = key.data_cursor.index + key.data_compressed_bytes // 2
    out = tmp_path / "cut.root"
    out.write_bytes(root_file.read_bytes()[:cut])
    return out


def _bad_record(tmp_path: Path) -> Path:
    with uproot.recreate(tmp_path / "record.root") as f:
        f["saetta"] = "{not json"
    return tmp_path / "record.root"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t, r: t / "x.root", "cannot read"),
        (lambda t, r: _write(t / "noise.root", bytes(range(256)) * 8), "cannot read"),
        (lambda t, r: _write(t / "pickle.root", b"\x80\x04\x95 cos\nsystem\n."), "cannot read"),
        (_truncated, "cannot read"),
        (lambda t, r: _bad_record(t), "bad JSON"),
        (lambda t, r: _write(t / "a.json", b"{"), "bad JSON"),
        (lambda t, r: _write(t / "b.json", b"\xff\xfe"), "not a saetta"),
        (lambda t, r: _write(t / "c.json", b"[1, 2]"), "not a saetta output"),
        (lambda t, r: _write(t / "d.json", b"[" * 100_000), "bad JSON"),
        (lambda t, r: _write(t / "e.json", _doc({"h": {"axes": [], "values": [1]}})), "'h'"),
        (
            lambda t, r: _write(
                t / "f.json",
                _doc({"h": {"axes": [{"type": "regular", "bins": 3}], "values": [1, 2]}}),
            ),
            "shape",
        ),
        (lambda t, r: _write(t / "g.json", _doc({"h": {"axes": [{"type": "?"}]}})), "'h'"),
    ],
    ids=[
        "missing", "noise", "pickle", "truncated", "bad-record", "bad-json", "not-utf8",
        "not-a-document", "deep-nesting", "values-vs-axes", "short-values", "axis-type",
    ],
)  # fmt: skip
def test_describe_a_malformed_file_raises_one_line_naming_it(
    make: Any, message: str, root_file: Path, tmp_path: Path
) -> None:
    path = make(tmp_path, root_file)
    with pytest.raises(FormatError, match=message) as info:
        describe(path)
    text = str(info.value)
    assert str(path) in text
    assert "\n" not in text
    assert info.value.path == str(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _doc(histograms: dict[str, Any]) -> bytes:
    report = {"events_processed": 1, "events_total": 1}
    document = {"saetta_version": "0", "complete": True, "report": report}
    return json.dumps(document | {"histograms": histograms}).encode()
