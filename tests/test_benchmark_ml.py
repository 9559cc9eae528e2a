"""Smoke test of the ML loader benchmark (benchmarks/ml.py): runs, checks itself, writes JSON.

A tiny generated file split into small units, so that both DDP ranks get a share;
no timing assertions.
"""

from __future__ import annotations

import json
import pathlib
import runpy

import pytest

ROOT_DIR = pathlib.Path(__file__).resolve().parents[1]
BENCHMARK = ROOT_DIR / "benchmarks" / "ml.py"
EVENTS = 20_000


@pytest.mark.slow
def test_ml_benchmark_runs_and_checks_itself(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = runpy.run_path(str(BENCHMARK), run_name="ml_benchmark")["main"]
    out = tmp_path / "ml.json"
    report = main(
        [
            "--events", str(EVENTS),
            "--chunk-size", "2500",
            "--data-dir", str(tmp_path / "data"),
            "--json", str(out),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out

    assert report["ok"] is True
    assert all(report["checks"].values())
    assert len(report["checks"]) == 8  # DDP's check included
    assert report["file"]["entries"] == EVENTS
    assert report["raw_read"]["events"] == report["handwritten"]["events"] == EVENTS

    assert set(report["loaders"]) == {
        "saetta W=0",
        "saetta W=2",
        "saetta W=0 + column cache",
        "saetta W=2 + column cache",
        "saetta W=0 shuffle=False",
    }
    for config in report["loaders"].values():
        assert config["units"] == EVENTS // 2500
        assert [e["events"] for e in config["epochs"]] == [EVENTS, EVENTS]
        for epoch in config["epochs"]:
            assert epoch["every_entry_once"] is True
            assert epoch["one_file"] is True
            assert epoch["failures"] == 0
            assert epoch["batches"] == epoch["expected_batches"]
            assert epoch["events_per_s"] > 0
    w0 = report["loaders"]["saetta W=0"]["epochs"]
    assert w0[0]["order_sha256"] != w0[1]["order_sha256"]
    for check in report["content_checks"].values():
        assert check == {"every_entry_once": True, "arrays_differ": [], "ok": True}

    for name in ("saetta W=0", "saetta W=2"):
        for epoch in report["training"][name]["epochs"]:
            assert epoch["events"] == EVENTS
            assert epoch["wait_seconds"] + epoch["step_seconds"] <= epoch["seconds"] * 1.01
    assert set(report["ddp"]) == {"1 rank", "2 ranks"}
    for ranks, run in zip((1, 2), report["ddp"].values(), strict=True):
        assert run["events"] == run["loop_events"] == EVENTS
        assert len(run["digests"]) == ranks
        assert len(set(run["digests"])) == 1

    assert set(report["targets"]) == {
        "loader / hand-written",
        "loader / raw read",
        "data wait / step time, loader workers",
        "DDP 2 ranks / 1 rank",
    }
    for verdict in report["targets"].values():
        assert verdict["value"] is not None
        assert verdict["met"] in (True, False)
    assert set(report["other_processes"]) == {"core_seconds", "wall_seconds", "share_of_machine"}
    assert report["machine"]["cpus"] >= 1
    assert set(report["versions"]) == {"saetta", "torch", "uproot", "awkward"}
    assert "all correctness checks passed" in printed
    assert "FAILED" not in printed
    for name in report["targets"]:
        assert f"target {name}" in printed

    written = json.loads(out.read_text())
    assert written["ok"] is True
    assert written["file"]["entries"] == EVENTS
    assert written["targets"] == report["targets"]
