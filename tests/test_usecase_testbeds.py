"""saetta plan / validate on the dask and slurm testbeds (real clusters), not only local."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from batch_services import assert_ran_in_jobs, watch_jobs

import saetta
from saetta import usecase as uc
from saetta.analyses import adl
from saetta.usecase import UseCase

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _spec(dataset: Path, testbed: str) -> dict[str, object]:
    return {
        "name": f"on-{testbed}",
        "analysis": "adl.q5",
        "dataset": str(dataset),
        "requirement": {
            "data": "1 GB",
            "time": "10 min",
            "resources": {"cores": 2, "memory_per_core": "4 GB"},
        },
        "testbed": testbed,
        "chunk_size": 2_500,
        "calibration": {"sample_units": 4, "workers": [1, 2], "repeats": 1},
    }


def test_plan_and_validate_on_dask(sample_root: Path) -> None:
    validation = uc.validate(UseCase.from_dict(_spec(sample_root, "dask")), adl.q5)
    assert validation.plan.verdict == "FEASIBLE", str(validation.plan)
    assert {m.workers for m in validation.plan.calibration.runs} >= {1, 2}
    assert validation.complete
    assert validation.measurement.events == 20_000
    assert validation.verdict == "PASS", str(validation)


def test_plan_and_validate_on_slurm(slurm_cluster_env, sample_root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``saetta validate`` (which plans first, as ``saetta plan`` does) on SLURM, on half the
    dataset: sane numbers, and every timed run, the calibration's and the validation's, ran
    in jobs of this testbed that SLURM itself listed, the validation in fresh ones."""
    job_name = f"saetta-usecase-{uuid.uuid4().hex[:8]}"
    spec = {"type": "slurm", "workers": 2, **slurm_cluster_env.cluster_kwargs(job_name=job_name)}
    (tmp_path / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"slurm-local": spec}}))
    (tmp_path / "usecase.yaml").write_text(yaml.safe_dump(_spec(sample_root, "slurm-local")))
    with watch_jobs(lambda: slurm_cluster_env.job_nodes(job_name)) as jobs:
        done = slurm_cluster_env.saetta(
            "validate",
            "usecase.yaml",
            "--fraction",
            "0.5",
            "--no-history",
            "--out",
            "report",
            cwd=tmp_path,
            SAETTA_TESTBEDS=str(tmp_path / "testbeds.yaml"),
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan: FEASIBLE" in done.stderr
    assert "verdict: PASS" in done.stdout
    assert (tmp_path / "report" / "report.html").is_file()
    assert slurm_cluster_env.squeue() == []

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    whole = saetta.run(adl.q5, [sample_root], chunk_size=2_500, progress=False)
    _assert_sane_validation(report, jobs, whole_fills=sum(h.sum(flow=True) for h in whole.values()))


def _assert_sane_validation(
    report: dict[str, Any], jobs: Mapping[str, str], whole_fills: float
) -> None:
    """The numbers of a validation of half the use case on 2 SLURM workers, and where its
    units ran (``jobs``: what squeue listed for the testbed's job name)."""
    plan, measured = report["plan"], report["measurement"]
    assert plan["verdict"] == "FEASIBLE"
    assert "needs" in plan["projection"]
    calibration = [*plan["calibration"]["runs"], plan["calibration"]["overhead_run"] or {}]
    calibration = [run for run in calibration if run]
    assert {run["workers"] for run in calibration} >= {1, 2}
    # Half of the 8 units of 2,500 events, all of them processed, by the testbed's 2 workers.
    assert report["events_total"] == report["events_processed"] == measured["events"] == 10_000
    assert report["complete"]
    assert report["verdict"] == "PASS"
    assert measured["workers"] == 2
    assert measured["units"] == len(measured["timeline"]) == 4
    assert sum(unit["events"] for unit in measured["timeline"]) == 10_000
    assert all(unit["seconds"] > 0 for unit in measured["timeline"])
    # About half the whole dataset's fills (a local run), as half its events.
    assert 0.35 * whole_fills < report["histogram_fills"] < 0.65 * whole_fills, whole_fills
    assert 0 < report["measured_s"] < 600
    assert measured["rate_hz"] > 0
    assert report["rate_hz_per_core"] > 0
    assert 0 < report["predicted"]["time_s"] < 600
    assert 0 < report["extrapolated_s"] <= 600  # the requirement: 10 min
    assert 0 < measured["peak_memory"] < 4e9  # memory per core: 4 GB
    # Where the units ran: SLURM jobs of this testbed, one worker each.
    used = [
        assert_ran_in_jobs([unit["worker"] for unit in run["timeline"]], "slurm", jobs)
        for run in [*calibration, measured]
    ]
    for run, run_jobs in zip([*calibration, measured], used, strict=True):
        assert 1 <= len(run_jobs) <= run["workers"], (run["workers"], run_jobs)
    assert not used[-1] & set().union(*used[:-1]), used  # the validation started its own jobs
