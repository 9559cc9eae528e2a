"""Smoke test of the fast-simulation benchmark (benchmarks/fastsim.py): runs on tiny
samples, checks itself, writes its JSON and HTML report; no timing assertions."""

from __future__ import annotations

import json
import pathlib
import runpy

import pytest

ROOT_DIR = pathlib.Path(__file__).resolve().parents[1]
BENCHMARK = ROOT_DIR / "benchmarks" / "fastsim.py"


@pytest.mark.slow
# 100 showers per sample: the two reference samples' energy ranges differ at the edges,
# and evaluate says so (a warning) as it leaves those showers out.
@pytest.mark.filterwarnings(
    "ignore:.*showers lie outside the incident energies:saetta.errors.SaettaWarning"
)
def test_fastsim_benchmark_runs_and_checks_itself(tmp_path: pathlib.Path) -> None:
    main = runpy.run_path(str(BENCHMARK), run_name="fastsim_benchmark")["main"]
    out = tmp_path / "fastsim.json"
    report = main(
        [
            "--train", "200", "--reference", "100", "--energies", "1-3", "--epochs", "4",
            "--speed-showers", "1", "--batch", "500", "--executor", "local",
            "--data-dir", str(tmp_path / "data"), "--json", str(out),
        ]
    )  # fmt: skip
    assert report["ok"] is True
    assert all(report["checks"].values())
    assert json.loads(out.read_text())["samples"]["train"]["showers"] == 200
    assert [r["energy_gev"] for r in report["generation"]] == [1.0, 10.0, 100.0, 1000.0]
    assert all(r["speed_up"] > 0 for r in report["generation"])
    assert set(report["targets"]) >= {"speed-up at 100 GeV >= 1000x per core"}
    assert "<img" in out.with_suffix(".html").read_text()
