"""Stopping a run, with real signals and real stalls: ``--unit-timeout``, SIGTERM,
Ctrl-C (once and twice), ``kill -9`` of the driver, ``sys.exit()`` in an analysis,
and a script that calls ``saetta.run`` without the ``__main__`` guard.

The bounds on time are behaviour checks, 5-10 times what the runs take: a stalled
unit sleeps for minutes, so a timeout that does not interrupt it, or a process
that does not end, fails them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from adl_reference import read_events, reference_histograms
from conftest import flow_values

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod

if importlib.util.find_spec("distributed") is not None:
    from test_dask import scheduler  # noqa: F401 - fixture: `dask scheduler`, two `dask worker`

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="signals and forkserver, as on Linux"),
]
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="needs the dask extra"
)

SAETTA = str(Path(sys.executable).with_name("saetta"))
TIMEOUT_S = 5  # above a fresh worker's first unit (numba warm-up), far below a stall
STALL_S = 300  # a stalled unit: longer than any bound below
EVENTS = 700  # in a.root and c.root, clusters of 100: 7 units of chunk size 100, 35 of 20
STALLED = "a.root[200:300]"  # with chunk size 100

# The analysis the CLI runs: the unit named by STALL ("a.root:200") stalls as HOW says
# (sleep, deaf, exit); every unit records its process id in PIDS, and the units that
# complete leave one mark each in MARKS.
STALLING = """
import os, signal, sys, time
from saetta.analyses import adl

def analysis(events):
    with open(os.environ["PIDS"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    here = f"{os.path.basename(events.attrs['path'])}:{events.attrs['start']}"
    if here == os.environ.get("STALL"):
        how, seconds = os.environ["HOW"], float(os.environ["STALL_S"])
        if how == "exit":
            sys.exit(3)
        if how == "sleep":
            time.sleep(seconds)
        if how == "deaf":  # as compiled code, which does not see Ctrl-C: here it is blocked
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            time.sleep(seconds)
    time.sleep(float(os.environ.get("UNIT_SLEEP", "0")))
    out = adl.q1(events)
    with open(os.path.join(os.environ["MARKS"], here.replace(":", "-")), "a") as f:
        f.write("x")
    return out
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("data")
    return [
        generate_nanoaod(folder / "a.root", 400, seed=1, chunk_events=100),
        generate_nanoaod(folder / "c.root", 300, seed=3, chunk_events=100),
    ]


def stalling(how: str, seconds: float = STALL_S) -> Callable[[Any], Any]:
    """The same for the Python API: unit a.root[200:300] stalls, the others run q1."""

    def analysis(events: Any) -> Any:
        if events.attrs["path"].endswith("a.root") and events.attrs["start"] == 200:
            end = time.monotonic() + seconds
            if how == "exit":
                sys.exit(3)
            if how == "sleep":
                time.sleep(seconds)
            while how == "naps" and time.monotonic() < end:  # short sleeps: Python runs between
                time.sleep(0.05)
            while how == "busy" and time.monotonic() < end:
                pass
        return adl.q1(events)

    return analysis


def q1_reference(files: list[Path], without: str | None = None) -> np.ndarray:
    """q1 from the per-event reference (uproot, Python floats), leaving out unit ``without``."""
    events = []
    for path in files:
        selected = read_events(str(path))
        name, _, span = (without or "").partition("[")
        if path.name == name:
            start, stop = map(int, span.rstrip("]").split(":"))
            selected = selected[:start] + selected[stop:]
        events += selected
    return reference_histograms(events)["q1_met"]


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def still_running(pids: set[int], within: float) -> set[int]:
    """The processes of ``pids`` still there after ``within`` seconds (fewer, sooner)."""
    deadline = time.monotonic() + within
    while (alive := {p for p in pids if running(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


class Cli:
    """``saetta ARGS`` started as a terminal starts it (its own process group), its output
    read meanwhile, as ``subprocess.run(capture_output=True)`` would, reaped only on ``wait``."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [SAETTA, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=lines.extend, args=(stream,), daemon=True)
            for lines, stream in ((self.out, self.proc.stdout), (self.err, self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def processes(self) -> set[int]:
        """This saetta process's descendants now: forkserver, resource tracker, workers."""
        return {p.pid for p in psutil.Process(self.pid).children(recursive=True)}

    def output_closed(self, within: float) -> bool:
        """Whether every process holding its stdout and stderr (workers too) has ended."""
        for reader in self.readers:
            reader.join(within)
        return not any(reader.is_alive() for reader in self.readers)

    def wait(self, within: float) -> int:
        try:
            code = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"saetta still running after {within} s; stderr:\n{self.stderr}")
        assert self.output_closed(within), "processes of the run hold its output open"
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()
        self.output_closed(within=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Callable[..., Cli]]:
    """Start ``saetta run stalling.py:analysis ...`` in tmp_path; killed at the end, if left."""
    (tmp_path / "stalling.py").write_text(STALLING)
    (tmp_path / "marks").mkdir()
    started: list[Cli] = []

    def start(*args: str, **env: str) -> Cli:
        environment = {
            **os.environ,
            "PIDS": str(tmp_path / "pids"),
            "MARKS": str(tmp_path / "marks"),
            "HOW": "sleep",
            "STALL_S": str(STALL_S),
            **env,
        }
        started.append(Cli(tmp_path, ["run", *args], environment))
        return started[-1]

    yield start
    for run in started:
        run.kill()


def marks(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (tmp_path / "marks").iterdir()}


def worker_pids(tmp_path: Path) -> set[int]:
    path = tmp_path / "pids"
    return set(map(int, path.read_text().split())) if path.exists() else set()


def wait_for_marks(tmp_path: Path, run: Cli, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(marks(tmp_path)) < count:
        assert run.proc.poll() is None, f"saetta ended early:\n{run.stderr}"
        assert time.monotonic() < deadline, f"no {count} units done in 120 s:\n{run.stderr}"
        time.sleep(0.02)


def only_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("saetta: error:")]
    return line


# --- item 8: --unit-timeout -------------------------------------------------------------


@pytest.mark.parametrize("executor", ["local", "processes:2"])
def test_unit_timeout_fails_the_sleeping_unit_only(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path], executor: str
) -> None:
    args = [
        "stalling.py:analysis",
        *map(str, files),
        "--chunk-size",
        "100",
        "--executor",
        executor,
        "--unit-timeout",
        str(TIMEOUT_S),
    ]
    started = time.monotonic()
    failed = cli(*args, "--run-dir", str(tmp_path / "run1"), STALL="a.root:200")
    assert failed.wait(120) == 1
    assert time.monotonic() - started < 60  # the unit would sleep 300 s
    line = only_error_line(failed.stderr)
    assert line.startswith("saetta: error: UnitError: unit ")
    assert f"{STALLED} (100 events): UnitTimeout: the unit ran longer" in line

    partial = cli(
        *args,
        "--run-dir",
        str(tmp_path / "run2"),
        "--allow-partial",
        "-o",
        "out.json",
        STALL="a.root:200",
    )
    assert partial.wait(120) == 0, partial.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    report = document["report"]
    assert [(f["unit"].rsplit("/", 1)[-1], f["error"]) for f in report["failures"]] == [
        (STALLED, "UnitTimeout")
    ]
    assert report["events_processed"] == EVENTS - 100
    np.testing.assert_array_equal(
        document["histograms"]["q1_met"]["values"], q1_reference(files, without=STALLED)
    )


@pytest.mark.parametrize("executor", ["local", "processes:2"])
def test_unit_within_its_timeout_completes(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path], executor: str
) -> None:
    """Positive control: the same analysis, its slow unit sleeping less than the limit."""
    run = cli(
        "stalling.py:analysis",
        *map(str, files),
        "--chunk-size",
        "100",
        "--executor",
        executor,
        "--unit-timeout",
        str(TIMEOUT_S),
        "-o",
        "out.json",
        "--run-dir",
        str(tmp_path / "run"),
        STALL="a.root:200",
        STALL_S="0.5",
    )
    assert run.wait(120) == 0, run.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["complete"]
    assert document["report"]["events_processed"] == EVENTS
    assert "a.root-200" in marks(tmp_path)  # the slow unit really ran, to its end
    np.testing.assert_array_equal(document["histograms"]["q1_met"]["values"], q1_reference(files))


def test_unit_timeout_interrupts_a_busy_loop(files: list[Path]) -> None:
    """Pure Python, no sleep, in this process's main thread (the local executor)."""
    started = time.monotonic()
    result = saetta.run(
        stalling("busy"),
        files,
        chunk_size=100,
        unit_timeout=TIMEOUT_S,
        allow_partial=True,
        run_dir=False,
        progress=False,
    )
    assert time.monotonic() - started < 60
    failures = result.report.failures
    assert [(f.unit.id.rsplit("/", 1)[-1], f.error) for f in failures] == [(STALLED, "UnitTimeout")]
    assert f"({TIMEOUT_S} s, --unit-timeout)" in failures[0].message
    assert result.report.events_processed == EVENTS - 100
    np.testing.assert_array_equal(
        flow_values(result, "q1_met"), q1_reference(files, without=STALLED)
    )


@needs_dask
@pytest.mark.cluster
@pytest.mark.parametrize("how", ["naps", "busy"])
def test_unit_timeout_on_dask_worker_threads(
    scheduler: str,  # the fixture imported from test_dask
    files: list[Path],
    how: str,
) -> None:
    """Dask runs units in worker threads: the timeout is raised there asynchronously, so
    it arrives when the thread runs Python (one long ``time.sleep`` ends first)."""
    import distributed

    with distributed.Client(scheduler) as client:
        started = time.monotonic()
        result = saetta.run(
            stalling(how),
            files,
            executor=client,
            chunk_size=100,
            unit_timeout=TIMEOUT_S,
            allow_partial=True,
            run_dir=False,
            progress=False,
        )
        elapsed = time.monotonic() - started
        control = saetta.run(
            stalling(how, seconds=0.5),
            files,
            executor=client,
            chunk_size=100,
            unit_timeout=TIMEOUT_S,
            run_dir=False,
            progress=False,
        )
    assert elapsed < 60
    failures = result.report.failures
    assert [(f.unit.id.rsplit("/", 1)[-1], f.error) for f in failures] == [(STALLED, "UnitTimeout")]
    assert f"({TIMEOUT_S} s, --unit-timeout)" in failures[0].message
    assert result.report.events_processed == EVENTS - 100
    np.testing.assert_array_equal(
        flow_values(result, "q1_met"), q1_reference(files, without=STALLED)
    )
    assert control.report.complete  # positive control: a short stall is no failure
    np.testing.assert_array_equal(flow_values(control, "q1_met"), q1_reference(files))


# --- item 9: sys.exit() in the analysis is a failed unit ---------------------------------


@pytest.mark.parametrize("executor", ["local", "processes:2"])
def test_sys_exit_fails_only_its_unit(files: list[Path], executor: str) -> None:
    with pytest.raises(saetta.UnitError, match=r"a\.root\[200:300\].*SystemExit: 3") as info:
        saetta.run(
            stalling("exit"),
            files,
            executor=executor,
            chunk_size=100,
            run_dir=False,
            progress=False,
        )
    report = info.value.result.report  # type: ignore[attr-defined]
    assert [(f.unit.id.rsplit("/", 1)[-1], f.error) for f in report.failures] == [
        (STALLED, "SystemExit")
    ]
    assert report.events_processed == EVENTS - 100
    np.testing.assert_array_equal(
        flow_values(info.value.result, "q1_met"),  # type: ignore[attr-defined]
        q1_reference(files, without=STALLED),
    )


@needs_dask
@pytest.mark.cluster
def test_sys_exit_on_dask_fails_only_its_unit(
    scheduler: str,  # the fixture imported from test_dask
    files: list[Path],
) -> None:
    import distributed

    with distributed.Client(scheduler) as client:
        result = saetta.run(
            stalling("exit"),
            files,
            executor=client,
            chunk_size=100,
            allow_partial=True,
            run_dir=False,
            progress=False,
        )
        control = saetta.run(
            stalling("sleep", seconds=0),
            files,
            executor=client,
            chunk_size=100,
            run_dir=False,
            progress=False,
        )
    failures = result.report.failures
    assert [(f.unit.id.rsplit("/", 1)[-1], f.error, f.message) for f in failures] == [
        (STALLED, "SystemExit", "3")
    ]
    assert result.report.events_processed == EVENTS - 100
    assert control.report.complete


def test_sys_exit_through_the_cli_is_a_unit_error(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path]
) -> None:
    run = cli(
        "stalling.py:analysis",
        *map(str, files),
        "--chunk-size",
        "100",
        "--run-dir",
        str(tmp_path / "run"),
        STALL="a.root:200",
        HOW="exit",
    )
    assert run.wait(120) == 1  # not the analysis' 3
    line = only_error_line(run.stderr)
    assert line.startswith("saetta: error: UnitError: unit ")
    assert f"{STALLED} (100 events): SystemExit: 3; 100 of {EVENTS} events not processed" in line
    assert len(marks(tmp_path)) == 7 - 1  # every other unit ran to its end


# --- item 8: SIGTERM, Ctrl-C, kill -9 of the driver --------------------------------------


def slow_run(cli: Callable[..., Cli], tmp_path: Path, files: list[Path]) -> Cli:
    """35 units on two worker processes, recorded in tmp_path/run: the first stalls, deaf
    to Ctrl-C, the others take 0.5 s."""
    return cli(
        "stalling.py:analysis",
        *map(str, files),
        "--chunk-size",
        "20",
        "--executor",
        "processes:2",
        "--run-dir",
        str(tmp_path / "run"),
        UNIT_SLEEP="0.5",
        STALL="a.root:0",
        HOW="deaf",
    )


def resume_hint(stderr: str, run_dir: Path) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr
    hints = [line for line in stderr.splitlines() if "Resume with:" in line]
    assert len(hints) == 1, stderr
    assert hints[0].endswith(f"Resume with: saetta run --resume {run_dir}")


def test_sigterm_stops_like_ctrl_c_then_resume_completes(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path]
) -> None:
    run = slow_run(cli, tmp_path, files)
    wait_for_marks(tmp_path, run, 4)
    processes = run.processes() | worker_pids(tmp_path)
    assert len(processes) >= 3  # forkserver and workers, at least
    assert all(running(p) for p in processes)
    sent = time.monotonic()
    os.kill(run.pid, signal.SIGTERM)
    assert run.wait(20) == 143
    assert time.monotonic() - sent < 20
    resume_hint(run.stderr, tmp_path / "run")
    assert not still_running(processes, within=10)
    before = marks(tmp_path)
    assert 4 <= len(before) < 35
    assert "a.root-0" not in before  # stalled when the signal came: abandoned

    resumed = cli("--resume", str(tmp_path / "run"), "-o", "out.json", UNIT_SLEEP="0", STALL="")
    assert resumed.wait(120) == 0, resumed.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["complete"]
    assert document["report"]["events_processed"] == EVENTS
    np.testing.assert_array_equal(document["histograms"]["q1_met"]["values"], q1_reference(files))
    after = marks(tmp_path)
    assert len(after) == document["report"]["units_total"] == 35
    # Each unit ran to its end once over both sessions, but one the signal caught between
    # its end and its record, run again after the resume: at most one per worker.
    again = [name for name, text in after.items() if text != "x"]
    assert all(after[name] == "xx" for name in again)
    assert len(again) <= 2


def test_ctrl_c_once_stops_the_run_and_its_workers(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path]
) -> None:
    run = slow_run(cli, tmp_path, files)
    wait_for_marks(tmp_path, run, 4)
    processes = run.processes() | worker_pids(tmp_path)
    assert all(running(p) for p in processes)
    os.killpg(run.pid, signal.SIGINT)  # as a terminal does: the whole process group
    sent = time.monotonic()
    assert run.wait(20) == 130
    assert time.monotonic() - sent < 20
    resume_hint(run.stderr, tmp_path / "run")
    assert not still_running(processes, within=10)


@pytest.mark.parametrize("second", ["at once", "while exiting"])
def test_ctrl_c_twice_stops_at_once(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path], second: str
) -> None:
    run = slow_run(cli, tmp_path, files)
    wait_for_marks(tmp_path, run, 4)
    processes = run.processes() | worker_pids(tmp_path)
    os.killpg(run.pid, signal.SIGINT)
    sent = time.monotonic()
    if second == "at once":
        time.sleep(0.02)
    else:  # when the first has been handled, and the process is on its way out
        while "Resume with" not in run.stderr and time.monotonic() - sent < 20:
            time.sleep(0.005)
    with contextlib.suppress(ProcessLookupError):  # all gone already
        os.killpg(run.pid, signal.SIGINT)
    # 130: exited after the second; -2: killed by it while Python was finalizing
    assert run.wait(10) in {130, -signal.SIGINT}
    assert time.monotonic() - sent < 10
    assert "Traceback" not in run.stderr, run.stderr
    assert "Exception ignored" not in run.stderr, run.stderr
    assert not still_running(processes, within=10)


def test_kill_9_of_the_driver_ends_its_workers(
    cli: Callable[..., Cli], tmp_path: Path, files: list[Path]
) -> None:
    """The killed driver is not reaped while its output is open (as with
    ``subprocess.run(capture_output=True)``), so its pid stays taken meanwhile."""
    run = slow_run(cli, tmp_path, files)
    wait_for_marks(tmp_path, run, 2)
    processes = run.processes() | worker_pids(tmp_path)
    workers = worker_pids(tmp_path)
    assert len(workers) == 2
    assert all(running(p) for p in processes)  # positive control: alive before the kill
    os.kill(run.pid, signal.SIGKILL)  # the driver only, not its process group
    killed = time.monotonic()
    assert run.output_closed(within=15), f"left running: {still_running(processes, 0)}"
    assert time.monotonic() - killed < 15
    assert not still_running(processes, within=1)
    assert run.wait(10) == -signal.SIGKILL


# --- item 14: a script without the __main__ guard ---------------------------------------

SCRIPT = """
import saetta
from saetta.analyses import adl

{guard}
{indent}result = saetta.run(
{indent}    adl.q1, {files!r}, executor="processes:2", chunk_size=100, run_dir=False, progress=False
{indent})
{indent}print("events processed:", result.report.events_processed)
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_script_without_main_guard_is_named(
    tmp_path: Path, files: list[Path], guarded: bool
) -> None:
    guard = 'if __name__ == "__main__":' if guarded else ""
    paths = list(map(str, files))
    script = SCRIPT.format(guard=guard, indent="    " if guarded else "", files=paths)
    (tmp_path / "script.py").write_text(script)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert time.monotonic() - started < 60
    if guarded:  # positive control
        assert done.returncode == 0, done.stderr
        assert f"events processed: {EVENTS}" in done.stdout
        return
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr
    assert "script.py" in done.stderr
    assert "WorkerDied" not in done.stdout + done.stderr
    assert "ExecutorError" in done.stderr
