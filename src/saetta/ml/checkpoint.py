"""Stage: ML (layer 7) — checkpoints of a training run, written atomically, read safely.

A checkpoint is a folder ``checkpoints/e<epoch>-b<batch>/`` of the run directory:
``rank<r>.pt`` per rank (that rank's random-number states; rank 0's also holds the
tracked objects' ``state_dict``: model, optimizer, scheduler), and the run's
``checkpoints/latest.json`` names the newest complete one. Every file is written
to a temporary name and renamed into place; ``latest.json`` is replaced only
after every rank's file is in place, so a run killed at any instant resumes from
a whole checkpoint. The two newest are kept; older ones, which saetta wrote, are
deleted.

Files are read with ``torch.load(weights_only=True)``: tensors and plain values,
never arbitrary pickled objects.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from saetta.errors import SaettaError
from saetta.storage import atomic_path

__all__ = ["Position", "commit", "latest", "remove_partial", "restore", "save"]

_NAME = re.compile(r"e(\d{6})-b(\d{9})")
_KEEP = 2


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where training stands: ``batch`` batches of ``epoch`` done (0: the epoch's start)."""

    epoch: int = 0
    batch: int = 0

    @property
    def name(self) -> str:
        return f"e{self.epoch:06d}-b{self.batch:09d}"


def save(directory: Path, position: Position, rank: int, objects: Mapping[str, Any] | None) -> Path:
    """Write this rank's file of the checkpoint at ``position``; ``objects`` (rank 0's) are
    the tracked objects. :func:`commit` makes it the latest once every rank wrote."""
    folder = directory / "checkpoints" / position.name
    folder.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"position": [position.epoch, position.batch], "rng": _rng_state()}
    if objects is not None:
        state["objects"] = {name: obj.state_dict() for name, obj in objects.items()}
    target = folder / f"rank{rank}.pt"
    with atomic_path(target) as temporary:
        torch.save(state, temporary)
    return target


def commit(directory: Path, position: Position, world_size: int) -> None:
    """Make the checkpoint at ``position`` the one to resume from; drop older ones."""
    folder = directory / "checkpoints"
    missing = [
        r for r in range(world_size) if not (folder / position.name / f"rank{r}.pt").is_file()
    ]
    if missing:
        msg = f"checkpoint {position.name} lacks the files of ranks {missing}"
        raise SaettaError(msg)
    record = {"epoch": position.epoch, "batch": position.batch, "world_size": world_size}
    with atomic_path(folder / "latest.json") as temporary:
        Path(temporary).write_text(json.dumps(record) + "\n", encoding="utf-8")
    kept = sorted((p for p in folder.iterdir() if _NAME.fullmatch(p.name)), reverse=True)
    for old in kept[_KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def latest(directory: Path) -> tuple[Position, int] | None:
    """The newest complete checkpoint's position and world size, or None."""
    path = directory / "checkpoints" / "latest.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return Position(int(record["epoch"]), int(record["batch"])), int(record["world_size"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise SaettaError(msg) from exc


def restore(directory: Path, position: Position, rank: int, objects: Mapping[str, Any]) -> None:
    """Load the tracked ``objects`` (from rank 0's file) and this rank's random states."""
    folder = directory / "checkpoints" / position.name
    own = _load(folder / f"rank{rank}.pt")
    shared = own if rank == 0 else _load(folder / "rank0.pt")
    saved = shared.get("objects", {})
    absent = sorted(set(objects) - set(saved))
    if absent:
        msg = f"checkpoint {folder} has no state for {', '.join(absent)}"
        raise SaettaError(msg)
    for name, obj in objects.items():
        obj.load_state_dict(saved[name])
    _set_rng_state(own["rng"])


def _load(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        msg = f"cannot read the checkpoint {path}: {' '.join(str(exc).split())[:200]}"
        raise SaettaError(msg) from exc
    return state


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = cast(tuple[Any, ...], np.random.get_state())
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def remove_partial(directory: Path) -> None:
    """Delete checkpoint folders newer than the latest complete one (a run killed while
    writing them); they are saetta's own."""
    found = latest(directory)
    folder = directory / "checkpoints"
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _NAME.fullmatch(path.name) and (found is None or path.name > found[0].name):
            shutil.rmtree(path, ignore_errors=True)
