"""Event-level outputs: each unit writes its shard once, a resumed or re-run unit never twice.

The reference selection reads the files with uproot directly and cuts with numpy;
it shares no code with the skim, which goes through saetta.run and write_shard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

import saetta
from saetta.execute.record import RecordError, decode_result, encode_result
from saetta.shards import Shard, Shards

SAETTA = str(Path(sys.executable).with_name("saetta"))
CUT = 40.0

# A NanoAOD skim to Parquet: the events with MET above the cut, their file and entry kept.
SKIM = """
import os, time
import numpy as np
import saetta

def analysis(events):
    time.sleep(float(os.environ.get("UNIT_SLEEP", "0")))
    met = np.asarray(events.MET.pt)
    keep = met > float(os.environ.get("CUT", "40"))
    start = events.attrs["start"]
    table = {
        "file": np.full(int(keep.sum()), os.path.basename(events.attrs["path"])),
        "entry": (np.arange(len(met)) + start)[keep],
        "MET_pt": met[keep],
    }
    return {"skim": saetta.write_shard(events, os.environ["SKIMS"], table), "n": int(keep.sum())}
"""


def _reference(files: list[Path]) -> set[tuple[str, int, float]]:
    out = set()
    for path in files:
        with uproot.open(path) as f:
            met = f["Events"]["MET_pt"].array(library="np")
        for entry in np.nonzero(met > CUT)[0]:
            out.add((path.name, int(entry), float(met[entry])))
    return out


def _written(folder: Path) -> list[tuple[str, int, float]]:
    rows = []
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path).to_pydict()
        rows += zip(table["file"], table["entry"], table["MET_pt"], strict=True)
    return [(f, int(e), float(m)) for f, e, m in rows]


def skimming_into(folder: Path):  # type: ignore[no-untyped-def]
    # The folder travels inside the function: a process pool's workers may have been
    # forked before this test could set an environment variable for them.
    def skim(events):  # type: ignore[no-untyped-def]
        met = np.asarray(events.MET.pt)
        keep = met > CUT
        table = {
            "file": np.full(int(keep.sum()), os.path.basename(events.attrs["path"])),
            "entry": (np.arange(len(met)) + events.attrs["start"])[keep],
            "MET_pt": met[keep],
        }
        return {"skim": saetta.write_shard(events, folder, table), "n": int(keep.sum())}

    return skim


def test_skim_writes_every_selected_event_once(tmp_path: Path, small_files: list[Path]) -> None:
    result = saetta.run(
        skimming_into(tmp_path / "skims"), small_files, chunk_size=100, executor="processes:2",
        progress=False,
    )  # fmt: skip
    shards = result["skim"]
    written = _written(tmp_path / "skims")
    assert sorted(written) == sorted(_reference(small_files))
    assert len(written) == len(set(written)) == shards.events == result["n"]
    # one shard per unit, the empty file's units included as none (it has no units)
    assert len(shards) == result.report.units_total
    assert sorted(shards.paths) == sorted(map(str, (tmp_path / "skims").glob("*.parquet")))
    assert shards.bytes == sum(os.path.getsize(p) for p in shards.paths)
    # a unit with nothing selected still writes its (empty) shard: the folder says it ran
    assert any(s.events == 0 for s in shards) or all(s.events > 0 for s in shards)


def test_sigkill_mid_skim_then_resume_writes_nothing_twice(
    tmp_path: Path, small_files: list[Path]
) -> None:
    (tmp_path / "skim.py").write_text(SKIM)
    skims = tmp_path / "skims"
    run_dir = tmp_path / "run"
    env = {**os.environ, "SKIMS": str(skims), "UNIT_SLEEP": "0.3", "CUT": str(CUT)}
    args = [SAETTA, "run", "skim.py:analysis", *map(str, small_files)]
    args += ["--chunk-size", "50", "--run-dir", str(run_dir)]
    first = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(list(skims.glob("*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = {p.name: p.stat().st_mtime_ns for p in skims.glob("*.parquet")}
    assert 3 <= len(before) < 14

    resumed = subprocess.run(
        [SAETTA, "run", "--resume", str(run_dir), "-o", "out.json"],
        cwd=tmp_path,
        env={**env, "UNIT_SLEEP": "0"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    written = _written(skims)
    assert sorted(written) == sorted(_reference(small_files))
    assert len(written) == len(set(written))
    document = json.loads((tmp_path / "out.json").read_text())
    listed = document["values"]["skim"]["shards"]
    assert sorted(s["name"] for s in listed) == sorted(p.name for p in skims.glob("*.parquet"))
    assert sum(s["events"] for s in listed) == len(written)
    # the shards there before the kill were not written again
    again = [n for n, t in before.items() if (skims / n).stat().st_mtime_ns != t]
    assert len(again) <= 1, again  # at most the unit caught between its rename and its record
    assert not list(skims.glob(".*partial*"))


def test_unit_killed_after_writing_reruns_into_the_same_shard(
    tmp_path: Path, small_files: list[Path]
) -> None:
    flag = tmp_path / "died"
    folder = tmp_path / "skims"

    def dies_after_writing(events):  # type: ignore[no-untyped-def]
        met = np.asarray(events.MET.pt)
        shards = saetta.write_shard(events, folder, {"MET_pt": met[met > CUT]})
        if events.attrs["start"] > 0 and not flag.exists():
            flag.write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        return {"skim": shards}

    result = saetta.run(
        dies_after_writing, small_files[:1], chunk_size=100, executor="processes:2",
        progress=False,
    )  # fmt: skip
    assert flag.exists()  # the worker did die once, after its shard was in place
    assert result.report.complete
    met = uproot.open(small_files[0])["Events"]["MET_pt"].array(library="np")
    values = np.concatenate([pq.read_table(p)["MET_pt"].to_numpy() for p in result["skim"].paths])
    np.testing.assert_array_equal(np.sort(values), np.sort(met[met > CUT]))
    assert len(list(folder.iterdir())) == result.report.units_total


def test_two_units_writing_one_name_is_refused(tmp_path: Path, small_files: list[Path]) -> None:
    def same_name(events):  # type: ignore[no-untyped-def]
        return {"skim": saetta.write_shard(events, tmp_path, {"x": [1]}, name="one.parquet")}

    with pytest.raises(saetta.UnitError, match="written by two work units"):
        saetta.run(same_name, small_files[:1], chunk_size=100, progress=False)

    # positive control: names of their own merge
    def own_name(events):  # type: ignore[no-untyped-def]
        return {"skim": saetta.write_shard(events, tmp_path / "own", {"x": [1]})}

    result = saetta.run(own_name, small_files[:1], chunk_size=100, progress=False)
    assert len(result["skim"]) == result.report.units_total > 1


def test_shards_record_round_trip_and_malformed_records() -> None:
    shards = Shards("/data/skims", {"a.parquet": Shard("a.parquet", 3, 100)})
    shards = shards + Shards("/data/skims", {"b.parquet": Shard("b.parquet", 0, 50)})
    document = json.loads(json.dumps(encode_result({"skim": shards})))
    assert decode_result(document)["skim"] == shards
    assert decode_result(document)["skim"].events == 3
    bad = json.loads(json.dumps(document))
    bad["$dict"][0][1]["files"][1][1] = -1
    with pytest.raises(RecordError, match="each shard"):
        decode_result(bad)
    bad["$dict"][0][1]["files"][1] = ["a.parquet", 1, 1]  # the same name twice
    with pytest.raises(RecordError, match="each name once"):
        decode_result(bad)


def test_hdf5_shards_and_own_writers(tmp_path: Path) -> None:
    import h5py

    shards = saetta.write_shard(
        None, tmp_path, {"energy": np.arange(5.0), "voxels": np.ones((5, 3))}, name="s.h5",
        format="hdf5",
    )  # fmt: skip
    with h5py.File(tmp_path / "s.h5") as f:
        np.testing.assert_array_equal(f["voxels"][:], np.ones((5, 3)))
    assert shards.events == 5

    def own(path: Path) -> int:
        path.write_text("x\ny\n")
        return 2

    mine = saetta.write_shard(None, tmp_path, own, name="lines.txt")
    assert (tmp_path / "lines.txt").read_text() == "x\ny\n"
    assert mine.events == 2
    with pytest.raises(saetta.AnalysisError, match="plain file name"):
        saetta.write_shard(None, tmp_path, own, name="../escape.txt")
    with pytest.raises(saetta.AnalysisError, match="needs the unit's events"):
        saetta.write_shard(None, tmp_path, {"x": [1]})
    with pytest.raises(saetta.AnalysisError, match="different lengths"):
        saetta.write_shard(None, tmp_path, {"x": [1], "y": [1, 2]}, name="bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()


def test_a_stale_partial_of_the_same_shard_is_removed(tmp_path: Path) -> None:
    """What an attempt killed mid-write left goes once the shard is written; another
    shard's partial (perhaps being written right now) and the user's files stay."""
    folder = tmp_path / "skims"
    folder.mkdir()
    stale = folder / ".mine.parquet.partial-999999"
    other = folder / ".theirs.parquet.partial-999999"
    users = folder / "notes.txt"
    for path in (stale, other, users):
        path.write_text("x")
    shards = saetta.write_shard(None, folder, {"x": np.arange(3.0)}, name="mine.parquet")
    assert shards.events == 3
    assert not stale.exists()
    assert other.exists()
    assert users.exists()
    assert pq.read_table(folder / "mine.parquet")["x"].to_pylist() == [0.0, 1.0, 2.0]
