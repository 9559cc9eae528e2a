"""Stage: use cases (layer 7) — "X operations on Y data in Z seconds with at most W resources".

A :class:`UseCase` (``usecase.yaml``) names an analysis, a dataset, a
:class:`Requirement` (Y data, Z seconds, W cores and memory per core) and a
testbed. :func:`calibrate` runs the analysis on a sample of work units at 1 and
at k workers; a :class:`Model` fitted to those runs predicts the wall time of E
events on n workers::

    T(n) = t0 + tail · E / (n · r · e(n)),      e(n) = 1 / (1 + α (n − 1))

:func:`plan` turns that into FEASIBLE / NOT FEASIBLE with the binding constraint
(memory, time or cores); :func:`validate` runs the use case (or a stated fraction)
and compares the measured time with the prediction and the requirement.
``docs/usecase.md`` explains the model and its uncertainty; :mod:`saetta.report`
writes the reports. The analysis is passed as a function: this layer cannot
import :mod:`saetta.analyses`, the command line resolves ``UseCase.analysis``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import html
import itertools
import math
import os
import re
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from saetta._version import __version__
from saetta.dataset import DEFAULT_CHUNK_SIZE, Dataset, FileInfo
from saetta.errors import DatasetError, SaettaError, UseCaseError
from saetta.execute.outcome import Result, RunReport
from saetta.execute.run import run
from saetta.execute.testbeds import Testbed
from saetta.execute.testbeds import testbed as find_testbed

__all__ = [
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
]

Analysis = Callable[[Any], Any]

#: The stated prediction interval is ± this many standard deviations (about 95 %).
INTERVAL_Z = 2.0

# --------------------------------------------------------------------------- quantities

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_BYTES = {"b": 1.0} | {
    unit: base**power
    for power, prefix in enumerate("kmgtpe", start=1)
    for unit, base in ((f"{prefix}b", 1e3), (f"{prefix}ib", 2.0**10))
}
_SECONDS = {
    **dict.fromkeys(("ms", "msec"), 1e-3),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
_EVENTS = {"", "event", "events", "ev", "evt"}


def _quantity(
    value: object, field_name: str, units: Mapping[str, float] | set[str], example: str
) -> float:
    number, unit = math.nan, ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and (found := _QUANTITY.match(value)):
        number, unit = float(found.group(1)), found.group(2).lower()
    if not (math.isfinite(number) and number > 0) or unit not in units:
        msg = f"{field_name}: cannot read {value!r}; expected a positive quantity like {example!r}"
        raise UseCaseError(msg)
    return number * units[unit] if isinstance(units, Mapping) else number


def parse_bytes(value: object, field_name: str = "size") -> float:
    """Bytes in ``"1 PB"``, ``"512 MB"``, ``"2 GiB"`` (decimal and binary units; a unit is required).

    Raises
    ------
    UseCaseError
        Not a positive size with a unit; the message names ``field_name``.

    Examples
    --------
    >>> parse_bytes("2 GB"), parse_bytes("1 KiB")
    (2000000000.0, 1024.0)
    """
    return _quantity(value, field_name, _BYTES, "2 GB")


def parse_duration(value: object, field_name: str = "time") -> float:
    """Seconds in ``"1 h"``, ``"90 min"``, ``"3600 s"``, ``"2 days"`` (a unit is required).

    Examples
    --------
    >>> parse_duration("90 min")
    5400.0
    """
    return _quantity(value, field_name, _SECONDS, "90 min")


def parse_count(value: object, field_name: str = "events") -> float:
    """A number of events: ``5e11``, ``"5e11"``, ``"2.5e6 events"``.

    Examples
    --------
    >>> parse_count("2.5e6 events")
    2500000.0
    """
    return _quantity(value, field_name, _EVENTS, "2.5e6 events")


def parse_data(value: object, field_name: str = "data") -> tuple[float | None, float | None]:
    """``(events, bytes)`` of a data volume given as a size (``"1 PB"``) or as events.

    Exactly one of the two is not None.

    Examples
    --------
    >>> parse_data("500 TB")
    (None, 500000000000000.0)
    >>> parse_data("2.5e6 events")
    (2500000.0, None)
    """
    found = _QUANTITY.match(value) if isinstance(value, str) else None
    if found and found.group(2).lower() in _BYTES:
        return None, parse_bytes(value, field_name)
    if found and found.group(2).lower() in _EVENTS - {""}:
        return parse_count(value, field_name), None
    msg = f"{field_name}: cannot read {value!r}; expected a size ('1 PB') or events ('5e11 events')"
    raise UseCaseError(msg)


def format_bytes(size: float) -> str:
    """A size in decimal units, three significant digits: ``"1 PB"``, ``"2.5 GB"``."""
    for unit, scale in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size / 1e3:.3g} kB" if size >= 1e3 else f"{size:.3g} B"


def format_duration(seconds: float) -> str:
    """A duration for people: ``"450 ms"``, ``"12.3 s"``, ``"4 min 10 s"``, ``"1 h 23 min"``."""
    if not math.isfinite(seconds):
        return "never"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if seconds < 4 * 86400:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{seconds / 86400:.3g} days"


def format_count(count: float) -> str:
    """``"1,234,567"`` below ten million, ``"7.69e+12"`` above."""
    return f"{count:.3g}" if count >= 1e7 else f"{count:,.0f}"


def format_rate(rate_hz: float) -> str:
    """``"283 k events/s"``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate_hz >= scale:
            return f"{rate_hz / scale:.3g} {unit} events/s"
    return f"{rate_hz:.3g} events/s"


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

    def __post_init__(self) -> None:
        if (self.events is None) == (self.data_bytes is None):
            msg = "requirement: give the data either as a size ('1 PB') or as events (5e11)"
            raise UseCaseError(msg)

    @classmethod
    def from_dict(cls, spec: object) -> Requirement:
        spec = _mapping(spec, "requirement", {"data", "events", "time", "resources"})
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
        }


@dataclass(frozen=True, slots=True)
class UseCase:
    """A use case as read from ``usecase.yaml`` (the schema is in ``docs/usecase.md``)."""

    name: str
    analysis: str  # "adl.q5", "file.py:function", "module:function"
    dataset: tuple[str, ...]  # paths, glob patterns, or one "@catalog-name"
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

    @classmethod
    def from_dict(cls, spec: object, source: str = "") -> UseCase:
        """Check a parsed ``usecase.yaml``; each problem is a :class:`UseCaseError` naming the field."""
        top = {"name", "analysis", "dataset", "requirement", "testbed", "tree", "chunk_size"}
        spec = _mapping(spec, source or "use case", top | {"calibration", "validation"})
        for key in ("name", "analysis", "dataset", "requirement"):
            if key not in spec:
                msg = f"{key}: missing from {source or 'the use case'}"
                raise UseCaseError(msg)
        datasets = [spec["dataset"]] if isinstance(spec["dataset"], str) else spec["dataset"]
        if not isinstance(datasets, list) or not datasets:
            msg = "dataset: expected a path, a glob pattern, '@catalog-name', or a list of them"
            raise UseCaseError(msg)
        calibration = _mapping(
            spec.get("calibration") or {}, "calibration", {"sample_units", "workers", "repeats"}
        )
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
            analysis=_text(spec["analysis"], "analysis"),
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
            "dataset": list(self.dataset),
            "requirement": self.requirement.to_dict(),
            "testbed": self.testbed,
            "tree": self.tree,
            "chunk_size": self.chunk_size,
            "calibration": {
                "sample_units": self.sample_units,
                "workers": workers,
                "repeats": self.repeats,
            },
            "validation": {"fraction": self.fraction, "workers": self.validation_workers},
        }


def _beside(folder: Path, path: str) -> str:
    """A relative local path in a use-case file is relative to the file's folder."""
    if "://" in path or os.path.isabs(path) or folder == Path():
        return path
    return str(folder / path)


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
    """The first ``units`` work units of ``dataset``, taken round-robin across its files.

    Each file gives a prefix of its units, so the sample is a :class:`Dataset`
    of truncated :class:`FileInfo` values (size scaled with the entries kept)
    that cuts into exactly those units at ``chunk_size``.
    """
    files = sorted(dataset.files, key=lambda f: (f.path, f.tree))
    per_file = [tuple(f.units(chunk_size)) for f in files]
    taken = [0] * len(files)
    remaining = min(units, sum(map(len, per_file)))
    while remaining:
        for i, file_units in enumerate(per_file):
            if remaining and taken[i] < len(file_units):
                taken[i] += 1
                remaining -= 1
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


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class UnitRecord:
    """One unit of a timed run: worker, start (seconds after the run began), duration."""

    worker: str
    start_s: float
    seconds: float
    events: int
    bytes_read: int
    peak_memory: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.seconds


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed run of the analysis on ``workers`` workers.

    ``rate_hz`` is the aggregate steady-state rate: per worker, the events of its
    units after the first divided by the time from the end of its first unit to
    the end of its last (gaps included); their mean times ``workers``. ``t0_s`` is
    the rest of the wall time: ``wall_s − tail · events / rate_hz``.
    """

    workers: int
    chunk_size: int
    events: int
    units: int
    wall_s: float  # around saetta.run: worker or cluster start-up included
    bytes_read: int
    peak_memory: int
    rate_hz: float
    rate_rel_err: float  # relative std of per-unit rates / √(units)
    t0_s: float
    first_unit_s: float  # from the start of the run to the start of its first unit
    dispatch_s: float  # mean idle time of a worker between two units
    timeline: tuple[UnitRecord, ...] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["timeline"] = [dataclasses.asdict(u) for u in self.timeline]
        return out


def tail_factor(units: int, workers: int) -> float:
    """How much the last, partly filled wave of units stretches ``units / workers`` waves."""
    if units <= 0 or workers <= 0:
        return 1.0
    return math.ceil(units / workers) / (units / workers)


def measure(
    report: RunReport, workers: int, wall_s: float, started_at: float, chunk_size: int = 0
) -> Measurement:
    """Steady rate, start-up and dispatch time of one run, from its per-unit records.

    Parameters
    ----------
    report
        The run's report; ``report.units`` has each unit's worker, start and duration.
    workers
        The number of workers the run was given.
    wall_s
        The run's wall time as the caller measured it.
    started_at
        ``time.time()`` when the caller started the run.
    chunk_size
        The run's chunk size (recorded only).
    """
    timeline = tuple(
        sorted(
            (
                UnitRecord(
                    o.worker,
                    o.started_at - started_at,
                    o.seconds,
                    o.events,
                    o.bytes_read,
                    o.peak_memory,
                )
                for o in report.units
            ),
            key=lambda u: u.start_s,
        )
    )
    by_worker: dict[str, list[UnitRecord]] = {}
    for record in timeline:
        by_worker.setdefault(record.worker, []).append(record)
    worker_rates: list[float] = []
    unit_rates: list[float] = []
    gaps: list[float] = []
    for records in by_worker.values():
        for previous, current in itertools.pairwise(records):
            gaps.append(max(0.0, current.start_s - previous.end_s))
            if current.seconds + gaps[-1] > 0:
                unit_rates.append(current.events / (current.seconds + gaps[-1]))
        span = records[-1].end_s - records[0].end_s
        if len(records) > 1 and span > 0:
            worker_rates.append(sum(r.events for r in records[1:]) / span)
    if worker_rates:
        rate = statistics.fmean(worker_rates) * workers
    else:  # one unit per worker: no steady state seen
        busy = sum(r.seconds for r in timeline)
        rate = report.events_processed / busy * workers if busy > 0 else 0.0
    rel_err = 0.0
    if len(unit_rates) > 1:
        spread = statistics.stdev(unit_rates) / statistics.fmean(unit_rates)
        rel_err = spread / math.sqrt(len(unit_rates))
    work = tail_factor(len(timeline), workers) * report.events_processed / rate if rate else 0.0
    return Measurement(
        workers=workers,
        chunk_size=chunk_size,
        events=report.events_processed,
        units=len(timeline),
        wall_s=wall_s,
        bytes_read=report.bytes_read,
        peak_memory=report.peak_memory,
        rate_hz=rate,
        rate_rel_err=rel_err,
        t0_s=wall_s - work,
        first_unit_s=timeline[0].start_s if timeline else 0.0,
        dispatch_s=statistics.fmean(gaps) if gaps else 0.0,
        timeline=timeline,
    )


def histogram_fills(result: Mapping[str, Any]) -> float:
    """Fills of every histogram in a result (``h.sum(flow=True)``; nested dicts searched)."""
    total = 0.0
    for value in result.values():
        if isinstance(value, Mapping):
            total += histogram_fills(value)
        elif hasattr(value, "axes") and hasattr(value, "sum"):
            fills = value.sum(flow=True)
            total += float(getattr(fills, "value", fills))  # a weighted sum has .value
    return total


def _testbed_workers(bed: Testbed) -> int:
    if bed.workers:
        return bed.workers
    if bed.adapt:
        return bed.adapt[1]
    return (os.cpu_count() or 1) if bed.kind in {"local", "dask"} else 1


def _timed_run(
    analysis: Analysis,
    dataset: Dataset,
    bed: Testbed,
    workers: int,
    chunk_size: int,
    *,
    allow_partial: bool = False,
) -> tuple[Measurement, Result]:
    if bed.kind == "dask" and bed.address:
        msg = (
            f"testbed {bed.name!r} is a running Dask cluster at {bed.address}; saetta cannot "
            "choose its number of workers. Use a testbed saetta starts (local, dask with "
            "workers, slurm, htcondor)"
        )
        raise UseCaseError(msg)
    sized = dataclasses.replace(bed, workers=workers, adapt=None)
    # Journal the units as a real run does, into a folder that goes away afterwards.
    with tempfile.TemporaryDirectory(prefix="saetta-usecase-") as journal:
        started_at, started = time.time(), time.perf_counter()
        result = run(
            analysis,
            dataset,
            testbed=sized,
            chunk_size=chunk_size,
            progress=False,
            allow_partial=allow_partial,
            run_dir=journal,
        )
        wall = time.perf_counter() - started
    return measure(result.report, workers, wall, started_at, chunk_size), result


def _resolve_testbed(name: str) -> Testbed:
    try:
        return find_testbed(name)
    except SaettaError as exc:
        msg = f"testbed: {exc}"
        raise UseCaseError(msg) from exc


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted wall time: its 1σ (linearised) and the stated ≈95 % interval ``low_s – high_s``."""

    time_s: float
    err_s: float
    low_s: float
    high_s: float
    events: float
    workers: int

    def contains(self, seconds: float) -> bool:
        """Whether a measured time lies within the stated interval."""
        return self.low_s <= seconds <= self.high_s

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        low, high = format_duration(self.low_s), format_duration(self.high_s)
        return f"{format_duration(self.time_s)} (≈95 %: {low} – {high})"


@dataclass(frozen=True, slots=True)
class Model:
    """``T(n) = t0 + tail · E / (n · r · e(n))`` with ``e(n) = 1 / (1 + α (n − 1))``.

    ``r``: per-core steady event rate at ``chunk_size``; ``α``: efficiency lost per
    added worker; ``t0``: start-up (workers starting, JIT caches loading, the first
    units' excess, the final merge); ``tail``: the last, partly filled wave of units.
    Uncertainties are 1σ; :meth:`predict` adds them in quadrature.

    Examples
    --------
    >>> model = Model(rate_hz=1e6, rate_rel_err=0.0, alpha=0.0, alpha_err=0.0, t0_s=1.0, t0_err=0.0)
    >>> model.predict(8e6, workers=4).time_s
    3.0
    >>> model.cores_needed(8e6, time_s=3.0)
    4
    """

    rate_hz: float
    rate_rel_err: float
    alpha: float
    alpha_err: float
    t0_s: float
    t0_err: float
    chunk_size: int = DEFAULT_CHUNK_SIZE
    measured_workers: tuple[int, ...] = (1,)

    def efficiency(self, workers: float) -> float:
        """Parallel efficiency ``e(n)``."""
        return 1.0 / (1.0 + self.alpha * max(0.0, workers - 1))

    def predict(self, events: float, workers: int, units: int | None = None) -> Prediction:
        """Wall time of ``events`` events in ``units`` units (default: at the chunk size) on ``workers``.

        ``err_s`` is the linearised 1σ, ``σ_T² = σ_t0² + (W σ_r/r)² + (W (n−1) e(n) σ_α)²``
        with W the work term. The interval moves t0, r and α by ±2σ one at a time
        through the exact formula and adds the shifts in quadrature, up and down
        apart: far beyond the measured workers it is asymmetric, as it should be.
        """
        units = max(1, math.ceil(events / self.chunk_size)) if units is None else units
        used = max(1, min(workers, units))  # a worker without a unit does not help
        tail = tail_factor(units, used) * events / used

        def time_at(rate: float, alpha: float, t0: float) -> float:
            return t0 + tail * (1 + alpha * (used - 1)) / rate

        r, a, t0, z = self.rate_hz, self.alpha, self.t0_s, INTERVAL_Z
        central = time_at(r, a, t0)
        work = central - t0
        e = self.efficiency(used)
        err = math.hypot(
            self.t0_err, work * self.rate_rel_err, work * (used - 1) * e * self.alpha_err
        )
        shifts = [
            (time_at(r, a, t0 + z * self.t0_err), time_at(r, a, max(0.0, t0 - z * self.t0_err))),
            (
                time_at(r * max(0.05, 1 - z * self.rate_rel_err), a, t0),
                time_at(r * (1 + z * self.rate_rel_err), a, t0),
            ),
            (
                time_at(r, a + z * self.alpha_err, t0),
                time_at(r, max(0.0, a - z * self.alpha_err), t0),
            ),
        ]
        up = math.hypot(*(slow - central for slow, _ in shifts))
        down = math.hypot(*(central - fast for _, fast in shifts))
        return Prediction(central, err, max(0.0, central - down), central + up, events, workers)

    @property
    def max_rate_hz(self) -> float:
        """The rate no number of workers exceeds: ``r / α`` (infinite when α = 0)."""
        return self.rate_hz / self.alpha if self.alpha > 0 else math.inf

    def cores_needed(self, events: float, time_s: float) -> int | None:
        """Fewest workers that process ``events`` within ``time_s``; None if no number can.

        Solves ``t0 + E (1 + α (n − 1)) / (n r) ≤ Z`` (many units per worker: tail = 1).
        """
        budget = (time_s - self.t0_s) * self.rate_hz - events * self.alpha
        if time_s <= self.t0_s or budget <= 0:
            return None
        return max(1, math.ceil(events * (1 - self.alpha) / budget - 1e-9))

    def shifted(self, sigmas: float) -> Model:
        """This model with r, α and t0 each moved ``sigmas`` σ towards slower."""
        return dataclasses.replace(
            self,
            rate_hz=self.rate_hz * max(0.05, 1 - sigmas * self.rate_rel_err),
            alpha=max(0.0, self.alpha + sigmas * self.alpha_err),
            t0_s=max(0.0, self.t0_s + sigmas * self.t0_err),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"formula": "T(n) = t0 + tail*E/(n*r*e(n)), e(n) = 1/(1+alpha*(n-1))"}
        out |= {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out


def fit_model(runs: Sequence[Measurement], chunk_size: int = DEFAULT_CHUNK_SIZE) -> Model:
    """Fit a :class:`Model` to timed runs of one sample at several worker counts.

    - ``r``: mean steady rate of the 1-worker runs; relative error: each run's
      statistical error (relative std of per-unit rates / √units) and the scatter
      between repeats, in quadrature.
    - ``α``: least squares of ``1/e(n) − 1 = α (n − 1)``, ``e(n) = R(n) / (n r)``, over
      the runs with n > 1; its error propagates the rate errors; clamped at 0.
    - ``t0``: mean start-up term of all runs; error: their scatter, at least 10 % of t0.

    Raises
    ------
    UseCaseError
        No 1-worker run measured a rate.
    """
    singles = [m.rate_hz for m in runs if m.workers == 1 and m.rate_hz > 0]
    if not singles:
        msg = "calibration: no 1-worker run measured a rate; is the sample empty?"
        raise UseCaseError(msg)
    rate, rate_err = _mean_rate([m for m in runs if m.workers == 1 and m.rate_hz > 0])
    numerator = denominator = variance = 0.0
    for n in sorted({m.workers for m in runs if m.workers > 1}):
        group = [m for m in runs if m.workers == n and m.rate_hz > 0]
        if group:
            rate_n, err_n = _mean_rate(group)
            inverse = n * rate / rate_n  # 1 / e(n)
            numerator += (n - 1) * (inverse - 1)
            denominator += (n - 1) ** 2
            variance += (n - 1) ** 2 * inverse**2 * (rate_err**2 + err_n**2)
    starts = [m.t0_s for m in runs]
    t0 = max(0.0, statistics.fmean(starts))
    return Model(
        rate_hz=rate,
        rate_rel_err=rate_err,
        alpha=max(0.0, numerator / denominator) if denominator else 0.0,
        alpha_err=math.sqrt(variance) / denominator if denominator else 0.0,
        t0_s=t0,
        t0_err=max(statistics.stdev(starts) if len(starts) > 1 else 0.0, 0.1 * t0),
        chunk_size=chunk_size,
        measured_workers=tuple(sorted({m.workers for m in runs})),
    )


def _mean_rate(runs: Sequence[Measurement]) -> tuple[float, float]:
    rates = [m.rate_hz for m in runs]
    mean = statistics.fmean(rates)
    within = math.sqrt(sum(m.rate_rel_err**2 for m in runs)) / len(runs)
    between = statistics.stdev(rates) / mean if len(rates) > 1 else 0.0
    return mean, math.hypot(within, between)


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class Calibration:
    """What calibrating the analysis on the testbed measured, and the model fitted to it."""

    usecase: str
    analysis: str
    testbed: str
    testbed_kind: str
    dataset_events: int
    dataset_bytes: int
    sample_events: int
    sample_units: int
    chunk_size: int
    bytes_per_event_disk: float  # compressed bytes on disk per event, whole dataset
    bytes_per_event_read: float  # bytes this analysis actually read per event
    runs: tuple[Measurement, ...]  # the fitted runs
    overhead_run: Measurement | None  # 1 worker at half the chunk size, run first
    model: Model
    peak_memory: int  # largest peak resident memory of a worker, bytes
    histogram_fills: float  # on the sample
    host: str
    saetta_version: str
    date: str  # ISO 8601, UTC

    @property
    def rate_hz(self) -> float:
        """Per-core steady event rate."""
        return self.model.rate_hz

    @property
    def fills_per_event(self) -> float:
        return self.histogram_fills / self.sample_events if self.sample_events else 0.0

    @property
    def first_unit_s(self) -> float:
        """Mean time from the start of a run to its first unit starting."""
        return statistics.fmean(m.first_unit_s for m in self.runs)

    @property
    def dispatch_s(self) -> float:
        """Mean idle time of a worker between two units."""
        return statistics.fmean(m.dispatch_s for m in self.runs)

    @property
    def unit_overhead_s(self) -> float | None:
        """Fixed cost of a unit, whatever its size: ``2 t(c/2) − t(c)`` per unit (None: unmeasured)."""
        half = self.overhead_run
        if half is None or half.rate_hz <= 0 or half.units <= self.sample_units:
            return None
        full_size = self.sample_events / self.sample_units
        half_size = half.events / half.units
        t_full, t_half = full_size / self.rate_hz, half_size / half.rate_hz
        overhead = (t_half * full_size - t_full * half_size) / (full_size - half_size)
        return max(0.0, overhead)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out |= {
            "model": self.model.to_dict(),
            "runs": [m.to_dict() for m in self.runs],
            "overhead_run": self.overhead_run.to_dict() if self.overhead_run else None,
            "rate_hz_per_core": self.rate_hz,
            "read_bytes_per_s_per_core": self.rate_hz * self.bytes_per_event_read,
            "disk_bytes_per_s_per_core": self.rate_hz * self.bytes_per_event_disk,
            "startup_s": self.model.t0_s,
            "first_unit_s": self.first_unit_s,
            "dispatch_s": self.dispatch_s,
            "unit_overhead_s": self.unit_overhead_s,
            "fills_per_event": self.fills_per_event,
        }
        return out


def calibrate(
    usecase: UseCase, analysis: Analysis, *, dataset: Dataset | None = None
) -> Calibration:
    """Time ``analysis`` on a sample of the use case's work units at 1 and k workers; fit the model.

    The sample is the first ``usecase.sample_units`` units (at least three per
    worker of the largest run), round-robin across the files. First one run on 1
    worker at half the chunk size (it measures the fixed cost per unit, and warms
    this process up: its start-up time is not fitted); then each worker count
    ``usecase.repeats`` times, interleaved (1, k, 1, k, ...), in fresh worker processes.

    Parameters
    ----------
    usecase
        The use case.
    analysis
        The analysis function (``saetta.analyses.load_analysis(usecase.analysis)``).
    dataset
        The use case's dataset, if already open.

    Raises
    ------
    UseCaseError
        The testbed is unknown or cannot be sized, or the dataset is empty.
    UnitError
        A unit of the sample failed.
    """
    bed = _resolve_testbed(usecase.testbed)
    dataset = dataset if dataset is not None else open_dataset(usecase)
    if dataset.num_entries == 0:
        msg = f"dataset: {', '.join(usecase.dataset)} holds no events"
        raise UseCaseError(msg)
    workers = usecase.calibration_workers or (1, _testbed_workers(bed))
    workers = tuple(sorted({1, *workers}))
    chunk = usecase.chunk_size
    sample = sample_dataset(dataset, max(usecase.sample_units, 3 * max(workers)), chunk)
    overhead = None
    if chunk >= 2:
        overhead, _ = _timed_run(analysis, sample, bed, 1, chunk // 2)
    runs: list[Measurement] = []
    results: list[Result] = []
    for _ in range(usecase.repeats):
        for n in workers:
            measurement, result = _timed_run(analysis, sample, bed, n, chunk)
            runs.append(measurement)
            results.append(result)
    return Calibration(
        usecase=usecase.name,
        analysis=usecase.analysis,
        testbed=bed.name,
        testbed_kind=bed.kind,
        dataset_events=dataset.num_entries,
        dataset_bytes=dataset.size_bytes,
        sample_events=sample.num_entries,
        sample_units=len(sample.units(chunk)),
        chunk_size=chunk,
        bytes_per_event_disk=dataset.size_bytes / dataset.num_entries,
        bytes_per_event_read=statistics.fmean(m.bytes_read / m.events for m in runs),
        runs=tuple(runs),
        overhead_run=overhead,
        model=fit_model(runs, chunk),
        peak_memory=max(m.peak_memory for m in runs),
        histogram_fills=histogram_fills(results[-1]),
        host=socket.gethostname(),
        saetta_version=__version__,
        date=_now(),
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Plan:
    """The calibration's answer: can Y be processed in Z on W, and if not, what binds?"""

    usecase: UseCase
    calibration: Calibration
    events: float  # Y in events
    data_bytes: float  # Y in bytes on disk
    prediction: Prediction  # on W cores
    cores_needed: int | None  # to meet Z; None: no number of cores can
    cores_range: tuple[int | None, int | None]  # with the model 2σ faster, 2σ slower
    memory_ok: bool | None  # None: no memory limit stated
    binding: tuple[str, ...]  # the constraints not met: "memory", "time", "cores"

    @property
    def feasible(self) -> bool:
        return not self.binding

    @property
    def verdict(self) -> str:
        return "FEASIBLE" if self.feasible else "NOT FEASIBLE"

    @property
    def ideal_cores(self) -> int:
        """Cores that process Y in Z at the measured per-core rate, with no losses at all."""
        rate = self.calibration.model.rate_hz * self.usecase.requirement.time_s
        return max(1, math.ceil(self.events / rate - 1e-9))

    @property
    def projection(self) -> str:
        """``"1 PB in 1 h needs N cores at this rate"`` in the use case's own Y and Z, then
        what the start-up time and the measured scaling losses make of it."""
        r, model = self.usecase.requirement, self.calibration.model
        head = (
            f"{r.data_text} in {r.time_text} needs {_cores(self.ideal_cores)} at this rate "
            f"({format_rate(model.rate_hz)} per core)"
        )
        if self.cores_needed is not None:
            return f"{head}; {_cores(self.cores_needed)} with the start-up and scaling losses"
        if model.t0_s >= r.time_s:
            why = f"the start-up alone takes {format_duration(model.t0_s)}"
        else:
            why = f"scaling saturates at {format_rate(model.max_rate_hz)}, α = {model.alpha:.3g}"
        return f"{head}; with the start-up and scaling losses no number suffices ({why})"

    def binding_text(self) -> str:
        """The binding constraints, each with its numbers; empty when feasible."""
        r, out = self.usecase.requirement, []
        for name in self.binding:
            if name == "memory":
                peak, limit = self.calibration.peak_memory, r.memory_per_core or 0
                out.append(f"memory ({format_bytes(peak)} per worker > {format_bytes(limit)})")
            elif name == "cores":
                out.append(f"cores (needs {self.cores_needed:,}, has {r.cores:,})")
            else:
                out.append(f"time ({r.time_text} is out of reach on any number of cores)")
        return "; ".join(out)

    def _rows(self) -> list[tuple[str, str]]:
        r = self.usecase.requirement
        fast, slow = self.cores_range
        needed = "none suffices" if self.cores_needed is None else f"{self.cores_needed:,}"
        cores = f"{needed} (≈95 %: {_range_end(fast)} – {_range_end(slow)})"
        verdict = self.verdict + (f": {self.binding_text()}" if self.binding else "")
        return [
            ("verdict", verdict),
            (f"time on {r.cores:,} cores", f"{self.prediction}; required ≤ {r.time_text}"),
            (f"cores for {r.time_text}", cores),
            ("memory", _memory_text(self.calibration.peak_memory, r.memory_per_core)),
            ("projection", self.projection),
        ]

    def __str__(self) -> str:
        return f"{self.usecase.name}: plan\n{_table(self._rows())}"

    def _repr_html_(self) -> str:
        return _html_table(f"{self.usecase.name}: plan", self._rows(), self.feasible)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "plan",
            "usecase": self.usecase.to_dict(),
            "calibration": self.calibration.to_dict(),
            "events": self.events,
            "data_bytes": self.data_bytes,
            "histogram_fills": self.events * self.calibration.fills_per_event,
            "prediction": self.prediction.to_dict(),
            "cores_needed": self.cores_needed,
            "cores_needed_range": list(self.cores_range),
            "memory_ok": self.memory_ok,
            "verdict": self.verdict,
            "binding": list(self.binding),
            "projection": self.projection,
        }


def _range_end(n: int | None) -> str:
    return "∞" if n is None else f"{n:,}"


def _cores(n: int) -> str:
    return f"{n:,} core{'s' * (n != 1)}"


def _memory_text(peak: int, limit: float | None) -> str:
    if limit is None:
        return f"{format_bytes(peak)} per worker (no limit stated)"
    ok = peak <= limit
    return (
        f"{format_bytes(peak)} per worker {'≤' if ok else '>'} {format_bytes(limit)} per core: "
        + ("ok" if ok else "TOO LITTLE")
    )


def plan(
    usecase: UseCase,
    analysis: Analysis | None = None,
    *,
    calibration: Calibration | None = None,
    dataset: Dataset | None = None,
) -> Plan:
    """Calibrate (unless a calibration is given) and say whether the requirement can be met.

    NOT FEASIBLE names what binds: ``memory`` (peak memory per worker above the
    memory per core), ``time`` (no number of cores meets Z: start-up alone
    exceeds it, or scaling saturates first), ``cores`` (more than W needed).
    Cores and workers are one to one: each worker runs one unit at a time.

    Raises
    ------
    UseCaseError
        Neither ``analysis`` nor ``calibration`` is given, or calibrating fails.
    """
    if calibration is None:
        if analysis is None:
            msg = "plan: give the analysis function, or a calibration"
            raise UseCaseError(msg)
        calibration = calibrate(usecase, analysis, dataset=dataset)
    r, model = usecase.requirement, calibration.model
    if r.events is not None:
        events, size = r.events, r.events * calibration.bytes_per_event_disk
    else:
        size = r.data_bytes or 0.0
        events = size / calibration.bytes_per_event_disk
    needed = model.cores_needed(events, r.time_s)
    memory_ok = None if r.memory_per_core is None else calibration.peak_memory <= r.memory_per_core
    binding = ["memory"] if memory_ok is False else []
    if needed is None or needed > r.cores:
        binding.append("time" if needed is None else "cores")
    return Plan(
        usecase=usecase,
        calibration=calibration,
        events=events,
        data_bytes=size,
        prediction=model.predict(events, r.cores),
        cores_needed=needed,
        cores_range=(
            model.shifted(-INTERVAL_Z).cores_needed(events, r.time_s),
            model.shifted(INTERVAL_Z).cores_needed(events, r.time_s),
        ),
        memory_ok=memory_ok,
        binding=tuple(binding),
    )


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class Validation:
    """A real run of the use case (or of a stated fraction), against the plan and the requirement."""

    plan: Plan
    fraction: float
    measurement: Measurement
    predicted: Prediction  # for this run: its events and units on its workers
    events_total: int  # in the validated part of the dataset
    histogram_fills: float
    complete: bool
    extrapolated_s: float  # Y on W cores, from this run's rate and start-up
    binding: tuple[str, ...]  # what failed: "incomplete", "memory", "time"
    date: str

    @property
    def measured_s(self) -> float:
        return self.measurement.wall_s

    @property
    def model_accurate(self) -> bool:
        """Whether the measured time lies within the prediction's stated (≈95 %) interval."""
        return self.predicted.contains(self.measured_s)

    @property
    def error_rel(self) -> float:
        """(measured − predicted) / predicted."""
        return self.measured_s / self.predicted.time_s - 1

    @property
    def passed(self) -> bool:
        return not self.binding

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    @property
    def rate_hz(self) -> float:
        """The per-core rate of this run, corrected to one worker with the model's e(n)."""
        m, model = self.measurement, self.plan.calibration.model
        return m.rate_hz / (m.workers * model.efficiency(m.workers))

    def _rows(self) -> list[tuple[str, str]]:
        m, r = self.measurement, self.plan.usecase.requirement
        p = self.predicted
        return [
            ("verdict", self.verdict + (f": {', '.join(self.binding)}" if self.binding else "")),
            ("ran", f"{m.events:,} events on {m.workers} workers ({100 * self.fraction:g} %)"),
            ("measured", f"{format_duration(m.wall_s)} ({100 * self.error_rel:+.1f} % vs plan)"),
            ("predicted", str(p)),
            ("model accurate", "yes" if self.model_accurate else "no"),
            (
                f"{r.data_text} on {r.cores:,} cores",
                f"{format_duration(self.extrapolated_s)} from this run; required ≤ {r.time_text}",
            ),
            ("memory", _memory_text(m.peak_memory, r.memory_per_core)),
        ]

    def __str__(self) -> str:
        return f"{self.plan.usecase.name}: validation\n{_table(self._rows())}"

    def _repr_html_(self) -> str:
        return _html_table(f"{self.plan.usecase.name}: validation", self._rows(), self.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "validation",
            "plan": self.plan.to_dict(),
            "fraction": self.fraction,
            "events_total": self.events_total,
            "events_processed": self.measurement.events,
            "histogram_fills": self.histogram_fills,
            "complete": self.complete,
            "measurement": self.measurement.to_dict(),
            "predicted": self.predicted.to_dict(),
            "measured_s": self.measured_s,
            "error_rel": self.error_rel,
            "model_accurate": self.model_accurate,
            "rate_hz_per_core": self.rate_hz,
            "extrapolated_s": self.extrapolated_s,
            "verdict": self.verdict,
            "binding": list(self.binding),
            "date": self.date,
        }


def validate(
    usecase: UseCase,
    analysis: Analysis,
    *,
    planned: Plan | None = None,
    dataset: Dataset | None = None,
) -> Validation:
    """Run the use case for real and compare with the plan and the requirement.

    Runs the first ``usecase.fraction`` of the work units (round-robin across
    files) on the testbed with ``usecase.validation_workers`` workers (default:
    the testbed's size), in fresh worker processes; the prediction is made for
    exactly those events and units. PASS when every unit succeeded, the peak
    memory per worker fits the memory per core, and this run's rate and start-up,
    extrapolated to Y on W cores with the calibrated efficiency, meet Z. Whether
    the measured time lies in the prediction's interval is reported apart
    (:attr:`Validation.model_accurate`).

    Parameters
    ----------
    usecase
        The use case.
    analysis
        The analysis function.
    planned
        The plan to compare with; by default :func:`plan` calibrates first.
    dataset
        The use case's dataset, if already open.
    """
    dataset = dataset if dataset is not None else open_dataset(usecase)
    the_plan = planned if planned is not None else plan(usecase, analysis, dataset=dataset)
    bed = _resolve_testbed(usecase.testbed)
    workers = usecase.validation_workers or _testbed_workers(bed)
    chunk = usecase.chunk_size
    total_units = len(dataset.units(chunk))
    part = sample_dataset(dataset, max(1, round(usecase.fraction * total_units)), chunk)
    model = the_plan.calibration.model
    predicted = model.predict(part.num_entries, workers, len(part.units(chunk)))
    measurement, result = _timed_run(analysis, part, bed, workers, chunk, allow_partial=True)
    r = usecase.requirement
    measured = dataclasses.replace(
        model,
        rate_hz=measurement.rate_hz / (workers * model.efficiency(workers)) or model.rate_hz,
        t0_s=max(0.0, measurement.t0_s),
    )
    extrapolated = measured.predict(the_plan.events, r.cores).time_s
    binding = [] if result.report.complete else ["incomplete"]
    if r.memory_per_core is not None and measurement.peak_memory > r.memory_per_core:
        binding.append("memory")
    if extrapolated > r.time_s:
        binding.append("time")
    return Validation(
        plan=the_plan,
        fraction=usecase.fraction,
        measurement=measurement,
        predicted=predicted,
        events_total=part.num_entries,
        histogram_fills=histogram_fills(result),
        complete=result.report.complete,
        extrapolated_s=extrapolated,
        binding=tuple(binding),
        date=_now(),
    )


# --------------------------------------------------------------------------- text and HTML


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:>{width}}: {v}" for k, v in rows)


def _html_table(title: str, rows: Sequence[tuple[str, str]], good: bool) -> str:
    colour = "#070" if good else "#b00"
    body = "".join(
        f"<tr><th style='text-align:right'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<b style='color:{colour}'>{html.escape(title)}</b><table>{body}</table>"
