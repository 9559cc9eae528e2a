"""`saetta run --testbed` on real batch systems: SLURM and HTCondor on this host.

The services come from ``.ci/services/`` (see ``tests/batch_services.py``). Each test runs
the command as a user would, compares the histograms with a local run bin for bin, and
checks that no batch job outlives the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import flow_values

import saetta
from saetta.analyses import adl

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SAETTA = str(Path(sys.executable).with_name("saetta"))

FAILING = """
def analysis(events):
    if events.attrs["path"].endswith("c.root"):
        raise ValueError("this unit is bad")
    return {"n": len(events)}
"""


def _histograms(document: dict) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    return {k: np.asarray(v["values"]) for k, v in document["histograms"].items()}


@pytest.fixture(scope="module")
def local(small_files: list[Path]) -> saetta.Result:
    return saetta.run(adl.analysis, small_files, chunk_size=100, progress=False)


def test_slurm_testbed_equals_local(
    slurm_cluster_env,
    small_files: list[Path],
    local: saetta.Result,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    spec = {"type": "slurm", "workers": 2, **slurm_cluster_env.cluster_kwargs()}
    (tmp_path / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"slurm-local": spec}}))
    env = slurm_cluster_env.env
    run = subprocess.run(
        [
            SAETTA,
            "run",
            "adl",
            *map(str, small_files),
            "--testbed",
            "slurm-local",
            "--chunk-size",
            "100",
            "-o",
            "out.json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["report"]["executor"] == "slurm-local (slurm)"
    assert document["report"]["events_processed"] == 657
    for name, values in _histograms(document).items():
        np.testing.assert_array_equal(values, flow_values(local, name), err_msg=name)
    assert slurm_cluster_env.squeue() == []

    (tmp_path / "failing.py").write_text(FAILING)
    failed = subprocess.run(
        [
            SAETTA,
            "run",
            "failing.py:analysis",
            *map(str, small_files),
            "--testbed",
            "slurm-local",
            "--chunk-size",
            "100",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "this unit is bad" in failed.stderr
    assert "257 of 657 events not processed" in failed.stderr
    assert slurm_cluster_env.squeue() == []  # torn down on error too


def test_htcondor_testbed_equals_local(
    htcondor_env,
    small_files: list[Path],
    local: saetta.Result,  # type: ignore[no-untyped-def]
) -> None:
    shared = htcondor_env.make_shared_dir()
    names = []
    for path in small_files:
        shutil.copy(path, shared / path.name)
        names.append(path.name)
    spec = {"type": "htcondor", "workers": 2, **htcondor_env.cluster_kwargs()}
    (shared / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"condor": spec}}))
    run = htcondor_env.run(
        "saetta",
        "run",
        "adl",
        *names,
        "--testbed",
        "condor",
        "--chunk-size",
        "100",
        "-o",
        "out.json",
        cwd=shared,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((shared / "out.json").read_text())
    assert document["report"]["executor"] == "condor (htcondor)"
    assert document["report"]["events_processed"] == 657
    for name, values in _histograms(document).items():
        np.testing.assert_array_equal(values, flow_values(local, name), err_msg=name)
    assert htcondor_env.condor_q() == []
