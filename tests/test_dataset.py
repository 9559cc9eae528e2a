"""Datasets: opening files and globs, metadata, and cutting work units."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import saetta
from saetta.dataset import _split


def test_open_reads_metadata(sample_root: Path, sample_parquet: Path) -> None:
    ds = saetta.Dataset.open([sample_root, sample_parquet])
    assert ds.num_entries == 40_000
    assert [f.format for f in ds.files] == ["root", "parquet"]
    assert ds.files[0].boundaries == (0, 5_000, 10_000, 15_000, 20_000)
    assert ds.columns["Jet_pt"].jagged
    assert not ds.columns["MET_pt"].jagged
    assert "40,000 entries" in repr(ds)
    assert "<table>" in ds._repr_html_()


def test_globs_expand_and_units_are_canonical(small_files: list[Path]) -> None:
    folder = small_files[0].parent
    ds = saetta.Dataset.open(str(folder / "*.root"))
    assert [Path(f.path).name for f in ds.files] == ["a.root", "b.root", "c.root"]
    reverse = saetta.Dataset.open([str(p) for p in small_files[::-1]])
    assert ds.units(100) == reverse.units(100)
    assert sum(u.num_entries for u in ds.units(100)) == 657


def test_units_follow_baskets(sample_root: Path) -> None:
    ds = saetta.Dataset.open(sample_root)
    assert [(u.start, u.stop) for u in ds.units(10_000)] == [(0, 10_000), (10_000, 20_000)]
    assert [(u.start, u.stop) for u in ds.units(12_000)] == [(0, 10_000), (10_000, 20_000)]
    assert [(u.start, u.stop) for u in ds.units(4_000)][:3] == [
        (0, 2_500),
        (2_500, 5_000),
        (5_000, 7_500),
    ]


@given(
    boundaries=st.lists(st.integers(1, 999), max_size=8),
    entries=st.integers(1, 1000),
    chunk=st.integers(1, 1200),
)
def test_split_covers_every_entry_once(boundaries: list[int], entries: int, chunk: int) -> None:
    pieces = list(_split(boundaries, entries, chunk))
    assert pieces[0][0] == 0
    assert pieces[-1][1] == entries
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(0 < stop - start <= chunk for start, stop in pieces)


def test_missing_file_and_empty_glob(tmp_path: Path) -> None:
    with pytest.raises(saetta.StorageError, match=r"file not found: .*nope\.root"):
        saetta.Dataset.open(tmp_path / "nope.root")
    with pytest.raises(saetta.StorageError, match="no file matches"):
        saetta.Dataset.open(str(tmp_path / "*.root"))
    with pytest.raises(saetta.StorageError, match="is a directory"):
        saetta.Dataset.open(tmp_path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text("x")
    with pytest.raises(saetta.DatasetError, match="cannot tell the format"):
        saetta.Dataset.open(path)
