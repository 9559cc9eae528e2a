"""Datasets: opening files and globs, metadata, and cutting work units."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import saetta
from saetta.units import _split


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


# --------------------------------------------------------------------------- one file, once


def _q1_of(paths: list[Path]) -> list[float]:
    from adl_reference import reference_histograms

    return list(sum(reference_histograms(p)["q1_met"] for p in paths))


@pytest.mark.parametrize(
    "spelling",
    ["twice", "symlink", "relative and absolute", "overlapping globs"],
)
def test_the_same_file_given_twice_is_read_once(
    spelling: str, tmp_path: Path, small_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from saetta.analyses import adl

    a = small_files[0]
    monkeypatch.chdir(a.parent)
    link = tmp_path / "link.root"
    link.symlink_to(a)
    given_as = {
        "twice": [str(a), str(a)],
        "symlink": [str(a), str(link)],
        "relative and absolute": [a.name, str(a)],
        "overlapping globs": [str(a.parent / "a*.root"), str(a.parent / "*.root")],
    }[spelling]
    with pytest.warns(saetta.errors.SaettaWarning, match="reading it once"):
        result = saetta.run(adl.q1, given_as, run_dir=False, progress=False)
    expected = small_files if spelling == "overlapping globs" else [a]
    assert result.report.events_total == sum(saetta.Dataset.open(p).num_entries for p in expected)
    assert list(result["q1_met"].view(flow=True)) == _q1_of(expected)


def test_two_copies_of_a_file_are_two_files(tmp_path: Path, small_files: list[Path]) -> None:
    import shutil

    from saetta.analyses import adl

    copy = tmp_path / "copy.root"
    shutil.copy(small_files[0], copy)  # the same bytes, another file: both count
    result = saetta.run(adl.q1, [small_files[0], copy], run_dir=False, progress=False)
    assert result.report.events_total == 800
    assert list(result["q1_met"].view(flow=True)) == _q1_of([small_files[0], small_files[0]])


@pytest.mark.parametrize("name", ["run[1].root", "what?.root", "a*b.root"])
def test_file_names_with_glob_characters(
    name: str, tmp_path: Path, small_files: list[Path]
) -> None:
    import shutil

    from saetta.analyses import adl

    odd = tmp_path / name
    shutil.copy(small_files[0], odd)
    result = saetta.run(adl.q1, str(odd), run_dir=False, progress=False)
    assert list(result["q1_met"].view(flow=True)) == _q1_of([small_files[0]])


# --------------------------------------------------------------------------- the catalog


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("files: 123", "'files' must be a path"),
        ("files: [null]", "'files' must be a path"),
        ("files: []", "'files' must be a path"),
        ("{files: [a.root], tree: [a]}", "'tree' must be a name"),
        ("{files: [a.root], storage_options: x}", "'storage_options' must map a protocol"),
        ("{files: [a.root], storage_options: {s3: 1}}", "'storage_options' must map a protocol"),
        (
            "{files: [a.root], format: csv}",
            "'format' must be one of fits, hdf5, parquet, root, strain",
        ),
        ("{files: [a.root], tre: Events}", "unknown key 'tre'"),
        ("[a.root]", "must be a mapping"),
    ],
)
def test_malformed_catalog_entries_name_the_problem(
    entry: str, message: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "datasets.yaml"
    text = entry if entry.startswith(("{", "[")) else "{" + entry + "}"
    catalog.write_text(f"ttbar: {text}\n")
    with pytest.raises(saetta.DatasetError) as info:
        saetta.Dataset.from_catalog("ttbar", catalog)
    assert message in str(info.value)
    assert str(info.value).startswith(f"dataset 'ttbar' in {catalog}: ")


def test_a_good_catalog_entry_opens(tmp_path: Path, small_files: list[Path]) -> None:
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text(
        f"ttbar: {{files: ['{small_files[0]}', '{small_files[2]}'], tree: Events, "
        "format: root, storage_options: {s3: {anon: true}}, description: two files}\n"
    )
    ds = saetta.Dataset.from_catalog("ttbar", catalog)
    assert (ds.name, ds.num_entries, len(ds.files)) == ("ttbar", 657, 2)


@pytest.mark.parametrize("text", ["- a\n- b\n", "ttbar: [\n", "\xff\xfe"])
def test_malformed_catalog_files(text: str, tmp_path: Path) -> None:
    catalog = tmp_path / "datasets.yaml"
    catalog.write_bytes(text.encode("latin-1"))
    with pytest.raises(saetta.DatasetError, match=f"catalog {catalog}"):
        saetta.Dataset.from_catalog("ttbar", catalog)


def test_saetta_catalog_naming_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_files: list[Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets.yaml").write_text(f"ttbar: {{files: ['{small_files[0]}']}}\n")
    assert saetta.Dataset.from_catalog("ttbar").num_entries == 400  # found in ./datasets.yaml
    monkeypatch.setenv("SAETTA_CATALOG", str(tmp_path / "typo.yaml"))
    with pytest.raises(saetta.DatasetError, match=r"SAETTA_CATALOG names .*typo\.yaml"):
        saetta.Dataset.from_catalog("ttbar")
