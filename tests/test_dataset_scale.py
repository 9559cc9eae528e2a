"""Datasets at scale: compact units, files described by a catalog, the metadata cache."""

from __future__ import annotations

import os
import pickle
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
from adl_reference import reference_histograms
from conftest import flow_values
from hypothesis import given
from hypothesis import strategies as st

import saetta
import saetta.dataset
import saetta.metadata
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod
from saetta.dataset import Dataset, FileInfo, Units, WorkUnit, file_key
from saetta.metadata import metadata_path
from saetta.storage import is_remote
from saetta.units import _even_split


@pytest.fixture(autouse=True)
def _own_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own metadata cache: what one test cached cannot serve another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SAETTA_METADATA_CACHE", raising=False)


# --------------------------------------------------------------------------- the reference


def _old_split(
    boundaries: Sequence[int], num_entries: int, chunk_size: int
) -> Iterator[tuple[int, int]]:
    """The splitting rule, written from its definition (not from saetta's code): cut
    each cluster ``[lo, hi)`` into ``ceil((hi - lo) / chunk)`` even pieces, at
    ``lo + (hi - lo) * i // pieces``; then, from the first piece on, a unit takes
    the next pieces while it stays within ``chunk`` entries."""
    inner = sorted({b for b in boundaries if 0 < b < num_entries})
    clusters = list(zip([0, *inner], [*inner, num_entries], strict=True)) if num_entries else []
    pieces = []
    for lo, hi in clusters:
        count = (hi - lo + chunk_size - 1) // chunk_size  # ceil, exact for big integers
        pieces += [
            (lo + (hi - lo) * i // count, lo + (hi - lo) * (i + 1) // count) for i in range(count)
        ]
    units: list[list[int]] = []
    for lo, hi in pieces:
        if units and hi - units[-1][0] <= chunk_size:
            units[-1][1] = hi
        else:
            units.append([lo, hi])
    yield from ((lo, hi) for lo, hi in units)


def _old_units(files: Sequence[FileInfo], chunk_size: int) -> tuple[WorkUnit, ...]:
    """``Dataset.units`` as it was: every unit an object, all of them sorted."""
    units = [
        WorkUnit(f.path, f.tree, start, stop, f.format)
        for f in files
        for start, stop in _old_split(f.boundaries, f.num_entries, chunk_size)
    ]
    units.sort(
        key=lambda u: (u.path if is_remote(u.path) else os.path.abspath(u.path), u.tree, u.start)
    )
    return tuple(units)


def _fields(units: Sequence[WorkUnit]) -> list[tuple[str, str, int, int, str]]:
    return [(u.path, u.tree, u.start, u.stop, u.format) for u in units]


_PATHS = [
    "data/a.root",
    "./data/b.root",
    "data/../data/c.root",
    "/abs/d.root",
    "/abs/e.parquet",
    "root://eos.example.org//store/f.root",
    "https://host.example.org/g.parquet",
    "s3://bucket/h.root",
    "file:///abs/i.root",
    "data/run[1].root",
    "Z.root",
]


def _random_files(rng: random.Random, count: int) -> tuple[FileInfo, ...]:
    """Files of every kind: empty ones, with and without boundaries (in the file, at its
    ends, outside it), relative and absolute and remote, some the same file twice."""
    files = []
    for _ in range(count):
        entries = rng.choice([0, 1, 2, 3, 7, 99, 100, 101, 250, 1000, rng.randint(0, 3000)])
        kind = rng.random()
        if kind < 0.4:
            boundaries: tuple[int, ...] = ()
        elif kind < 0.55:
            boundaries = (0, entries)  # a single cluster, as Parquet with one row group
        else:
            picks = rng.sample(range(-3, entries + 4), min(entries + 7, rng.randint(1, 12)))
            boundaries = tuple(sorted(picks))
        path = rng.choice(_PATHS)
        if rng.random() < 0.5:
            path = path.replace(".root", f"_{rng.randint(0, 40)}.root")
        tree = rng.choice(["Events", "Events", "Runs"])
        fmt = "parquet" if path.endswith("parquet") else "root"
        files.append(FileInfo(path, tree, fmt, entries, 10 * entries, (), boundaries))
    return tuple(files)


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("seed", range(40))
def test_units_equal_the_old_tuple(seed: int) -> None:
    rng = random.Random(seed)
    files = _random_files(rng, rng.choice([1, 2, 5, 30, 200]))
    for chunk in (1, 2, 3, 7, 100, 250, rng.randint(1, 4000), 10**9):
        expected = _old_units(files, chunk)
        units = Dataset(files).units(chunk)
        assert isinstance(units, Units)
        assert _fields(units) == _fields(expected)
        assert units == expected


def test_units_of_real_files_equal_the_old_tuple(
    small_files: list[Path], sample_root: Path, sample_parquet: Path
) -> None:
    ds = Dataset.open([*small_files, sample_root, sample_parquet], metadata_cache=False)
    assert any(len(f.boundaries) > 2 for f in ds.files)  # cut on baskets and row groups
    for chunk in (1, 99, 150, 4_000, 12_000, 10**9):
        assert _fields(ds.units(chunk)) == _fields(_old_units(ds.files, chunk))


def test_the_vectorised_cut_needs_no_overflow() -> None:
    """Entries times pieces past 2**62: such a file is cut the exact way, one by one."""
    big = FileInfo("/huge.root", "Events", "root", 3 * 10**18 + 7, 1, (), ())
    small = FileInfo("/small.root", "Events", "root", 1000, 1, (), ())
    units = Dataset((big, small)).units(10**18)
    assert _fields(units) == _fields(_old_units((big, small), 10**18))
    assert len(units) == 5


@given(
    entries=st.lists(st.integers(0, 10_000), min_size=1, max_size=20),
    chunk=st.integers(1, 12_000),
)
def test_even_split_is_the_old_split_without_boundaries(entries: list[int], chunk: int) -> None:
    owner, start, stop = _even_split(np.array(entries, dtype=np.int64), chunk)
    expected = [(i, a, b) for i, n in enumerate(entries) for a, b in _old_split((), n, chunk)]
    assert list(zip(owner.tolist(), start.tolist(), stop.tolist(), strict=True)) == expected


def _sequence_files() -> tuple[FileInfo, ...]:
    return tuple(
        FileInfo(f"/d/f{i}.root", "Events", "root", n, n, (), ())
        for i, n in enumerate([1000, 0, 333, 1])
    )


def test_units_behave_as_the_tuple() -> None:
    files = _sequence_files()
    units = Dataset(files[::-1]).units(100)
    reference = _old_units(files, 100)
    assert len(units) == len(reference) == 15
    assert [units[i] for i in range(-15, 15)] == [reference[i] for i in range(-15, 15)]
    for index in (15, -16):
        with pytest.raises(IndexError, match="out of range"):
            units[index]
    assert units[np.int64(3)] == reference[3]
    for a, b, step in [
        (None, None, None),
        (2, 9, None),
        (-4, None, None),
        (1, 14, 3),
        (None, None, -1),
        (12, 2, -4),
    ]:
        piece = units[a:b:step]
        assert isinstance(piece, tuple)
        assert piece == reference[a:b:step]
    assert list(units) == list(reference)
    assert units == reference
    assert reference == units
    assert units == list(reference)
    assert units != reference[:-1]
    assert units != (*reference[:-1], reference[0])
    assert units != "not units"
    assert (*units,) == reference
    assert reference[4] in units
    assert WorkUnit("/d/f0.root", "Events", 0, 99) not in units
    assert units == Dataset(files).units(100)  # another Units, equal element by element
    assert units != Dataset(files).units(99)
    assert pickle.loads(pickle.dumps(units)) == units
    assert repr(units) == "Units(15 units of 4 files)"
    assert units.files == tuple(sorted(files, key=lambda f: f.path))
    with pytest.raises(TypeError, match="unhashable"):
        hash(units)


def test_units_of_a_sample_still_equal_the_full_units_prefix() -> None:
    """A Units against the units of other FileInfo values (a truncated sample): by element."""
    files = _sequence_files()
    kept = {"/d/f0.root": 200, "/d/f1.root": 0, "/d/f2.root": 166, "/d/f3.root": 1}
    prefix = tuple(FileInfo(f.path, f.tree, f.format, kept[f.path], 1, (), ()) for f in files)
    full = Dataset(files).units(100)
    assert Dataset(prefix).units(100) == (full[0], full[1], full[10], full[11], full[14])


def test_locate_finds_every_unit_and_nothing_else() -> None:
    rng = random.Random(5)
    files = _random_files(rng, 300)
    units = Dataset(files).units(97)

    def address(unit: WorkUnit) -> tuple[str, str, int, int]:
        return (file_key(unit.path), unit.tree, unit.start, unit.stop)

    for position, unit in enumerate(units):
        found = units.locate(*address(unit))
        assert found is not None
        assert address(units[found]) == address(unit)
        assert found <= position  # the same file given twice: the first copy is found
    everything = {address(u) for u in units}
    keys = [*sorted({k for k, _, _, _ in everything}), "/not/a/file.root", "data/a.root"]
    probes = [
        (rng.choice(keys), rng.choice(["Events", "Runs", "Other"]), a, a + rng.randint(1, 300))
        for a in (rng.randint(0, 3000) for _ in range(20_000))
    ]
    some = sorted(everything)[::7]
    probes += (
        some + [(k, t, a, b + 1) for k, t, a, b in some] + [(k, t, a - 1, b) for k, t, a, b in some]
    )
    assert sum(p in everything for p in probes) > 100  # control: some probes are units
    for probe in probes:
        assert (units.locate(*probe) is not None) == (probe in everything), probe


def test_locate_without_duplicates_gives_the_exact_position() -> None:
    files = tuple(
        FileInfo(f"/d/{i:03d}.root", "Events", "root", 10 * i, 1, (), (0, 3 * i)) for i in range(60)
    )
    units = Dataset(files).units(7)
    positions = [units.locate(file_key(u.path), u.tree, u.start, u.stop) for u in units]
    assert positions == list(range(len(units)))


def test_a_million_units_take_arrays_not_objects() -> None:
    """The units of 10^5 files: planned in one go, stored in ~24 bytes each."""
    files = tuple(
        FileInfo(f"root://eos.example.org//store/f{i:06d}.root", "Events", "root", 2_500, 1, (), ())
        for i in range(100_000)
    )
    units = Dataset(files).units(250)
    assert len(units) == 1_000_000
    assert sum(a.nbytes for a in (units._file, units._start, units._stop)) <= 20 * len(units)
    for position in (0, 1, 9, 10, 123_457, 999_999):
        info = files[position // 10]
        piece = position % 10
        assert units[position] == WorkUnit(info.path, "Events", 250 * piece, 250 * piece + 250)


# --------------------------------------------------------------------------- described files


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[Any, ...]]:
    """Record the calls of ``saetta.metadata.<name>``, which still does its work."""
    calls: list[tuple[Any, ...]] = []
    original: Callable[..., Any] = getattr(saetta.metadata, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(saetta.metadata, name, counted)
    if hasattr(saetta.dataset, name):  # imported there by name too
        monkeypatch.setattr(saetta.dataset, name, counted)
    return calls


def test_described_files_are_planned_without_touching_them(
    tmp_path: Path, small_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = small_files[0]
    ghosts = [tmp_path / "gone" / f"g{i}.root" for i in range(3)]
    catalog = tmp_path / "datasets.yaml"
    described = "".join(
        f"    - {{url: '{g}', entries: {100 * i + 50}, bytes: {7 * i}}}\n"
        for i, g in enumerate(ghosts)
    )
    catalog.write_text(f"mixed:\n  files:\n    - '{real}'\n{described}")
    scans = _counting(monkeypatch, "scan")
    stats: list[str] = []
    stat = os.stat

    def counted_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        stats.append(os.fspath(path))
        return stat(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "stat", counted_stat)
        ds = saetta.Dataset.from_catalog("mixed", catalog)
    assert [c[0] for c in scans] == [str(real)]  # the plain path, and only it, is opened
    assert str(real) in stats  # control: the opened file is stat'ed
    assert not [s for s in stats if "gone" in s]
    assert [(f.path, f.num_entries, f.size_bytes, f.scanned) for f in ds.files[1:]] == [
        (str(g), 100 * i + 50, 7 * i, False) for i, g in enumerate(ghosts)
    ]
    assert ds.num_entries == 400 + 50 + 150 + 250
    assert ds.columns == Dataset.open(real, metadata_cache=False).columns  # from the real file
    assert _fields(ds.units(100)) == _fields(_old_units(ds.files, 100))
    # Running them: each unit of a missing file fails, naming it; the real file's run.
    result = saetta.run(
        adl.q1, ds, chunk_size=100, allow_partial=True, run_dir=False, progress=False
    )
    failed = list(result.report.failures)
    assert len(failed) == 1 + 2 + 3
    for failure in failed:
        assert str(failure.unit.path) in failure.message
        assert "gone" in failure.message
    assert list(flow_values(result, "q1_met")) == list(reference_histograms(real)["q1_met"])


def test_columns_of_a_dataset_of_described_files_come_from_its_first_file(
    small_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, c = small_files[0], small_files[2]
    scans = _counting(monkeypatch, "scan")
    ds = Dataset.open(
        [{"url": str(a), "entries": 400, "bytes": 1}, {"url": str(c), "entries": 257, "bytes": 2}]
    )
    assert scans == []  # nothing opened to plan
    assert len(ds.units(100)) == 4 + 3
    columns = ds.columns  # opened now, the first file only
    assert [call[0] for call in scans] == [str(a)]
    assert columns == Dataset.open(a, metadata_cache=False).columns
    assert "Jet_pt" in columns


def test_a_file_holding_other_entries_than_described_fails_its_units(
    small_files: list[Path],
) -> None:
    a = small_files[0]  # 400 entries
    for said in (300, 1000):
        ds = Dataset.open({"url": str(a), "entries": said, "bytes": 1})
        result = saetta.run(
            adl.q1, ds, chunk_size=150, allow_partial=True, run_dir=False, progress=False
        )
        assert result.report.units_done == 0
        for failure in result.report.failures:
            assert str(a) in failure.message
            assert "400" in failure.message


def test_a_described_file_that_matches_runs_as_an_opened_one(small_files: list[Path]) -> None:
    """Positive control of the test above: the right count runs every unit."""
    a = small_files[0]
    ds = Dataset.open({"url": str(a), "entries": 400, "bytes": 1})
    result = saetta.run(adl.q1, ds, chunk_size=150, run_dir=False, progress=False)
    assert result.report.units_done == result.report.units_total == 3
    assert list(flow_values(result, "q1_met")) == list(reference_histograms(a)["q1_met"])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "{url: a.root, entries: -1, bytes: 3}",
            "'entries' of a.root must be a whole number >= 0, not -1",
        ),
        (
            "{url: a.root, entries: ten, bytes: 3}",
            "'entries' of a.root must be a whole number >= 0, not 'ten'",
        ),
        (
            "{url: a.root, entries: true, bytes: 3}",
            "'entries' of a.root must be a whole number >= 0, not True",
        ),
        (
            "{url: a.root, entries: 1.5, bytes: 3}",
            "'entries' of a.root must be a whole number >= 0, not 1.5",
        ),
        (
            "{url: a.root, entries: 5, bytes: -3}",
            "'bytes' of a.root must be a whole number >= 0, not -3",
        ),
        ("{url: a.root, entries: 5}", "needs url, entries, bytes; 'bytes' is missing"),
        ("{url: a.root, entries: 5, bytes: 1, tree: T}", "unknown key 'tree' in a described file"),
        ("{url: 5, entries: 5, bytes: 1}", "'url' must be a path or URL, not 5"),
        ("{url: '', entries: 5, bytes: 1}", "'url' must be a path or URL, not ''"),
        (
            "7",
            "file 2 of 'files' must be a path, URL or glob, or {url: ..., entries: N, bytes: B}, not 7",
        ),
    ],
)
def test_malformed_described_files_name_the_problem(
    item: str, message: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text(f"ttbar:\n  files:\n    - x.root\n    - {item}\n")
    with pytest.raises(saetta.DatasetError) as info:
        saetta.Dataset.from_catalog("ttbar", catalog)
    text = str(info.value)
    assert text.startswith(f"dataset 'ttbar' in {catalog}: ")
    assert message in text
    assert "\n" not in text


def test_a_good_described_file_in_a_catalog_opens(tmp_path: Path) -> None:
    """Positive control of the test above."""
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text("ttbar:\n  files:\n    - {url: 'root://h//a.root', entries: 5, bytes: 1}\n")
    ds = saetta.Dataset.from_catalog("ttbar", catalog)
    assert (ds.num_entries, ds.files[0].path, ds.files[0].format) == (5, "root://h//a.root", "root")


def test_a_malformed_described_file_given_to_open() -> None:
    with pytest.raises(saetta.DatasetError, match=r"cannot take .* as a file: 'entries' of a.root"):
        Dataset.open({"url": "a.root", "entries": -5, "bytes": 1})
    assert Dataset.open({"url": "a.root", "entries": 5, "bytes": 1}).num_entries == 5


# --------------------------------------------------------------------------- the metadata cache


@pytest.fixture
def many_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "many"
    return [
        generate_nanoaod(folder / f"f{i:02d}.root", 50 + 10 * i, seed=i, chunk_events=40)
        for i in range(12)
    ]


def _infos(ds: Dataset) -> list[tuple[Any, ...]]:
    return [
        (
            f.path,
            f.tree,
            f.format,
            f.num_entries,
            f.size_bytes,
            f.columns,
            f.boundaries,
            f.file_entries,
        )
        for f in ds.files
    ]


def test_a_second_open_reads_no_file(
    many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scans = _counting(monkeypatch, "scan")
    readers = _counting(monkeypatch, "shared_reader")
    identities = _counting(monkeypatch, "file_identity")
    first = Dataset.open(many_files)
    assert (len(scans), len(readers)) == (12, 12)  # control: the first open reads each file
    scans.clear(), readers.clear(), identities.clear()
    second = Dataset.open([str(p) for p in many_files])
    assert (len(scans), len(readers)) == (0, 0)
    assert sorted(c[0] for c in identities) == sorted(str(p) for p in many_files)  # checked
    assert _infos(second) == _infos(first) == _infos(Dataset.open(many_files, metadata_cache=False))
    assert second.units(33) == first.units(33)
    assert all(f.columns is second.files[0].columns for f in second.files)  # shared, not copied
    assert metadata_path().is_file()


def test_a_rewritten_file_is_read_again(
    many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    Dataset.open(many_files)
    scans = _counting(monkeypatch, "scan")
    changed = many_files[3]
    generate_nanoaod(changed, 333, seed=99, chunk_events=100)  # other events, other size
    touched = many_files[7]  # the same bytes, a new modification time: read again too
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds = Dataset.open(many_files)
    assert sorted(c[0] for c in scans) == sorted([str(changed), str(touched)])
    info = ds.files[3]
    with uproot.open(changed) as f:
        assert info.num_entries == f["Events"].num_entries == 333
    assert info.size_bytes == changed.stat().st_size
    assert info.boundaries == (0, 100, 200, 300, 333)
    scans.clear()
    assert Dataset.open(many_files).files[3].num_entries == 333
    assert scans == []


def test_the_cache_keys_tree_and_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = generate_nanoaod(tmp_path / "t.root", 90, seed=1, tree="Other")
    Dataset.open(path, tree="Other")
    scans = _counting(monkeypatch, "scan")
    with pytest.raises(saetta.FormatError):  # another tree: read (and not found), not served
        Dataset.open(path, tree="Events")
    assert len(scans) == 1


def test_a_corrupt_database_of_saettas_own_is_rebuilt(
    many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    Dataset.open(many_files)
    database = metadata_path()
    database.write_bytes(b"this is not a database\n" * 200)
    scans = _counting(monkeypatch, "scan")
    ds = Dataset.open(many_files)  # no warning (they are errors in the tests), no failure
    assert len(scans) == 12
    assert _infos(ds) == _infos(Dataset.open(many_files, metadata_cache=False))
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM files").fetchone() == (12,)
    scans.clear()
    Dataset.open(many_files)
    assert scans == []


def test_a_corrupt_database_elsewhere_is_left_alone(
    tmp_path: Path, many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "shared" / "metadata.sqlite"
    database.parent.mkdir()
    garbage = b"someone else's file\n" * 300
    database.write_bytes(garbage)
    scans = _counting(monkeypatch, "scan")
    for _ in range(2):
        Dataset.open(many_files, metadata_cache=database)
    assert len(scans) == 24  # read both times: the database is of no use
    assert database.read_bytes() == garbage
    assert not metadata_path().exists()  # and saetta's own was not used instead
    scans.clear()
    other = tmp_path / "shared" / "fresh.sqlite"  # control: a new file there is a cache
    for _ in range(2):
        Dataset.open(many_files, metadata_cache=other)
    assert len(scans) == 12


def test_a_database_of_another_version_is_left_alone(
    many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    Dataset.open(many_files[:2])
    with sqlite3.connect(metadata_path()) as db:
        db.execute("PRAGMA user_version = 99")
    scans = _counting(monkeypatch, "scan")
    Dataset.open(many_files[:2])
    assert len(scans) == 2
    with sqlite3.connect(metadata_path()) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (99,)
        assert db.execute("SELECT count(*) FROM files").fetchone() == (2,)


def test_the_cache_can_be_turned_off(
    many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scans = _counting(monkeypatch, "scan")
    Dataset.open(many_files[:3], metadata_cache=False)
    Dataset.open(many_files[:3], metadata_cache=False)
    monkeypatch.setenv("SAETTA_METADATA_CACHE", "off")
    Dataset.open(many_files[:3])
    assert len(scans) == 9
    assert not metadata_path().exists()


def test_two_processes_open_at_once(
    tmp_path: Path, many_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "import sys, saetta; print(saetta.Dataset.open(sys.argv[1:]).num_entries)"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    names = [str(p) for p in many_files]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *(names if k == 0 else names[::-1])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    expected = sum(50 + 10 * i for i in range(12))
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert out.strip() == str(expected)
    with sqlite3.connect(metadata_path()) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    scans = _counting(monkeypatch, "scan")
    assert Dataset.open(many_files).num_entries == expected
    assert scans == []


@pytest.mark.slow
def test_a_remote_file_is_cached_by_its_url(
    https_server: Any, small_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    shutil.copy(small_files[2], https_server.root / "cached.root")
    https_server.sync()
    url = str(https_server.url("cached.root"))
    options = {https_server.protocol: https_server.storage_options}
    scans = _counting(monkeypatch, "scan")
    identities = _counting(monkeypatch, "file_identity")
    first = Dataset.open(url, storage_options=options)
    second = Dataset.open(url, storage_options=options)
    assert len(scans) == 1
    assert len(identities) == 2
    assert _infos(second) == _infos(first)
    assert second.num_entries == 257
    with sqlite3.connect(metadata_path()) as db:
        assert db.execute("SELECT key FROM files").fetchall() == [(url,)]
