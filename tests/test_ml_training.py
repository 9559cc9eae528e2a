"""``saetta train``: DDP on local processes and on the real SLURM testbed, SIGKILL and resume,
ONNX export into an analysis, and the one-line errors.

The training script is the README's kind: a loader over the session's sample file and a
small network on padded jets. Every claim about weights compares the runs' own final
``model.pt`` tensors, not only the digests saetta reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from batch_services import SlurmEnv, watch_jobs

torch = pytest.importorskip("torch")

import saetta
from saetta import inference, ml
from saetta.storage import lock_folder

SCRIPT = """
import torch
from saetta import ml


def loader(data):
    return ml.Loader(
        data, ["Jet_pt", "Jet_eta", "MET_pt"], pad={"Jet": 4}, target="PV_npvs",
        batch_size=500, split={"train": 0.8, "val": 0.2}, chunk_size=3000,
        shuffle_buffer=4000, seed=3,
    )


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.jets = torch.nn.Linear(2, 8)
        self.out = torch.nn.Sequential(
            torch.nn.Linear(9, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1)
        )

    def forward(self, jets, mask, flat):
        per_jet = torch.relu(self.jets(jets / torch.tensor([50.0, 2.5]))) * mask.unsqueeze(-1)
        return self.out(torch.cat([per_jet.sum(1), flat / 50], 1)).squeeze(-1)


def train(run):
    torch.manual_seed(run.seed)
    model = run.distribute(Net())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    run.track(model=model, optimizer=optimizer)
    for epoch in run.epochs():
        total, n = 0.0, 0
        for batch in run.batches(epoch):
            prediction = model(batch["Jet"], batch["Jet_mask"], batch["flat"])
            loss = torch.nn.functional.mse_loss(prediction, batch["target"].float() / 20)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch["entry"])
            n += len(batch["entry"])
        run.log(epoch=epoch, loss=run.mean(total / max(n, 1)))
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "train.py"
    path.write_text(SCRIPT)
    return path


def _saetta(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("saetta")), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _weights(run_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(run_dir / "model.pt", weights_only=True)
    return state


def _same_weights(a: Path, b: Path) -> bool:
    left, right = _weights(a), _weights(b)
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def _result(run_dir: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished", record
    result: dict[str, Any] = record["result"]
    return result


@pytest.fixture(scope="module")
def uninterrupted(
    script: Path, sample_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, Path]:
    """Three epochs on 1 and on 2 local ranks, never interrupted: the references."""
    runs = {}
    for ranks in (1, 2):
        run_dir = tmp_path_factory.mktemp("whole") / f"ranks{ranks}"
        done = _saetta(
            "train", str(script), "--data", str(sample_root), "--epochs", "3",
            "--workers", str(ranks), "--checkpoint-every", "5", "--run-dir", str(run_dir),
            cwd=script.parent,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs[ranks] = run_dir
    return runs


@pytest.mark.parametrize("ranks", [1, 2])
def test_two_ranks_train_one_model(uninterrupted: dict[int, Path], ranks: int) -> None:
    """Loss falls; every rank ends with the same weights; the events trained on are the
    training split's, once per epoch."""
    result = _result(uninterrupted[ranks])
    losses = [entry["loss"] for entry in result["losses"]]
    assert len(losses) == 3
    assert losses[-1] < 0.5 * losses[0]
    assert len(result["digests"]) == ranks
    assert len(set(result["digests"])) == 1
    # The optimizers too: a rank that skipped a step would train apart from the others.
    assert len(set(result["state_digests"])) == 1
    train_events = ml.Loader(
        str(json.loads((uninterrupted[ranks] / "run.json").read_text())["settings"]["data"]),
        ["MET_pt"], split={"train": 0.8, "val": 0.2},
    ).num_events("train")  # fmt: skip
    assert result["events"] == 3 * train_events
    finished = ml.resume(uninterrupted[ranks])  # a finished run is returned as it is
    assert finished.events == 3 * train_events
    assert "identical on every rank" in repr(finished)
    assert f"<td>{3 * train_events:,}</td>" in finished._repr_html_()


@pytest.mark.parametrize("ranks", [1, 2])
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(
    script: Path, sample_root: Path, uninterrupted: dict[int, Path], tmp_path: Path, ranks: int
) -> None:
    run_dir = tmp_path / "killed"
    command = [
        str(Path(sys.executable).with_name("saetta")), "train", str(script),
        "--data", str(sample_root), "--epochs", "3", "--workers", str(ranks),
        "--checkpoint-every", "5", "--run-dir", str(run_dir),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 300
    position: dict[str, int] = {}
    while time.monotonic() < deadline and process.poll() is None:
        try:
            position = json.loads(latest.read_text())
        except (OSError, ValueError):
            position = {}
        if position.get("epoch") == 1 and position.get("batch", 0) > 0:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert position.get("epoch") == 1, "not killed in the second epoch"
    assert position["batch"] > 0, "not killed mid-epoch"
    assert not (run_dir / "model.pt").exists()
    time.sleep(1.0)
    written = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    time.sleep(1.0)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == written, (
        "a rank outlived the kill"
    )

    resumed = _saetta("train", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _same_weights(run_dir, uninterrupted[ranks])
    assert _result(run_dir)["digests"] == _result(uninterrupted[ranks])["digests"]


def test_another_seed_trains_other_weights(
    script: Path, sample_root: Path, uninterrupted: dict[int, Path], tmp_path: Path
) -> None:
    """Positive control for the resume test: the weights do depend on the run."""
    done = _saetta(
        "train", str(script), "--data", str(sample_root), "--epochs", "3", "--seed", "1",
        "--run-dir", str(tmp_path / "other"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not _same_weights(tmp_path / "other", uninterrupted[1])


def test_ddp_on_the_slurm_testbed(
    slurm_cluster_env: SlurmEnv,
    script: Path,
    sample_root: Path,
    uninterrupted: dict[int, Path],
    tmp_path: Path,
) -> None:
    """Two ranks in two SLURM jobs: loss falls, both ranks end identical, and equal the two
    local ranks' weights (the same job, elsewhere); no job is left in squeue."""
    job_name = f"saetta-train-{uuid.uuid4().hex[:8]}"
    spec = {
        "type": "slurm",
        "workers": 2,
        **slurm_cluster_env.cluster_kwargs(job_name=job_name, memory="2GB"),
    }
    (tmp_path / "testbeds.yaml").write_text(yaml.safe_dump({"testbeds": {"slurm-local": spec}}))
    with watch_jobs(lambda: slurm_cluster_env.job_nodes(job_name)) as jobs:
        done = slurm_cluster_env.saetta(
            "train", str(script), "--data", str(sample_root), "--epochs", "3",
            "--testbed", "slurm-local", "--workers", "2", "--run-dir", str(tmp_path / "run"),
            cwd=tmp_path, SAETTA_TESTBEDS=str(tmp_path / "testbeds.yaml"),
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = _result(tmp_path / "run")
    losses = [entry["loss"] for entry in result["losses"]]
    assert losses[-1] < 0.5 * losses[0]
    assert len(result["digests"]) == 2
    assert len(set(result["digests"])) == 1
    assert len(set(result["state_digests"])) == 1
    ran_in = {w["slurm_job"] for w in result["workers"]}
    assert len(ran_in) == 2
    assert ran_in <= set(jobs), (ran_in, jobs)
    assert _same_weights(tmp_path / "run", uninterrupted[2])
    assert slurm_cluster_env.squeue() == []


def test_export_to_onnx_and_evaluate_in_an_analysis(sample_root: Path, tmp_path: Path) -> None:
    """The trained network, exported, gives in saetta.run's event loop (through
    saetta.inference) what torch gives on the loader's batches of the same events."""
    namespace: dict[str, Any] = {}
    exec(SCRIPT, namespace)  # noqa: S102 - the test's own script
    loader = namespace["loader"](str(sample_root))
    torch.manual_seed(0)
    model = namespace["Net"]().eval()
    inputs = ["Jet", "Jet_mask", "flat"]
    example = next(iter(loader.epoch(0, "val")))
    path = ml.export(model, example, tmp_path / "net.onnx", inputs=inputs)

    by_torch = {}
    with torch.no_grad():
        for split in ("train", "val"):
            for batch in loader.epoch(0, split):
                for entry, value in zip(
                    batch["entry"].tolist(),
                    model(*(batch[k] for k in inputs)).tolist(),
                    strict=True,
                ):
                    by_torch[entry] = value

    def analysis(events: Any) -> dict[str, Any]:
        arrays = loader.features_of(events)
        scores = inference.predict(path, {k: arrays[k] for k in inputs})
        entries = np.arange(events.attrs["start"], events.attrs["stop"], dtype=np.int64)
        return {
            "sum": float(np.sum(scores)),
            "by_entry": np.bincount(entries, weights=scores, minlength=20_000),
        }

    result = saetta.run(analysis, [sample_root], chunk_size=3_000, progress=False)
    assert len(by_torch) == 20_000
    expected = np.array([by_torch[e] for e in range(20_000)])
    assert np.allclose(result["by_entry"], expected, rtol=1e-4, atol=1e-5)
    assert inference.sessions_loaded() >= 1


def test_export_refuses_an_example_without_the_inputs(sample_root: Path, tmp_path: Path) -> None:
    model = torch.nn.Linear(1, 1)
    with pytest.raises(saetta.SaettaError, match="has no Muon"):
        ml.export(model, {"flat": torch.zeros(3, 1)}, tmp_path / "m.onnx", inputs=["Muon"])
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def loader(data):\n    pass\n", "defines no train() function"),
        (
            (
                "from saetta import ml\ndef loader(data):\n    return ml.Loader(data, ['Jet_ptt'], pad={'Jet': 2})\n"
                "def train(run):\n    pass\n"
            ),
            "did you mean 'Jet_pt'",
        ),
        (
            SCRIPT.replace("loss.backward()", "raise ValueError('exploded on purpose')"),
            "exploded on purpose",
        ),
    ],
    ids=["no-train", "misspelt-branch", "raises"],
)
def test_a_broken_script_is_one_line(
    sample_root: Path, tmp_path: Path, body: str, message: str
) -> None:
    (tmp_path / "bad.py").write_text(body)
    done = _saetta("train", "bad.py", "--data", str(sample_root), "--run-dir", "run", cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failing_rank_stops_the_job_with_its_message(
    script: Path, sample_root: Path, tmp_path: Path
) -> None:
    """Rank 1 raises in its first step; rank 0 must not wait for it forever."""
    broken = SCRIPT.replace(
        "            loss.backward()",
        "            if run.rank == 1:\n                raise RuntimeError('rank one broke')\n            loss.backward()",
    )
    (tmp_path / "broken.py").write_text(broken)
    done = _saetta(
        "train", "broken.py", "--data", str(sample_root), "--workers", "2", "--run-dir", "run",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert "rank one broke" in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_refuses_what_is_not_a_run_and_a_changed_script(
    script: Path, sample_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    done = _saetta("train", "--resume", "empty", cwd=tmp_path)
    assert done.returncode == 1
    assert "not a training run directory" in done.stderr

    copy = tmp_path / "train.py"
    copy.write_text(SCRIPT)
    first = _saetta(
        "train", "train.py", "--data", str(sample_root), "--run-dir", "run", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    again = _saetta(
        "train", "train.py", "--data", str(sample_root), "--run-dir", "run", cwd=tmp_path
    )
    assert again.returncode == 1
    assert "is not empty" in again.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    record["status"] = "running"
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    held = lock_folder(tmp_path / "run")  # as a running saetta train holds it
    assert isinstance(held, int)
    try:
        busy = _saetta("train", "--resume", "run", cwd=tmp_path)
    finally:
        os.close(held)
    assert busy.returncode == 1
    assert "in use by another saetta train" in busy.stderr
    copy.write_text(SCRIPT + "\n# edited\n")
    changed = _saetta("train", "--resume", "run", cwd=tmp_path)
    assert changed.returncode == 1
    assert "changed since the run started" in changed.stderr
