"""Damaged files fail as FormatError naming the file: one test for each way the fuzz
test (test_fuzz.py) found one failing as something else.

Each damages a byte or two of the fuzz test's small file, at a place found from the
file's own structure (or writes a small file that contradicts itself), and says what
it used to give instead. The last tests are the controls: an analysis's own errors
keep their own type.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corrupt")
    return {
        suffix: generate_nanoaod(folder / f"tiny{suffix}", 300, seed=4, chunk_events=100)
        for suffix in (".root", ".parquet")
    }


def damaged(source: Path, folder: Path, changes: dict[int, int], name: str = "bad") -> Path:
    """A copy of ``source`` with byte ``offset`` set to ``value`` for each change."""
    data = bytearray(source.read_bytes())
    for offset, value in changes.items():
        assert data[offset] != value, "the change would change nothing"
        data[offset] = value
    path = folder / f"{name}{source.suffix}"
    path.write_bytes(bytes(data))
    return path


def run(analysis: Any, path: Path) -> saetta.Result:
    return saetta.run(analysis, path, run_dir=False, progress=False, allow_partial=True)


def only_failure(result: saetta.Result) -> Any:
    assert result.report.events_processed == 0
    (failure,) = result.report.failures
    return failure


def first_basket_data(path: Path, branch: str) -> int:
    """Where the compressed bytes of ``branch``'s first basket start."""
    with uproot.open(path) as f:
        basket = f["Events"][branch].basket(0)
        seek = int(f["Events"][branch].member("fBasketSeek")[0])
        keylen = int(basket.member("fKeylen"))
        assert basket.member("fNbytes") < keylen + basket.member("fObjlen"), "not compressed"
    return seek + keylen + 9  # 9: the compression header


def tree_entries(path: Path) -> int:
    """Where the tree's entry count (fEntries, a big-endian int64) is stored."""
    data = path.read_bytes()
    with uproot.open(path) as f:
        key = f.key("Events")
        start = key.fSeekKey + key.fKeylen
        entries = f["Events"].num_entries
    return data.index(entries.to_bytes(8, "big"), start)


# --- ROOT ---------------------------------------------------------------------


def test_damaged_basket_is_a_format_error(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A flipped byte in a compressed basket: ISA-L's IsalError, which uproot's
    decompressor raises with isal installed, failed the unit as 'IsalError'."""
    where = first_basket_data(tiny[".root"], "Muon_pt") + 50
    path = damaged(tiny[".root"], tmp_path, {where: tiny[".root"].read_bytes()[where] ^ 0xFF})
    failure = only_failure(run(adl.analysis, path))
    assert failure.error == "FormatError"
    assert "cannot read Muon_pt [0:300]" in failure.message
    assert str(path) in failure.message


def test_damaged_counter_read_as_a_field_is_a_format_error(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """A damaged nJet, first read by ``events.Jet.btag``: awkward turns an error while it
    gets a field into an AttributeError, so the unit failed as 'AttributeError'."""
    where = first_basket_data(tiny[".root"], "nJet") + 20
    path = damaged(tiny[".root"], tmp_path, {where: tiny[".root"].read_bytes()[where] ^ 0xFF})

    def analysis(events: ak.Array) -> dict[str, float]:
        return {"btag": float(ak.sum(events.Jet.btag))}

    failure = only_failure(run(analysis, path))
    assert failure.error == "FormatError", failure.message
    assert "cannot read nJet" in failure.message
    assert str(path) in failure.message


@pytest.mark.parametrize(("byte", "entries"), [(0, -72057594037927636), (3, 1095216660780)])
def test_damaged_entry_count_is_a_format_error(
    tiny: dict[str, Path], tmp_path: Path, byte: int, entries: int
) -> None:
    """fEntries of the TTree made huge or negative: the metadata scan took it, and the
    run hung cutting the file into units, filling memory."""
    where = tree_entries(tiny[".root"]) + byte
    path = damaged(tiny[".root"], tmp_path, {where: tiny[".root"].read_bytes()[where] ^ 0xFF})
    with pytest.raises(
        saetta.FormatError, match=f"of {path} counts {entries} entries, its baskets 300"
    ):
        saetta.Dataset.open(path)


def records(path: Path) -> dict[str, int]:
    """Where the tree's record (its metadata, stored uncompressed) and the streamers start.

    Offsets inside them hold from one such file to the next; offsets from the file's
    start do not, as the file's header holds its name.
    """
    with uproot.open(path) as f:
        key = f.key("Events")
        return {"tree": key.fSeekKey + key.fKeylen, "streamers": f.file.fSeekInfo}


@pytest.mark.parametrize(
    ("cause", "changes", "where"),
    [
        # a TBranch's class tag (kNewClassTag, FF FF FF FF) zeroed: a member read as None
        ("AttributeError", {("tree", 717): 0x00}, "cannot read tree 'Events'"),
        # a TLeafI's class tag zeroed: the same, as saetta lists the branches
        ("AttributeError", {("tree", 411): 0x00}, "cannot read the branches of tree 'Events'"),
        # a TBranch's byte count 0x40... -> 0xBF...: memberwise streaming, unsupported
        ("NotImplementedError", {("tree", 729): 0xBF}, "cannot read tree 'Events'"),
        # the class name TLeafI -> TLeafk: an unknown class, without the member fTitle
        ("KeyInFileError", {("tree", 10787): ord("k")}, "cannot read the branches of tree"),
        # a class version in the tree and a class name in the streamers, both damaged
        (
            "RecursionError",
            {("tree", 5486): 94, ("streamers", 7620): 190},
            "cannot read tree 'Events'",
        ),
    ],
)
def test_damaged_tree_metadata_is_a_format_error(
    tiny: dict[str, Path],
    tmp_path: Path,
    cause: str,
    changes: dict[tuple[str, int], int],
    where: str,
) -> None:
    """Damage to the tree's record, which the metadata scan reads: these were raised out
    of Dataset.open and saetta.run as they were, not as FormatError."""
    start = records(tiny[".root"])
    path = damaged(
        tiny[".root"],
        tmp_path,
        {start[record] + at: value for (record, at), value in changes.items()},
    )
    with pytest.raises(saetta.FormatError, match=f"^{where}.* of {path} \\({cause}: ") as info:
        saetta.Dataset.open(path)
    assert type(info.value.__cause__).__name__ == cause  # the damage still hits its mark


def test_entries_without_baskets_is_a_format_error(tiny: dict[str, Path], tmp_path: Path) -> None:
    """The byte count of the tree's TAttLine, 0x40... -> 0x2F...: uproot reads on out of
    step, into a tree of no branches and 2814758357106689 entries, which the metadata
    scan took; the run hung cutting them into units."""
    path = damaged(tiny[".root"], tmp_path, {records(tiny[".root"])["tree"] + 30: 0x2F})
    with pytest.raises(
        saetta.FormatError, match=f"of {path} counts 2814758357106689 entries, its baskets 0$"
    ):
        saetta.Dataset.open(path)


# --- Parquet ------------------------------------------------------------------


def footer(path: Path) -> int:
    """Where a Parquet file's footer (its Thrift FileMetaData) starts."""
    data = path.read_bytes()
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def test_damaged_size_statistics_do_not_abort(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Footer byte 5182, 0x26 -> 0x14, garbles Jet_phi's size statistics in the second
    row group. pyarrow reports that as an OSError when it reads Jet_phi, but raises an
    untranslated C++ exception from ``RowGroupMetaData.column``, which aborted the
    process as saetta counted the bytes of any column read (here MET_pt, first).
    In a child process, so that a regression fails this test, not the test session.
    """
    where = footer(tiny[".parquet"]) + 5182
    assert tiny[".parquet"].read_bytes()[where] == 0x26, "the footer's layout changed"
    path = damaged(tiny[".parquet"], tmp_path, {where: 0x14})
    script = textwrap.dedent(
        """
        import sys
        import awkward as ak
        import saetta

        def met(events):
            return {"met": float(ak.sum(events.MET.pt))}

        def jets(events):
            return {"phi": float(ak.sum(events.Jet.phi))}

        for analysis in (met, jets):
            result = saetta.run(
                analysis, sys.argv[1], run_dir=False, progress=False, allow_partial=True
            )
            failures = result.report.failures
            print(f"{failures[0].error} {failures[0].message}" if failures else "- ok")
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    met, everything = child.stdout.splitlines()[-2:]
    assert met == "- ok"  # an undamaged column reads
    assert everything.startswith(f"FormatError cannot read Jet_phi [0:300] of {path}")
    assert "Repetition level histogram size mismatch" in everything


@pytest.mark.parametrize(("byte", "rows"), [(0, -301), (1, 364)])
def test_damaged_row_count_is_a_format_error(
    tiny: dict[str, Path], tmp_path: Path, byte: int, rows: int
) -> None:
    """The footer's num_rows (300: the zigzag varint D8 04 at footer byte 1079) with a
    low bit flipped. -301 made units of negative ranges, a DatasetError; 364 made
    units past the last row, whose fields failed as AttributeError."""
    where = footer(tiny[".parquet"]) + 1079
    original = tiny[".parquet"].read_bytes()
    assert original[where - 1 : where + 2] == bytes([0x16, 0xD8, 0x04]), "the footer changed"
    path = damaged(tiny[".parquet"], tmp_path, {where + byte: original[where + byte] ^ 0x01})
    with pytest.raises(
        saetta.FormatError, match=rf"^{path} counts {rows} rows, its row groups 100 \+ 100 \+ 100$"
    ):
        saetta.Dataset.open(path)


# --- the events view of a file ------------------------------------------------


def parquet(path: Path, **columns: Any) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def jagged(*lists: list[float]) -> pa.Array:
    return pa.array(lists, pa.list_(pa.float32()))


def test_negative_count_is_a_format_error(tmp_path: Path) -> None:
    """A counter with a negative count whose total still matches: offsets that go back,
    which gave a wrong result (and could send a compiled kernel out of bounds)."""
    path = parquet(
        tmp_path / "negative.parquet",
        nJet=pa.array([2, -1, 1], pa.int32()),
        Jet_pt=jagged([1.0], [2.0], []),
    )

    def analysis(events: ak.Array) -> dict[str, Any]:
        return {"n": np.asarray(ak.num(events.Jet.pt))}

    failure = only_failure(run(analysis, path))
    assert failure.error == "FormatError"
    assert (
        failure.message
        == f"nJet has a negative count in [0:3] of {path}, expected 3 counts of 0 or more"
    )


def test_collection_vector_cannot_take_stays_plain(tmp_path: Path) -> None:
    """Jet_pt, Jet_phi and Jet_mass but no jagged Jet_eta (as when damage to a file made
    Jet_eta a flat branch): vector refused Momentum2D with a mass, a TypeError on
    ``events.Jet``."""
    path = parquet(
        tmp_path / "noeta.parquet",
        nJet=pa.array([1, 0, 2], pa.int32()),
        Jet_pt=jagged([1.0], [], [3.0, 4.0]),
        Jet_phi=jagged([0.5], [], [0.1, 0.2]),
        Jet_mass=jagged([2.0], [], [5.0, 6.0]),
    )

    def analysis(events: ak.Array) -> dict[str, float]:
        return {"mass": float(ak.sum(events.Jet.mass)), "pt": float(ak.sum(events.Jet.pt))}

    result = run(analysis, path)
    assert not result.report.failures
    assert result["mass"] == 13.0
    assert result["pt"] == 8.0


# --- positive controls: an analysis's own errors stay its own -------------------


class MyAnalysisBug(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (ValueError("bad cut"), "ValueError"),
        (MyAnalysisBug("oops"), "MyAnalysisBug"),
        (KeyError("Jet_pt"), "KeyError"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError"),
    ],
)
def test_analysis_errors_on_good_data_keep_their_type(
    tiny: dict[str, Path], error: Exception, name: str
) -> None:
    def analysis(events: ak.Array) -> dict[str, float]:
        total = float(ak.sum(events.Jet.pt))  # reads columns first: the read is fine
        raise error from ValueError(f"total {total}")

    for path in tiny.values():
        failure = only_failure(run(analysis, path))
        assert failure.error == name
        assert failure.traceback  # an analysis's error keeps its traceback


def test_misspelt_field_stays_an_attribute_error(tiny: dict[str, Path]) -> None:
    def analysis(events: ak.Array) -> dict[str, float]:
        return {"pt": float(ak.sum(events.Jet.ptt))}

    for path in tiny.values():
        failure = only_failure(run(analysis, path))
        assert failure.error == "AttributeError"
        assert "did you mean 'pt'" in failure.message


def test_unmergeable_result_stays_an_analysis_error(tiny: dict[str, Path]) -> None:
    failure = only_failure(run(lambda events: [len(events)], tiny[".root"]))
    assert failure.error == "AnalysisError"
