"""Stage: ML (layer 7) — training networks on the datasets saetta analyses.

- :mod:`~saetta.ml.features`: what a network sees of an event; the train/validation split;
- :mod:`~saetta.ml.loader`: :class:`Loader`, batches streamed from any dataset, exactly once
  per epoch across loader workers and ranks, shuffled reproducibly;
- :mod:`~saetta.ml.tensors`: those batches as torch tensors, and in loader processes;
- :mod:`~saetta.ml.training`: ``saetta train``: a user's training function as a distributed
  (DDP) job on local processes or a testbed's workers, checkpointed and resumable;
- :mod:`~saetta.ml.to_onnx`: :func:`export`, the trained network as ONNX, for :mod:`saetta.inference`.

torch is needed for tensors, training and export (``pip install 'saetta[ml]'``), not for
numpy batches.

Example::

    from saetta import ml
    loader = ml.Loader("data/*.root", ["Jet_pt", "Jet_eta", "MET_pt"], pad={"Jet": 6},
                       target="label", batch_size=4096, split={"train": 0.8, "val": 0.2})
    for batch in loader.epoch(0, "train"):   # {"Jet": (B, 6, 2), "Jet_mask", "flat", ...}
        ...
"""

from __future__ import annotations

from typing import Any

from saetta.ml.features import Features, Split, split_codes
from saetta.ml.loader import Epoch, Loader

__all__ = [
    "Epoch",
    "Features",
    "Loader",
    "Run",
    "Split",
    "TrainResult",
    "export",
    "resume",
    "split_codes",
    "train",
]

_NEED_TORCH = {
    "Run": "training",
    "TrainResult": "training",
    "resume": "training",
    "train": "training",
    "export": "to_onnx",
}


def __getattr__(name: str) -> Any:
    # Training and export need torch; the loader's numpy batches do not.
    if name in _NEED_TORCH:
        import importlib

        return getattr(importlib.import_module(f"saetta.ml.{_NEED_TORCH[name]}"), name)
    raise AttributeError(f"module 'saetta.ml' has no attribute {name!r}")
