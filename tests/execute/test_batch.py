"""`saetta run --testbed` on real batch systems: SLURM and HTCondor on this host.

The services come from ``.ci/services/`` (see ``tests/batch_services.py``). Each test runs
the command as a user would, compares the histograms with a local run bin for bin (and
finds them filled), checks that every unit ran in a job the batch system itself reported
(the unit records name the worker's batch job: ``host:pid (slurm job 42)``), and that no
batch job outlives the run. Then the batch system that does not answer
(no controller, no commands, a partition that does not exist, a submission refused): each
is one ExecutorError line within seconds, no traceback, no job left behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from batch_services import assert_ran_in_jobs, unit_workers, wait_for, watch_jobs
from conftest import flow_values

import saetta
from saetta.analyses import adl
from saetta.errors import ExecutorError
from saetta.execute.testbeds import load_testbeds

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


FAILING = """
def analysis(events):
    if events.attrs["path"].endswith("c.root"):
        raise ValueError("this unit is bad")
    return {"n": len(events)}
"""


def _histograms(document: dict) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    return {k: np.asarray(v["values"]) for k, v in document["histograms"].items()}


def _assert_same_filled_histograms(document: dict, local: saetta.Result) -> None:  # type: ignore[type-arg]
    """The run's histograms are the local run's, bin for bin, and none of them is empty."""
    histograms = _histograms(document)
    assert sorted(histograms) == sorted(local), sorted(histograms)
    for name, values in histograms.items():
        np.testing.assert_array_equal(values, flow_values(local, name), err_msg=name)
        assert values.sum() > 0, f"{name} is empty"


@pytest.fixture(scope="module")
def local(small_files: list[Path]) -> saetta.Result:
    return saetta.run(adl.analysis, small_files, chunk_size=100, progress=False)


def test_slurm_testbed_equals_local(
    slurm_cluster_env,
    small_files: list[Path],
    local: saetta.Result,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    job_name = f"saetta-equal-{uuid.uuid4().hex[:8]}"
    spec = {"type": "slurm", "workers": 2, **slurm_cluster_env.cluster_kwargs(job_name=job_name)}
    (tmp_path / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"slurm-local": spec}}))
    with watch_jobs(lambda: slurm_cluster_env.job_nodes(job_name)) as jobs:
        run = slurm_cluster_env.saetta(
            "run",
            "adl",
            *map(str, small_files),
            "--testbed",
            "slurm-local",
            "--chunk-size",
            "100",
            "-o",
            "out.json",
            "--run-dir",
            "run",
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["report"]["executor"] == "slurm-local (slurm)"
    assert document["report"]["events_processed"] == 657
    _assert_same_filled_histograms(document, local)
    workers = unit_workers(tmp_path / "run")
    assert len(workers) == document["report"]["units_done"]
    used = assert_ran_in_jobs(workers, "slurm", jobs)
    assert 1 <= len(used) <= 2, workers  # two single-worker jobs
    assert slurm_cluster_env.squeue() == []

    (tmp_path / "failing.py").write_text(FAILING)
    failed = slurm_cluster_env.saetta(
        "run",
        "failing.py:analysis",
        *map(str, small_files),
        "--testbed",
        "slurm-local",
        "--chunk-size",
        "100",
        cwd=tmp_path,
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
    started = time.time()
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
        "--run-dir",
        "run",
        cwd=shared,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((shared / "out.json").read_text())
    assert document["report"]["executor"] == "condor (htcondor)"
    assert document["report"]["events_processed"] == 657
    _assert_same_filled_histograms(document, local)
    assert htcondor_env.condor_q() == []
    # The schedd's own record of the jobs submitted since the run began (no others ran then).
    jobs = wait_for(lambda: htcondor_env.condor_history(since=started))
    workers = unit_workers(shared / "run")
    assert len(workers) == document["report"]["units_done"]
    used = assert_ran_in_jobs(workers, "htcondor", jobs)
    assert 1 <= len(used) <= 2, workers


# --------------------------------------------------------------------------------------------
# A batch system that does not answer: one line in seconds, never the 300 s startup timeout.

#: Generous: the check itself gives up after 10 s; this is a behaviour check, not a benchmark.
FAIL_WITHIN_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def slurm_spec(slurm_cluster_env) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A one-worker SLURM testbed whose jobs carry a name no other test uses."""
    name = f"saetta-check-{uuid.uuid4().hex[:8]}"
    return {"type": "slurm", "workers": 1, **slurm_cluster_env.cluster_kwargs(job_name=name)}


def _testbed(tmp_path: Path, spec: dict[str, object]):  # type: ignore[no-untyped-def]
    path = tmp_path / "testbeds.yaml"
    path.write_text(yaml.safe_dump({"testbeds": {"slurm-check": spec}}))
    return load_testbeds(path)["slurm-check"]


def _queued(slurm_cluster_env, spec: dict[str, object]) -> list[str]:  # type: ignore[no-untyped-def]
    """Jobs of this testbed the real controller still knows (whatever SLURM_CONF says now),
    after giving a cancelled job the few seconds SLURM keeps it listed (MinJobAge, KillWait)."""
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            ["squeue", "-h", "-o", "%i %T", "-n", str(spec["job_name"])],
            env=slurm_cluster_env.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if not out.strip() or time.monotonic() > deadline:
            return out.splitlines()
        time.sleep(1)


def _refused(bed, small_files: list[Path]) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        saetta.run(adl.analysis, small_files, testbed=bed, chunk_size=100, progress=False)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message
    assert elapsed < FAIL_WITHIN_S, f"took {elapsed:.0f} s: {message}"
    return message, elapsed


def _assert_quiet(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """Nothing of dask-jobqueue's failed submissions reached the terminal or the log."""
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    assert "Command exited with non-zero exit code" not in err, err
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_slurm_testbed_checks_then_runs(
    slurm_cluster_env,
    slurm_spec: dict[str, object],
    small_files: list[Path],
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The positive control of the tests below: the same testbed on the running controller."""
    bed = _testbed(tmp_path, slurm_spec)
    started = time.monotonic()
    bed.check_scheduler()
    assert time.monotonic() - started < 5
    with watch_jobs(lambda: slurm_cluster_env.job_nodes(str(slurm_spec["job_name"]))) as jobs:
        result = saetta.run(adl.analysis, small_files, testbed=bed, chunk_size=100, progress=False)
    assert result.report.executor == "slurm-check (slurm)"
    assert result.report.events_processed == 657
    # The report's own per-unit records (the API's view), not only the run directory's.
    assert len(assert_ran_in_jobs((u.worker for u in result.report.units), "slurm", jobs)) == 1
    assert _queued(slurm_cluster_env, slurm_spec) == []


def test_slurm_without_a_controller_fails_in_seconds(
    slurm_cluster_env,
    slurm_spec: dict[str, object],
    small_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    """sbatch is there, but SLURM_CONF names a controller port where nothing listens."""
    conf = slurm_cluster_env.slurm_conf.read_text()
    dead, found = re.subn(r"(?m)^SlurmctldPort=.*$", f"SlurmctldPort={_free_port()}", conf)
    assert found == 1
    (tmp_path / "slurm.conf").write_text(dead)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    message, _ = _refused(_testbed(tmp_path, slurm_spec), small_files)
    assert message.startswith("testbed 'slurm-check' (slurm): 'squeue -h -o %i -u "), message
    assert "Unable to contact slurm controller" in message
    assert message.endswith(
        f"is slurmctld running and reachable? (SLURM_CONF={tmp_path / 'slurm.conf'})"
    )
    _assert_quiet(capfd, caplog)
    assert _queued(slurm_cluster_env, slurm_spec) == []


def test_slurm_without_sbatch_on_path(
    slurm_cluster_env,
    slurm_spec: dict[str, object],
    small_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    bed = _testbed(tmp_path, slurm_spec)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    message, _ = _refused(bed, small_files)
    assert message == (
        "testbed 'slurm-check' (slurm): sbatch not found on PATH; is this a SLURM login node?"
    )


def test_slurm_unknown_partition_fails_before_submitting(
    slurm_cluster_env,
    slurm_spec: dict[str, object],
    small_files: list[Path],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    spec = {**slurm_spec, "queue": "nosuch"}
    message, _ = _refused(_testbed(tmp_path, spec), small_files)
    assert message.startswith(
        "testbed 'slurm-check' (slurm): 'sbatch --test-only' rejected the job script (exit 1: "
    )
    assert "invalid partition specified: nosuch" in message
    assert message.endswith(
        f"check queue, account, walltime and memory in {tmp_path}/testbeds.yaml"
    )
    _assert_quiet(capfd, caplog)
    assert _queued(slurm_cluster_env, spec) == []


@pytest.mark.parametrize("size", [{"workers": 2}, {"adapt": {"minimum": 1, "maximum": 2}}])
def test_slurm_submission_refused_after_the_check(
    slurm_cluster_env,
    slurm_spec: dict[str, object],
    small_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    size: dict[str, object],  # type: ignore[no-untyped-def]
) -> None:
    """A submission the controller refuses although the check and the dry run passed.

    The one case the real controller cannot be made to produce on demand without
    disturbing other users of it: an ``sbatch`` in front of the real one passes
    ``--test-only`` through and refuses real submissions, as a QOS limit would.
    """
    real = shutil.which("sbatch")
    (tmp_path / "bin").mkdir()
    wrapper = tmp_path / "bin" / "sbatch"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" --test-only "*) exec {real} "$@" ;; esac\n'
        'echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy"'
        " >&2\nexit 1\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    spec = {**{k: v for k, v in slurm_spec.items() if k != "workers"}, **size}
    message, _ = _refused(_testbed(tmp_path, spec), small_files)
    assert message == (
        "testbed 'slurm-check' (slurm): sbatch failed to submit a job (exit 1): "
        "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy"
    )
    _assert_quiet(capfd, caplog)
    assert _queued(slurm_cluster_env, spec) == []


CONDOR_CHECK = """
import json, os, sys, time
import saetta
from saetta.analyses import adl
from saetta.errors import ExecutorError
from saetta.execute.testbeds import load_testbeds

bed = load_testbeds("testbeds.yaml")["condor-check"]
started = time.monotonic()
bed.check_scheduler()
report = {"ok_s": time.monotonic() - started}

def refused(**env):
    saved = dict(os.environ)
    os.environ.update(env)
    started = time.monotonic()
    try:
        saetta.run(adl.analysis, [sys.argv[2]], testbed=bed, progress=False)
    except ExecutorError as exc:
        return {"message": str(exc), "seconds": time.monotonic() - started}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"message": None}

dead = {"_CONDOR_SCHEDD_HOST": "127.0.0.1:" + sys.argv[1], "_CONDOR_SCHEDD_ADDRESS_FILE": "/no"}
report["no_schedd"] = refused(**dead)
report["no_condor_submit"] = refused(PATH=os.path.dirname(sys.executable))
print(json.dumps(report))
"""


def test_htcondor_without_a_schedd_fails_in_seconds(
    htcondor_env,
    small_files: list[Path],  # type: ignore[no-untyped-def]
) -> None:
    """Inside the chroot: the check passes on the running pool (the positive control; the
    full run is test_htcondor_testbed_equals_local), then fails in one line with no schedd
    at the address, and with no condor_submit on PATH."""
    shared = htcondor_env.make_shared_dir()
    shutil.copy(small_files[0], shared / small_files[0].name)
    spec = {"type": "htcondor", "workers": 1, **htcondor_env.cluster_kwargs()}
    (shared / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"condor-check": spec}}))
    (shared / "check.py").write_text(CONDOR_CHECK)
    done = htcondor_env.run(
        htcondor_env.python, "check.py", str(_free_port()), small_files[0].name, cwd=shared
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["ok_s"] < 5
    for case in ("no_schedd", "no_condor_submit"):
        assert report[case]["message"] is not None, case
        assert "\n" not in report[case]["message"]
        assert report[case]["seconds"] < FAIL_WITHIN_S, report[case]
    assert report["no_schedd"]["message"].startswith(
        "testbed 'condor-check' (htcondor): 'condor_q -totals' failed (exit 1: "
    ), report
    assert "is the condor_schedd running?" in report["no_schedd"]["message"]
    assert report["no_condor_submit"]["message"] == (
        "testbed 'condor-check' (htcondor): condor_submit not found on PATH; "
        "is this an HTCondor submit node?"
    )
    assert "Traceback" not in done.stderr, done.stderr
