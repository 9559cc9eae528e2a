"""saetta: columnar analysis of fundamental-physics event data, from a laptop to a batch system.

The data flow, one folder or module per stage (see the README's Layout)::

    storage/  ->  formats/   ->  dataset.py    ->  events.py, kernels.py
    (bytes)       (readers)      (work units,      (lazy NanoAOD view, numba loops,
                                  samples.py)       systematics.py)
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

from typing import TYPE_CHECKING, Any

from saetta._version import __version__
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

if TYPE_CHECKING:
    from saetta.dataset import Dataset, FileInfo, WorkUnit
    from saetta.execute import (
        Failure,
        LocalExecutor,
        Result,
        RunReport,
        available_executors,
        run,
    )
    from saetta.formats import available_formats
    from saetta.output import save
    from saetta.samples import Sample, Samples
    from saetta.shards import Shards, write_shard
    from saetta.tables import Table
    from saetta.usecase import Calibration, Plan, Requirement, UseCase, Validation

# The rest loads on first use: ``import saetta`` stays cheap (numpy, awkward, uproot and
# hist take most of a second), for the CLI's --help and for workers that only unpickle.
_LAZY = {
    "Dataset": "saetta.dataset",
    "FileInfo": "saetta.dataset",
    "WorkUnit": "saetta.dataset",
    "Failure": "saetta.execute",
    "LocalExecutor": "saetta.execute",
    "Result": "saetta.execute",
    "RunReport": "saetta.execute",
    "available_executors": "saetta.execute",
    "run": "saetta.execute",
    "available_formats": "saetta.formats",
    "Sample": "saetta.samples",
    "Samples": "saetta.samples",
    "Shards": "saetta.shards",
    "Table": "saetta.tables",
    "write_shard": "saetta.shards",
    "save": "saetta.output",
    "Calibration": "saetta.usecase",
    "Plan": "saetta.usecase",
    "Requirement": "saetta.usecase",
    "UseCase": "saetta.usecase",
    "Validation": "saetta.usecase",
}

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
    "Sample",
    "Samples",
    "Shards",
    "StorageError",
    "Table",
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
    "write_shard",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        msg = f"module 'saetta' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
