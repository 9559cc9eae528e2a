"""The README's fast-simulation commands, end to end on a tiny sample: simulate, train
(as a saetta train job; --resume of it), generate, evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

SAETTA = str(Path(sys.executable).with_name("saetta"))


def _saetta(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [SAETTA, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_simulate_train_generate_evaluate(tmp_path: Path) -> None:
    _saetta("simulate", "showers", "showers", "--events", "400", "--energies", "1-4",
            "--events-per-file", "100", "--no-progress", cwd=tmp_path)  # fmt: skip
    _saetta("simulate", "showers", "reference", "--events", "200", "--energies", "1-4",
            "--events-per-file", "100", "--seed", "2", "--no-progress", cwd=tmp_path)  # fmt: skip
    trained = _saetta("fastsim", "train", "showers", "--epochs", "2", "--run-dir", "run",
                      cwd=tmp_path)  # fmt: skip
    assert "wrote run/generator.pt" in trained.stdout
    metrics = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert all(np.isfinite(m["loss"]) and np.isfinite(m["val_loss"]) for m in metrics)

    before = (tmp_path / "run" / "generator.pt").read_bytes()
    resumed = _saetta("fastsim", "train", "--resume", "run", cwd=tmp_path)
    assert "wrote run/generator.pt" in resumed.stdout
    import torch

    again = torch.load(tmp_path / "run" / "generator.pt", weights_only=True)
    for key, value in torch.load(__import__("io").BytesIO(before), weights_only=True)[
        "state_dict"
    ].items():
        assert torch.equal(value, again["state_dict"][key]), key

    _saetta("fastsim", "generate", "run/generator.pt", "generated", "--events", "200",
            "--energies", "1-4", "--events-per-file", "100", "--no-progress", cwd=tmp_path)  # fmt: skip
    with h5py.File(tmp_path / "generated" / "showers_00000.h5") as f:
        showers, energies = f["showers"][:], f["incident_energies"][:, 0]
        assert "fastsim generate" in f.attrs["generator"]
    assert showers.shape == (100, 432)
    assert (showers >= 0).all()
    assert energies.min() >= 1e3
    assert energies.max() <= 4e3

    evaluated = _saetta("fastsim", "evaluate", "reference", "generated", "--second-reference",
                        "showers", "-o", "report.html", "--json", "report.json", cwd=tmp_path)  # fmt: skip
    assert "AUC voxels" in evaluated.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert 0 <= report["auc_voxels"] <= 1
    assert report["floor"] is not None
    assert "<img" in (tmp_path / "report.html").read_text()
