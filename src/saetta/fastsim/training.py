"""Stage: fast simulation (layer 7) — training a shower generator as a ``saetta train`` job.

``saetta fastsim train SHOWERS`` trains a :class:`~saetta.fastsim.model.ShowerGenerator`
on shower files (the CaloChallenge layout, saetta's or the public data sets') with
the machinery of :mod:`saetta.ml.training`: the showers stream through
:class:`saetta.ml.Loader` (HDF5 is a dataset format, the ``showers`` matrix a padded
collection), the ranks run as one DistributedDataParallel job on local processes or a
testbed's workers, checkpoints are written as the training goes, and ``--resume``
continues a killed run to the weights of an uninterrupted one.

The training script is generated from the request (model kind, hyperparameters,
batch size, learning rate) and kept in saetta's cache under its digest, so a run
directory names the exact script it ran and a resume refuses a changed one. At the
end the weights and the model's config are written together as one generator file
(:func:`~saetta.fastsim.model.save_model`), what ``saetta fastsim generate`` reads.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from saetta._config import cache_home
from saetta.errors import DatasetError
from saetta.fastsim.showerfile import read_showers

__all__ = ["SCRIPT", "train_generator", "write_generator"]

#: The training loop; ``{config}`` becomes the request, as a JSON literal.
SCRIPT = '''"""saetta fastsim train: a shower generator, trained as a saetta train job."""

import json

import torch

from saetta import ml
from saetta.fastsim.model import ShowerGenerator
from saetta.fastsim.showerfile import read_showers

CONFIG = json.loads({config!r})
DATA = []  # the showers loader(data) was given: train(run) prepares the model on them


def loader(data):
    DATA.append(data)
    binning = read_showers(data, limit=1).binning
    return ml.Loader(
        data,
        ["incident_energies", "showers_value"],
        pad={{"showers": binning.voxels}},
        batch_size=CONFIG["batch_size"],
        seed=CONFIG["seed"],
        split={{"train": 1 - CONFIG["validation"], "val": CONFIG["validation"]}},
    )


def _tensors(batch):
    return batch["showers"][..., 0], batch["flat"][:, 0]


def train(run):
    torch.manual_seed(run.seed)
    sample = read_showers(DATA[-1], limit=CONFIG["prepare_showers"])
    model = ShowerGenerator(sample.binning, kind=CONFIG["kind"], **CONFIG["hyper"])
    # every rank prepares on the same first showers, so every rank's buffers agree
    model.prepare(torch.from_numpy(sample.showers), torch.from_numpy(sample.incident_energies).float())
    net = run.distribute(model)
    optimizer = torch.optim.Adam(net.parameters(), lr=CONFIG["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=CONFIG["epochs"])
    run.track(model=model, optimizer=optimizer, schedule=schedule)
    for epoch in run.epochs():
        net.train()
        total, batches = 0.0, 0
        for batch in run.batches(epoch):
            loss = net(*_tensors(batch))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), CONFIG["clip"])
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        schedule.step()
        net.eval()
        with torch.no_grad():
            val = [model.loss(*_tensors(b)).item() for b in run.batches(epoch, "val")]
        run.log(
            epoch=epoch,
            loss=run.mean(total / max(batches, 1)),
            val_loss=run.mean(sum(val) / max(len(val), 1)),
        )
'''

DEFAULTS: dict[str, Any] = {
    "batch_size": 128,
    "lr": 1e-3,
    "clip": 10.0,
    "validation": 0.1,
    "prepare_showers": 5000,
}


def script_for(kind: str, hyper: dict[str, Any], seed: int, epochs: int, **settings: Any) -> Path:
    """The training script of a request, written once into saetta's cache by its digest."""
    config = {**DEFAULTS, **settings, "kind": kind, "hyper": hyper, "seed": seed, "epochs": epochs}
    source = SCRIPT.format(config=json.dumps(config, sort_keys=True))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = cache_home() / "fastsim"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train-{digest}.py"
    if not path.exists():
        partial = path.with_suffix(f".partial-{os.getpid()}")
        partial.write_text(source)
        os.replace(partial, path)
    return path


def train_generator(
    data: str,
    *,
    kind: str | None = None,
    hyper: dict[str, Any] | None = None,
    epochs: int = 30,
    world_size: int = 1,
    testbed: str | None = None,
    seed: int = 0,
    directory: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    progress: bool = True,
    checkpoint_every: int = 200,
    **settings: Any,
) -> Any:
    """Train a generator on the shower files ``data`` (a folder, a glob or files); returns
    the :class:`~saetta.ml.TrainResult`, whose folder holds ``generator.pt``."""
    from saetta.fastsim.model import KINDS
    from saetta.ml.training import train

    chosen = kind or KINDS[0]
    if chosen not in KINDS:
        msg = f"unknown model {chosen!r}; available: {', '.join(KINDS)}"
        raise DatasetError(msg)
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        msg = f"unknown training setting {min(unknown)!r}; known: {', '.join(DEFAULTS)}"
        raise DatasetError(msg)
    pattern = _pattern(data)
    read_showers(pattern, limit=1)  # a clear error now, not on every rank
    script = script_for(chosen, dict(hyper or {}), seed, epochs, **settings)
    result = train(
        script,
        data=pattern,
        epochs=epochs,
        world_size=world_size,
        testbed=testbed,
        seed=seed,
        checkpoint_every=checkpoint_every,
        device=device,
        directory=directory,
        progress=progress,
    )
    write_generator(result.directory, script)
    return result


def write_generator(folder: str | os.PathLike[str], script: str | os.PathLike[str]) -> Path:
    """``folder/generator.pt``: a finished run's weights with its model's config (the
    request in ``script``, the binning of its showers)."""
    import torch

    from saetta.fastsim.model import ShowerGenerator, save_model

    run = Path(folder)
    record = json.loads((run / "run.json").read_text())
    config = _request(Path(script))
    binning = read_showers(record["settings"]["data"], limit=1).binning
    model = ShowerGenerator(binning, kind=config["kind"], **config["hyper"])
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    save_model(model, run / "generator.pt")
    return run / "generator.pt"


def _request(script: Path) -> dict[str, Any]:
    for line in script.read_text().splitlines():
        if line.startswith("CONFIG = json.loads("):
            literal = line.removeprefix("CONFIG = json.loads(").removesuffix(")")
            return dict(json.loads(ast.literal_eval(literal)))
    msg = f"{script} is not a saetta fastsim training script"
    raise DatasetError(msg, path=str(script))


def _pattern(data: str) -> str:
    if os.path.isdir(data):
        return os.path.join(data, "*.h5")
    return data
