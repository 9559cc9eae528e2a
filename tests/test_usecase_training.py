"""A training as a use case: "train on Y events for E epochs in Z on W cores", planned and
validated on the local testbed with ``saetta plan`` and ``saetta validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from saetta.errors import UseCaseError
from saetta.usecase import UseCase

pytest.importorskip("torch")

from test_ml_training import SCRIPT, _saetta


def _spec(data: Path, **requirement: Any) -> dict[str, Any]:
    return {
        "name": "npv-regression",
        "train": "train.py",
        "dataset": str(data),
        "requirement": {
            "events": 1e8, "epochs": 10, "time": "1 h", "resources": {"cores": 2}, **requirement
        },
        "testbed": "local",
        "calibration": {"workers": [1, 2], "repeats": 1, "batches": 12},
        "validation": {"fraction": 0.5},
    }  # fmt: skip


def test_the_spec_reads_a_training() -> None:
    usecase = UseCase.from_dict(_spec(Path("data.root")))
    assert usecase.train == "train.py"
    assert usecase.analysis == ""
    assert usecase.requirement.epochs == 10
    assert usecase.requirement.data_text == "1e+08 events × 10 epochs"
    assert usecase.calibration_batches == 12
    assert usecase.workload == "train train.py"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"analysis": "adl.q1"}, "either analysis"),
        ({"dataset": ["a.root", "b.root"]}, "a training reads one"),
        (
            {"requirement": {"events": 1e6, "epochs": 0, "time": "1 h", "resources": {"cores": 1}}},
            "requirement.epochs",
        ),
        ({"calibration": {"sample_units": 3, "bogus": 1}}, "unknown field 'bogus'"),
    ],
)
def test_a_malformed_training_use_case_names_its_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(UseCaseError, match=message):
        UseCase.from_dict({**_spec(Path("data.root")), **change})


def test_an_analysis_use_case_refuses_epochs_nowhere_but_batches() -> None:
    """Positive control for the field checks: an analysis use case takes no batches."""
    spec = {k: v for k, v in _spec(Path("d.root")).items() if k != "train"} | {"analysis": "adl.q1"}
    with pytest.raises(UseCaseError, match="unknown field 'batches'"):
        UseCase.from_dict(spec)
    spec["calibration"] = {"workers": [1, 2], "repeats": 1}
    assert UseCase.from_dict(spec).train == ""


def test_plan_and_validate_a_training_on_the_local_testbed(
    sample_root: Path, tmp_path: Path
) -> None:
    """Calibrated at 1 and 2 ranks, the plan predicts Y × E; validation trains half an epoch
    on 2 ranks; the events are the training split's, and the reports are written."""
    (tmp_path / "train.py").write_text(SCRIPT)
    spec = _spec(sample_root, events=1e6, time="100 h")
    (tmp_path / "usecase.yaml").write_text(yaml.safe_dump(spec))
    done = _saetta("validate", "usecase.yaml", "--no-history", "--out", "report", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan: FEASIBLE" in done.stderr
    assert "verdict: PASS" in done.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    plan = report["plan"]
    assert plan["events"] == pytest.approx(1e7)
    assert "Warning" not in done.stderr
    runs = plan["calibration"]["runs"]
    assert sorted(r["workers"] for r in runs) == [1, 2]
    # 12 batches of 500 per rank: 6,000 events on one rank, 12,000 on two.
    assert sorted(r["events"] for r in runs) == [6_000, 12_000]
    assert all(r["rate_hz"] > 0 and 0 <= r["t0_s"] < r["wall_s"] for r in runs)
    from saetta import ml

    train_events = ml.Loader(
        str(sample_root), ["MET_pt"], split={"train": 0.8, "val": 0.2}
    ).num_events("train")
    half = report["measurement"]["events"]
    assert 0.4 * train_events < half < 0.6 * train_events
    assert report["complete"] is True
    assert (tmp_path / "report" / "report.html").is_file()


def test_a_training_that_cannot_meet_its_time_is_not_feasible(
    sample_root: Path, tmp_path: Path
) -> None:
    """Positive control for the verdict: 1e12 events × 10 epochs in a second cannot be met."""
    (tmp_path / "train.py").write_text(SCRIPT)
    spec = _spec(sample_root, events=1e12, time="1 s")
    spec["calibration"] = {"workers": [1], "repeats": 1, "batches": 5}
    (tmp_path / "usecase.yaml").write_text(yaml.safe_dump(spec))
    done = _saetta("plan", "usecase.yaml", "--no-history", "--out", "report", cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "NOT FEASIBLE" in done.stdout
