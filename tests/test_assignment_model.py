"""The jet–parton assignment model: trained, exported to ONNX, scored the same by both."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")
onnxruntime = pytest.importorskip("onnxruntime")

from saetta.analyses.agc import assignment

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_agc_assignment.py"


@pytest.fixture(scope="module")
def training():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("train_agc_assignment", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Plausible rows, 12 per event (ΔR, masses and pT, b-tag scores, in the features'
    order); the right assignment's W mass (feature 5) is near 80 GeV, the others' spread
    out: a rule a classifier can learn."""
    rng = np.random.default_rng(seed)
    n = events * 12
    features = np.empty((n, 16), dtype=np.float32)
    features[:, 0:4] = rng.uniform(0.4, 4.0, (n, 4))
    features[:, 4:12] = rng.uniform(20.0, 300.0, (n, 8))
    features[:, 12:16] = rng.uniform(0.0, 1.0, (n, 4))
    right = rng.integers(0, 12, events)
    rows = np.arange(events) * 12 + right
    features[rows, 5] = rng.normal(80.0, 5.0, events)
    labels = np.zeros(n, dtype=np.int64)
    labels[rows] = 1
    return features, labels


def test_onnx_scores_equal_the_training_frameworks(training) -> None:  # type: ignore[no-untyped-def]
    features, labels = _rows(400, 1)
    model = training.train(features, labels)
    onnx_bytes = training.export(model, features[:1])
    test, _ = _rows(200, 2)
    assert training.disagreement(model, onnx_bytes, test) < 1e-5
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: test})[1][:, 1]
    np.testing.assert_allclose(scores, model.predict_proba(test)[:, 1], rtol=0, atol=1e-5)
    # it learned the rule (the control that the scores mean something): far above 1 in 12
    test_labels = _rows(200, 2)[1]
    right = test_labels.reshape(-1, 12).argmax(axis=1)
    assert np.mean(scores.reshape(-1, 12).argmax(axis=1) == right) > 0.5


def test_the_shipped_model_takes_16_features_and_gives_probabilities() -> None:
    session = onnxruntime.InferenceSession(
        str(assignment.MODEL), providers=["CPUExecutionProvider"]
    )
    (given,) = session.get_inputs()
    assert given.shape[1] == assignment.N_FEATURES == 16
    rows = _rows(2, 3)[0]
    probabilities = session.run(None, {given.name: rows})[1]
    assert probabilities.shape == (24, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert len(np.unique(probabilities[:, 1])) > 1  # a trained model, not a constant


def test_training_rows_label_one_assignment_per_event() -> None:
    roles = np.array([[1, 1, 2, 3], [2, 1, 3, 1], [1, 1, 2, 2], [0, 1, 2, 3]])
    right = assignment.truth(roles)
    assert right[2] == right[3] == -1  # two hadronic b, an unmatched jet: no right one
    for event in (0, 1):
        w1, w2, h, lep = assignment.ASSIGNMENTS[right[event]]
        assert roles[event, w1] == roles[event, w2] == 1
        assert roles[event, h] == 2
        assert roles[event, lep] == 3
