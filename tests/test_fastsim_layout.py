"""The CaloChallenge layout: binning XML and shower files, written and read back exactly.

The reference reads the files with h5py directly and parses the XML with the
standard library, sharing nothing with saetta's readers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

import saetta
from saetta.fastsim.binning import Binning, Layer
from saetta.fastsim.showerfile import ShowerFile, read_showers, write_showers

# The CaloChallenge's own dataset-1 photon binning, first layers: some layers have no voxels.
PHOTONS_XML = """<Bins>
   <Bin pid="22" etaMin="0" etaMax="130" name="photon">
      <Layer id="0" r_edges="0,5,10,30,50,100,200,400,600" n_bin_alpha="1" />
      <Layer id="1" r_edges="0,2,4,6,8,10,12,15,20,30,40,50,70,90,120,150,200" n_bin_alpha="10"/>
      <Layer id="2" r_edges="0" n_bin_alpha="1" />
      <Layer id="3" r_edges="0,50,100,200,400,600" n_bin_alpha="1" />
   </Bin>
</Bins>
"""


def test_binning_reads_the_challenges_xml() -> None:
    binning = Binning.from_xml(PHOTONS_XML)
    assert (binning.particle, binning.pid) == ("photon", 22)
    assert binning.voxels == 8 + 16 * 10 + 0 + 5
    assert [layer.id for layer in binning.relevant] == [0, 1, 3]
    assert binning.slices == {0: slice(0, 8), 1: slice(8, 168), 3: slice(168, 173)}
    r, alpha = binning.centres(1)
    # voxels run angular bin by angular bin, each through its radial bins
    assert r[:3].tolist() == [1.0, 3.0, 5.0]
    assert r[16] == 1.0
    assert alpha[0] == alpha[15] != alpha[16]
    x, y = binning.positions(0)
    assert not x.any()
    assert not y.any()
    again = Binning.from_xml(binning.to_xml())
    assert again == binning
    # independent parse of what to_xml wrote
    layers = ET.fromstring(binning.to_xml()).find("Bin")
    assert layers is not None
    assert [e.get("n_bin_alpha") for e in layers] == ["1", "10", "1", "1"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<Bins><Bin name='e' pid='11'><Layer id='0' r_edges='0,2,1' /></Bin></Bins>", "rising"),
        ("<Bins><Bin name='e' pid='11'><Layer id='0' r_edges='0' /></Bin></Bins>", "no voxels"),
        (
            "<Bins><Bin name='e' pid='11'><Layer id='0' r_edges='0,a' /></Bin></Bins>",
            "not a number",
        ),
        ("<Bins></Bins>", "describes no particle"),
        ("<Bins><Bin", "not XML"),
    ],
)
def test_bad_binning_is_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(saetta.DatasetError, match=match):
        Binning.from_xml(text)


def test_shower_file_round_trip(tmp_path: Path) -> None:
    binning = Binning.regular(3, (0, 1, 2, 5), 2)
    rng = np.random.default_rng(1)
    energies = rng.uniform(1e3, 1e6, 7)
    showers = rng.exponential(10, (7, binning.voxels)).astype(np.float32)
    showers[:, -3:] = 0
    path = write_showers(tmp_path / "s.h5", energies, showers, binning, {"generator": "test"})
    with h5py.File(path) as f:  # the challenge's layout, read without saetta
        assert f["incident_energies"].shape == (7, 1)
        np.testing.assert_array_equal(f["incident_energies"][:, 0], energies)
        np.testing.assert_array_equal(f["showers"][:], showers)
        assert Binning.from_xml(f.attrs["binning"]) == binning
    back = read_showers(path)
    np.testing.assert_array_equal(back.showers, showers)
    np.testing.assert_array_equal(back.incident_energies, energies)
    assert back.binning == binning
    assert back.attrs["generator"] == "test"
    assert not list(tmp_path.glob(".*"))  # no partial file left behind
    # a folder of files reads as one sample, in name order; limit stops early
    write_showers(tmp_path / "t.h5", energies[:2], showers[:2], binning)
    both = read_showers(tmp_path)
    assert len(both) == 9
    assert both.incident_energies[-1] == energies[1]
    assert len(read_showers(tmp_path, limit=8)) == 8


def test_public_challenge_file_needs_its_binning(tmp_path: Path) -> None:
    binning = Binning.from_xml(PHOTONS_XML)
    path = tmp_path / "dataset_1_photons_1.hdf5"
    with h5py.File(path, "w") as f:  # as the challenge's files are: no binning attribute
        f["incident_energies"] = np.array([[256.0], [512.0]])
        f["showers"] = np.ones((2, binning.voxels), np.float32)
    with pytest.raises(saetta.FormatError, match="does not say its binning"):
        read_showers(path)
    xml = tmp_path / "binning_dataset_1_photons.xml"
    xml.write_text(PHOTONS_XML)
    assert len(read_showers(path, binning=xml)) == 2
    wrong = Binning.regular(2, (0, 1), 1)
    with pytest.raises(saetta.DatasetError, match="right binning XML"):
        read_showers(path, binning=wrong)


def test_unreadable_shower_files(tmp_path: Path) -> None:
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(saetta.FormatError, match=r"junk\.h5"):
        read_showers(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(saetta.FormatError, match=r"not a shower file.*has x"):
        read_showers(tmp_path / "other.h5")
    with pytest.raises(saetta.DatasetError, match="no shower files"):
        read_showers(tmp_path / "missing*.h5")
    with pytest.raises(saetta.DatasetError, match="one incident energy each"):
        ShowerFile(np.ones(2), np.ones((3, 4)), Binning("e", 11, (Layer(0, (0, 1, 2), 2),)))
