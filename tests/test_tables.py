"""Tables as results: every unit's rows exactly once, in unit order, whatever the executor
or a kill and resume in between; recorded exactly; written as Parquet and JSON.

The reference reads the files with uproot and selects with numpy, one file after the
other in the dataset's canonical order (by path); it shares no code with saetta.run.
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

SAETTA = str(Path(sys.executable).with_name("saetta"))
CUT = 40.0

FIND = """
import os, time
import numpy as np
import saetta

def analysis(events):
    time.sleep(float(os.environ.get("UNIT_SLEEP", "0")))
    met = np.asarray(events.MET.pt)
    keep = met > 40.0
    entry = np.arange(len(met)) + events.attrs["start"]
    return {"found": saetta.Table({"entry": entry[keep], "met": met[keep]})}
"""


def find(events):  # type: ignore[no-untyped-def]
    met = np.asarray(events.MET.pt)
    keep = met > CUT
    entry = np.arange(len(met), dtype=np.int64) + events.attrs["start"]
    file = np.full(len(met), int(os.path.basename(events.attrs["path"])[0] == "c"))
    return {"found": saetta.Table({"file": file[keep], "entry": entry[keep], "met": met[keep]})}


def _reference(files: list[Path]) -> list[tuple[int, int, float]]:
    rows = []
    for path in sorted(files):
        with uproot.open(path) as f:
            met = f["Events"]["MET_pt"].array(library="np")
        for entry in np.nonzero(met > CUT)[0]:
            rows.append((int(path.name[0] == "c"), int(entry), float(met[entry])))
    return rows


def _recorded(run_dir: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in run_dir.glob("units/*.jsonl"))


def _rows(table: saetta.Table) -> list[tuple[int, int, float]]:
    return [(r["file"], r["entry"], r["met"]) for r in table]


@pytest.mark.parametrize(("executor", "chunk_size"), [("local", 1_000), ("processes:2", 37)])
def test_rows_once_in_unit_order(small_files: list[Path], executor: str, chunk_size: int) -> None:
    result = saetta.run(
        find, small_files, executor=executor, chunk_size=chunk_size, progress=False, run_dir=False
    )
    table = result["found"]
    assert isinstance(table, saetta.Table)
    assert table.names == ("file", "entry", "met")
    assert table["met"].dtype == np.float32
    assert _rows(table) == _reference(small_files)


def test_sorted_and_parquet(small_files: list[Path], tmp_path: Path) -> None:
    table = saetta.run(find, small_files, progress=False, run_dir=False)["found"]
    by_met = table.sorted("met")
    assert list(by_met["met"]) == sorted(table["met"])
    assert sorted(_rows(by_met)) == sorted(_rows(table))
    target = tmp_path / "found.parquet"
    by_met.write_parquet(target)
    back = pq.read_table(target).to_pydict()
    assert back["met"] == [float(x) for x in by_met["met"]]
    assert back["entry"] == by_met["entry"].tolist()
    assert not list(tmp_path.glob("*partial*"))


def test_record_round_trip_and_malformed_records() -> None:
    table = saetta.Table(
        {"t": [1.5, np.nan, -np.inf], "n": np.array([1, 2, 3], np.uint8), "ok": [True, False, True]}
    )
    back = decode_result(json.loads(json.dumps(encode_result({"x": table}))))["x"]
    assert back == table
    assert back["n"].dtype == np.uint8
    assert saetta.Table({"t": [1.0]}) != saetta.Table({"t": [2.0]})  # positive control
    good = encode_result(table)
    for broken in (
        {"$table": [["t", good["$table"][0][1]], ["t", good["$table"][0][1]]]},  # a name twice
        {
            "$table": [
                ["t", good["$table"][0][1]],
                ["n", {"$array": "<f8", "shape": [1], "data": "AAAAAAAAAAA="}],
            ]
        },
        {"$table": "t"},
    ):
        with pytest.raises(RecordError):
            decode_result(broken)


def test_bad_tables_and_mismatched_merges() -> None:
    with pytest.raises(saetta.AnalysisError, match="differ in length"):
        saetta.Table({"a": [1, 2], "b": [1]})
    with pytest.raises(saetta.AnalysisError, match="'s' holds <U1; a column holds numbers"):
        saetta.Table({"s": ["x"]})
    with pytest.raises(saetta.AnalysisError, match="2-d"):
        saetta.Table({"m": np.zeros((2, 2))})
    from saetta.accumulate import merge

    one = saetta.Table({"a": [1.0]})
    with pytest.raises(saetta.AnalysisError, match="cannot be merged"):
        merge(one, saetta.Table({"b": [1.0]}))
    assert merge(one, saetta.Table({"a": [2.0]})) == saetta.Table({"a": [1.0, 2.0]})
    assert one == saetta.Table({"a": [1.0]})  # the first partial is not modified


def test_sigkill_then_resume_lists_every_row_once(small_files: list[Path], tmp_path: Path) -> None:
    (tmp_path / "find.py").write_text(FIND)
    run_dir = tmp_path / "run"
    env = {**os.environ, "UNIT_SLEEP": "0.3"}
    args = [SAETTA, "run", "find.py:analysis", *map(str, small_files)]
    args += ["--chunk-size", "50", "--run-dir", str(run_dir)]
    first = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while _recorded(run_dir) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert 3 <= _recorded(run_dir) < 14  # killed mid-run: some units recorded, not all
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
    found = json.loads((tmp_path / "out.json").read_text())["values"]["found"]["table"]
    expected = [(e, m) for _, e, m in _reference(small_files)]
    assert list(zip(found["entry"], found["met"], strict=True)) == expected
