"""The ``saetta`` command as a user meets it: real subprocesses, real exit codes and stderr.

Every command runs as ``saetta ...`` (the console script next to the interpreter) in
a fresh process, so what is checked here is what a shell user sees: the exit status,
what lands on stdout and stderr, and the files written. Results are compared with
independent computations: the per-event ADL reference (``adl_reference``) and a plain
Python dimuon mass for the user analysis.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import adl_reference
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

import saetta
from saetta.datagen import generate_nanoaod

EVENTS = 3_000
TIMEOUT = 180  # seconds, per command

_SCRIPT = Path(sys.executable).with_name("saetta")


def _argv(args: Sequence[str]) -> list[str]:
    if _SCRIPT.exists():
        return [str(_SCRIPT), *args]
    return [sys.executable, "-m", "saetta.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env["COLUMNS"] = "100"
    return env


@dataclass(frozen=True)
class Outcome:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    def __str__(self) -> str:  # shown by pytest when an assertion on an Outcome fails
        return (
            f"saetta {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def saetta_cmd(*args: str | os.PathLike[str], cwd: Path) -> Outcome:
    """Run ``saetta ARGS`` in ``cwd`` and wait for it."""
    text = tuple(os.fspath(a) for a in args)
    done = subprocess.run(
        _argv(text),
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Outcome(text, done.returncode, done.stdout, done.stderr)


def saetta_many(commands: Mapping[str, Sequence[str]], cwd: Path) -> dict[str, Outcome]:
    """Run several ``saetta`` commands, a few at a time (each pays ~1 s of imports)."""
    width = max(2, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=width) as pool:
        futures = {key: pool.submit(saetta_cmd, *args, cwd=cwd) for key, args in commands.items()}
        return {key: future.result() for key, future in futures.items()}


def words(text: str) -> str:
    """Whitespace-normalised text, so that help wrapping does not matter."""
    return " ".join(text.split())


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Data:
    folder: Path
    root: Path
    parquet: Path
    reference: dict[str, np.ndarray]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    """3,000 events in baskets / row groups of 1,000, as ROOT and as Parquet, and the
    ADL reference histograms of those events."""
    folder = tmp_path_factory.mktemp("cli_data")
    root = generate_nanoaod(folder / "events.root", EVENTS, seed=5, chunk_events=1_000)
    parquet = generate_nanoaod(folder / "events.parquet", EVENTS, seed=5, chunk_events=1_000)
    reference = adl_reference.reference_histograms(root)
    assert all(h[1:-1].sum() > 20 for h in reference.values())  # every query fills
    return Data(folder, root, parquet, reference)


USER_ANALYSIS = '''\
"""A user's analysis: leading-dimuon mass, with a helper and a constant of its own."""

import multiprocessing

import awkward as ak
import hist

MASS_BINS = (50, 0.0, 150.0)


def leading_pair(muons):
    return muons[ak.num(muons) >= 2]


def analysis(events):
    pairs = leading_pair(events.Muon)
    mass = (pairs[:, 0] + pairs[:, 1]).mass
    h = hist.Hist.new.Reg(*MASS_BINS, name="mass", label="m(mu mu) [GeV]").Double()
    h.fill(mass=ak.to_numpy(mass))
    in_driver = int(multiprocessing.parent_process() is None)
    return {"dimuon_mass": h, "n_pairs": len(pairs), "units_in_driver": in_driver}
'''


def dimuon_reference(path: Path) -> tuple[np.ndarray, int]:
    """Leading-two-muon invariant mass, per event in plain float64 Python, histogrammed
    into 50 bins over [0, 150] with under- and overflow: (counts[52], number of pairs)."""
    columns = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass"]
    rows = pq.read_table(path, columns=columns).to_pylist()
    edges = np.linspace(0.0, 150.0, 51)
    counts = np.zeros(52)
    pairs = 0
    for row in rows:
        if len(row["Muon_pt"]) < 2:
            continue
        pairs += 1
        px = py = pz = e = 0.0
        for k in range(2):
            pt, eta, phi, m = (float(row[c][k]) for c in columns)
            x, y, z = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
            px, py, pz, e = px + x, py + y, pz + z, e + math.sqrt(x * x + y * y + z * z + m * m)
        mass = math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
        counts[int(np.searchsorted(edges, mass, side="right"))] += 1
    return counts, pairs


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["saetta demo", "run", "inspect", "generate", "--debug", "--version"]),
        (
            ["run", "--help"],
            [
                "ANALYSIS",
                "FILES",
                "adl.q5",
                "my_analysis.py:func",
                "--output",
                "--executor",
                "processes:N",
                "--chunk-size",
                "--tree",
                "--allow-partial",
                "--plots",
            ],
        ),
        (["generate", "nanoaod", "--help"], ["OUTPUT", ".parquet", "--events", "--seed"]),
        (["inspect", "--help"], ["FILE", "branches", "--tree"]),
        (["demo", "--help"], ["ADL", "--events", "--out", "--executor"]),
        (["-h"], ["Usage: saetta"]),
    ],
    ids=["saetta", "run", "generate-nanoaod", "inspect", "demo", "short-h"],
)
def test_help(args: list[str], expected: list[str], tmp_path: Path) -> None:
    out = saetta_cmd(*args, cwd=tmp_path)
    assert out.returncode == 0, out
    assert out.stderr == "", out
    assert out.stdout.startswith("Usage: saetta"), out
    text = words(out.stdout)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{out.stdout}"


def test_version(tmp_path: Path) -> None:
    out = saetta_cmd("--version", cwd=tmp_path)
    assert out.returncode == 0, out
    assert out.stdout.strip() == f"saetta, version {saetta.__version__}"


# --------------------------------------------------------------------------- generate


def test_generate_nanoaod_root(tmp_path: Path) -> None:
    out = saetta_cmd(
        "generate", "nanoaod", "gen.root", "--events", "3000", "--seed", "2", cwd=tmp_path
    )
    assert out.returncode == 0, out
    assert "wrote 3,000 events to gen.root" in out.stdout
    with uproot.open(tmp_path / "gen.root") as f:
        tree = f["Events"]
        assert tree.num_entries == EVENTS
        assert {"MET_pt", "nJet", "Jet_pt", "Muon_charge"} <= set(tree.keys())
        met = tree["MET_pt"].array(library="np")
    # --seed reaches the generator: the same file as the Python API's, not seed 1's
    with uproot.open(generate_nanoaod(tmp_path / "api2.root", EVENTS, seed=2)) as f:
        np.testing.assert_array_equal(met, f["Events"]["MET_pt"].array(library="np"))
    with uproot.open(generate_nanoaod(tmp_path / "api1.root", EVENTS, seed=1)) as f:
        assert not np.array_equal(met, f["Events"]["MET_pt"].array(library="np"))


def test_generate_nanoaod_parquet(tmp_path: Path) -> None:
    out = saetta_cmd(
        "generate", "nanoaod", "sub/gen.parquet", "--events", "3000", "--seed", "2", cwd=tmp_path
    )
    assert out.returncode == 0, out
    path = tmp_path / "sub" / "gen.parquet"
    assert pq.ParquetFile(path).metadata.num_rows == EVENTS
    table = pq.read_table(path, columns=["Jet_pt"])
    api = pq.read_table(
        generate_nanoaod(tmp_path / "api.parquet", EVENTS, seed=2), columns=["Jet_pt"]
    )
    assert table.equals(api)


# --------------------------------------------------------------------------- run adl


def test_run_adl_writes_root_histograms(data: Data, tmp_path: Path) -> None:
    out = saetta_cmd("run", "adl", data.root, "-o", "results/adl.root", cwd=tmp_path)
    assert out.returncode == 0, out
    assert out.stderr == "", out
    assert "3,000 of 3,000 processed" in out.stdout
    assert all(name in out.stdout for name in adl_reference.HISTOGRAMS)
    with uproot.open(tmp_path / "results" / "adl.root") as f:
        for name, expected in data.reference.items():
            h = f[name]
            assert h.classname == "TH1D", name
            lo, hi = adl_reference.HISTOGRAMS[name]
            edges = h.axis().edges()
            assert (len(edges), edges[0], edges[-1]) == (101, lo, hi), name
            np.testing.assert_array_equal(h.values(flow=True), expected, err_msg=name)
        document = json.loads(str(f["saetta"]))
    assert document["complete"] is True
    assert document["report"]["events_processed"] == EVENTS
    report = json.loads((tmp_path / "results" / "adl.report.json").read_text())
    assert report["events_processed"] == EVENTS
    assert report["complete"] is True
    assert report["failures"] == []


def test_run_adl_writes_json(data: Data, tmp_path: Path) -> None:
    out = saetta_cmd("run", "adl", data.parquet, "-o", "adl.json", cwd=tmp_path)
    assert out.returncode == 0, out
    document = json.loads((tmp_path / "adl.json").read_text())
    assert document["saetta_version"] == saetta.__version__
    assert document["complete"] is True
    assert document["report"]["events_processed"] == EVENTS
    assert document["report"]["events_total"] == EVENTS
    assert set(document["histograms"]) == set(data.reference)
    for name, expected in data.reference.items():
        h = document["histograms"][name]
        lo, hi = adl_reference.HISTOGRAMS[name]
        assert h["axes"][0] | {"label": None} == {
            "type": "regular",
            "name": "x",
            "label": None,
            "bins": 100,
            "lo": lo,
            "hi": hi,
        }
        np.testing.assert_array_equal(h["values"], expected, err_msg=name)
        np.testing.assert_array_equal(h["variances"], expected, err_msg=name)  # unit weights
    report = json.loads((tmp_path / "adl.report.json").read_text())
    assert report == document["report"]


def test_run_one_query_in_worker_processes(data: Data, tmp_path: Path) -> None:
    out = saetta_cmd(
        "run",
        "adl.q5",
        data.root,
        "--executor",
        "processes:2",
        "--chunk-size",
        "1000",
        "-o",
        "q5.json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out
    document = json.loads((tmp_path / "q5.json").read_text())
    assert list(document["histograms"]) == ["q5_met"]
    np.testing.assert_array_equal(
        document["histograms"]["q5_met"]["values"], data.reference["q5_met"]
    )
    report = document["report"]
    assert report["executor"] == "processes:2"
    assert (report["units_total"], report["units_done"]) == (3, 3)
    assert report["events_processed"] == EVENTS
    # q5 reads muons and MET only
    assert set(report["columns"]) == {
        "MET_pt",
        "nMuon",
        "Muon_pt",
        "Muon_eta",
        "Muon_phi",
        "Muon_mass",
        "Muon_charge",
    }


# --------------------------------------------------------------------------- user analysis


@pytest.mark.parametrize(
    ("executor", "in_driver"), [("local", 3), ("processes:2", 0)], ids=["local", "processes"]
)
def test_run_user_analysis_file(executor: str, in_driver: int, data: Data, tmp_path: Path) -> None:
    (tmp_path / "my_analysis.py").write_text(USER_ANALYSIS)
    out = saetta_cmd(
        "run",
        "my_analysis.py:analysis",
        data.parquet,
        "--executor",
        executor,
        "--chunk-size",
        "1000",
        "-o",
        "user.root",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out
    assert "dimuon_mass" in out.stdout
    expected, pairs = dimuon_reference(data.parquet)
    assert pairs > 100
    with uproot.open(tmp_path / "user.root") as f:
        h = f["dimuon_mass"]
        assert h.classname == "TH1D"
        np.testing.assert_array_equal(h.axis().edges(), np.linspace(0.0, 150.0, 51))
        np.testing.assert_array_equal(h.values(flow=True), expected)
        document = json.loads(str(f["saetta"]))
    assert document["values"]["n_pairs"] == pairs
    # 3 units; with worker processes none of them ran in the driver
    assert document["values"]["units_in_driver"] == in_driver
    assert document["report"]["executor"] == executor
    assert document["report"]["units_done"] == 3


# --------------------------------------------------------------------------- inspect


def test_inspect_root(data: Data) -> None:
    out = saetta_cmd("inspect", data.root.name, cwd=data.folder)
    assert out.returncode == 0, out
    assert out.stdout.startswith("events.root: ROOT file")
    assert "Events: TTree, 3,000 entries, 29 branches" in out.stdout
    types = {
        line.split()[0]: line.split()[1]
        for line in out.stdout.splitlines()
        if line.startswith("  ")
    }
    assert types["Jet_pt"] == "float32[]"
    assert types["Muon_charge"] == "int32[]"
    assert types["MET_pt"] == "float32"
    assert types["nJet"] == "int32"
    assert types["event"] == "uint64"
    assert len(types) == 1 + 29  # the header, then one line per branch


def test_inspect_parquet(data: Data) -> None:
    out = saetta_cmd("inspect", data.parquet.name, cwd=data.folder)
    assert out.returncode == 0, out
    assert out.stdout.startswith("events.parquet: Parquet, 3,000 rows in 3 row groups")
    types = {
        line.split()[0]: line.split()[1]
        for line in out.stdout.splitlines()
        if line.startswith("  ")
    }
    assert types["Jet_pt"] == "float32[]"
    assert types["MET_pt"] == "float32"
    assert types["nMuon"] == "int32"


# --------------------------------------------------------------------------- bad input


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    culprit: tuple[str, ...]  # what the error line must name
    exit_code: int = 1
    unit_failure: bool = False  # the failure happens inside a work unit


CASES: dict[str, Case] = {
    "missing-file": Case(("run", "adl", "missing.root"), ("file not found", "missing.root")),
    "glob-matches-nothing": Case(
        ("run", "adl", "nothing/*.root"), ("no file matches", "nothing/*.root")
    ),
    "random-bytes": Case(
        ("run", "adl", "random.root"), ("random.root", "not a readable ROOT file")
    ),
    "zero-length": Case(("run", "adl", "empty.root"), ("empty.root", "not a readable ROOT file")),
    "truncated": Case(
        ("run", "adl", "broken.root"), ("broken.root", "3,000 events"), unit_failure=True
    ),
    "wrong-tree": Case(
        ("run", "adl", "events.root", "--tree", "Evnts"), ("'Evnts'", "events.root", "Events")
    ),
    "missing-field": Case(
        ("run", "typo_field.py:analysis", "events.root"),
        ("AttributeError", "'ptt'", "events.root"),
        unit_failure=True,
    ),
    "missing-collection": Case(
        ("run", "typo_collection.py:analysis", "events.root"),
        ("AttributeError", "'Jett'", "events.root"),
        unit_failure=True,
    ),
    "unknown-executor": Case(
        ("run", "adl", "events.root", "--executor", "threads:2"),
        ("unknown executor", "'threads:2'", "local", "processes"),
    ),
    "bad-worker-count": Case(
        ("run", "adl", "events.root", "--executor", "processes:0"), ("'processes:0'",)
    ),
    "unknown-query": Case(("run", "adl.q9", "events.root"), ("'q9'", "q1", "q8")),
    "analysis-file-not-found": Case(
        ("run", "nofile.py:analysis", "events.root"), ("analysis file not found", "nofile.py")
    ),
    "analysis-function-not-found": Case(
        ("run", "typo_field.py:anlysis", "events.root"), ("typo_field.py", "'anlysis'")
    ),
    "bad-output-suffix": Case(
        ("run", "adl.q1", "events.root", "-o", "out.txt"), ("out.txt", ".root or .json")
    ),
    "inspect-missing-file": Case(("inspect", "missing.root"), ("file not found", "missing.root")),
    "inspect-random-bytes": Case(("inspect", "random.root"), ("random.root",)),
    "inspect-zero-length": Case(("inspect", "empty.root"), ("empty.root",)),
    "inspect-wrong-tree": Case(("inspect", "events.root", "--tree", "Evnts"), ("'Evnts'",)),
    # click usage errors: exit 2 and click's own "Error:" format
    "usage-no-files": Case(("run", "adl"), ("give ANALYSIS and FILES", "--resume"), exit_code=2),
    "usage-bad-compression": Case(
        ("generate", "nanoaod", "x.root", "--compression", "foo:1"),
        ("unknown ROOT compression", "'foo:1'"),
        exit_code=2,
    ),
}


@pytest.fixture(scope="module")
def bad_folder(data: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli_bad")
    shutil.copy(data.root, folder / "events.root")
    (folder / "random.root").write_bytes(np.random.default_rng(0).bytes(4_000))
    (folder / "empty.root").write_bytes(b"")
    whole = data.root.read_bytes()
    (folder / "broken.root").write_bytes(whole[: len(whole) // 2])
    template = textwrap.dedent(
        """\
        import hist


        def analysis(events):
            h = hist.Hist.new.Reg(10, 0, 100, name="x").Double()
            h.fill(x=events.{}[:, 0])
            return {{"h": h}}
        """
    )
    (folder / "typo_field.py").write_text(template.format("Jet.ptt"))
    (folder / "typo_collection.py").write_text(template.format("Jett.pt"))
    return folder


@pytest.fixture(scope="module")
def bad_outcomes(bad_folder: Path) -> dict[str, Outcome]:
    """Every bad-input command, plus the --debug one, run concurrently."""
    commands = {name: case.args for name, case in CASES.items()}
    commands["debug"] = ("--debug", "run", "adl", "missing.root")
    commands["debug-unit"] = ("--debug", "run", "typo_field.py:analysis", "events.root")
    return saetta_many(commands, bad_folder)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_cleanly(name: str, bad_outcomes: dict[str, Outcome]) -> None:
    case, out = CASES[name], bad_outcomes[name]
    assert out.returncode == case.exit_code, out
    assert "Traceback" not in out.stderr, out
    assert out.err_lines, out
    last = out.err_lines[-1]
    if case.exit_code == 1:
        assert last.startswith("saetta: error: "), out
    else:
        assert last.startswith("Error: "), out
        assert "Usage: saetta" in out.stderr
    for fragment in case.culprit:
        assert fragment in last, f"{fragment!r} not in the error line: {last!r}"


def _one_line_params() -> list[object]:
    params: list[object] = []
    for name, case in CASES.items():
        if case.exit_code != 1:
            continue  # click's usage errors are several lines by design
        params.append(name)
    return params


@pytest.mark.parametrize("name", _one_line_params())
def test_bad_input_error_is_one_line(name: str, bad_outcomes: dict[str, Outcome]) -> None:
    out = bad_outcomes[name]
    assert len(out.err_lines) == 1, out
    assert out.err_lines[0].startswith("saetta: error: "), out


def test_bad_output_suffix_is_rejected_before_running(bad_outcomes: dict[str, Outcome]) -> None:
    out = bad_outcomes["bad-output-suffix"]
    assert out.returncode == 1, out
    assert out.stdout == "", out  # the summary table shows the analysis ran first


def test_bad_output_suffix_writes_nothing(
    bad_folder: Path, bad_outcomes: dict[str, Outcome]
) -> None:
    assert bad_outcomes["bad-output-suffix"].returncode == 1
    assert not (bad_folder / "out.txt").exists()
    assert not list(bad_folder.glob(".out.txt*"))
    assert not (bad_folder / "out.report.json").exists()


def test_missing_branch_report_names_the_unit(bad_outcomes: dict[str, Outcome]) -> None:
    out = bad_outcomes["missing-field"]
    assert "events.root[0:3000] (3,000 events): AttributeError: no field named 'ptt'" in out.stderr
    assert "did you mean 'pt'?" in out.stderr
    # the report of what was (not) processed goes to stdout; stderr stays one line
    assert "0 of 3,000 processed" in out.stdout


def test_debug_shows_the_traceback(bad_outcomes: dict[str, Outcome]) -> None:
    out = bad_outcomes["debug"]
    assert out.returncode == 1, out
    assert "Traceback (most recent call last)" in out.stderr
    assert out.err_lines[-1] == "saetta.errors.StorageError: file not found: missing.root"
    assert "saetta: error:" not in out.stderr
    unit = bad_outcomes["debug-unit"]
    assert unit.returncode == 1, unit
    assert "Traceback (most recent call last)" in unit.stderr
    assert "UnitError" in unit.err_lines[-1]
    assert "'ptt'" in unit.err_lines[-1]


# --------------------------------------------------------------------------- partial data


@pytest.fixture(scope="module")
def partial_outcomes(
    data: Data, bad_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Outcome]]:
    """Two good files and a truncated one, run three ways."""
    folder = tmp_path_factory.mktemp("cli_partial")
    shutil.copy(data.root, folder / "good1.root")
    shutil.copy(data.root, folder / "good2.root")
    shutil.copy(bad_folder / "broken.root", folder / "broken.root")
    files = ("good1.root", "good2.root", "broken.root")
    outcomes = saetta_many(
        {
            "strict": ("run", "adl", *files, "-o", "strict.json"),
            "strict-units": ("run", "adl", *files, "--chunk-size", "1000"),
            "partial": (
                "run",
                "adl",
                *files,
                "--chunk-size",
                "1000",
                "--allow-partial",
                "-o",
                "partial.json",
            ),
        },
        folder,
    )
    return folder, outcomes


def test_truncated_file_in_dataset_fails_the_run(
    partial_outcomes: tuple[Path, dict[str, Outcome]],
) -> None:
    folder, outcomes = partial_outcomes
    out = outcomes["strict"]
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    last = out.err_lines[-1]
    assert last.startswith("saetta: error: UnitError: unit broken.root[0:3000] (3,000 events)")
    assert "FormatError" in last
    assert "3,000 of 9,000 events not processed" in last
    assert len(out.err_lines) == 1, out
    # the report of what was processed goes to stdout
    assert "FAILED: 1 unit, 3,000 events not processed" in out.stdout
    assert "6,000 of 9,000 processed" in out.stdout
    assert not (folder / "strict.json").exists()
    assert not (folder / "strict.report.json").exists()


def test_truncated_file_several_units_counts_missing_events(
    partial_outcomes: tuple[Path, dict[str, Outcome]],
) -> None:
    out = partial_outcomes[1]["strict-units"]
    assert out.returncode == 1, out
    last = out.err_lines[-1]
    assert last.startswith("saetta: error: UnitError: "), out
    assert "of 9 units failed (" in last
    assert "of 9,000 events not processed); first: broken.root[" in last


def test_allow_partial_writes_what_was_processed(
    data: Data, partial_outcomes: tuple[Path, dict[str, Outcome]]
) -> None:
    folder, outcomes = partial_outcomes
    out = outcomes["partial"]
    # asked for a partial result, the user gets it: exit 0, with a warning and the JSON marked
    assert out.returncode == 0, out
    assert out.err_lines[-1].startswith("saetta: warning: result is PARTIAL: "), out
    assert "Traceback" not in out.stderr
    document = json.loads((folder / "partial.json").read_text())
    report = document["report"]
    assert document["complete"] is False
    assert report["complete"] is False
    failures = report["failures"]
    assert failures
    assert {f["path"] for f in failures} == {"broken.root"}
    lost = sum(f["events"] for f in failures)
    assert report["events_processed"] == 3 * EVENTS - lost
    assert report["events_missing"] == lost
    assert f"{len(failures)} units failed, {lost:,} events not processed" in out.err_lines[-1]
    # the histograms hold both good files and exactly the broken file's readable units
    failed = {(f["start"], f["stop"]) for f in failures}
    events = adl_reference.read_events(data.root)
    readable = [
        ev
        for start in range(0, EVENTS, 1000)
        if (start, start + 1000) not in failed
        for ev in events[start : start + 1000]
    ]
    extra = adl_reference.reference_histograms(readable)
    for name, expected in data.reference.items():
        np.testing.assert_array_equal(
            document["histograms"][name]["values"], 2 * expected + extra[name], err_msg=name
        )
    assert json.loads((folder / "partial.report.json").read_text()) == report


# --------------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Outcome]:
    cwd = tmp_path_factory.mktemp("cli_demo")
    out = saetta_cmd("demo", "--events", "2000", "--out", "demo", "--executor", "local", cwd=cwd)
    return cwd / "demo", out


def test_demo_writes_sample_results_and_plot(demo: tuple[Path, Outcome]) -> None:
    folder, out = demo
    assert out.returncode == 0, out
    assert "Traceback" not in out.stderr
    assert "q8_mt" in out.stdout
    assert "2,000 of 2,000 processed" in out.stdout
    for name in ("nanoaod_2000.root", "results.root", "results.json", "adl.png"):
        assert (folder / name).stat().st_size > 0, name
    reference = adl_reference.reference_histograms(folder / "nanoaod_2000.root")
    document = json.loads((folder / "results.json").read_text())
    for name, expected in reference.items():
        np.testing.assert_array_equal(document["histograms"][name]["values"], expected)
    assert (folder / "adl.png").read_bytes().startswith(b"\x89PNG")


def test_demo_writes_the_report_its_help_promises(demo: tuple[Path, Outcome]) -> None:
    folder, out = demo
    assert out.returncode == 0, out
    assert (folder / "results.report.json").exists(), sorted(p.name for p in folder.iterdir())
    assert "results.report.json" in saetta_cmd("demo", "--help", cwd=folder).stdout


# --------------------------------------------------------------------------- small things


def test_inspect_lists_saetta_outputs(data: Data, tmp_path: Path) -> None:
    made = saetta_cmd(
        "run", "adl", data.root, "-o", "out.root", "-o", "out.json", cwd=tmp_path
    )  # fmt: skip
    assert made.returncode == 0, made
    assert "wrote out.root" in made.stdout
    assert "wrote out.json" in made.stdout
    for name in ("out.root", "out.json"):
        shown = saetta_cmd("inspect", name, cwd=tmp_path)
        assert shown.returncode == 0, shown
        for histogram in data.reference:
            assert histogram in shown.stdout, (histogram, shown)
        assert "3,000" in shown.stdout  # the events the run processed


def test_run_help_names_every_kind_of_executor(tmp_path: Path) -> None:
    text = words(saetta_cmd("run", "--help", cwd=tmp_path).stdout)
    for fragment in ("'local'", "'processes:N'", "'dask:N'", "'dask://HOST:PORT'", "--testbed"):
        assert fragment in text
    assert "--unit-timeout" in text


def test_one_file_is_one_file(data: Data, tmp_path: Path) -> None:
    out = saetta_cmd("run", "adl.q1", data.root, cwd=tmp_path)
    assert "(1 file)" in out.stdout
    assert "1 files" not in out.stdout


def test_did_you_mean_never_suggests_the_missing_name(data: Data, tmp_path: Path) -> None:
    # MET has no 'eta', but jets do (Jet_eta): 'eta' is no suggestion for a MET field.
    (tmp_path / "met_eta.py").write_text(
        "import hist\n\ndef analysis(events):\n"
        "    h = hist.Hist.new.Reg(10, -5, 5).Double()\n"
        "    h.fill(events.MET.eta)\n    return {'h': h}\n"
    )
    out = saetta_cmd("run", "met_eta.py:analysis", data.root, cwd=tmp_path)
    assert out.returncode == 1, out
    assert "no field named 'eta'" in out.stderr
    assert "did you mean 'eta'" not in out.stderr


def test_the_printed_only_unit_command_reproduces_the_failure(data: Data, tmp_path: Path) -> None:
    shutil.copy(data.root, tmp_path / "events.root")
    (tmp_path / "picky.py").write_text(
        "from saetta.analyses import adl\n\ndef analysis(events):\n"
        "    if events.attrs['start'] == 1000:\n"
        "        raise ValueError('entry 1000 is cursed')\n"
        "    return adl.q1(events)\n"
    )
    failed = saetta_cmd(
        "run", "picky.py:analysis", "events.root", "--chunk-size", "1000", cwd=tmp_path
    )
    assert failed.returncode == 1, failed
    [hint] = [line for line in failed.stdout.splitlines() if "--only-unit" in line]
    command = shlex.split(hint.split("reproduce a failed unit: ", 1)[1])
    assert command[:2] == ["saetta", "run"]
    again = saetta_cmd(*command[1:], cwd=tmp_path)
    assert again.returncode == 1, again
    assert "Traceback" in again.stderr  # the analysis' own traceback, on purpose
    assert "ValueError: entry 1000 is cursed" in again.stderr
    assert again.err_lines[-1].startswith("saetta: error: SaettaError: unit events.root[1000:2000]")
    # Positive control: another unit of the same file runs and says so.
    good = saetta_cmd(
        "run",
        "picky.py:analysis",
        "events.root",
        "--only-unit",
        "events.root[0:1000]",
        cwd=tmp_path,
    )
    assert good.returncode == 0, good
    assert "unit events.root[0:1000]: ok, 1,000 events" in good.stdout
