"""The public API, pinned: a change here is an API change and shows in review."""

from __future__ import annotations

import saetta


def test_all_is_pinned() -> None:
    assert saetta.__all__ == [
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
    assert sorted(saetta.__all__) == saetta.__all__
    assert dir(saetta) == saetta.__all__
    assert all(hasattr(saetta, name) for name in saetta.__all__)


def test_registries() -> None:
    assert saetta.available_executors() == ["dask", "local", "processes"]
    assert saetta.available_formats() == ["fits", "hdf5", "parquet", "root", "strain"]


def test_errors_share_one_root() -> None:
    for name in saetta.__all__:
        obj = getattr(saetta, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, saetta.SaettaError)
