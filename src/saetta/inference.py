"""Stage: inference (layer 5) — trained models evaluated inside the event loop.

A model (an ``.onnx`` file) is loaded once per process, on its first use, and
kept: a worker process that runs a thousand units loads it once, not a thousand
times. ONNX Runtime runs it with one intra-op and one inter-op thread, because
saetta's parallelism is its workers: N processes each starting a thread per core
would fight over the cores (microsoft/onnxruntime#10786). Batch the inputs of a
whole unit into one call; per-event calls cost more than the model.

ONNX Runtime is an optional dependency (``pip install saetta[agc]``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from saetta.errors import AnalysisError

__all__ = ["predict", "session", "sessions_loaded"]

_sessions: dict[str, Any] = {}
_loading = threading.Lock()
_loads: list[str] = []  # the files loaded, in order: counted, never reset


def session(path: str | os.PathLike[str]) -> Any:
    """The ``onnxruntime.InferenceSession`` of a model file, loaded once per process.

    Raises
    ------
    AnalysisError
        ONNX Runtime is not installed, or the file is missing or not a model.
    """
    key = os.path.realpath(path)
    found = _sessions.get(key)
    if found is not None:
        return found
    with _loading:
        if key in _sessions:
            return _sessions[key]
        try:
            import onnxruntime
        except ImportError as exc:
            msg = "ONNX Runtime is needed to evaluate models: pip install 'saetta[agc]'"
            raise AnalysisError(msg) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            loaded = onnxruntime.InferenceSession(
                Path(path).read_bytes(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises classes of its own
            reason = " ".join(str(exc).split())[:200]
            msg = f"cannot load the model {path}: {reason}"
            raise AnalysisError(msg) from exc
        _sessions[key] = loaded
        _loads.append(key)
        return loaded


def sessions_loaded() -> int:
    """How many models this process has loaded (each file counts once)."""
    return len(_loads)


def predict(
    path: str | os.PathLike[str],
    inputs: np.ndarray | Mapping[str, np.ndarray],
    output: int = 0,
) -> np.ndarray:
    """The model's ``output``-th output for ``inputs``: one float32 array (one row per
    example), or ``{input name: array}`` for a model of several inputs (as
    :func:`saetta.ml.export` writes, fed by :meth:`saetta.ml.Loader.features_of`)."""
    model = session(path)
    if isinstance(inputs, Mapping):
        declared = [i.name for i in model.get_inputs()]
        missing = [name for name in declared if name not in inputs]
        if missing:
            msg = f"the model {path} needs inputs {', '.join(missing)}; given {', '.join(inputs)}"
            raise AnalysisError(msg)
        feed = {name: np.ascontiguousarray(inputs[name]) for name in declared}
        rows = len(next(iter(feed.values()))) if feed else 0
    else:
        feed = {model.get_inputs()[0].name: np.ascontiguousarray(inputs, dtype=np.float32)}
        rows = len(inputs)
    if rows == 0:
        shape = model.get_outputs()[output].shape
        return np.zeros((0, *(d if isinstance(d, int) else 1 for d in shape[1:])), np.float32)
    result: np.ndarray = model.run(None, feed)[output]
    return result
