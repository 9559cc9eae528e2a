"""Models in the event loop: loaded once per worker process, one thread, batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import saetta
from saetta.errors import AnalysisError

onnxruntime = pytest.importorskip("onnxruntime")

from agc_synthetic import agc_events, write_root

from saetta import inference
from saetta.analyses import agc
from saetta.analyses.agc import assignment


def counting_loads(events):  # module level: the workers import it by name
    before = inference.sessions_loaded()
    result = agc.analysis(events)
    return {"agc": result, "model_loads": inference.sessions_loaded() - before, "units": 1}


@pytest.fixture(scope="module")
def agc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_root(tmp_path_factory.mktemp("inference") / "agc.root", agc_events(4_000, 5))


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "processes:2"])
def test_the_model_is_loaded_once_per_worker(agc_file: Path, executor: str) -> None:
    inference._sessions.clear()  # this process too starts without it
    result = saetta.run(
        counting_loads, [str(agc_file)], executor=executor, chunk_size=400, run_dir=False
    )
    assert result["units"] == 10
    workers = 1 if executor == "local" else 2
    # per unit it would be 10; the units that fill the ML histograms all need it
    assert 1 <= result["model_loads"] <= workers
    assert result["agc"]["4j2b_ml_score"]["nominal"].sum(flow=True).value > 0


def test_scores_are_the_same_on_every_executor(agc_file: Path) -> None:
    # the same units, so the same sums in the same order: equal to the last bit
    local = saetta.run(agc.analysis, [str(agc_file)], chunk_size=700, run_dir=False)
    pool = saetta.run(
        agc.analysis, [str(agc_file)], executor="processes:2", chunk_size=700, run_dir=False
    )
    for name in ("4j2b_ml_score", "4j2b_ml_m_tophad", "4j2b_ml_m_w"):
        for variation, h in local[name].items():
            np.testing.assert_array_equal(
                h.view(flow=True)["value"], pool[name][variation].view(flow=True)["value"]
            )


def test_sessions_use_one_thread_and_batches_of_any_size() -> None:
    session = inference.session(assignment.MODEL)
    assert session is inference.session(str(assignment.MODEL))  # the same one, again
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    rows = np.random.default_rng(1).normal(size=(25, 16)).astype(np.float32)
    batch = inference.predict(assignment.MODEL, rows, output=1)
    one_by_one = np.concatenate(
        [inference.predict(assignment.MODEL, r[None], output=1) for r in rows]
    )
    np.testing.assert_allclose(batch, one_by_one, rtol=0, atol=1e-6)
    assert inference.predict(assignment.MODEL, rows[:0], output=1).shape == (0, 2)


def test_a_model_that_is_not_one_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(AnalysisError, match=r"cannot load the model .*model\.onnx"):
        inference.session(bad)
    with pytest.raises(AnalysisError, match="cannot load the model"):
        inference.session(tmp_path / "missing.onnx")
    assert inference.session(assignment.MODEL) is not None  # the control
