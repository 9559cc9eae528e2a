"""Nothing lost, nothing doubled: run directories, resume, dead workers — with real faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from adl_reference import reference_histograms
from conftest import flow_values

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod

SAETTA = str(Path(sys.executable).with_name("saetta"))

# An analysis that leaves one marker file per unit it completes, and is slow enough to kill.
MARKING = """
import os, time
from saetta.analyses import adl

def analysis(events):
    time.sleep(float(os.environ.get("UNIT_SLEEP", "0")))
    out = adl.analysis(events)
    folder = os.environ["MARKS"]
    name = f"{os.path.basename(events.attrs['path'])}-{events.attrs['start']}"
    with open(os.path.join(folder, name), "a") as f:
        f.write("x")
    return out
"""


def recorded_units(run_dir: Path) -> int:
    """Finished units recorded in a run directory: the complete lines of its segments."""
    return sum(p.read_bytes().count(b"\n") for p in (run_dir / "units").glob("*.jsonl"))


def _expected(paths: list[Path]) -> dict[str, np.ndarray]:
    parts = [reference_histograms(p) for p in paths]
    return {k: sum(p[k] for p in parts) for k in parts[0]}


def test_sigkill_then_resume(tmp_path: Path, small_files: list[Path]) -> None:
    (tmp_path / "marking.py").write_text(MARKING)
    marks = tmp_path / "marks"
    marks.mkdir()
    run_dir = tmp_path / "run"
    env = {**os.environ, "MARKS": str(marks), "UNIT_SLEEP": "0.3"}
    args = [
        SAETTA,
        "run",
        "marking.py:analysis",
        *map(str, small_files),
        "--chunk-size",
        "50",
        "--run-dir",
        str(run_dir),
    ]
    first = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while recorded_units(run_dir) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    done_before = recorded_units(run_dir)
    assert 3 <= done_before < 14

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
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["complete"]
    assert document["report"]["events_processed"] == 657
    for name, values in _expected(small_files).items():
        np.testing.assert_array_equal(document["histograms"][name]["values"], values, err_msg=name)
    units_total = document["report"]["units_total"]
    executions = sum(len(p.read_text()) for p in marks.iterdir())
    # a unit caught mid-flight by the kill never completed, so it ran once, after the resume
    assert executions == units_total
    assert all(p.read_text() == "x" for p in marks.iterdir())


def flaky(events):  # type: ignore[no-untyped-def]
    if os.environ.get("FAIL_FILE") and events.attrs["path"].endswith(os.environ["FAIL_FILE"]):
        msg = "not today"
        raise RuntimeError(msg)
    with open(os.environ["MARKS"], "a") as f:
        f.write(f"{os.path.basename(events.attrs['path'])}:{events.attrs['start']}\n")
    return adl.q1(events)


def test_resume_runs_only_failed_and_missing_units(
    tmp_path: Path, small_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    marks = tmp_path / "marks.txt"
    monkeypatch.setenv("MARKS", str(marks))
    monkeypatch.setenv("FAIL_FILE", "c.root")
    run_dir = tmp_path / "run"
    partial = saetta.run(
        flaky, small_files, chunk_size=100, run_dir=run_dir, allow_partial=True, progress=False
    )
    assert partial.report.events_processed == 400
    assert json.loads((run_dir / "failures.json").read_text())[0]["message"] == "not today"
    first = marks.read_text().splitlines()
    monkeypatch.delenv("FAIL_FILE")
    result = saetta.run(flaky, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    second = marks.read_text().splitlines()[len(first) :]
    assert all(line.startswith("c.root:") for line in second)  # only the failed ones again
    assert len(first) + len(second) == result.report.units_total
    np.testing.assert_array_equal(flow_values(result, "q1_met"), _expected(small_files)["q1_met"])


def test_changed_file_invalidates_its_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [
        generate_nanoaod(tmp_path / f"{n}.root", 300, seed=s, chunk_events=100)
        for n, s in (("a", 1), ("b", 2))
    ]
    marks = tmp_path / "marks.txt"
    monkeypatch.setenv("MARKS", str(marks))
    run_dir = tmp_path / "run"
    saetta.run(flaky, files, chunk_size=100, run_dir=run_dir, progress=False)
    before = len(marks.read_text().splitlines())
    generate_nanoaod(files[1], 300, seed=3, chunk_events=100)  # same name, new events
    result = saetta.run(flaky, files, chunk_size=100, run_dir=run_dir, progress=False)
    again = marks.read_text().splitlines()[before:]
    assert sorted(again) == ["b.root:0", "b.root:100", "b.root:200"]
    np.testing.assert_array_equal(flow_values(result, "q1_met"), _expected(files)["q1_met"])


def test_run_dir_of_another_run_is_refused(tmp_path: Path, small_files: list[Path]) -> None:
    saetta.run(adl.q1, small_files, chunk_size=100, run_dir=tmp_path / "run", progress=False)
    with pytest.raises(saetta.JournalError, match="holds another run"):
        saetta.run(adl.q2, small_files, chunk_size=100, run_dir=tmp_path / "run", progress=False)


def test_unusable_run_dir_is_a_clear_error(tmp_path: Path, small_files: list[Path]) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(saetta.JournalError, match=r"cannot use run directory .*file\.txt"):
        saetta.run(adl.q1, small_files, run_dir=blocker / "run", progress=False)


def dies_once_with(flag: Path):  # type: ignore[no-untyped-def]
    # The flag travels inside the function: a process pool's workers may have been forked
    # before this test changed any environment variable.
    def dies_once(events):  # type: ignore[no-untyped-def]
        first = events.attrs["start"] == 100 and events.attrs["path"].endswith("a.root")
        if first and not flag.exists():
            flag.write_text("died")
            os.kill(os.getpid(), signal.SIGKILL)
        return adl.analysis(events)

    return dies_once


def always_dies(events):  # type: ignore[no-untyped-def]
    if events.attrs["start"] == 100 and events.attrs["path"].endswith("a.root"):
        os.kill(os.getpid(), signal.SIGKILL)
    return adl.q1(events)


def test_killed_worker_process_is_replaced(tmp_path: Path, small_files: list[Path]) -> None:
    result = saetta.run(
        dies_once_with(tmp_path / "flag"),
        small_files,
        executor="processes:2",
        chunk_size=50,
        run_dir=False,
        progress=False,
    )
    assert (tmp_path / "flag").exists()  # a worker really was killed
    assert result.report.complete
    for name, values in _expected(small_files).items():
        np.testing.assert_array_equal(flow_values(result, name), values, err_msg=name)


def test_unit_that_always_kills_its_worker_is_named(small_files: list[Path]) -> None:
    with pytest.raises(saetta.UnitError, match=r"a\.root\[100:150\].*WorkerDied") as info:
        saetta.run(
            always_dies,
            small_files,
            executor="processes:2",
            chunk_size=50,
            run_dir=False,
            progress=False,
        )
    report = info.value.result.report  # type: ignore[attr-defined]
    assert [f.unit.id.rsplit("/", 1)[-1] for f in report.failures] == ["a.root[100:150]"]
    assert report.events_processed == 657 - 50
