"""Train the AGC's jet–parton assignment model and export it to ONNX.

    pip install -e '.[agc,train]'
    python scripts/train_agc_assignment.py --events 40000 --work data/agc-train

Generates ttbar events with Pythia 8 (``saetta generate agc``'s ttbar sample, its
own seed, so the training events are not the analysis' events), takes the
training rows of :func:`saetta.analyses.agc.assignment.training_rows` (events
with complete truth), trains a scikit-learn pipeline (standardisation, then a
multilayer perceptron) on the events with an even event number, and measures on
the odd ones how often the best-scoring assignment is the right one (a random
pick is right 1 time in 12). The pipeline goes to ONNX (skl2onnx) and replaces
``src/saetta/analyses/agc/assignment.onnx``, after checking that ONNX Runtime
gives scikit-learn's scores to 1e-5 on the test rows.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import saetta
from saetta.analyses.agc import assignment
from saetta.generation import generate_agc

TRAINING_SEED = 7001  # not the analysis' seed: the model never sees the events it is applied to


def collect(samples: Path, executor: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training rows of every ttbar event, gathered in this process."""
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def gather(events: Any) -> dict[str, Any]:
        rows.append(assignment.training_rows(events))
        return {"events": len(events)}

    # The rows are gathered by the function itself: they stay in this process, so the
    # executor must be this process too.
    ttbar = saetta.Samples.from_yaml(samples)["ttbar"]
    saetta.run(gather, list(ttbar.files), executor="local", run_dir=False)
    features = np.concatenate([r[0] for r in rows])
    labels = np.concatenate([r[1] for r in rows])
    numbers = np.concatenate([r[2] for r in rows])
    return features, labels, numbers


def train(features: np.ndarray, labels: np.ndarray) -> Any:
    """The scikit-learn pipeline: standardisation, then a two-layer perceptron."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        # no early stopping: its validation accuracy is that of always saying "wrong"
        # (11 rows in 12), which never improves, so it stops before anything is learned
        MLPClassifier(hidden_layer_sizes=(32, 32), max_iter=300, random_state=1),
    )
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # 300 epochs is the budget, converged or not
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(features, labels)


def export(model: Any, example: np.ndarray) -> bytes:
    """The pipeline as an ONNX model: float32 rows in, (label, probabilities) out."""
    from skl2onnx import to_onnx

    classifier = model.steps[-1][1]
    onnx_model = to_onnx(
        model, example.astype(np.float32), options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )  # fmt: skip
    return bytes(onnx_model.SerializeToString())


def disagreement(model: Any, onnx_bytes: bytes, features: np.ndarray) -> float:
    """The largest difference between scikit-learn's and ONNX Runtime's scores."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rows = features.astype(np.float32)
    onnx_scores = session.run(None, {session.get_inputs()[0].name: rows})[1][:, 1]
    return float(np.max(np.abs(onnx_scores - model.predict_proba(rows)[:, 1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="ttbar events to generate")
    parser.add_argument("--work", type=Path, default=Path("data/agc-train"))
    parser.add_argument("--executor", default="processes:2", help="for the generation")
    parser.add_argument("--output", type=Path, default=assignment.MODEL)
    args = parser.parse_args()

    started = time.perf_counter()
    samples = generate_agc(
        args.work, args.events, samples=["ttbar"], seed=TRAINING_SEED, executor=args.executor
    )
    generated = time.perf_counter() - started
    features, labels, numbers = collect(samples, args.executor)
    per_event = len(assignment.ASSIGNMENTS)
    event_of_row = np.repeat(numbers, per_event)
    even = event_of_row % 2 == 0
    print(
        f"{args.events:,} ttbar events ready in {generated:.0f} s (0 if already generated); "
        f"{len(numbers):,} with complete truth ({even.sum() // per_event:,} to train on)"
    )

    started = time.perf_counter()
    model = train(features[even], labels[even])
    print(f"trained in {time.perf_counter() - started:.0f} s")

    test = ~even
    scores = model.predict_proba(features[test])[:, 1].reshape(-1, per_event)
    right = labels[test].reshape(-1, per_event).argmax(axis=1)
    accuracy = float(np.mean(scores.argmax(axis=1) == right))
    print(f"best assignment right in {accuracy:.1%} of {len(right):,} test events (random: 8.3%)")

    onnx_bytes = export(model, features[:1])
    worst = disagreement(model, onnx_bytes, features[test])
    if worst > 1e-5:
        raise SystemExit(f"ONNX Runtime's scores differ from scikit-learn's by {worst:.2e}")
    args.output.write_bytes(onnx_bytes)
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e3:.0f} kB); ONNX Runtime "
        f"agrees with scikit-learn to {worst:.1e}"
    )


if __name__ == "__main__":
    main()
