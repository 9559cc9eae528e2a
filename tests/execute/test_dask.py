"""The Dask executor on real clusters: a LocalCluster, and a scheduler with workers
started as separate processes, reached by address."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import flow_values

import saetta
from saetta.analyses import adl

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.cluster


def _equal(a: saetta.Result, b: saetta.Result) -> None:
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(flow_values(a, name), flow_values(b, name), err_msg=name)


@pytest.fixture(scope="module")
def local_result(small_files: list[Path]) -> saetta.Result:
    return saetta.run(adl.analysis, small_files, chunk_size=60, progress=False)


def test_local_cluster_equals_local(small_files: list[Path], local_result: saetta.Result) -> None:
    result = saetta.run(
        adl.analysis, small_files[::-1], executor="dask:2", chunk_size=60, progress=False
    )
    assert result.report.executor == "dask:2"
    assert result.report.events_processed == 657
    _equal(result, local_result)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes, as an admin would start them."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [
                bin_dir / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                scheduler_file,
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    procs += [
        subprocess.Popen(
            [
                bin_dir / "dask",
                "worker",
                "--scheduler-file",
                scheduler_file,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    import json

    address = json.loads(scheduler_file.read_text())["address"]
    with distributed.Client(address) as client:
        client.wait_for_workers(2, timeout=60)
    try:
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_scheduler_by_address(
    scheduler: str, small_files: list[Path], local_result: saetta.Result
) -> None:
    executor = "dask://" + scheduler.removeprefix("tcp://")
    result = saetta.run(adl.analysis, small_files, executor=executor, chunk_size=60, progress=False)
    _equal(result, local_result)


def test_merged_on_workers_one_result_to_client(
    scheduler: str,
    small_files: list[Path],
    local_result: saetta.Result,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fetched: list[str] = []
    original = distributed.Future.result

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fetched.append(self.key)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(distributed.Future, "result", counting)
    with distributed.Client(scheduler) as client:
        with distributed.get_task_stream(client) as stream:
            result = saetta.run(
                adl.analysis, small_files, executor=client, chunk_size=60, progress=False
            )
        assert client.status == "running"  # a client the user made is left open
    units = result.report.units_total
    merges = {t["key"] for t in stream.data if str(t["key"]).startswith("saetta-merge")}
    leaves = {t["key"] for t in stream.data if str(t["key"]).startswith("saetta-unit")}
    assert len(leaves) == units
    assert len(merges) == units - 1  # every combination ran on a worker
    assert len(fetched) == 1
    assert str(fetched[0]).startswith("saetta-merge")
    _equal(result, local_result)


def raises_on_c(events):  # type: ignore[no-untyped-def]
    if events.attrs["path"].endswith("c.root"):
        msg = "bad unit"
        raise ValueError(msg)
    return {"n": len(events)}


def test_failure_tears_the_cluster_down(small_files: list[Path]) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(saetta.UnitError, match="bad unit") as info:
        saetta.run(raises_on_c, small_files, executor="dask:2", chunk_size=100, progress=False)
    assert info.value.result["n"] == 400  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = {
            p.pid
            for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        } - before
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"worker processes left behind: {left}"


def test_mismatched_worker_is_refused(
    scheduler: str, tmp_path: Path, small_files: list[Path]
) -> None:
    """A worker whose saetta is another version: a clear error before any unit runs."""
    fake = tmp_path / "site"
    info = fake / "saetta-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: saetta\nVersion: 9.9.9\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    bin_dir = Path(sys.executable).parent
    odd = subprocess.Popen(
        [
            bin_dir / "dask",
            "worker",
            scheduler,
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--name",
            "odd-one",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with distributed.Client(scheduler) as client:
            client.wait_for_workers(3, timeout=60)
            with pytest.raises(saetta.ExecutorError, match=r"saetta 9\.9\.9 \(client 0\.1\.0\)"):
                saetta.run(adl.q1, small_files, executor=client, progress=False)
    finally:
        odd.terminate()
        odd.wait(timeout=30)


def test_testbed_from_yaml(
    tmp_path: Path,
    small_files: list[Path],
    local_result: saetta.Result,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "testbeds.yaml"
    config.write_text(
        "testbeds:\n  two-dask: {type: dask, workers: 2}\n  procs: {type: local, workers: 2}\n"
    )
    monkeypatch.setenv("SAETTA_TESTBEDS", str(config))
    for name in ("two-dask", "procs"):
        result = saetta.run(adl.analysis, small_files, testbed=name, chunk_size=60, progress=False)
        assert result.report.executor.startswith(name)
        _equal(result, local_result)
    with pytest.raises(
        saetta.ExecutorError,
        match="unknown testbed 'nope'; available: dask, local, procs, two-dask",
    ):
        saetta.run(adl.q1, small_files, testbed="nope")


def kills_its_worker_once(events):  # type: ignore[no-untyped-def]
    import signal

    flag = Path(os.environ.get("SAETTA_TEST_FLAG", "/nonexistent"))
    first = events.attrs["start"] == 50 and events.attrs["path"].endswith("a.root")
    if first and flag.parent.exists() and not flag.exists():
        flag.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return adl.analysis(events)


def test_sigkill_one_worker_mid_run(
    scheduler: str, small_files: list[Path], local_result: saetta.Result, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    with distributed.Client(scheduler) as client:
        client.run(lambda: os.environ.__setitem__("SAETTA_TEST_FLAG", str(flag)))
        result = saetta.run(
            kills_its_worker_once,
            small_files,
            executor=client,
            chunk_size=60,
            run_dir=False,
            progress=False,
        )
        client.wait_for_workers(2, timeout=60)  # the nanny brought the killed one back
    assert flag.read_text() == "killed"
    assert result.report.complete
    _equal(result, local_result)


def weighted_met(events):  # type: ignore[no-untyped-def]
    """A fill of log-normal weights, one at a time into 20 bins: not exact in floating
    point, so the bins' bits show the order the units' results were added in."""
    import hist

    w = np.asarray(events.genWeight, dtype=np.float64) * (1 + np.asarray(events.MET.phi) / 7)
    h = hist.Hist(hist.axis.Regular(20, 0, 200), storage=hist.storage.Weight())
    h.fill(np.asarray(events.MET.pt), weight=w)
    return {"met": h, "n": len(events)}


def _bits(result: saetta.Result) -> tuple[bytes, bytes]:
    met = result["met"]
    return met.values(flow=True).tobytes(), met.variances(flow=True).tobytes()


def test_light_units_go_in_batches_and_merge_to_the_same_bits(
    scheduler: str, weighted_small_files: list[Path]
) -> None:
    from saetta.execute.dask import batch_level

    local = saetta.run(weighted_met, weighted_small_files, chunk_size=5, progress=False)
    units = local.report.units_total
    assert batch_level(units, 2) == 3  # eight units a task
    with distributed.Client(scheduler) as client, distributed.get_task_stream(client) as stream:
        batched = saetta.run(
            weighted_met, weighted_small_files, executor=client, chunk_size=5, progress=False
        )
    tasks = {t["key"] for t in stream.data if str(t["key"]).startswith("saetta-units")}
    assert len(tasks) == -(-units // 8)
    assert batched.report.units_total == units
    assert [o.unit for o in batched.report.units] == [o.unit for o in local.report.units]
    assert batched["n"] == local["n"] == 657
    assert _bits(batched) == _bits(local)
    # Another tree (another chunking) shows in the bits: the equality above is not luck.
    other = saetta.run(weighted_met, weighted_small_files, chunk_size=7, progress=False)
    assert other["n"] == local["n"]
    np.testing.assert_allclose(other["met"].values(flow=True), local["met"].values(flow=True))
    assert _bits(other) != _bits(local)


def test_tasks_of_a_resumed_run_batch_only_whole_nodes() -> None:
    from saetta.execute.dask import _tasks

    assert _tasks(range(10), 10, 2) == [(2, 0), (2, 1), (2, 2)]  # the last node: 2 units
    done = {1, 9}
    todo = [i for i in range(10) if i not in done]
    assert _tasks(todo, 10, 2) == [(0, 0), (0, 2), (0, 3), (2, 1), (0, 8)]
    assert _tasks([], 10, 2) == []
