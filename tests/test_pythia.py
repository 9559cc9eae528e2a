"""Pythia 8 generation of AGC samples: settings, file layout, determinism and physics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pythia8mc")

import awkward as ak
import uproot

import saetta
from saetta.pythia import SAMPLES, GeneratedFile, SampleCard, _pairs, generate_file

SCALARS = {
    "run": np.uint32,
    "luminosityBlock": np.uint32,
    "event": np.uint64,
    "genWeight": np.float32,
    "MET_pt": np.float32,
    "MET_phi": np.float32,
}
KINEMATICS = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "mass": np.float32}
COLLECTIONS: dict[str, dict[str, Any]] = {
    "Jet": {
        **KINEMATICS,
        "btagCSVV2": np.float32,
        "jetId": np.int32,
        "hadronFlavour": np.int32,
        "ttbarRole": np.int32,
    },
    "Electron": {
        **KINEMATICS,
        "charge": np.int32,
        "cutBased": np.int32,
        "sip3d": np.float32,
        "pfRelIso03_all": np.float32,
    },
    "Muon": {
        **KINEMATICS,
        "charge": np.int32,
        "tightId": np.bool_,
        "sip3d": np.float32,
        "pfRelIso04_all": np.float32,
    },
}
TTBAR_EVENTS = 100


def _read(path: Path) -> ak.Array:
    with uproot.open(path) as file:
        return file["Events"].arrays()


@pytest.fixture(scope="module")
def ttbar(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedFile, ak.Array]:
    made = generate_file(
        tmp_path_factory.mktemp("pythia") / "ttbar.root", "ttbar", TTBAR_EVENTS, 1, block=3
    )
    return made, _read(made.path)


def test_samples_are_the_agc_ones() -> None:
    assert list(SAMPLES) == [
        "ttbar",
        "ttbar_ME_var",
        "ttbar_PS_var",
        "ttbar_scaleup",
        "ttbar_scaledown",
        "single_top_s_chan",
        "single_top_t_chan",
        "single_top_tW",
        "wjets",
    ]
    assert all(isinstance(c, SampleCard) and c.name == n for n, c in SAMPLES.items())
    ttbar = SAMPLES["ttbar"]
    assert ttbar.xsec_pb == pytest.approx(729.84)
    assert (ttbar.role, ttbar.variation_of, ttbar.variation) == ("signal", None, None)
    for name in ("ME_var", "PS_var", "scaleup", "scaledown"):
        card = SAMPLES[f"ttbar_{name}"]
        assert (card.role, card.variation_of, card.variation) == ("signal", "ttbar", name)
        assert card.xsec_pb == ttbar.xsec_pb
        assert set(ttbar.settings) < set(card.settings)
    assert "SigmaProcess:renormMultFac = 2.0" in SAMPLES["ttbar_scaleup"].settings
    assert "SpaceShower:renormMultFac = 0.5" in SAMPLES["ttbar_scaledown"].settings
    backgrounds = {n: c for n, c in SAMPLES.items() if not n.startswith("ttbar")}
    assert all(c.role == "background" and c.variation_of is None for c in backgrounds.values())
    assert backgrounds["single_top_s_chan"].xsec_pb == pytest.approx(3.2944)
    assert backgrounds["single_top_t_chan"].xsec_pb == pytest.approx(234.7937, rel=1e-6)
    assert backgrounds["single_top_tW"].xsec_pb == pytest.approx(75.842)
    assert backgrounds["wjets"].xsec_pb == pytest.approx(15487.164)
    assert "Top:qq2tq(t:W) = on" in backgrounds["single_top_t_chan"].settings
    assert "Top:ffbar2tqbar(s:W) = on" in backgrounds["single_top_s_chan"].settings


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample": "ttbarr"}, "unknown sample 'ttbarr'; available: ttbar, "),
        ({"events": 0}, "events must be an integer at least 1"),
        ({"events": True}, "events must be"),
        ({"seed": 0}, "seed must be an integer from 1 to 900,000,000"),
        ({"seed": 900_000_001}, "seed must be"),
        ({"block": -1}, "block must be"),
        ({"compression": "gzip:1"}, "unknown ROOT compression"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"sample": "ttbar", "events": 1, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_file(tmp_path / "x.root", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_a_rejected_setting_raises_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = SampleCard("broken", ("Top:gg2ttbar = on", "Top:nonsense = on"), 1.0, "signal")
    monkeypatch.setitem(SAMPLES, "broken", card)
    with pytest.raises(RuntimeError, match="rejected the setting 'Top:nonsense = on'"):
        generate_file(tmp_path / "x.root", "broken", 1, 1)
    assert list(tmp_path.iterdir()) == []


def test_pairs_within_events() -> None:
    ia, ib = _pairs(np.array([2, 0, 2]), np.array([0, 0, 1, 2]), 3)
    assert list(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 3), (1, 0), (1, 1), (2, 3)]


@pytest.mark.slow
def test_layout_and_counters(ttbar: tuple[GeneratedFile, ak.Array]) -> None:
    made, events = ttbar
    assert (made.sample, made.events, made.sum_weights) == ("ttbar", TTBAR_EVENTS, TTBAR_EVENTS)
    assert made.sigma_gen_pb > 100
    assert made.seconds > 0
    assert [p.name for p in made.path.parent.iterdir()] == ["ttbar.root"]  # no temporary left
    expected = dict(SCALARS)
    for name, fields in COLLECTIONS.items():
        expected[f"n{name}"] = np.int32
        expected |= {f"{name}_{field}": dtype for field, dtype in fields.items()}
    with uproot.open(made.path) as file:
        tree = file["Events"]
        assert tree.keys() == list(expected)
        assert tree.num_entries == TTBAR_EVENTS
    for name, dtype in expected.items():
        content = ak.flatten(events[name], axis=None)
        assert ak.to_numpy(content).dtype == np.dtype(dtype), name
    for name, fields in COLLECTIONS.items():
        for field in fields:
            assert ak.all(ak.num(events[f"{name}_{field}"]) == events[f"n{name}"])
    assert events["run"].tolist() == [1] * TTBAR_EVENTS
    assert events["luminosityBlock"].tolist() == [3] * TTBAR_EVENTS
    assert events["event"].tolist() == list(range(1, TTBAR_EVENTS + 1))
    assert ak.all(events["genWeight"] == 1)
    assert ak.any(events["nElectron"] == 0)
    assert ak.any(events["nElectron"] > 0)

    dataset = saetta.Dataset.open([made.path])
    assert dataset.num_entries == TTBAR_EVENTS
    assert dataset.columns["Jet_btagCSVV2"].jagged


@pytest.mark.slow
def test_objects_follow_their_definitions(ttbar: tuple[GeneratedFile, ak.Array]) -> None:
    _, events = ttbar
    pt = events["Jet_pt"]
    assert ak.all(pt > 20)
    assert ak.all(abs(events["Jet_eta"]) < 4.7)
    assert ak.all(pt[:, :-1] >= pt[:, 1:])
    assert ak.all(events["Jet_jetId"] == 6)
    assert set(ak.flatten(events["Jet_hadronFlavour"]).tolist()) == {0, 4, 5}
    btag = ak.flatten(events["Jet_btagCSVV2"])
    assert ak.all((btag >= 0) & (btag <= 1))
    for name, iso in (("Electron", "pfRelIso03_all"), ("Muon", "pfRelIso04_all")):
        lepton_pt = events[f"{name}_pt"]
        assert ak.all(lepton_pt >= 10)
        assert ak.all(abs(events[f"{name}_eta"]) < 2.5)
        assert ak.all(lepton_pt[:, :-1] >= lepton_pt[:, 1:])
        assert set(ak.flatten(events[f"{name}_charge"]).tolist()) == {-1, 1}
        assert ak.all(events[f"{name}_sip3d"] >= 0)
        assert ak.all(events[f"{name}_{iso}"] >= 0)
    electron_iso = events["Electron_pfRelIso03_all"]
    assert ak.all((events["Electron_cutBased"] == 4) == (electron_iso < 0.1))
    assert ak.all(events["Muon_tightId"] == (abs(events["Muon_eta"]) < 2.4))
    assert ak.all(events["MET_pt"] >= 0)
    assert ak.all(abs(events["MET_phi"]) <= np.pi)


@pytest.mark.slow
def test_ttbar_physics(ttbar: tuple[GeneratedFile, ak.Array]) -> None:
    _, events = ttbar
    assert ak.mean(events["nJet"] >= 4) > 0.5
    flavour = ak.flatten(events["Jet_hadronFlavour"])
    btag = ak.flatten(events["Jet_btagCSVV2"])
    assert ak.sum(flavour == 5) > TTBAR_EVENTS  # two b quarks per event, most in a jet
    assert ak.mean(btag[flavour == 5]) > 0.5
    assert ak.mean(btag[flavour == 0]) < 0.25
    assert 0.5 < ak.mean(btag[flavour == 5] > 0.5) < 0.9
    assert ak.mean(btag[flavour == 0] > 0.5) < 0.08
    assert 15 < ak.mean(events["MET_pt"]) < 100


@pytest.mark.slow
def test_ttbar_roles(ttbar: tuple[GeneratedFile, ak.Array]) -> None:
    _, events = ttbar
    role = events["Jet_ttbarRole"]
    n1, n2, n3 = (ak.to_numpy(ak.sum(role == r, axis=1)) for r in (1, 2, 3))
    assert set(ak.flatten(role).tolist()) == {0, 1, 2, 3}
    assert np.all(n1 <= 4)
    assert np.all(n2 + n3 <= 2)
    semileptonic = (n2 > 0) & (n3 > 0)  # one hadronic and one leptonic top
    assert semileptonic.sum() > 10
    assert np.all(n1[semileptonic] <= 2)
    assert np.all(n2[semileptonic] == 1)
    assert np.all(n3[semileptonic] == 1)
    assert np.all(n3[n1 > 2] == 0)  # two hadronic Ws: no leptonic top
    flavour = ak.flatten(events["Jet_hadronFlavour"])
    matched_b = ak.flatten(role) >= 2
    assert ak.mean(flavour[matched_b] == 5) > 0.8
    assert ak.mean(flavour[ak.flatten(role) == 1] == 5) < 0.2


@pytest.mark.slow
def test_same_seed_same_file_and_quiet(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    first = generate_file(tmp_path / "a.root", "ttbar", 10, 5, compression="lz4:1")
    again = generate_file(tmp_path / "b.root", "ttbar", 10, 5, compression="lz4:1")
    other = generate_file(tmp_path / "c.root", "ttbar", 10, 6, compression="lz4:1")
    shifted = generate_file(tmp_path / "d.root", "ttbar", 10, 5, block=1, compression="lz4:1")
    assert capfd.readouterr().out == ""
    a, b, c, d = (_read(x.path) for x in (first, again, other, shifted))
    assert a.fields == b.fields
    for name in a.fields:
        assert ak.array_equal(a[name], b[name]), name
    assert not ak.array_equal(a["Jet_pt"], c["Jet_pt"])
    assert first.sigma_gen_pb == again.sigma_gen_pb
    # The block moves the detector's draws only: the same particles, other smearing.
    for name in ("Electron_eta", "Electron_pfRelIso03_all", "Muon_eta", "Muon_pfRelIso04_all"):
        assert ak.array_equal(a[name], d[name]), name
    assert not ak.array_equal(a["MET_pt"], d["MET_pt"])


@pytest.mark.slow
@pytest.mark.parametrize("sample", [s for s in SAMPLES if s != "ttbar"])
def test_every_sample_generates(tmp_path: Path, sample: str) -> None:
    made = generate_file(tmp_path / f"{sample}.root", sample, 5, 2)
    events = _read(made.path)
    assert len(events) == made.events == 5
    assert made.sigma_gen_pb > 0
    for name in COLLECTIONS:
        assert ak.all(ak.num(events[f"{name}_pt"]) == events[f"n{name}"])
    role = ak.flatten(events["Jet_ttbarRole"])
    if SAMPLES[sample].role == "signal":
        assert ak.any(role > 0)
    else:
        assert ak.all(role == 0)
