"""Stage: use cases (layer 7) — a training as a use case: "train on Y events for E epochs in Z".

A use case with ``train: script.py`` instead of ``analysis:`` (``docs/usecase.md``)
goes through the same loop as an analysis, with the same model
``T(n) = t0 + Y·E / (n r e(n))``, ``n`` ranks of one core each:

- :func:`calibrate_training` runs the script (``saetta train``) on the testbed for
  ``calibration.batches`` batches per rank, at 1 and k ranks, ``repeats`` times,
  each a fresh job with one torch thread per rank. ``r`` is events per second per
  rank in the training loop (reading, the step, the gradient reduction), ``t0``
  the rest of the wall time (the job's start-up: processes or batch jobs, imports,
  the first units read), ``e(n)`` what the ranks' all-reduce costs;
- :func:`validate_training` trains for real, one epoch (``validation.fraction``
  of its batches) on the testbed's ranks, and compares with the prediction for
  exactly those events, and extrapolates to Y·E on W.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any

from saetta._version import __version__
from saetta.errors import SaettaError, UseCaseError
from saetta.usecase.calibration import Calibration, now
from saetta.usecase.measure import Measurement, resolve_testbed, testbed_workers
from saetta.usecase.model import fit_model
from saetta.usecase.plan import Plan, plan
from saetta.usecase.spec import UseCase
from saetta.usecase.validate import Validation, judge

__all__ = ["calibrate_training", "validate_training"]


def calibrate_training(usecase: UseCase) -> Calibration:
    """Time the use case's training script at 1 and k ranks and fit the model.

    Raises
    ------
    UseCaseError
        torch is missing, the testbed cannot be sized, the script or its data fail.
    """
    _training()  # torch missing: say so before anything runs
    bed = resolve_testbed(usecase.testbed)
    if bed.address:
        msg = f"testbed {bed.name!r} is a running Dask cluster; saetta cannot choose its ranks"
        raise UseCaseError(msg)
    loader = _loader(usecase)
    workers = tuple(sorted({1, *(usecase.calibration_workers or (1, testbed_workers(bed)))}))
    runs = [
        _timed(usecase, n, usecase.calibration_batches, loader.batch_size)[0]
        for _ in range(usecase.repeats)
        for n in workers
    ]
    dataset = loader.dataset
    return Calibration(
        usecase=usecase.name,
        analysis=usecase.workload,
        testbed=bed.name,
        testbed_kind=bed.kind,
        dataset_events=loader.num_events(loader.splits[0]),
        dataset_bytes=dataset.size_bytes,
        sample_events=runs[0].events,
        sample_units=runs[0].units,
        chunk_size=loader.batch_size,
        bytes_per_event_disk=dataset.size_bytes / max(dataset.num_entries, 1),
        bytes_per_event_read=dataset.size_bytes / max(dataset.num_entries, 1),
        runs=tuple(runs),
        overhead_run=None,
        model=fit_model(runs, loader.batch_size),
        peak_memory=max(m.peak_memory for m in runs),
        histogram_fills=0.0,
        host=socket.gethostname(),
        saetta_version=__version__,
        date=now(),
    )


def validate_training(usecase: UseCase, *, planned: Plan | None = None) -> Validation:
    """Train one epoch (``usecase.fraction`` of its batches) on the testbed's ranks and
    compare with the plan; PASS when no unit failed, the memory fits and this run's
    rate and start-up, extrapolated to Y·E on W, meet Z."""
    the_plan = (
        planned if planned is not None else plan(usecase, calibration=calibrate_training(usecase))
    )
    bed = resolve_testbed(usecase.testbed)
    workers = usecase.validation_workers or testbed_workers(bed)
    loader = _loader(usecase)
    per_rank = loader.num_batches(loader.splits[0], 0, 0, workers)
    limit = max(1, round(usecase.fraction * per_rank))
    measurement, failures = _timed(
        usecase, workers, limit if limit < per_rank else 0, loader.batch_size
    )
    predicted = the_plan.calibration.model.predict(measurement.events, workers)
    extrapolated, binding = judge(the_plan, measurement, complete=not failures)
    return Validation(
        plan=the_plan,
        fraction=usecase.fraction,
        measurement=measurement,
        predicted=predicted,
        events_total=measurement.events,
        histogram_fills=0.0,
        complete=not failures,
        extrapolated_s=extrapolated,
        binding=binding,
        date=now(),
    )


def _timed(
    usecase: UseCase, ranks: int, limit_batches: int, batch_size: int
) -> tuple[Measurement, tuple[str, ...]]:
    """One training job of one epoch on ``ranks`` ranks, in fresh processes, measured (its
    "units" are batches)."""
    training = _training()
    data = usecase.dataset[0] if usecase.dataset else None
    with tempfile.TemporaryDirectory(prefix="saetta-usecase-train-") as folder:
        try:
            result = training.train(
                usecase.train, data=data, epochs=1, world_size=ranks, testbed=usecase.testbed,
                directory=Path(folder) / "run", checkpoint_every=0, progress=False, threads=1,
                limit_batches=limit_batches, fresh_process=True,
            )  # fmt: skip
        except SaettaError as exc:
            msg = f"train: {exc}"
            raise UseCaseError(msg) from exc
    rate = result.events / result.loop_s if result.loop_s > 0 else 0.0
    batches = -(-result.events // batch_size)
    measurement = Measurement(
        workers=ranks,
        chunk_size=batch_size,
        events=result.events,
        units=batches,
        wall_s=result.seconds,
        bytes_read=0,
        peak_memory=result.peak_memory,
        rate_hz=rate,
        rate_rel_err=result.loop_rel_err,
        t0_s=result.seconds - result.loop_s,
        first_unit_s=result.seconds - result.loop_s,
        dispatch_s=0.0,
        timeline=(),
        warmup_s=result.seconds - result.loop_s,
        steady_units=batches,
    )
    return measurement, result.failures


def _loader(usecase: UseCase) -> Any:
    """The script's loader, built here as each rank builds it (to count the events)."""
    training = _training()
    path = Path(usecase.train)
    try:
        source = path.read_text(encoding="utf-8")
        module = training.load_script(source, str(path.resolve()))
        return module.loader(usecase.dataset[0] if usecase.dataset else None)
    except OSError as exc:
        msg = f"train: cannot read {path}: {exc.strerror or exc}"
        raise UseCaseError(msg) from exc
    except SaettaError as exc:
        msg = f"train: {exc}"
        raise UseCaseError(msg) from exc


def _training() -> Any:
    try:
        from saetta.ml import training
    except ImportError as exc:
        msg = f"a training use case needs torch ({exc.name} is missing): pip install 'saetta[ml]'"
        raise UseCaseError(msg) from exc
    return training
