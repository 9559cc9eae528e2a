"""The lazy NanoAOD view: structure, 4-vector behaviour, and reading only what is touched."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import saetta
from saetta.events import UnitColumns, build_events
from saetta.formats import open_reader


class CountingReader:
    """Wraps a real reader and records every column it is asked for."""

    def __init__(self, path: Path) -> None:
        self._reader = open_reader(str(path))
        self.path, self.tree = self._reader.path, self._reader.tree
        self.requests: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._reader, name)

    def read(self, columns, start, stop):  # type: ignore[no-untyped-def]
        self.requests.extend(columns)
        return self._reader.read(columns, start, stop)


@pytest.fixture
def counting(sample_root: Path) -> CountingReader:
    return CountingReader(sample_root)


def test_structure(counting: CountingReader) -> None:
    events = build_events(UnitColumns(counting, 100, 200))
    assert {"Jet", "Muon", "Electron", "MET", "run", "event", "genWeight", "nJet"} <= set(
        events.fields
    )
    assert set(events.Jet.fields) == {"pt", "eta", "phi", "mass", "btag", "jetId"}
    assert len(events) == 100
    assert counting.requests == []  # building the view reads nothing


def test_only_touched_columns_are_read_once(counting: CountingReader, sample_root: Path) -> None:
    cache = UnitColumns(counting, 1000, 3000)
    events = build_events(cache)
    pt = events.Jet.pt
    again = events.Jet.pt
    selected = events[events.MET.pt > 30]
    central = selected.Jet[abs(selected.Jet.eta) < 1]
    _ = ak.sum(central.pt, axis=1)
    assert sorted(counting.requests) == sorted(["nJet", "Jet_pt", "MET_pt", "Jet_eta"])
    assert len(counting.requests) == len(set(counting.requests))
    truth = uproot.open(sample_root)["Events"].arrays(["Jet_pt"], entry_start=1000, entry_stop=3000)
    assert ak.all(pt == truth.Jet_pt)
    assert ak.all(again == truth.Jet_pt)


def test_four_vector_behaviour_matches_numpy(sample_root: Path) -> None:
    cache = UnitColumns(open_reader(str(sample_root)), 0, 2000)
    muons = build_events(cache).Muon
    pairs = muons[ak.num(muons) >= 2]
    mass = (pairs[:, 0] + pairs[:, 1]).mass
    dr = pairs[:, 0].deltaR(pairs[:, 1])

    def p4(m):  # type: ignore[no-untyped-def]
        pt, eta, phi, mm = (
            np.asarray(m[f], dtype=np.float64) for f in ("pt", "eta", "phi", "mass")
        )
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mm**2)

    a, b = p4(pairs[:, 0]), p4(pairs[:, 1])
    expected = np.sqrt(
        np.maximum((a[3] + b[3]) ** 2 - sum((a[i] + b[i]) ** 2 for i in range(3)), 0)
    )
    np.testing.assert_allclose(np.asarray(mass), expected, rtol=1e-4, atol=1e-3)
    dphi = (np.asarray(pairs[:, 0].phi) - np.asarray(pairs[:, 1].phi) + np.pi) % (2 * np.pi) - np.pi
    deta = np.asarray(pairs[:, 0].eta) - np.asarray(pairs[:, 1].eta)
    np.testing.assert_allclose(np.asarray(dr), np.hypot(deta, dphi), rtol=1e-5)
    assert len(mass) > 100


def test_unit_metadata_in_attrs(small_files: list[Path]) -> None:
    def analysis(events):  # type: ignore[no-untyped-def]
        return {"span": events.attrs["stop"] - events.attrs["start"]}

    result = saetta.run(analysis, small_files[0], chunk_size=100, progress=False)
    assert result["span"] == 400


def test_zero_jet_events_and_empty_selections(tmp_path: Path) -> None:
    path = tmp_path / "nojets.root"
    values = ak.values_astype(ak.Array([[], [], [], []]), np.float32)
    with uproot.recreate(path) as f:
        f.mktree(
            "Events",
            {"MET_pt": np.float32, "Jet": ak.zip({"pt": values, "eta": values}).type.content},
        )
        f["Events"].extend(
            {
                "MET_pt": np.array([1, 2, 3, 4], np.float32),
                "Jet": ak.zip({"pt": values, "eta": values}),
            }
        )

    def analysis(events):  # type: ignore[no-untyped-def]
        central = events.Jet[abs(events.Jet.eta) < 1]
        return {"njets": int(ak.sum(ak.num(central))), "events": len(events)}

    result = saetta.run(analysis, path, chunk_size=3, progress=False)
    assert result["njets"] == 0
    assert result["events"] == 4
