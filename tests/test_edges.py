"""Hand-made edge events through saetta itself, against the plain ADL reference.

Every value below sits on something: a selection cut (jet pT exactly 40, |eta|
exactly 1, a dimuon mass exactly 60 or 120, lepton pT exactly 10, jet pT exactly
30, a scalar sum exactly 200), a histogram edge (MET 0, 2, 100, 200, just below
200; jet pT 15, 24, 60; b-tag 0, 1, -1), or is not a number at all (NaN, +inf,
-inf, negative). Events without any object, a file of such events only, and a
file of no events at all go through saetta too.

The files are written here with uproot and pyarrow in exactly the layout
``saetta.datagen`` writes (checked against a generated file), so they are what
saetta meets in practice. Each ADL histogram saetta fills from them is compared
bin for bin, under- and overflow included, with ``adl_reference`` (per-event
Python that shares no code with saetta), which reads the same files itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import adl_reference as ref
import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
from conftest import flow_values

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod

NAN, INF = math.nan, math.inf

# --------------------------------------------------------------------------- values


def below(x: float) -> float:
    """The float32 just below ``x``."""
    return float(np.nextafter(np.float32(x), np.float32(-np.inf)))


def above(x: float) -> float:
    """The float32 just above ``x``."""
    return float(np.nextafter(np.float32(x), np.float32(np.inf)))


PI32 = below(math.pi)  # datagen's phi range is [-PI32, PI32]

Obj = tuple[float, float, float, float, float]


def jet(pt: float, eta: float = 0.0, phi: float = 0.0, mass: float = 5.0, btag: float = 0.5) -> Obj:
    return (pt, eta, phi, mass, btag)


def lepton(pt: float, eta: float, phi: float, mass: float, charge: int) -> Obj:
    return (pt, eta, phi, mass, charge)


def event(
    met: float = 50.0,
    met_phi: float = 0.0,
    jets: Sequence[Obj] = (),
    muons: Sequence[Obj] = (),
    electrons: Sequence[Obj] = (),
) -> dict[str, Any]:
    return {"met": met, "met_phi": met_phi, "Jet": jets, "Muon": muons, "Electron": electrons}


# Three muons: (50, +x, +) and (40, -x, -) are the pair nearest the Z; the third,
# 30 GeV along +x, is the lepton q8 takes: with MET along +x its mT is exactly 0.
Q8_MUONS = [lepton(50.0, 0.0, 0.0, 0.0, 1), lepton(40.0, 0.0, PI32, 0.0, -1)]
Q8_THIRD = lepton(30.0, 0.0, 0.0, 0.0, -1)

EDGE_EVENTS: list[dict[str, Any]] = [
    # 0-1: no objects; MET on the low edge of bin 1, and on the edge of bins 1 and 2.
    event(met=0.0),
    event(met=2.0, met_phi=-PI32),
    # 2: MET on the upper edge (overflow); jets exactly on the cuts: pT 40 is not > 40
    # (q4 not filled: one hard jet), |eta| = 1 is not central (q3); pT 60 is q2's overflow.
    event(met=200.0, jets=[jet(60.0, 1.0), jet(40.0, -1.0, 1.0), jet(40.0, 0.0, 2.0)]),
    # 3: just inside every cut: two jets of pT just above 40, |eta| just below 1; MET just
    # below 200 (bin 100).
    event(
        met=below(200.0), jets=[jet(above(40.0), below(1.0)), jet(above(40.0), -below(1.0), 2.0)]
    ),
    # 4: negative MET (underflow); jet pT on q2's range edges, on a bin edge (24 starts
    # bin 21), just below them, and negative.
    event(
        met=-1.0,
        jets=[
            jet(60.0, 0.5),
            jet(below(60.0), 0.5, 0.5),
            jet(24.0, -0.0, 1.0),
            jet(15.0, 0.0, 1.5),
            jet(below(15.0), 0.0, 2.0),
            jet(-5.0, 0.0, 2.5),
        ],
    ),
    # 5: NaN MET in an event q4 selects: overflow in q1 and q4.
    event(met=NAN, jets=[jet(50.0), jet(45.0, 0.3, 2.0)]),
    # 6: +inf MET and a +inf jet pT (q2 overflow, a hard jet for q4, q7 sum +inf).
    event(met=INF, jets=[jet(INF), jet(50.0, 0.5, 2.0)]),
    # 7: -inf MET (underflow); jets of NaN and -inf pT, of NaN and +-inf eta: no trijet
    # has a mass.
    event(
        met=-INF,
        jets=[jet(NAN), jet(-INF, 0.0, 1.0), jet(30.0, NAN, 2.0), jet(41.0, INF), jet(42.0, -INF)],
    ),
    # 8-10: collinear muon pairs of mass exactly 60 and 120 (outside q5's window) and 90.
    event(met=10.0, muons=[lepton(40.0, 0.0, 0.0, 30.0, 1), lepton(40.0, 0.0, 0.0, 30.0, -1)]),
    event(met=20.0, muons=[lepton(80.0, 0.0, 0.0, 60.0, 1), lepton(80.0, 0.0, 0.0, 60.0, -1)]),
    event(met=100.0, muons=[lepton(60.0, 0.0, 0.0, 45.0, -1), lepton(60.0, 0.0, 0.0, 45.0, 1)]),
    # 11: q5 with a NaN muon pT: no mass, no pair.
    event(met=30.0, muons=[lepton(NAN, 0.0, 0.0, 0.1, 1), lepton(40.0, 0.0, PI32, 0.1, -1)]),
    # 12-13: trijet b-tags on q6_trijet_btag's edges: max exactly 1 (overflow); all -1
    # (NanoAOD's "undefined": underflow).
    event(
        jets=[
            jet(50.0, 0.0, 0.0, 5.0, 1.0),
            jet(45.0, 0.5, 2.0, 5.0, 0.0),
            jet(40.0, -0.5, -2.0, 5.0, -1.0),
        ]
    ),
    event(
        jets=[
            jet(50.0, 0.0, 0.0, 5.0, -1.0),
            jet(45.0, 0.5, 2.0, 5.0, -1.0),
            jet(40.0, -0.5, -2.0, 5.0, -1.0),
        ]
    ),
    # 14: a NaN b-tag in the chosen trijet.
    event(
        jets=[jet(50.0, 0.0, 0.0, 5.0, NAN), jet(45.0, 0.5, 2.0, 5.0, 0.25), jet(40.0, -0.5, -2.0)]
    ),
    # 15: three jets, one of NaN pT: the only trijet has no mass, so q6 has nothing to fill.
    event(jets=[jet(NAN), jet(50.0, 0.5, 2.0), jet(45.0, -0.5, -2.0)]),
    # 16: four jets, one of NaN eta: only the trijet without it has a mass.
    event(jets=[jet(70.0, NAN), jet(50.0, 0.5, 2.0), jet(45.0, -0.5, -2.0), jet(35.0, 1.5, 0.5)]),
    # 17: jets 0 and 3 alike but for b-tag: trijets (0,1,2) and (1,2,3) tie; the first wins.
    event(
        jets=[
            jet(50.0, 0.0, 0.0, 5.0, 0.25),
            jet(45.0, 0.5, 2.0, 5.0, 0.125),
            jet(40.0, -0.5, -2.0, 5.0, 0.0625),
            jet(50.0, 0.0, 0.0, 5.0, 0.75),
        ]
    ),
    # 18: q7 cuts: a jet of pT exactly 30 (not counted) and one just above; a muon of pT
    # exactly 10 (not a light lepton) on top of a jet, an electron just above 10 on another.
    event(
        jets=[
            jet(30.0, 0.0, 0.0),
            jet(above(30.0), 1.0, 1.0),
            jet(50.0, -1.0, -1.0),
            jet(60.0, 2.0, 2.5),
        ],
        muons=[lepton(10.0, 1.0, 1.0, 0.1, -1)],
        electrons=[lepton(above(10.0), -1.0, -1.0, 0.0, 1)],
    ),
    # 19: dR just above 0.4 (float32 0.4 is above it: kept) and just below (removed).
    event(
        jets=[jet(50.0, float(np.float32(0.4)), 0.0), jet(45.0, below(0.4), 3.0)],
        muons=[lepton(20.0, 0.0, 0.0, 0.1, 1), lepton(20.0, 0.0, 3.0, 0.1, -1)],
    ),
    # 20: clean jets summing to exactly 200: q7's overflow.
    event(jets=[jet(120.0, 0.0, 0.0), jet(80.0, 1.0, 2.0)]),
    # 21: q8 with mT exactly 0 (the third lepton along MET).
    event(met=100.0, muons=[*Q8_MUONS, Q8_THIRD]),
    # 22-23: the same with NaN MET, and +inf MET (inf * 0: NaN): q8 overflow.
    event(met=NAN, muons=[*Q8_MUONS, Q8_THIRD]),
    event(met=INF, muons=[*Q8_MUONS, Q8_THIRD]),
    # 24: +inf MET at right angles: mT +inf.
    event(met=INF, met_phi=1.5, muons=[*Q8_MUONS, Q8_THIRD]),
    # 25: the first lepton outside the pair has NaN pT: no pT is greater, so it is taken
    # (not the 20 GeV one after it).
    event(
        met=100.0,
        muons=Q8_MUONS,
        electrons=[lepton(NAN, 0.0, 0.0, 0.0, 1), lepton(20.0, 0.0, PI32, 0.0, 1)],
    ),
    # 26: the only opposite-charge pairs have no mass: no pair, no q8.
    event(
        met=100.0,
        muons=[lepton(NAN, 0.0, 0.0, 0.0, 1), lepton(40.0, 0.0, PI32, 0.0, -1), Q8_THIRD],
    ),
    # 27: electrons only (no jets, no muons): q8 from an electron pair.
    event(
        met=60.0,
        met_phi=PI32,
        electrons=[
            lepton(45.0, 0.0, 0.0, 0.0, -1),
            lepton(44.0, 0.0, PI32, 0.0, 1),
            lepton(20.0, 1.0, 0.0, 0.0, 1),
        ],
    ),
    # 28: a jet exactly dR = 0.4 from a muon (0.2^2 + 0.3464^2, all float32, rounds to
    # 0.16 and its square root to 0.4): not within dR < 0.4, so it counts in q7.
    event(
        jets=[jet(50.0, 0.20000006258487701, 0.3464101254940033)],
        muons=[lepton(20.0, 0.0, 1.1363093799232615e-10, 0.1, 1)],
    ),
    # 29-32: more MET on bin edges, -0.0 among them.
    event(met=-0.0),
    event(met=4.0),
    event(met=150.0),
    event(met=198.0),
]

# Events with no jets, muons or electrons at all: every jagged column of the file is empty.
NO_OBJECT_EVENTS = [event(met=0.0), event(met=NAN), event(met=199.0)]

# --------------------------------------------------------------------------- writing

F32, I32 = np.dtype(np.float32), np.dtype(np.int32)
SCALARS: dict[str, np.dtype[Any]] = {
    "run": np.dtype(np.uint32),
    "luminosityBlock": np.dtype(np.uint32),
    "event": np.dtype(np.uint64),
    "genWeight": F32,
    "MET_pt": F32,
    "MET_phi": F32,
    "MET_sumEt": F32,
    "PV_npvs": I32,
}
LEPTON = {"pt": F32, "eta": F32, "phi": F32, "mass": F32, "charge": I32, "pfRelIso03_all": F32}
COLLECTIONS: dict[str, dict[str, np.dtype[Any]]] = {
    "Jet": {"pt": F32, "eta": F32, "phi": F32, "mass": F32, "btag": F32, "jetId": I32},
    "Muon": LEPTON,
    "Electron": LEPTON,
}
# Where each field of an (pt, eta, phi, mass, btag/charge) tuple goes; the rest are constant.
TUPLE_FIELDS = {"pt": 0, "eta": 1, "phi": 2, "mass": 3, "btag": 4, "charge": 4}
CONSTANT = {"jetId": 6, "pfRelIso03_all": 0.05}


def columns(events: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Every branch of the generated layout, flat: jagged ones as their contents, plus counts."""
    n = len(events)
    out: dict[str, np.ndarray] = {
        "run": np.ones(n, np.uint32),
        "luminosityBlock": np.ones(n, np.uint32),
        "event": np.arange(1, n + 1, dtype=np.uint64),
        "genWeight": np.ones(n, np.float32),
        "MET_pt": np.array([ev["met"] for ev in events], np.float32),
        "MET_phi": np.array([ev["met_phi"] for ev in events], np.float32),
        "MET_sumEt": np.full(n, 500.0, np.float32),
        "PV_npvs": np.full(n, 30, np.int32),
    }
    for name, fields in COLLECTIONS.items():
        objects = [obj for ev in events for obj in ev[name]]
        out["n" + name] = np.array([len(ev[name]) for ev in events], np.int32)
        for field, dtype in fields.items():
            if field in TUPLE_FIELDS:
                values = [obj[TUPLE_FIELDS[field]] for obj in objects]
            else:
                values = [CONSTANT[field]] * len(objects)
            out[f"{name}_{field}"] = np.array(values, dtype=dtype)
    return out


def write_root(path: Path, events: list[dict[str, Any]]) -> Path:
    flat = columns(events)
    types: dict[str, Any] = dict(SCALARS)
    data: dict[str, Any] = {name: flat[name] for name in SCALARS}
    for name, fields in COLLECTIONS.items():
        counts = flat["n" + name]
        record = ak.zip(
            {f: ak.unflatten(flat[f"{name}_{f}"], counts) for f in fields}, depth_limit=None
        )
        data[name] = record
        types[name] = record.type.content
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", types, counter_name=lambda name: f"n{name}")
        if events:
            tree.extend(data)
    return path


def write_parquet(path: Path, events: list[dict[str, Any]]) -> Path:
    flat = columns(events)
    fields = [pa.field(n, pa.from_numpy_dtype(dt), nullable=False) for n, dt in SCALARS.items()]
    arrays = [pa.array(flat[n]) for n in SCALARS]
    for name, members in COLLECTIONS.items():
        counts = flat["n" + name]
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        fields.append(pa.field("n" + name, pa.int32(), nullable=False))
        arrays.append(pa.array(counts))
        for member, dtype in members.items():
            kind = pa.list_(pa.field("item", pa.from_numpy_dtype(dtype), nullable=False))
            fields.append(pa.field(f"{name}_{member}", kind, nullable=False))
            arrays.append(
                pa.ListArray.from_arrays(offsets, pa.array(flat[f"{name}_{member}"]), kind)
            )
    schema = pa.schema(fields)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)
    return path


WRITERS: dict[str, Callable[[Path, list[dict[str, Any]]], Path]] = {
    "root": write_root,
    "parquet": write_parquet,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(kind, format) -> path, for kinds 'edges', 'no_objects', 'empty' (0 events)."""
    folder = tmp_path_factory.mktemp("edges")
    made = {}
    for kind, events in (("edges", EDGE_EVENTS), ("no_objects", NO_OBJECT_EVENTS), ("empty", [])):
        for fmt, write in WRITERS.items():
            made[kind, fmt] = write(folder / f"{kind}.{fmt}", events)
    return made


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("generated")
    return {fmt: generate_nanoaod(folder / f"few.{fmt}", 5, seed=3) for fmt in WRITERS}


def check_histograms(result: Any, expected: dict[str, np.ndarray]) -> None:
    """All nine histograms: binning, and every bin with under- and overflow."""
    assert set(result) == set(ref.HISTOGRAMS)
    for name, (lo, hi) in ref.HISTOGRAMS.items():
        axis = result[name].axes[0]
        assert (len(axis), axis.edges[0], axis.edges[-1]) == (100, lo, hi), name
        np.testing.assert_array_equal(flow_values(result, name), expected[name], err_msg=name)


# --------------------------------------------------------------------------- the files


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_hand_made_files_have_the_generated_layout(
    fmt: str, files: dict[tuple[str, str], Path], generated: dict[str, Path]
) -> None:
    def layout(path: Path) -> list[tuple[str, str]]:
        if fmt == "parquet":
            schema = pq.read_schema(path)
            return [(f.name, str(f.type) + str(f.nullable)) for f in schema]
        with uproot.open(path) as f:
            tree = f["Events"]
            return [(b.name, b.typename) for b in tree.branches]

    for kind in ("edges", "no_objects", "empty"):
        assert layout(files[kind, fmt]) == layout(generated[fmt]), kind


def filled(h: np.ndarray) -> dict[int, float]:
    return {int(i): float(h[i]) for i in np.flatnonzero(h)}


def test_edges_land_where_intended(files: dict[tuple[str, str], Path]) -> None:
    """The reference puts the edge values where the ADL definitions say (else the
    comparison with saetta below would prove less than it seems)."""
    h = ref.reference_histograms(files["edges", "root"])
    from_parquet = ref.reference_histograms(files["edges", "parquet"])
    assert all(np.array_equal(h[name], from_parquet[name]) for name in ref.HISTOGRAMS)
    # q1: -1 and -inf below; 0 and -0 in bin 1, 2 in bin 2, 4 in bin 3; MET 100 (x4) in
    # bin 51; just below 200 and 198 in bin 100; 200, NaN (x2) and +inf (x3) above.
    assert filled(h["q1_met"]) == {
        0: 2, 1: 2, 2: 1, 3: 1, 6: 1, 11: 1, 16: 1, 26: 10, 31: 1, 51: 4, 76: 1, 100: 2, 101: 6
    }  # fmt: skip
    # q2: just below 15, -5 and -inf below; 15 in bin 1; 24 in bin 21; just below 60 in 100.
    assert filled(h["q2_jet_pt"])[0] == 3
    assert (h["q2_jet_pt"][1], h["q2_jet_pt"][21], h["q2_jet_pt"][100]) == (1, 1, 1)
    # q3: of the 40 GeV jets, the one at eta = -1 is not central (just below 1 is).
    assert h["q2_jet_pt"][56] - h["q3_jet_pt"][56] == 1
    # q4: pT = 40 is not > 40 (event 2 is out); just above 40 with MET just below 200 is
    # in bin 100; NaN and +inf MET above, -1 and -inf below.
    assert filled(h["q4_met"]) == {0: 2, 26: 9, 100: 1, 101: 2}
    # q5: masses exactly 60 (MET 10, bin 6) and 120 (MET 20, bin 11) are out, 90 is in.
    assert filled(h["q5_met"]) == {51: 3, 101: 3}
    # q6: 8 events with a trijet of a mass (not events 7 and 15); max b-tag exactly 1 and
    # NaN above, all -1 below, the first of two tied trijets (0.25) in bin 26.
    assert h["q6_trijet_pt"].sum() == 8
    assert filled(h["q6_trijet_btag"]) == {0: 1, 26: 1, 51: 4, 101: 2}
    # q7: sums exactly 200 (x2) and +inf above; 30 + 60 GeV with the 30 GeV jet out.
    assert h["q7_sum_pt"][101] == 3
    assert h["q7_sum_pt"][41] == 1  # just above 30, plus 60: the 50 under the electron out
    # 50 GeV at dR just above 0.4 (45 just below: removed), and 50 GeV at exactly 0.4.
    assert h["q7_sum_pt"][19] == 2
    # q8: mT exactly 0 in bin 1; NaN MET, +inf * 0, +inf and a NaN pT above (the 20 GeV
    # lepton after the NaN one would be bin 45); no pair: none.
    assert filled(h["q8_mt"]) == {1: 1, 35: 1, 101: 4}


@pytest.mark.parametrize("fmt", ["root", "parquet"])
@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_edges_through_run_match_reference(
    fmt: str, chunk_size: int | None, files: dict[tuple[str, str], Path]
) -> None:
    path = files["edges", fmt]
    result = saetta.run(adl.analysis, path, chunk_size=chunk_size, run_dir=False, progress=False)
    assert result.report.complete
    assert result.report.events_processed == len(EDGE_EVENTS)
    check_histograms(result, ref.reference_histograms(path))


@pytest.mark.parametrize("query", sorted(adl.QUERIES))
def test_each_query_alone_on_the_edges(query: str, files: dict[tuple[str, str], Path]) -> None:
    path = files["edges", "root"]
    expected = ref.reference_histograms(path)
    result = saetta.run(adl.QUERIES[query], path, run_dir=False, progress=False)
    assert result
    for name in result:
        np.testing.assert_array_equal(flow_values(result, name), expected[name], err_msg=name)


def run_cli(path: Path, out: Path) -> dict[str, Any]:
    from saetta.cli import main

    main(["run", "adl", str(path), "-o", str(out), "--no-progress"])
    document: dict[str, Any] = json.loads(out.read_text())
    report = json.loads(out.with_name(out.stem + ".report.json").read_text())
    assert report == document["report"]
    return document


def check_document(document: dict[str, Any], expected: dict[str, np.ndarray], events: int) -> None:
    assert document["complete"] is True
    assert document["report"]["events_total"] == events
    assert document["report"]["events_processed"] == events
    assert document["report"]["failures"] == []
    assert set(document["histograms"]) == set(ref.HISTOGRAMS)
    for name, (lo, hi) in ref.HISTOGRAMS.items():
        h = document["histograms"][name]
        (axis,) = h["axes"]
        assert (axis["type"], axis["bins"], axis["lo"], axis["hi"]) == ("regular", 100, lo, hi)
        np.testing.assert_array_equal(h["values"], expected[name], err_msg=name)
        np.testing.assert_array_equal(h["variances"], expected[name], err_msg=name)


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_edges_through_the_command_line_match_reference(
    fmt: str, files: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    path = files["edges", fmt]
    document = run_cli(path, tmp_path / "out.json")
    check_document(document, ref.reference_histograms(path), len(EDGE_EVENTS))


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_a_file_of_events_without_objects(fmt: str, files: dict[tuple[str, str], Path]) -> None:
    path = files["no_objects", fmt]
    expected = ref.reference_histograms(path)
    assert expected["q1_met"].sum() == 3.0
    assert all(expected[name].sum() == 0 for name in ref.HISTOGRAMS if name != "q1_met")
    for chunk_size in (None, 1):
        result = saetta.run(
            adl.analysis, path, chunk_size=chunk_size, run_dir=False, progress=False
        )
        assert result.report.events_processed == 3
        check_histograms(result, expected)


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_a_file_of_no_events_gives_empty_histograms_and_says_so(
    fmt: str, files: dict[tuple[str, str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = files["empty", fmt]
    expected = ref.reference_histograms(path)
    assert all(h.sum() == 0 for h in expected.values())
    result = saetta.run(adl.analysis, path, run_dir=False, progress=False)
    report = result.report
    assert report.complete
    assert (report.events_total, report.events_processed, report.events_missing) == (0, 0, 0)
    assert report.failures == ()
    check_histograms(result, expected)
    for query in adl.QUERIES.values():  # each query alone reads fewer columns
        alone = saetta.run(query, path, run_dir=False, progress=False)
        assert alone
        for name in alone:
            assert flow_values(alone, name).sum() == 0, name
    capsys.readouterr()
    document = run_cli(path, tmp_path / "out.json")
    shown = capsys.readouterr().out
    assert "0 of 0" in shown, shown
    check_document(document, expected, 0)


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_edges_empty_and_object_free_files_together(
    fmt: str, files: dict[tuple[str, str], Path]
) -> None:
    paths = [files[kind, fmt] for kind in ("empty", "edges", "no_objects")]
    parts = [ref.reference_histograms(p) for p in paths]
    expected = {name: sum(p[name] for p in parts) for name in ref.HISTOGRAMS}
    for executor in ("local", "processes:2"):
        result = saetta.run(
            adl.analysis, paths, executor=executor, chunk_size=4, run_dir=False, progress=False
        )
        assert result.report.events_processed == len(EDGE_EVENTS) + len(NO_OBJECT_EVENTS)
        check_histograms(result, expected)
