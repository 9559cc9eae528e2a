"""Tell ttbar from W+jets events of the AGC samples: a network on six jets and the MET.

    saetta generate agc data/agc --samples ttbar,wjets --events-per-sample 5000
    saetta train examples/ttbar_vs_wjets.py --workers 2 --epochs 5

Each event's label is its sample, taken from its file's name. The network is a
Deep Sets one: the same small MLP on every jet (pt, eta, b-tag), summed over the
real jets (the mask), then an MLP with the MET. After training, rank 0 reports the
validation accuracy and writes ``model.onnx`` into the run directory, for
``saetta.inference.predict`` in an analysis (on ``loader.features_of(events)``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from saetta import ml

FILES = ["data/agc/ttbar/*.root", "data/agc/wjets/*.root"]
INPUTS = ["Jet", "Jet_mask", "flat"]


def label(events: Any) -> dict[str, np.ndarray]:
    ttbar = os.path.basename(events.attrs["path"]).startswith("ttbar_")
    return {"label": np.full(len(events), float(ttbar), dtype=np.float32)}


def loader(data: str | None) -> ml.Loader:
    return ml.Loader(
        data or FILES,
        ["Jet_pt", "Jet_eta", "Jet_btagCSVV2", "MET_pt"],
        pad={"Jet": 6},
        target="label",
        derive=label,
        batch_size=256,
        split={"train": 0.8, "val": 0.2},
        chunk_size=1000,
        seed=1,
    )


class DeepSets(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([1 / 100, 1 / 2.5, 1.0]), requires_grad=False)
        self.jet = torch.nn.Sequential(
            torch.nn.Linear(3, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32)
        )
        self.event = torch.nn.Sequential(
            torch.nn.Linear(33, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
        )

    def forward(self, jets: torch.Tensor, mask: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        per_jet = self.jet(jets * self.scale) * mask.unsqueeze(-1)
        summed = torch.cat([per_jet.sum(dim=1), flat / 100], dim=1)
        return self.event(summed).squeeze(-1)  # a logit: > 0 says ttbar


def train(run: ml.Run) -> None:
    torch.manual_seed(run.seed)
    model = run.distribute(DeepSets())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    run.track(model=model, optimizer=optimizer)
    loss_of = torch.nn.BCEWithLogitsLoss()
    for epoch in run.epochs():
        total, events = 0.0, 0
        for batch in run.batches(epoch):
            loss = loss_of(model(*(batch[k] for k in INPUTS)), batch["target"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch["entry"])
            events += len(batch["entry"])
        right = seen = 0
        network = getattr(model, "module", model)
        with torch.no_grad():
            for batch in run.batches(epoch, "val"):
                said = network(*(batch[k] for k in INPUTS)) > 0
                right += int((said == batch["target"].bool()).sum())
                seen += len(batch["entry"])
        run.log(
            epoch=epoch,
            loss=run.mean(total / max(events, 1)),
            val_accuracy=run.mean(right / max(seen, 1)),
        )
    if run.rank == 0:
        example = next(iter(run.batches(0, "val")))
        ml.export(
            getattr(model, "module", model), example, run.directory / "model.onnx", inputs=INPUTS
        )
