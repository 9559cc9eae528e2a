"""Stage: ML (layer 7) — a trained network as an ONNX file, for the event loop.

:func:`export` writes the model with torch's exporter (the batch axis left free),
then runs the file with ONNX Runtime on the example and compares with torch: a
file that computes something else is never left behind. An analysis evaluates it
with :func:`saetta.inference.predict` (loaded once per worker process) on the
arrays :meth:`saetta.ml.Loader.features_of` gives for its events: the features
the network was trained on, computed by the same code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saetta.errors import SaettaError
from saetta.storage import atomic_path

__all__ = ["export"]


def export(
    model: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    inputs: Sequence[str],
    output: str = "output",
    tolerance: float = 1e-4,
) -> Path:
    """Write ``model(*(example[k] for k in inputs))`` as ONNX to ``path``, inputs named
    ``inputs`` (e.g. ``["Jet", "Jet_mask", "flat"]``), and check it on ``example``.

    Raises
    ------
    SaettaError
        The exporter cannot trace the model, or ONNX Runtime's outputs differ from
        torch's by more than ``tolerance`` (relative to their scale).
    """
    model = getattr(model, "module", model)  # a DistributedDataParallel's network
    missing = [k for k in inputs if k not in example]
    if missing:
        msg = f"the example batch has no {', '.join(missing)}; it has {', '.join(example)}"
        raise SaettaError(msg)
    args = tuple(example[k].detach().cpu() for k in inputs)
    was_training = model.training
    model.eval().cpu()
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet():
            program = torch.onnx.export(
                model,
                args,
                input_names=list(inputs),
                output_names=[output],
                dynamic_shapes=tuple({0: batch} for _ in args),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        if program is None:
            msg = "torch's exporter returned no program"
            raise SaettaError(msg)
        with torch.no_grad():
            expected = model(*args).numpy()
    except Exception as exc:  # the exporter's errors have many classes
        msg = f"cannot export the model to ONNX: {' '.join(str(exc).split())[:300]}"
        raise SaettaError(msg) from exc
    finally:
        model.train(was_training)
    target = Path(path)
    with atomic_path(target) as temporary, _quiet():
        program.save(str(temporary))
        _check(temporary, dict(zip(inputs, args, strict=True)), expected, tolerance)
    return target


def _check(
    path: Path, inputs: Mapping[str, torch.Tensor], expected: np.ndarray, tolerance: float
) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    scale = max(float(np.max(np.abs(expected))), 1.0) if expected.size else 1.0
    worst = float(np.max(np.abs(got - expected))) / scale if expected.size else 0.0
    if got.shape != expected.shape or not worst <= tolerance:
        msg = f"the exported model computes other values than torch's (relative difference {worst:.2g})"
        raise SaettaError(msg)


@contextlib.contextmanager
def _quiet() -> Any:
    """Hide the exporter's progress lines and its warnings about torch's own internals."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
