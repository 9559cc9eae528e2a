"""Stage: output (layer 8) — read an output file back, cheaply and without trusting it."""

from __future__ import annotations

import json
import operator
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saetta.errors import FormatError
from saetta.output.walk import RECORD

__all__ = ["HistogramSummary", "OutputSummary", "describe"]

_MAX_OBJECT_BYTES = 2**30  # describe() reads no larger histogram or record than this


@dataclass(frozen=True, slots=True)
class HistogramSummary:
    """One histogram in an output file, as :func:`describe` finds it."""

    key: str  # path inside the file ("cutflow/h"), "/"-joined as the result's keys
    kind: str  # ROOT class ("TH1D", "TProfile") or, in JSON, the storage ("weight")
    bins: tuple[int, ...]  # per axis, flow bins not counted
    entries: float  # ROOT's fEntries; in JSON the sum of counts
    sum_of_weights: float  # every bin, flow bins included

    def __str__(self) -> str:
        bins = "x".join(str(b) for b in self.bins)
        weights = f"{self.sum_of_weights:,.6g}"
        return f"{self.key:<28}{self.kind:<15}{bins:>12}{self.entries:>14,.0f}{weights:>16}"


@dataclass(frozen=True, slots=True)
class OutputSummary:
    """What an output file holds: its histograms and, for a saetta output, the run's report."""

    path: str
    format: str  # "ROOT" or "JSON"
    saetta_version: str | None  # None: a ROOT file that saetta did not write
    events_processed: int | None
    events_total: int | None
    complete: bool | None
    histograms: tuple[HistogramSummary, ...]

    @property
    def is_saetta(self) -> bool:
        """Whether saetta wrote the file (it carries saetta's record)."""
        return self.saetta_version is not None

    def lines(self) -> list[str]:
        """The summary as lines of text, for ``saetta inspect``."""
        if self.is_saetta:
            state = "complete" if self.complete else "INCOMPLETE: some units failed"
            head = (
                f"{self.path}: saetta {self.saetta_version} output ({self.format}), "
                f"{self.events_processed:,} of {self.events_total:,} events processed, {state}"
            )
        else:
            head = f"{self.path}: {self.format} file, not written by saetta"
        n = len(self.histograms)
        lines = [head, f"{n} histogram{'s' if n != 1 else ''}"]
        if self.histograms:
            kind = "class" if self.format == "ROOT" else "storage"
            lines.append(
                f"  {'histogram':<28}{kind:<15}{'bins':>12}{'entries':>14}{'sum of weights':>16}"
            )
            lines.extend(f"  {h}" for h in self.histograms)
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())


def describe(path: str | os.PathLike[str]) -> OutputSummary:
    """Summarize an output file: each histogram, and the saetta record if there is one.

    Reads a ``.json`` saetta output, or any ``.root`` file (its histograms, and the
    ``saetta`` record when saetta wrote it); trees are not read. Nothing in the file is
    trusted: a malformed file raises, and nothing is ever unpickled.

    Parameters
    ----------
    path
        A local ``.root`` or ``.json`` file.

    Returns
    -------
    OutputSummary
        ``str()`` of it, or its ``lines()``, is what ``saetta inspect`` prints.

    Raises
    ------
    FormatError
        The file cannot be read, is not ROOT or JSON, or is a malformed saetta output;
        the one-line message names the file.
    """
    name = os.fspath(path)
    if Path(name).suffix.lower() == ".json":
        return _describe_json(name, read_json_text(name))
    return _describe_root(name)


def read_json_text(name: str) -> str:
    """The text of a JSON output file, or a one-line :class:`FormatError` naming it."""
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read {name}: {exc.strerror or exc}"
        raise FormatError(msg, path=name) from exc
    except ValueError as exc:  # not UTF-8
        msg = f"{name} is not a saetta JSON output: {_first_line(exc)}"
        raise FormatError(msg, path=name) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _load_document(name: str, text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        msg = f"{name} is not a saetta output: bad JSON: {_first_line(exc)}"
        raise FormatError(msg, path=name) from exc
    report = document.get("report") if isinstance(document, dict) else None
    if not (
        isinstance(document, dict)
        and isinstance(document.get("saetta_version"), str)
        and isinstance(report, dict)
        and all(isinstance(report.get(k), int) for k in ("events_processed", "events_total"))
        and isinstance(document.get("complete"), bool)
    ):
        msg = f"{name} is not a saetta output: no saetta_version, complete and report events"
        raise FormatError(msg, path=name)
    return document


def _summary(name: str, fmt: str, document: dict[str, Any] | None, hists: Any) -> OutputSummary:
    report = document["report"] if document else {}
    return OutputSummary(
        path=name,
        format=fmt,
        saetta_version=document["saetta_version"] if document else None,
        events_processed=report.get("events_processed"),
        events_total=report.get("events_total"),
        complete=document["complete"] if document else None,
        histograms=tuple(hists),
    )


def _describe_json(name: str, text: str) -> OutputSummary:
    document = _load_document(name, text)
    histograms = document.get("histograms", {})
    if not isinstance(histograms, dict):
        msg = f"{name} is not a saetta output: 'histograms' is not an object"
        raise FormatError(msg, path=name)
    found = (_json_histogram(name, key, h) for key, h in histograms.items())
    return _summary(name, "JSON", document, found)


def _json_bins(axis: Any) -> tuple[int, int]:
    """Bins of one JSON axis, without and with its flow bins."""
    kind = axis["type"]
    if kind == "regular":
        n = operator.index(axis["bins"])
    elif kind == "variable":
        n = len(axis["edges"]) - 1
    elif kind == "category":
        n = len(axis["categories"])
    else:
        msg = f"unknown axis type {kind!r}"
        raise ValueError(msg)
    if n < 0:
        msg = f"an axis of {n} bins"
        raise ValueError(msg)
    flow = sum(axis.get(side, True) is not False for side in ("underflow", "overflow"))
    return n, n + flow


def _json_histogram(name: str, key: str, h: Any) -> HistogramSummary:
    try:
        bins = tuple(_json_bins(axis) for axis in h["axes"])
        values = np.asarray(h["values"], dtype=np.float64)
        counts = np.asarray(h["counts"], dtype=np.float64) if "counts" in h else values
        storage = h.get("storage", "double")
        shape = tuple(extent for _, extent in bins)
        if values.shape != shape or counts.shape != shape or not isinstance(storage, str):
            msg = f"values of shape {values.shape} where the axes say {shape}"
            raise ValueError(msg)
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        msg = f"{name} is not a saetta output: histogram {key!r} is malformed: {_first_line(exc)}"
        raise FormatError(msg, path=name) from exc
    total = float(counts.sum())
    return HistogramSummary(key, storage, tuple(n for n, _ in bins), total, total)


def root_file_errors() -> tuple[type[BaseException], ...]:
    """What uproot raises reading a corrupt or truncated ROOT file, or one that is not
    what it claims: every reader of saetta's outputs turns these into one-line errors."""
    import uproot

    return (
        AssertionError,  # uproot asserts on some corrupt compression headers
        OSError,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        struct.error,
        zlib.error,
        uproot.DeserializationError,
    )


def _describe_root(name: str) -> OutputSummary:
    import uproot

    histograms = []
    document = None
    try:
        with uproot.open(name) as f:
            for key, classname in f.classnames(recursive=True, cycle=False).items():
                if not (_root_ndim(classname) or classname == "TObjString"):
                    continue
                size = f.key(key).data_uncompressed_bytes
                if size > _MAX_OBJECT_BYTES:
                    msg = f"{name}: {key!r} claims {size:,} bytes; not reading it"
                    raise FormatError(msg, path=name)
                if key == RECORD and classname == "TObjString":
                    document = _load_document(name, str(f[key]))
                elif _root_ndim(classname):
                    histograms.append(_root_histogram(key, classname, f[key]))
    except root_file_errors() as exc:
        msg = f"cannot read {name} as a ROOT file: {type(exc).__name__}: {_first_line(exc)}"
        raise FormatError(msg, path=name) from exc
    return _summary(name, "ROOT", document, histograms)


def _root_histogram(key: str, classname: str, h: Any) -> HistogramSummary:
    axes = "XYZ"[: _root_ndim(classname)]
    bins = tuple(int(h.member(f"f{a}axis").member("fNbins")) for a in axes)
    if classname.startswith("TProfile"):
        weights = float(np.sum(h.member("fBinEntries")))
    else:
        weights = float(np.sum(h.values(flow=True)))
    return HistogramSummary(key, classname, bins, float(h.member("fEntries")), weights)


def _root_ndim(classname: str) -> int:
    """Axes of a ROOT histogram class (TH1D, TH2F, TProfile2D); 0 for any other class."""
    if classname in {"TProfile", "TProfile2D", "TProfile3D"}:
        return int(classname[-2]) if classname[-1] == "D" else 1
    if len(classname) == 4 and classname[:3] in {"TH1", "TH2", "TH3"} and classname[3] in "CSILFD":
        return int(classname[2])
    return 0
