"""Run directories never mix results: fingerprints, one run at a time, resumes from anywhere."""

from __future__ import annotations

import json
import os
import shutil
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
from saetta.execute.journal import Journal, remove_run
from saetta.execute.rundirs import list_runs

SAETTA = str(Path(sys.executable).with_name("saetta"))

ANALYSIS = """
from saetta.analyses import adl

SCALE = {scale}

def analysis(events):
    out = adl.q1(events)
    out["q1_met"] *= SCALE
    return out
"""


def saetta_cli(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SAETTA, *map(str, args)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _q1(paths: list[Path]) -> np.ndarray:
    return np.sum([reference_histograms(p)["q1_met"] for p in paths], axis=0)


def test_an_edited_analysis_is_not_resumed_into_the_old_run(
    tmp_path: Path, small_files: list[Path]
) -> None:
    script = tmp_path / "ana.py"
    script.write_text(ANALYSIS.format(scale=1))
    run_dir = tmp_path / "run"
    args = ("run", "ana.py:analysis", *small_files, "--chunk-size", "100", "--run-dir", run_dir)
    first = saetta_cli(*args, "-o", "first.json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # Positive control: the same analysis resumes (nothing left to do) and gives the same result.
    same = saetta_cli("run", "--resume", run_dir, "-o", "same.json", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    script.write_text(ANALYSIS.format(scale=2))
    edited = saetta_cli("run", "--resume", run_dir, "-o", "edited.json", cwd=tmp_path)
    assert edited.returncode == 1
    [line] = edited.stderr.strip().splitlines()
    assert line.startswith("saetta: error: JournalError: run directory ")
    assert "the code of" in line
    assert "changed since" in line
    assert "new --run-dir" in line
    assert not (tmp_path / "edited.json").exists()
    for name in ("first.json", "same.json"):
        values = json.loads((tmp_path / name).read_text())["histograms"]["q1_met"]["values"]
        np.testing.assert_array_equal(values, _q1(small_files))
    fresh = saetta_cli(*args[:-1], tmp_path / "run2", "-o", "edited.json", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    values = json.loads((tmp_path / "edited.json").read_text())["histograms"]["q1_met"]["values"]
    np.testing.assert_array_equal(values, 2 * _q1(small_files))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"analysis": adl.q2}, "analysis 'saetta.analyses.adl:q1', not 'saetta.analyses.adl:q2'"),
        ({"chunk_size": 50}, "chunk size 100, not 50"),
        ({"files": 2}, "other files (3 there, 2 here)"),
    ],
    ids=["analysis", "chunk size", "files"],
)
def test_another_run_is_refused_saying_what_differs(
    tmp_path: Path, small_files: list[Path], change: dict[str, object], message: str
) -> None:
    run_dir = tmp_path / "run"
    saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    analysis = change.get("analysis", adl.q1)
    chunk = change.get("chunk_size", 100)
    files = small_files[: int(change.get("files", 3))]  # type: ignore[call-overload]
    with pytest.raises(saetta.JournalError) as info:
        saetta.run(analysis, files, chunk_size=chunk, run_dir=run_dir, progress=False)  # type: ignore[arg-type]
    assert message in str(info.value)
    # the refused run left the directory as it was: it still resumes
    again = saetta.run(adl.q1, small_files, run_dir=run_dir, progress=False)
    assert again.report.chunk_size == 100
    np.testing.assert_array_equal(flow_values(again, "q1_met"), _q1(small_files))


def test_a_run_directory_in_use_is_refused(tmp_path: Path, small_files: list[Path]) -> None:
    run_dir = tmp_path / "run"
    holder = Journal(run_dir)  # as a running saetta process holds it
    try:
        with pytest.raises(saetta.JournalError, match=r"in use by another saetta run \(pid "):
            saetta.run(adl.q1, small_files, run_dir=run_dir, progress=False)
    finally:
        holder.close()
    # Positive control: once it is free, the run goes ahead.
    assert saetta.run(adl.q1, small_files, run_dir=run_dir, progress=False).report.complete


SLOW = """
import time
from saetta.analyses import adl

def analysis(events):
    time.sleep(0.2)
    return adl.q1(events)
"""


def test_two_concurrent_runs_in_one_run_directory(tmp_path: Path, small_files: list[Path]) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    run_dir = tmp_path / "run"
    args = [SAETTA, "run", "slow.py:analysis", *map(str, small_files), "--chunk-size", "50"]
    first = subprocess.Popen(
        [*args, "--run-dir", str(run_dir), "-o", "first.json"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (run_dir / "run.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = saetta_cli("run", "adl.q2", *small_files, "--run-dir", run_dir, cwd=tmp_path)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert "is in use by another saetta run" in second.stderr
    values = json.loads((tmp_path / "first.json").read_text())["histograms"]["q1_met"]["values"]
    np.testing.assert_array_equal(values, _q1(small_files))


def test_resume_from_another_folder_with_another_executor(
    tmp_path: Path, small_files: list[Path]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for path in small_files:
        shutil.copy(path, data / path.name)
    (tmp_path / "ana.py").write_text(ANALYSIS.format(scale=1))
    run_dir = tmp_path / "run"
    relative = [f"data/{p.name}" for p in small_files]
    env = {"SAETTA_FAIL_ON": "c.root"}
    flaky = ANALYSIS.format(scale=1) + (
        "\nimport os\n_inner = analysis\n\ndef analysis(events):\n"
        "    if events.attrs['path'].endswith(os.environ.get('SAETTA_FAIL_ON', '-')):\n"
        "        raise RuntimeError('not yet')\n"
        "    return _inner(events)\n"
    )
    (tmp_path / "ana.py").write_text(flaky)
    first = saetta_cli(
        "run", "ana.py:analysis", *relative, "--chunk-size", "100", "--run-dir", run_dir,
        "-o", "out.json", cwd=tmp_path, **env,
    )  # fmt: skip
    assert first.returncode == 1
    # A different run refused in that directory changes nothing there.
    refused = saetta_cli("run", "adl.q2", *relative, "--run-dir", run_dir, cwd=tmp_path)
    assert refused.returncode == 1
    assert "holds another run" in refused.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = saetta_cli(
        "run", "--resume", run_dir, "--executor", "processes:2", cwd=elsewhere, SAETTA_FAIL_ON="-"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "executor: processes:2" in resumed.stdout
    # the output recorded by the first session, written where that session meant it
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["complete"]
    assert document["report"]["executor"] == "processes:2"
    np.testing.assert_array_equal(document["histograms"]["q1_met"]["values"], _q1(small_files))


def test_a_run_that_fails_to_set_up_leaves_no_run_directory(
    tmp_path: Path, small_files: list[Path]
) -> None:
    run_dir = tmp_path / "run"
    failed = saetta_cli(
        "run", "adl.q1", *small_files, "--executor", "dask://127.0.0.1:9", "--run-dir", run_dir,
        cwd=tmp_path,
    )  # fmt: skip
    assert failed.returncode == 1
    assert "ExecutorError: cannot reach the Dask scheduler" in failed.stderr
    assert not run_dir.exists()
    # Positive control: a run that got going keeps its directory even when interrupted early.
    saetta.run(adl.q1, small_files, run_dir=run_dir, progress=False)
    assert (run_dir / "run.json").exists()


def test_a_folder_that_is_not_a_run_directory_is_refused(
    tmp_path: Path, small_files: list[Path]
) -> None:
    notes = tmp_path / "thesis"
    notes.mkdir()
    (notes / "chapter1.tex").write_text("precious")
    with pytest.raises(saetta.JournalError, match="is not empty and is not a saetta run directory"):
        saetta.run(adl.q1, small_files, run_dir=notes, progress=False)
    assert sorted(p.name for p in notes.iterdir()) == ["chapter1.tex"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert saetta.run(adl.q1, small_files, run_dir=empty, progress=False).report.complete


def test_a_run_directory_of_saetta_0_1_is_refused_clearly(
    tmp_path: Path, small_files: list[Path]
) -> None:
    old = tmp_path / "old"
    (old / "units").mkdir(parents=True)
    (old / ".saetta-run").touch()
    (old / "run.json").write_text(json.dumps({"analysis": "x:y", "saetta_version": "0.1.0"}))
    with pytest.raises(saetta.JournalError, match=r"written by saetta 0\.1\.0.*start afresh"):
        saetta.run(adl.q1, small_files, run_dir=old, progress=False)


def test_runs_list_and_clean(tmp_path: Path, small_files: list[Path]) -> None:
    base = tmp_path / "runs"
    done = saetta.run(adl.q1, small_files, chunk_size=100, run_dir=base / "a", progress=False)
    assert done.report.complete
    saetta.run(adl.q2, small_files, run_dir=base / "b", progress=False)
    (base / "b" / "my-notes.txt").write_text("keep me")
    (base / "mine").mkdir()
    (base / "mine" / "data.txt").write_text("not saetta's")
    runs = {r.directory.name: r for r in list_runs(base)}
    assert set(runs) == {"a", "b"}
    assert runs["a"].analysis == "saetta.analyses.adl:q1"
    assert runs["a"].units_done == done.report.units_total
    assert runs["a"].complete is True
    listed = saetta_cli("runs", "list", "--base", base, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "2 run directories" in listed.stdout
    assert "saetta.analyses.adl:q1" in listed.stdout
    young = saetta_cli("runs", "clean", "--base", base, cwd=tmp_path)
    assert "deleted 0 run directories" in young.stdout
    cleaned = saetta_cli("runs", "clean", "--older-than", "0", "--base", base, cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not (base / "a").exists()
    assert sorted(p.name for p in (base / "b").iterdir()) == ["my-notes.txt"]
    assert (base / "mine" / "data.txt").read_text() == "not saetta's"
    with pytest.raises(saetta.JournalError, match="not a saetta run directory"):
        remove_run(base / "mine")


def test_run_directories_are_private(tmp_path: Path, small_files: list[Path]) -> None:
    result = saetta.run(adl.q1, small_files, progress=False)
    assert result.run_dir is not None
    assert (Path(result.run_dir).stat().st_mode & 0o777) == 0o700
    for path in Path(result.run_dir).rglob("*"):
        assert not path.stat().st_mode & 0o077, path
