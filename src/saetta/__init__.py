"""saetta: columnar analysis of fundamental-physics event data, from a laptop to a batch system.

The data flow, one folder or module per stage (see the README's Layout)::

    storage/  ->  formats/   ->  dataset.py    ->  events.py, kernels.py
    (bytes)       (readers)      (work units)      (lazy NanoAOD view, numba loops)
    ->  accumulate.py  ->  execute/                 ->  usecase/          ->  output/
        (merging)          (run, executors, journal)    (plan, validate)      (ROOT / JSON files)

Examples
--------
>>> import saetta
>>> ds = saetta.Dataset.open("data/*.root")  # doctest: +SKIP
>>> result = saetta.run(my_analysis, ds, executor="processes:2")  # doctest: +SKIP
>>> result.report  # doctest: +SKIP
"""

from __future__ import annotations

from saetta._version import __version__
from saetta.dataset import Dataset, FileInfo, WorkUnit
from saetta.errors import (
    AnalysisError,
    DatasetError,
    ExecutorError,
    FormatError,
    JournalError,
    MissingBranchError,
    SaettaError,
    StorageError,
    UnitError,
    UseCaseError,
)
from saetta.execute import Failure, LocalExecutor, Result, RunReport, available_executors, run
from saetta.formats import available_formats
from saetta.output import save
from saetta.usecase import Calibration, Plan, Requirement, UseCase, Validation

__all__ = [
    "AnalysisError",
    "Calibration",
    "Dataset",
    "DatasetError",
    "ExecutorError",
    "Failure",
    "FileInfo",
    "FormatError",
    "JournalError",
    "LocalExecutor",
    "MissingBranchError",
    "Plan",
    "Requirement",
    "Result",
    "RunReport",
    "SaettaError",
    "StorageError",
    "UnitError",
    "UseCase",
    "UseCaseError",
    "Validation",
    "WorkUnit",
    "__version__",
    "available_executors",
    "available_formats",
    "run",
    "save",
]


def __dir__() -> list[str]:
    return __all__
