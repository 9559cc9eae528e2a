"""Stage: output (layer 8) — write a :class:`~saetta.Result` to ROOT or JSON, and describe one.

ROOT (``.root``): every histogram as a ROOT histogram, nested dicts as directories
(``cutflow/h``), and a ``TObjString`` named ``saetta`` holding the JSON document
below without the histograms. How each histogram goes to ROOT:

- storage ``Double``, ``Int64``, ``AtomicInt64``, ``Unlimited``: ``TH1D``/``TH2D``/``TH3D``
  without ``fSumw2`` (ROOT's own form for unweighted counts: errors are ``sqrt(N)``);
  integer counts become doubles, exact up to 2**53;
- ``Weight``: ``TH1D``/``TH2D``/``TH3D`` with ``fSumw2`` = the variances;
- ``Mean``, ``WeightedMean``: ``TProfile`` when one-dimensional; uproot writes no 2-D or
  3-D profile, so those raise :class:`~saetta.SaettaError` (write ``.json`` instead);
- category axes (``StrCategory``, ``IntCategory``): labelled bins ``0 .. n`` (the labels in
  the ``TAxis``), the category overflow in ROOT's overflow bin; axes without flow bins
  get empty ROOT flow bins; more than three axes raise :class:`~saetta.SaettaError`.

Every histogram is checked before the file is opened: either all are written or nothing.

JSON (``.json``), one document::

    {
      "saetta_version": "0.1.0",
      "complete": true,                     # false: some units failed (see report.failures)
      "report": {...},                      # RunReport.to_dict(): events, bytes, time, failures
      "histograms": {                       # keys: result keys, "/"-joined for nested dicts
        "q1_met": {
          "storage": "weight",              # double, int64, atomic_int64, unlimited, weight,
                                            # mean, weighted_mean
          "axes": [{"type": "regular", "name": "x", "label": "...",
                    "bins": 100, "lo": 0.0, "hi": 200.0}],
                    # or "type": "variable", "edges": [...]
                    # or "type": "category", "categories": ["a", "b"]
                    # "underflow": false / "overflow": false when the axis lacks that bin
          "values": [...],                  # nested per axis: underflow first, overflow last
          "variances": [...],               # sum of squared weights, same layout
          "counts": [...]                   # mean storages only: the (effective) counts
        }
      },
      "values": {"n_selected": 1234}        # numbers and arrays, same key scheme
    }

:func:`describe` reads either kind of output back, cheaply and without trusting it.
"""

from __future__ import annotations

import json
import operator
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boost_histogram as bh
import numpy as np

from saetta._version import __version__
from saetta.errors import FormatError, SaettaError
from saetta.execute import Result
from saetta.storage import atomic_path

__all__ = ["HistogramSummary", "OutputSummary", "describe", "save", "to_json"]

_STORAGES = {
    bh.storage.Double: "double",
    bh.storage.Int64: "int64",
    bh.storage.AtomicInt64: "atomic_int64",
    bh.storage.Unlimited: "unlimited",
    bh.storage.Weight: "weight",
    bh.storage.Mean: "mean",
    bh.storage.WeightedMean: "weighted_mean",
}
_RECORD = "saetta"  # the TObjString holding the document in a ROOT output
_MAX_OBJECT_BYTES = 2**30  # describe() reads no larger histogram or record than this


def save(result: Result, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path``; the suffix (``.root`` or ``.json``) picks the format.

    The file is written under a unique temporary name in the same folder and renamed
    into place, so concurrent runs writing the same path never see half a file.

    Parameters
    ----------
    result
        What :func:`saetta.run` returned.
    path
        The output file, ``.root`` or ``.json``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SaettaError
        A bad suffix, a histogram ROOT cannot hold (named by its key), a value JSON
        cannot hold, or a folder that cannot be written; nothing is left behind.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in {".root", ".json"}:
        msg = f"cannot write {target}: give a .root or .json output file"
        raise SaettaError(msg)
    if suffix == ".json":
        text = json.dumps(to_json(result), indent=1) + "\n"
    else:
        objects = _root_objects(result)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            if suffix == ".json":
                temporary.write_text(text, encoding="utf-8")
            else:
                _write_root(objects, temporary)
    except OSError as exc:
        msg = f"cannot write {target}: {exc.strerror or exc}"
        raise SaettaError(msg) from exc
    return target


def to_json(result: Result) -> dict[str, Any]:
    """The JSON document described in this module's docstring.

    Raises
    ------
    SaettaError
        A value that JSON cannot hold, named by its key.
    """
    histograms: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, value in _flatten(result):
        if isinstance(value, bh.Histogram):
            histograms[key] = _histogram_json(value)
            continue
        plain = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
        try:
            json.dumps(plain)
        except (TypeError, ValueError) as exc:
            msg = f"cannot write result {key!r} ({type(value).__name__}) to an output file: {exc}"
            raise SaettaError(msg) from exc
        values[key] = plain
    return {
        "saetta_version": __version__,
        "complete": result.report.complete,
        "report": result.report.to_dict(),
        "histograms": histograms,
        "values": values,
    }


def _flatten(mapping: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}/")
        else:
            yield name, value


def _is_category(axis: Any) -> bool:
    return isinstance(axis, bh.axis.StrCategory | bh.axis.IntCategory)


def _axis_json(axis: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": axis.name, "label": axis.label}
    if _is_category(axis):
        entry |= {"type": "category", "categories": list(axis)}
    elif isinstance(axis, bh.axis.Regular) and axis.transform is None:
        entry |= {"type": "regular", "bins": len(axis), "lo": axis.edges[0], "hi": axis.edges[-1]}
    else:
        entry |= {"type": "variable", "edges": axis.edges.tolist()}
    for side in ("underflow", "overflow"):
        if not getattr(axis.traits, side):
            entry[side] = False
    return entry


def _histogram_json(h: bh.Histogram[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "storage": _STORAGES.get(h.storage_type, h.storage_type.__name__.lower()),
        "axes": [_axis_json(axis) for axis in h.axes],
        "values": h.values(flow=True).tolist(),
    }
    variances = h.variances(flow=True)
    if variances is not None:
        out["variances"] = variances.tolist()
    if h.kind == bh.Kind.MEAN:
        out["counts"] = h.counts(flow=True).tolist()
    return out


# --------------------------------------------------------------------------- ROOT


def _root_objects(result: Result) -> dict[str, Any]:
    """Every histogram as an object uproot writes, checked before any file is opened."""
    document = to_json(result)
    del document["histograms"]
    objects: dict[str, Any] = {}
    for key, value in _flatten(result):
        if not isinstance(value, bh.Histogram):
            continue
        _check_root_name(key, objects)
        objects[key] = _to_root(key, value)
    objects[_RECORD] = json.dumps(document)
    return objects


def _check_root_name(key: str, taken: Mapping[str, Any]) -> None:
    """A key uproot can write: no empty path part, not both a histogram and a folder."""
    parts = key.split("/")
    folders = {"/".join(parts[:i]) for i in range(1, len(parts))}
    if parts[0] == _RECORD:
        problem = f"{_RECORD!r} is the name of saetta's own record"
    elif not all(parts):
        problem = "an empty name, or an empty part between slashes"
    elif key in taken:
        problem = "two histograms have that name"
    elif folders & set(taken) or any(k.startswith(f"{key}/") for k in taken):
        problem = "one name would be both a histogram and a folder"
    else:
        return
    msg = f"cannot write histogram {key!r} to ROOT: {problem}"
    raise SaettaError(msg)


def _write_root(objects: Mapping[str, Any], path: Path) -> None:
    import uproot

    with uproot.recreate(path) as f:
        for key, value in objects.items():
            f[key] = value


def _to_root(key: str, h: bh.Histogram[Any]) -> Any:
    import uproot

    storage = _STORAGES.get(h.storage_type, h.storage_type.__name__)
    if not 1 <= h.ndim <= 3:
        msg = f"cannot write histogram {key!r} to ROOT: it has {h.ndim} axes, ROOT holds 1 to 3"
        raise SaettaError(msg)
    if h.kind == bh.Kind.MEAN:
        if h.ndim != 1:
            msg = (
                f"cannot write histogram {key!r} to ROOT: a {h.ndim}-D {storage} profile "
                "(uproot writes only 1-D TProfile); write a .json output instead"
            )
            raise SaettaError(msg)
        return uproot.writing.to_writable(_with_flow(h))
    return _counts_to_root(key, h)


def _root_layout(h: bh.Histogram[Any], array: Any) -> np.ndarray:
    """``array``, a flow view of ``h``, in ROOT's layout: under- and overflow on every axis."""
    out = np.zeros(tuple(len(axis) + 2 for axis in h.axes), dtype=array.dtype)
    index = []
    for axis in h.axes:
        start = 0 if axis.traits.underflow else 1
        index.append(slice(start, start + axis.extent))
    out[tuple(index)] = array
    return out


def _with_flow(h: bh.Histogram[Any]) -> bh.Histogram[Any]:
    """``h`` with every non-category axis given both flow bins (uproot's TProfile needs them)."""
    if all(_is_category(a) or (a.traits.underflow and a.traits.overflow) for a in h.axes):
        return h
    axes = [
        a if _is_category(a) else bh.axis.Variable(a.edges, metadata=a.metadata) for a in h.axes
    ]
    out = bh.Histogram(*axes, storage=h.storage_type())
    out.view(flow=True)[...] = _root_layout(h, h.view(flow=True))
    return out


def _counts_to_root(key: str, h: bh.Histogram[Any]) -> Any:
    from uproot.writing import identify

    values = _root_layout(h, np.asarray(h.values(flow=True), dtype=np.float64))
    sumw2 = None  # unweighted counts: ROOT takes sqrt(N) as the error
    if h.storage_type is bh.storage.Weight:
        sumw2 = _root_layout(h, np.asarray(h.variances(flow=True), dtype=np.float64))
    inside = (slice(1, -1),) * h.ndim
    inner = values[inside]
    stats = {
        "fEntries": float(values.sum()),  # as uproot does: ROOT's count of fills is not kept
        "fTsumw": float(inner.sum()),
        "fTsumw2": float((inner if sumw2 is None else sumw2[inside]).sum()),
    }
    grids = np.meshgrid(*(_root_centers(a) for a in h.axes), indexing="ij")
    for i, (name, grid) in enumerate(zip("xyz", grids, strict=False)):
        stats[f"fTsumw{name}"] = float((inner * grid).sum())
        stats[f"fTsumw{name}2"] = float((inner * grid**2).sum())
        for other, other_grid in zip("xyz"[:i], grids[:i], strict=True):
            stats[f"fTsumw{other}{name}"] = float((inner * other_grid * grid).sum())
    axes = {
        f"f{n.upper()}axis": _root_axis(a, f"{n}axis", identify)
        for n, a in zip("xyz", h.axes, strict=False)
    }
    build = {1: identify.to_TH1x, 2: identify.to_TH2x, 3: identify.to_TH3x}[h.ndim]
    return build(
        fName=None,
        fTitle=str(getattr(h, "label", None) or getattr(h, "name", None) or key),
        data=values.T.reshape(-1),  # ROOT: x varies fastest
        fSumw2=None if sumw2 is None else sumw2.T.reshape(-1),
        **stats,
        **axes,
    )


def _root_centers(axis: Any) -> np.ndarray:
    return np.arange(len(axis)) + 0.5 if _is_category(axis) else np.asarray(axis.centers)


def _root_axis(axis: Any, name: str, identify: Any) -> Any:
    title = str(getattr(axis, "label", None) or getattr(axis, "name", None) or "")
    if _is_category(axis):
        return identify.to_TAxis(
            fName=name,
            fTitle=title,
            fNbins=len(axis),
            fXmin=0.0,
            fXmax=float(len(axis)),
            fLabels=identify._fLabels_maybe_categorical(axis, bh),
        )
    edges = np.asarray(axis.edges, dtype=np.float64)
    regular = isinstance(axis, bh.axis.Regular) and axis.transform is None
    return identify.to_TAxis(
        fName=name,
        fTitle=title,
        fNbins=len(axis),
        fXmin=float(edges[0]),
        fXmax=float(edges[-1]),
        fXbins=np.array([], dtype=np.float64) if regular else edges,
    )


# --------------------------------------------------------------------------- describe


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
        try:
            text = Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read {name}: {exc.strerror or exc}"
            raise FormatError(msg, path=name) from exc
        except ValueError as exc:  # not UTF-8
            msg = f"{name} is not a saetta JSON output: {_first_line(exc)}"
            raise FormatError(msg, path=name) from exc
        return _describe_json(name, text)
    return _describe_root(name)


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
                if key == _RECORD and classname == "TObjString":
                    document = _load_document(name, str(f[key]))
                elif _root_ndim(classname):
                    histograms.append(_root_histogram(key, classname, f[key]))
    except (
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
    ) as exc:
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
