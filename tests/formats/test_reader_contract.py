"""One contract for every reader: the same file in each format reads the same."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import saetta
from saetta._typing import Jagged
from saetta.analyses import adl
from saetta.formats import available_formats, open_reader

# HDF5 and FITS hold fixed-size matrices, not NanoAOD's variable-length collections, and
# strain files a time series: their readers have their own contract tests, in
# tests/test_format_hdf5.py, tests/test_format_fits.py and tests/test_format_strain.py.
_OWN_CONTRACT = ("hdf5", "fits", "strain")


@pytest.fixture(params=[*(f for f in available_formats() if f not in _OWN_CONTRACT), "rntuple"])
def path(request: pytest.FixtureRequest) -> Path:
    fixture = {"root": "sample_root", "parquet": "sample_parquet", "rntuple": "sample_rntuple"}
    result: Path = request.getfixturevalue(fixture[request.param])
    return result


def test_metadata(path: Path) -> None:
    reader = open_reader(str(path))
    assert reader.num_entries == 20_000
    assert reader.columns["Jet_pt"].jagged
    assert reader.columns["Jet_pt"].dtype == "float32"
    assert reader.columns["nJet"].dtype == "int32"
    assert reader.columns["event"].dtype == "uint64"
    assert next(iter(reader.boundaries)) == 0
    assert list(reader.boundaries)[-1] == 20_000
    reader.close()


@pytest.mark.parametrize("other", ["sample_parquet", "sample_rntuple"])
def test_reads_equal_across_formats(
    other: str, sample_root: Path, request: pytest.FixtureRequest
) -> None:
    columns = ["MET_pt", "nJet", "Jet_pt", "Muon_charge"]
    a = open_reader(str(sample_root)).read(columns, 4_321, 12_345)
    b = open_reader(str(request.getfixturevalue(other))).read(columns, 4_321, 12_345)
    for name in columns:
        if isinstance(a[name], Jagged):
            assert isinstance(b[name], Jagged)
            for x in (a[name], b[name]):
                assert len(x.offsets) == 12_345 - 4_321 + 1
            ca = a[name].content[a[name].offsets[0] : a[name].offsets[-1]]
            cb = b[name].content[b[name].offsets[0] : b[name].offsets[-1]]
            np.testing.assert_array_equal(ca, cb)
            np.testing.assert_array_equal(
                np.diff(a[name].offsets),
                a["nJet"] if name == "Jet_pt" else np.diff(b[name].offsets),
            )
        else:
            np.testing.assert_array_equal(a[name], b[name])
            assert len(a[name]) == 12_345 - 4_321


def test_bytes_read_grow(path: Path) -> None:
    reader = open_reader(str(path))
    before = reader.bytes_read
    reader.read(["Jet_pt"], 0, 5_000)
    assert reader.bytes_read > before


def test_missing_branch_suggests_near_miss(path: Path) -> None:
    reader = open_reader(str(path))
    with pytest.raises(
        saetta.MissingBranchError, match=r"'Jet_ptt' not in Events of .*did you mean 'Jet_pt'"
    ) as info:
        reader.read(["Jet_ptt"], 0, 10)
    assert info.value.branch == "Jet_ptt"
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("suffix", [".root", ".parquet", ".fits"])
@pytest.mark.parametrize(
    ("content", "what"),
    [(b"", "empty"), (os.urandom(4096), "random bytes"), (b"PAR1" + os.urandom(100), "bad magic")],
)
def test_garbage_is_a_format_error(tmp_path: Path, suffix: str, content: bytes, what: str) -> None:
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    with pytest.raises(saetta.FormatError, match=str(bad)):
        open_reader(str(bad))


def test_truncated_root_file(tmp_path: Path, sample_root: Path) -> None:
    data = sample_root.read_bytes()
    for fraction in (0.1, 0.5, 0.9):
        bad = tmp_path / f"cut{fraction}.root"
        bad.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(saetta.SaettaError, match=str(bad)):
            saetta.run(adl.analysis, bad, progress=False)


def test_wrong_tree_lists_the_trees(sample_root: Path) -> None:
    with pytest.raises(
        saetta.FormatError, match=r"no tree 'Evnets' in .*sample\.root; it has: Events"
    ):
        saetta.Dataset.open(sample_root, tree="Evnets")


def test_missing_branch_in_some_files(tmp_path: Path, small_files: list[Path]) -> None:
    import uproot

    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f.mktree("Events", {"MET_pt": np.float32})
        f["Events"].extend({"MET_pt": np.ones(50, np.float32)})

    def analysis(events):  # type: ignore[no-untyped-def]
        return {"n": len(events.Jet.pt)}

    with pytest.raises(saetta.UnitError, match=r"AttributeError|MissingBranchError") as info:
        saetta.run(analysis, [small_files[0], other], progress=False)
    report = info.value.result.report  # type: ignore[attr-defined]
    assert report.events_processed == 400
    assert [f.unit.path for f in report.failures] == [str(other)]


def test_one_reader_read_from_many_threads_at_once(path: Path) -> None:
    # The ML loader's prefetch threads share a process's reader of a file: overlapping
    # reads must each get their own rows (a shared Parquet reader once lost units here).
    from concurrent.futures import ThreadPoolExecutor

    reader = open_reader(str(path))
    ranges = [(s, s + 1_250) for s in range(0, 20_000, 1_250)]
    columns = ["MET_pt", "Jet_pt"]
    serial = [reader.read(columns, a, b)["MET_pt"] for a, b in ranges]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda r: reader.read(columns, *r)["MET_pt"], ranges))
            for one, other in zip(serial, parallel, strict=True):
                np.testing.assert_array_equal(one, other)
    reader.close()
