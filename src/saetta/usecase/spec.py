"""Stage: use cases (layer 7) — the use case itself (``usecase.yaml``) and the dataset it names."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from saetta.dataset import DEFAULT_CHUNK_SIZE, Dataset, FileInfo
from saetta.errors import DatasetError, QuantityError, UseCaseError
from saetta.quantities import (
    format_count,
    parse_bytes,
    parse_count,
    parse_data,
    parse_duration,
)

__all__ = [
    "INTERVAL_Z",
    "MAX_INTERVAL_WIDTH",
    "Analysis",
    "Requirement",
    "UseCase",
    "open_dataset",
    "sample_dataset",
]

Analysis = Callable[[Any], Any]

#: The stated prediction interval is ± this many standard deviations (about 95 %).
INTERVAL_Z = 2.0

#: The widest interval, (high − low) / predicted, with which ``validate`` may call
#: the model accurate: ±25 %. A wider one would contain almost any measurement.
MAX_INTERVAL_WIDTH = 0.5


# --------------------------------------------------------------------------- the use case


@dataclass(frozen=True, slots=True)
class Requirement:
    """Y data (``events`` or ``data_bytes``, as given) in Z = ``time_s`` on W cores."""

    time_s: float
    cores: int
    events: float | None = None
    data_bytes: float | None = None
    memory_per_core: float | None = None  # bytes; None: no limit stated
    data_text: str = ""  # Y and Z as written, for "1 PB in 1 h needs ..."
    time_text: str = ""
    epochs: int = 1  # training: Y is read this many times

    def __post_init__(self) -> None:
        if (self.events is None) == (self.data_bytes is None):
            msg = "requirement: give the data either as a size ('1 PB') or as events (5e11)"
            raise UseCaseError(msg)

    @classmethod
    def from_dict(cls, spec: object) -> Requirement:
        """The ``requirement:`` of a use case; a malformed one is a :class:`UseCaseError`."""
        try:
            return cls._read(spec)
        except QuantityError as exc:
            raise UseCaseError(str(exc)) from exc

    @classmethod
    def _read(cls, spec: object) -> Requirement:
        spec = _mapping(spec, "requirement", {"data", "events", "epochs", "time", "resources"})
        if ("data" in spec) == ("events" in spec) or "time" not in spec:
            msg = "requirement: give data ('1 PB') or events (5e11), and time ('1 h')"
            raise UseCaseError(msg)
        events: float | None
        if "events" in spec:
            count = parse_count(spec["events"], "requirement.events")
            events, size, data_text = count, None, f"{format_count(count)} events"
        else:
            events, size = parse_data(spec["data"], "requirement.data")
            data_text = str(spec["data"]).strip()
        resources = _mapping(
            spec.get("resources"), "requirement.resources", {"cores", "memory_per_core"}
        )
        if "cores" not in resources:
            msg = "requirement.resources.cores: missing; e.g. resources: {cores: 2000}"
            raise UseCaseError(msg)
        memory = resources.get("memory_per_core")
        epochs = _positive_int(spec.get("epochs", 1), "requirement.epochs")
        if epochs > 1:
            data_text = f"{data_text} × {epochs} epochs"
        return cls(
            time_s=parse_duration(spec["time"], "requirement.time"),
            cores=_positive_int(resources["cores"], "requirement.resources.cores"),
            events=events,
            data_bytes=size,
            memory_per_core=(
                None
                if memory is None
                else parse_bytes(memory, "requirement.resources.memory_per_core")
            ),
            data_text=data_text,
            time_text=str(spec["time"]).strip(),
            epochs=epochs,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data_text,
            "events": self.events,
            "data_bytes": self.data_bytes,
            "time": self.time_text,
            "time_s": self.time_s,
            "cores": self.cores,
            "memory_per_core_bytes": self.memory_per_core,
            "epochs": self.epochs,
        }


@dataclass(frozen=True, slots=True)
class UseCase:
    """A use case as read from ``usecase.yaml`` (the schema is in ``docs/usecase.md``)."""

    name: str
    analysis: str  # "adl.q5", "file.py:function", "module:function"; "" for a training
    dataset: tuple[str, ...]  # paths, glob patterns, or one "@catalog-name"; () for the script's
    requirement: Requirement
    testbed: str = "local"
    tree: str = "Events"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    sample_units: int = 8
    calibration_workers: tuple[int, ...] | None = None  # None: 1 and the testbed's size
    repeats: int = 2
    fraction: float = 1.0
    validation_workers: int | None = None  # None: the testbed's size
    source: str = ""
    train: str = ""  # a training script (saetta train), instead of an analysis
    calibration_batches: int = 50  # training: batches per rank in each timed run

    @property
    def workload(self) -> str:
        """What runs: the analysis, or ``train <script>``."""
        return f"train {os.path.basename(self.train)}" if self.train else self.analysis

    @classmethod
    def from_dict(cls, spec: object, source: str = "") -> UseCase:
        """Check a parsed ``usecase.yaml``; each problem is a :class:`UseCaseError` naming the field."""
        top = {"name", "analysis", "train", "dataset", "requirement", "testbed", "tree"}
        spec = _mapping(
            spec, source or "use case", top | {"chunk_size", "calibration", "validation"}
        )
        training = "train" in spec
        if training == ("analysis" in spec):
            msg = f"give either analysis: (a query) or train: (a training script) in {source or 'the use case'}"
            raise UseCaseError(msg)
        for key in ("name", "requirement", *(() if training else ("dataset",))):
            if key not in spec:
                msg = f"{key}: missing from {source or 'the use case'}"
                raise UseCaseError(msg)
        datasets = spec.get("dataset", [])
        datasets = [datasets] if isinstance(datasets, str) else datasets
        if not isinstance(datasets, list) or not (datasets or training):
            msg = "dataset: expected a path, a glob pattern, '@catalog-name', or a list of them"
            raise UseCaseError(msg)
        if training and len(datasets) > 1:
            msg = "dataset: a training reads one path, glob or '@catalog-name' (its --data)"
            raise UseCaseError(msg)
        known = {"sample_units", "workers", "repeats", *(("batches",) if training else ())}
        calibration = _mapping(spec.get("calibration") or {}, "calibration", known)
        validation = _mapping(spec.get("validation") or {}, "validation", {"fraction", "workers"})
        workers = calibration.get("workers")
        if workers is not None:
            workers = [workers] if not isinstance(workers, list) else workers
            workers = tuple(sorted({_positive_int(w, "calibration.workers") for w in workers}))
        fraction = validation.get("fraction", 1.0)
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            fraction = -1.0
        if not 0 < fraction <= 1:
            msg = (
                f"validation.fraction: expected a number in (0, 1], got {validation['fraction']!r}"
            )
            raise UseCaseError(msg)
        return cls(
            name=_text(spec["name"], "name"),
            analysis="" if training else _text(spec["analysis"], "analysis"),
            train=_text(spec["train"], "train") if training else "",
            calibration_batches=_positive_int(
                calibration.get("batches", 50), "calibration.batches"
            ),
            dataset=tuple(_text(d, "dataset") for d in datasets),
            requirement=Requirement.from_dict(spec["requirement"]),
            testbed=_text(spec.get("testbed", "local"), "testbed"),
            tree=_text(spec.get("tree", "Events"), "tree"),
            chunk_size=_positive_int(spec.get("chunk_size", DEFAULT_CHUNK_SIZE), "chunk_size"),
            sample_units=_positive_int(
                calibration.get("sample_units", 8), "calibration.sample_units"
            ),
            calibration_workers=workers,
            repeats=_positive_int(calibration.get("repeats", 2), "calibration.repeats"),
            fraction=float(fraction),
            validation_workers=(
                None
                if validation.get("workers") is None
                else _positive_int(validation["workers"], "validation.workers")
            ),
            source=source,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UseCase:
        """Read a ``usecase.yaml``; relative paths in it are relative to its folder.

        Raises
        ------
        UseCaseError
            The file is missing or not YAML, or a field is malformed.
        """
        try:
            spec = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            msg = f"cannot read use case {os.fspath(path)}: {exc.strerror or exc}"
            raise UseCaseError(msg) from exc
        except yaml.YAMLError as exc:
            msg = f"{os.fspath(path)} is not valid YAML: {exc}"
            raise UseCaseError(msg) from exc
        usecase = cls.from_dict(spec, source=os.fspath(path))
        folder = Path(path).parent
        if usecase.train:
            usecase = dataclasses.replace(usecase, train=_beside(folder, usecase.train))
        where, colon, function = usecase.analysis.rpartition(":")
        analysis = usecase.analysis
        if colon and where.endswith(".py"):
            analysis = f"{_beside(folder, where)}:{function}"
        datasets = tuple(d if d.startswith("@") else _beside(folder, d) for d in usecase.dataset)
        return dataclasses.replace(usecase, analysis=analysis, dataset=datasets)

    def to_dict(self) -> dict[str, Any]:
        workers = list(self.calibration_workers) if self.calibration_workers else None
        return {
            "name": self.name,
            "analysis": self.analysis,
            "train": self.train,
            "dataset": list(self.dataset),
            "requirement": self.requirement.to_dict(),
            "testbed": self.testbed,
            "tree": self.tree,
            "chunk_size": self.chunk_size,
            "calibration": {
                "sample_units": self.sample_units,
                "workers": workers,
                "repeats": self.repeats,
                "batches": self.calibration_batches,
            },
            "validation": {"fraction": self.fraction, "workers": self.validation_workers},
        }


def _beside(folder: Path, path: str) -> str:
    """A relative local path in a use-case file is relative to the file's folder."""
    if "://" in path or os.path.isabs(path) or folder == Path():
        return path
    return os.path.normpath(folder / path)


def _mapping(spec: object, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        msg = f"{where}: expected a mapping with {', '.join(sorted(allowed))}; got {spec!r}"
        raise UseCaseError(msg)
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        msg = f"{where}: unknown field {unknown[0]!r}; expected {', '.join(sorted(allowed))}"
        raise UseCaseError(msg)
    return spec


def _positive_int(value: object, field_name: str) -> int:
    if isinstance(value, str):  # YAML reads 1e6 and 100_000 as strings
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{field_name}: expected a positive integer, got {value!r}"
        raise UseCaseError(msg)
    return value


def _text(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = f"{field_name}: expected a non-empty string, got {value!r}"
        raise UseCaseError(msg)
    return value.strip()


# --------------------------------------------------------------------------- datasets


def open_dataset(usecase: UseCase) -> Dataset:
    """Open the use case's files and globs, or its ``@name`` from the dataset catalog.

    Raises
    ------
    UseCaseError
        ``@name`` is not in the catalog (``Dataset.from_catalog``), or is mixed with files.
    """
    if not any(d.startswith("@") for d in usecase.dataset):
        return Dataset.open(list(usecase.dataset), usecase.tree, name=usecase.name)
    if len(usecase.dataset) != 1:
        msg = "dataset: a catalog entry '@name' cannot be mixed with files"
        raise UseCaseError(msg)
    try:
        return Dataset.from_catalog(usecase.dataset[0][1:])
    except DatasetError as exc:
        msg = f"dataset: {exc}"
        raise UseCaseError(msg) from exc


def sample_dataset(dataset: Dataset, units: int, chunk_size: int) -> Dataset:
    """The first ``units`` work units of ``dataset``, file after file (sorted by path).

    Consecutive units of a file, as a real run reads them: a worker opens each
    file once, so a sample of one unit from each of many files would time a file
    opening with every unit (for a fast analysis, several times the unit's own
    work). Each file gives a prefix of its units, so the sample is a
    :class:`Dataset` of truncated :class:`FileInfo` values (size scaled with the
    entries kept) that cuts into exactly those units at ``chunk_size``.
    """
    files = sorted(dataset.files, key=lambda f: (f.path, f.tree))
    per_file = [tuple(f.units(chunk_size)) for f in files]
    taken: list[int] = []
    remaining = units
    for file_units in per_file:
        taken.append(min(remaining, len(file_units)))
        remaining -= taken[-1]
    kept: list[FileInfo] = []
    for info, file_units, count in zip(files, per_file, taken, strict=True):
        if count:
            stop = file_units[count - 1].stop
            kept.append(
                dataclasses.replace(
                    info,
                    num_entries=stop,
                    size_bytes=round(info.size_bytes * stop / info.num_entries),
                    boundaries=tuple(b for b in info.boundaries if b <= stop),
                )
            )
    return Dataset(tuple(kept), dataset.name)
