"""saetta plan / validate on the dask and slurm testbeds (real clusters), not only local."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def test_plan_on_slurm(slurm_cluster_env, sample_root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = {"type": "slurm", "workers": 2, **slurm_cluster_env.cluster_kwargs()}
    (tmp_path / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"slurm-local": spec}}))
    (tmp_path / "usecase.yaml").write_text(yaml.safe_dump(_spec(sample_root, "slurm-local")))
    env = {**slurm_cluster_env.env, "SAETTA_TESTBEDS": str(tmp_path / "testbeds.yaml")}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("saetta")),
            "plan",
            "usecase.yaml",
            "--no-history",
            "--out",
            "report",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: FEASIBLE" in done.stdout
    assert "needs" in done.stdout  # the projection line
    assert (tmp_path / "report").is_dir()
    assert slurm_cluster_env.squeue() == []
    assert os.path.exists(tmp_path / "report" / "report.html") or any(
        p.name == "report.html" for p in (tmp_path / "report").rglob("*")
    )
