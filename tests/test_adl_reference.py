"""Hand-computed cases that pin the plain ADL reference implementation itself."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import adl_reference as ref
import numpy as np
import pytest

PI = math.pi


def make_event(
    met: float = 50.0,
    met_phi: float = 0.0,
    jets: Sequence[tuple[float, ...]] = (),
    muons: Sequence[tuple[float, ...]] = (),
    electrons: Sequence[tuple[float, ...]] = (),
) -> dict[str, Any]:
    """jets: (pt, eta, phi, mass, btag); leptons: (pt, eta, phi, mass, charge)."""
    ev: dict[str, Any] = {"MET_pt": met, "MET_phi": met_phi}
    for name, objects in (("Jet", jets), ("Muon", muons), ("Electron", electrons)):
        ev["n" + name] = len(objects)
        for k, field in enumerate(ref.COLLECTIONS[name]):
            ev[name + "_" + field] = [obj[k] for obj in objects]
    return ev


def filled(events: list[dict[str, Any]], name: str) -> dict[int, float]:
    """The non-empty bins of one histogram, as {bin: count}."""
    h = ref.reference_histograms(events)[name]
    assert h.shape == (102,)
    assert h.dtype == np.float64
    return {int(i): float(h[i]) for i in np.flatnonzero(h)}


def test_histogram_definitions() -> None:
    assert len(ref.HISTOGRAMS) == 9
    assert ref.HISTOGRAMS["q6_trijet_btag"] == (0.0, 1.0)
    assert ref.HISTOGRAMS["q7_sum_pt"] == (15.0, 200.0)


def test_find_bin_edges() -> None:
    assert ref.find_bin(0.0, 0.0, 200.0) == 1
    assert ref.find_bin(math.nextafter(0.0, -1.0), 0.0, 200.0) == 0
    assert ref.find_bin(15.0, 15.0, 60.0) == 1
    assert ref.find_bin(math.nextafter(15.0, 0.0), 15.0, 60.0) == 0
    assert ref.find_bin(200.0, 0.0, 200.0) == 101
    assert ref.find_bin(1e9, 0.0, 200.0) == 101
    assert ref.find_bin(math.nan, 0.0, 200.0) == 101
    assert ref.find_bin(math.inf, 0.0, 200.0) == 101
    assert ref.find_bin(-math.inf, 0.0, 200.0) == 0
    assert ref.find_bin(1.999, 0.0, 200.0) == 1
    assert ref.find_bin(2.0, 0.0, 200.0) == 2
    assert ref.find_bin(199.9, 0.0, 200.0) == 100
    assert ref.find_bin(0.5, 0.0, 1.0, nbins=4) == 3


def test_delta_phi_wraps_across_pi() -> None:
    assert ref.delta_phi(3.0, -3.0) == pytest.approx(6.0 - 2 * PI)
    assert ref.delta_phi(-3.0, 3.0) == pytest.approx(2 * PI - 6.0)
    assert ref.delta_phi(1.0, -1.0) == pytest.approx(2.0)
    assert ref.delta_r(0.3, 3.1, 0.0, -3.1) == pytest.approx(math.hypot(0.3, 6.2 - 2 * PI))


def test_four_vectors_and_mass() -> None:
    v = ref.p4(10.0, 0.0, 0.0, 0.0)
    assert v == (10.0, 0.0, 0.0, 10.0)
    px, py, pz, e = ref.p4(3.0, math.asinh(4.0 / 3.0), PI / 2, 12.0)
    assert (px, py, pz) == pytest.approx((0.0, 3.0, 4.0), abs=1e-12)
    assert e == pytest.approx(13.0)
    assert ref.mass(ref.p4(3.0, 0.5, 1.0, 12.0)) == pytest.approx(12.0)
    # Back-to-back massless 50 and 40 GeV: m^2 = 4 * 50 * 40.
    pair = ref.add(ref.p4(50.0, 0.0, 0.0, 0.0), ref.p4(40.0, 0.0, PI, 0.0))
    assert ref.mass(pair) == pytest.approx(math.sqrt(8000.0))
    assert ref.pt_of(pair) == pytest.approx(10.0)
    # Space-like: ROOT returns -sqrt(-m^2).
    assert ref.mass((0.0, 0.0, 3.0, 2.0)) == -math.sqrt(5.0)


def test_q1_to_q4() -> None:
    jets = [(20.0, 0.5, 0.0, 5.0, 0.0), (30.0, 1.0, 1.0, 5.0, 0.0), (45.0, -0.99, 2.0, 5.0, 0.0)]
    events = [
        make_event(met=50.0, jets=jets),
        make_event(met=200.0, jets=[(41.0, 0.0, 0.0, 5.0, 0.0), (50.0, 0.0, 2.0, 5.0, 0.0)]),
        make_event(met=10.0, jets=[(41.0, 0.0, 0.0, 5.0, 0.0), (40.0, 0.0, 2.0, 5.0, 0.0)]),
    ]
    assert filled(events, "q1_met") == {26: 1.0, 101: 1.0, 6: 1.0}
    # 20 -> 1 + int(100 * 5 / 45) = 12; 30 -> 34; 45 -> 67; 41 -> 58; 50 -> 78; 40 -> 56.
    assert filled(events, "q2_jet_pt") == {12: 1.0, 34: 1.0, 67: 1.0, 58: 2.0, 78: 1.0, 56: 1.0}
    # |eta| = 1.0 is not central; eta = 0 jets of events 2 and 3 are.
    assert filled(events, "q3_jet_pt") == {12: 1.0, 67: 1.0, 58: 2.0, 78: 1.0, 56: 1.0}
    # Only event 2 has two jets with pT > 40 (40 itself does not count).
    assert filled(events, "q4_met") == {101: 1.0}


def test_q5_opposite_charge_dimuon_window() -> None:
    good = [(50.0, 0.0, 0.0, 0.0, 1), (40.0, 0.0, PI, 0.0, -1)]  # m = sqrt(8000) = 89.4
    same_sign = [(50.0, 0.0, 0.0, 0.0, 1), (40.0, 0.0, PI, 0.0, 1)]
    too_light = [(30.0, 0.0, 0.0, 0.0, 1), (20.0, 0.0, PI, 0.0, -1)]  # m = 49.0
    events = [
        make_event(met=30.0, muons=good),
        make_event(met=70.0, muons=same_sign),
        make_event(met=90.0, muons=too_light),
        # Only the second pair, 20 GeV with a new 50 GeV mu+, is in the window: m = 63.2.
        make_event(met=110.0, muons=[*too_light, (50.0, 0.0, 0.0, 0.0, 1)]),
    ]
    assert filled(events, "q5_met") == {16: 1.0, 56: 1.0}


def test_q6_trijet_nearest_top_mass() -> None:
    # Massless jets at eta = 0, along +x, +y, -x, -y.  For such jets
    # m^2 = sum over pairs of 2 pT_a pT_b (1 - cos dphi): perpendicular 2ab, opposite 4ab.
    jets = [
        (50.0, 0.0, 0.0, 0.0, 0.0625),
        (30.0, 0.0, PI / 2, 0.0, 0.875),
        (50.0, 0.0, PI, 0.0, 0.125),
        (81.0, 0.0, -PI / 2, 0.0, 0.375),
    ]
    # {0,1,2}: 3000 + 10000 + 3000 = 16000 -> 126.5
    # {0,1,3}: 3000 + 8100 + 9720 = 20820 -> 144.3
    # {0,2,3}: 10000 + 8100 + 8100 = 26200 -> 161.9  (nearest 172.5)
    # {1,2,3}: 3000 + 9720 + 8100 = 20820 -> 144.3
    vs = [ref.p4(pt, eta, phi, m) for pt, eta, phi, m, _ in jets]
    assert ref.mass(ref.add(vs[0], vs[2], vs[3])) == pytest.approx(math.sqrt(26200.0))
    assert ref.mass(ref.add(vs[0], vs[1], vs[3])) == pytest.approx(math.sqrt(20820.0))
    events = [make_event(jets=jets), make_event(jets=jets[:2])]
    # pT of {0,2,3} is 81 -> 1 + int(100 * 81 / 250) = 33; max btag 0.375 -> 38.
    assert filled(events, "q6_trijet_pt") == {33: 1.0}
    assert filled(events, "q6_trijet_btag") == {38: 1.0}


def test_q7_lepton_cleaned_jet_sum() -> None:
    muons = [(20.0, 0.0, 0.0, 0.1, -1)]
    electrons = [(10.0, 2.0, 1.0, 0.0, 1)]  # pT = 10 is not a light lepton
    jets = [
        (40.0, 0.39, 0.0, 5.0, 0.0),  # dR 0.39 to the muon: removed
        (50.0, 0.41, 0.0, 5.0, 0.0),  # dR 0.41: kept
        (30.0, -2.0, 2.0, 5.0, 0.0),  # pT = 30 is not > 30
        (35.0, 2.0, 1.0, 5.0, 0.0),  # on top of the 10 GeV electron: kept
    ]
    events = [
        make_event(jets=jets, muons=muons, electrons=electrons),  # 85 -> 1 + int(7000/185) = 38
        # Jet at phi 3.0 and muon at phi -3.1 are dR 0.18 apart only after wrapping.
        make_event(jets=[(40.0, 0.0, 3.0, 5.0, 0.0)], muons=[(20.0, 0.0, -3.1, 0.1, 1)]),
        make_event(jets=[(31.0, 1.0, 1.0, 5.0, 0.0)]),  # 31 -> 1 + int(1600/185) = 9
        make_event(),
    ]
    assert filled(events, "q7_sum_pt") == {38: 1.0, 9: 1.0}


# For q8 every lepton is massless at eta = 0 along +x (phi 0) or -x (phi pi), so an
# opposite pair has m^2 = 4 pT_a pT_b; MET is 100 GeV along +x, so a lepton along -x
# has mT = sqrt(400 pT) and one along +x has mT = 0.
MU_50 = (50.0, 0.0, 0.0, 0.0, 1)
MU_40 = (40.0, 0.0, PI, 0.0, -1)  # with MU_50: m = sqrt(8000) = 89.44


def test_q8_nearest_pair_and_leading_remaining_lepton() -> None:
    muons = [MU_50, MU_40, (42.0, 0.0, PI, 0.0, -1), (30.0, 0.0, 0.0, 0.0, -1)]
    # Pairs: (0,1) 89.44, (0,2) sqrt(8400) = 91.65 (nearest), (0,3) 0; (1,2), (1,3) same sign.
    # Remaining: 40 GeV along -x and 30 GeV along +x -> mT = sqrt(16000) = 126.5 -> bin 64.
    # (Had (0,1) been picked it would be 129.6 -> bin 65; the 30 GeV one would give bin 1.)
    assert filled([make_event(met=100.0, muons=muons)], "q8_mt") == {64: 1.0}
    # MET along +y: mT = sqrt(2 * 40 * 100) = 89.4 -> bin 45.
    assert filled([make_event(met=100.0, met_phi=PI / 2, muons=muons)], "q8_mt") == {45: 1.0}


def test_q8_pair_must_be_same_flavour() -> None:
    # mu+ e- would be nearest (91.65) but is mixed flavour; the pair is mu+ mu- and the
    # remaining electron gives sqrt(16800) = 129.6 -> bin 65 (the muon would give bin 64).
    ev = make_event(met=100.0, muons=[MU_50, MU_40], electrons=[(42.0, 0.0, PI, 0.0, -1)])
    assert filled([ev], "q8_mt") == {65: 1.0}


def test_q8_pair_must_be_opposite_charge() -> None:
    # (0,2) would be nearest but has the same sign; (1,2) is opposite but collinear (m = 0).
    ev = make_event(met=100.0, muons=[MU_50, MU_40, (42.0, 0.0, PI, 0.0, 1)])
    assert filled([ev], "q8_mt") == {65: 1.0}


def test_q8_ties_and_skipped_events() -> None:
    # Remaining mu (30, +x) and e (30, -x) tie in pT: the muon, first in order, wins -> mT 0.
    tie = make_event(
        met=100.0,
        muons=[MU_50, MU_40, (30.0, 0.0, 0.0, 0.0, 1)],
        electrons=[(30.0, 0.0, PI, 0.0, -1)],
    )
    no_pair = make_event(met=100.0, muons=[MU_50, (40.0, 0.0, PI, 0.0, 1), MU_50])
    two_leptons = make_event(met=100.0, muons=[MU_50, MU_40])
    assert filled([tie, no_pair, two_leptons], "q8_mt") == {1: 1.0}


def test_counts_are_checked_and_filled_in() -> None:
    ev = make_event(jets=[(20.0, 0.5, 0.0, 5.0, 0.0)])
    del ev["nJet"]
    assert ref.reference_histograms([ev])["q2_jet_pt"].sum() == 1.0
    ev["nJet"] = 2
    with pytest.raises(ValueError, match="nJet"):
        ref.reference_histograms([ev])


FILE_EVENTS = [
    make_event(
        met=52.5,
        met_phi=-1.25,
        jets=[(45.5, 0.25, 1.5, 6.0, 0.75), (33.0, -1.5, -2.75, 4.5, 0.125)],
        muons=[(25.5, 0.5, 0.0, 0.125, -1)],
        electrons=[(12.0, -0.75, 3.0, 0.0, 1), (11.0, 1.0, -3.0, 0.0, -1)],
    ),
    make_event(met=7.75, met_phi=2.5),
    make_event(
        met=120.0,
        met_phi=0.5,
        jets=[
            (60.0, 0.0, 0.0, 8.0, 0.5),
            (50.0, 1.0, 2.0, 7.0, 0.25),
            (40.0, -1.0, -2.0, 6.0, 0.0),
        ],
        muons=[(30.0, 0.0, 0.5, 0.125, 1), (28.0, 0.5, -2.5, 0.125, -1)],
    ),
]


def write_root(path: str, events: list[dict[str, Any]]) -> None:
    import awkward as ak
    import uproot

    data: dict[str, Any] = {
        "MET_pt": np.array([ev["MET_pt"] for ev in events], np.float32),
        "MET_phi": np.array([ev["MET_phi"] for ev in events], np.float32),
    }
    for name, fields in ref.COLLECTIONS.items():
        columns = {}
        for field in fields:
            dtype = np.int32 if field == "charge" else np.float32
            jagged = ak.Array([ev[name + "_" + field] for ev in events])
            columns[field] = ak.values_astype(jagged, dtype)
        data[name] = ak.zip(columns)
    with uproot.recreate(path) as f:
        tree = f.mktree(
            "Events", {k: v.type if k in ref.COLLECTIONS else v.dtype for k, v in data.items()}
        )
        tree.extend(data)


def write_parquet(path: str, events: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [pa.field("MET_pt", pa.float32()), pa.field("MET_phi", pa.float32())]
    for name, names in ref.COLLECTIONS.items():
        fields.append(pa.field("n" + name, pa.int32()))
        for field in names:
            value = pa.int32() if field == "charge" else pa.float32()
            fields.append(pa.field(name + "_" + field, pa.list_(value)))
    pq.write_table(pa.Table.from_pylist(events, schema=pa.schema(fields)), path)


def test_read_events_root_and_parquet_agree(tmp_path: Path) -> None:
    root_path = str(tmp_path / "events.root")
    parquet_path = str(tmp_path / "events.parquet")
    write_root(root_path, FILE_EVENTS)
    write_parquet(parquet_path, FILE_EVENTS)

    from_root = ref.read_events(root_path)
    from_parquet = ref.read_events(parquet_path)
    # Every value above is exact in float32, so both read back exactly what was written.
    assert from_root == FILE_EVENTS
    assert from_parquet == FILE_EVENTS
    for ev in from_root:
        assert type(ev["MET_pt"]) is float
        assert type(ev["nJet"]) is int
        assert all(type(q) is int for q in ev["Muon_charge"])
        assert all(type(pt) is float for pt in ev["Jet_pt"])

    expected = ref.reference_histograms(FILE_EVENTS)
    for got in (ref.reference_histograms(root_path), ref.reference_histograms(parquet_path)):
        assert set(got) == set(ref.HISTOGRAMS)
        for name in ref.HISTOGRAMS:
            np.testing.assert_array_equal(got[name], expected[name])
    assert expected["q1_met"].sum() == 3.0
    assert expected["q6_trijet_pt"].sum() == 1.0
