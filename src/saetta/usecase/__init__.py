"""Stage: use cases (layer 7) — "X operations on Y data in Z seconds with at most W resources".

A :class:`UseCase` (``usecase.yaml``) names an analysis (or a training script:
:mod:`~saetta.usecase.training`), a dataset, a
:class:`Requirement` (Y data, Z seconds, W cores and memory per core) and a
testbed. :func:`calibrate` runs the analysis on a sample of work units at 1 and
at k workers; a :class:`Model` fitted to those runs predicts the wall time of E
events on n workers::

    T(n) = t0 + tail · E / (n · r · e(n)),      e(n) = 1 / (1 + α (n − 1))

:func:`plan` turns that into FEASIBLE / NOT FEASIBLE with the binding constraint
(memory, time or cores), or UNCERTAIN when Z lies inside the prediction's ≈95 %
interval; :func:`validate` runs the use case (or a stated fraction) and compares
the measured time with the prediction (in that interval's σ) and the requirement.
``docs/usecase.md`` explains the model and its uncertainty; :mod:`saetta.usecase.report`
writes the reports. The analysis is passed as a function: this layer cannot
import :mod:`saetta.analyses`, the command line resolves ``UseCase.analysis``.
"""

from __future__ import annotations

from saetta.quantities import (
    format_bytes,
    format_count,
    format_duration,
    format_rate,
    parse_bytes,
    parse_count,
    parse_data,
    parse_duration,
)
from saetta.usecase.calibration import Calibration, calibrate
from saetta.usecase.measure import Measurement, UnitRecord, histogram_fills, measure, tail_factor
from saetta.usecase.model import Model, Prediction, fit_model
from saetta.usecase.plan import Plan, plan
from saetta.usecase.spec import (
    INTERVAL_Z,
    MAX_INTERVAL_WIDTH,
    Requirement,
    UseCase,
    open_dataset,
    sample_dataset,
)
from saetta.usecase.training import calibrate_training, validate_training
from saetta.usecase.validate import Validation, validate

__all__ = [
    "INTERVAL_Z",
    "MAX_INTERVAL_WIDTH",
    "Calibration",
    "Measurement",
    "Model",
    "Plan",
    "Prediction",
    "Requirement",
    "UnitRecord",
    "UseCase",
    "Validation",
    "calibrate",
    "calibrate_training",
    "fit_model",
    "format_bytes",
    "format_count",
    "format_duration",
    "format_rate",
    "histogram_fills",
    "measure",
    "open_dataset",
    "parse_bytes",
    "parse_count",
    "parse_data",
    "parse_duration",
    "plan",
    "sample_dataset",
    "tail_factor",
    "validate",
    "validate_training",
]
