"""Stage: execute (layer 6) — a finished unit as plain, versioned JSON, and back.

Run directories live on shared file systems, where anyone with write access
could plant a file: nothing saetta reads back may execute code, so records are
JSON, never pickles, and every record is checked against its schema before
use. A record that does not match raises :class:`RecordError`; the journal turns
that into a one-line :class:`~saetta.errors.JournalError` naming the file.

A result is encoded exactly — the same bits come back — as:

- ``int``, ``float`` (NaN and ±inf included): JSON numbers;
- ``{"$dict": [[key, value], ...]}``: a dict with ``str`` or ``int`` keys, in order;
- ``{"$array": dtype, "shape": [...], "data": base64}``: a numeric numpy array;
- ``{"$scalar": dtype, "data": base64}``: a numpy number;
- ``{"$shards": folder, "files": [[name, events, bytes], ...]}``: the shards a unit wrote;
- ``{"$table": [[name, {"$array": ...}], ...]}``: a :class:`~saetta.tables.Table`, its
  columns in order;
- ``{"$complex": [re, im]}``, ``{"$fraction": "n/d"}``, ``{"$decimal": "text"}``;
- ``{"$hist": class, "uhi": {...}, "raw": {...}}``: a histogram; ``uhi`` is
  boost-histogram's UHI serialisation of its axes, storage type and metadata
  (without the bin contents), ``raw`` the storage's bin contents, flow bins
  included, as the bytes of its view (UHI's own bin contents lose the exact
  state of ``Mean`` storages).

Encoders and decoders stay side by side in this one module, each pair next to
the schema check it must agree with; that is why it is longer than most.
"""

from __future__ import annotations

import base64
import copy
import decimal
import fractions
import json
import math
from collections.abc import Mapping
from typing import Any

import boost_histogram as bh
import numpy as np
from boost_histogram import serialization as uhi_serialization

from saetta.dataset import WorkUnit, file_key
from saetta.errors import AnalysisError, DatasetError
from saetta.execute.outcome import UnitOutcome
from saetta.shards import Shard, Shards
from saetta.tables import Table

__all__ = ["RECORD_VERSION", "RecordError", "decode_result", "encode_result", "record", "unrecord"]

RECORD_VERSION = 1
#: Bins a recorded histogram may hold, flow bins included: far above any real analysis,
#: low enough that a crafted record cannot make saetta allocate all the memory there is.
_MAX_BINS = 50_000_000
_NUMERIC_KINDS = frozenset("biufc")


class RecordError(ValueError):
    """A record that is not what saetta writes; ``str`` says what is wrong with it."""


def _histogram_classes() -> dict[str, type[bh.Histogram[Any]]]:
    import hist

    return {
        "hist.Hist": hist.Hist,
        "hist.NamedHist": hist.NamedHist,
        "boost_histogram.Histogram": bh.Histogram,
    }


# --------------------------------------------------------------------------- encoding


def encode_result(value: Any, where: str = "result") -> Any:
    """The JSON-able form of a result (see the module docstring)."""
    if isinstance(value, bh.Histogram):
        return _encode_histogram(value, where)
    if isinstance(value, Mapping):
        return _encode_dict(value, where)
    if isinstance(value, bool | np.bool_):
        msg = f"{where}: a bool cannot be summed"
        raise RecordError(msg)
    if isinstance(value, int | float):
        return value
    if isinstance(value, Table):
        columns = value.columns.items()
        return {"$table": [[k, _encode_other(v, f"{where}[{k!r}]")] for k, v in columns]}
    return _encode_other(value, where)


def _encode_dict(value: Mapping[Any, Any], where: str) -> dict[str, Any]:
    items = []
    for key, item in value.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            msg = f"{where}: a key {key!r} cannot be recorded; use str or int keys"
            raise RecordError(msg)
        items.append([key, encode_result(item, f"{where}[{key!r}]")])
    return {"$dict": items}


def _encode_other(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        return {
            "$array": _dtype(value.dtype, where),
            "shape": list(value.shape),
            "data": _b64(value),
        }
    if isinstance(value, np.generic):
        return {"$scalar": _dtype(value.dtype, where), "data": _b64(np.asarray(value))}
    if isinstance(value, Shards):
        return {"$shards": value.folder, "files": [[s.name, s.events, s.bytes] for s in value]}
    if isinstance(value, complex):
        return {"$complex": [value.real, value.imag]}
    if isinstance(value, fractions.Fraction):
        return {"$fraction": str(value)}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    msg = f"{where}: a {type(value).__name__} cannot be recorded in the run directory"
    raise RecordError(msg)


def _dtype(dtype: np.dtype[Any], where: str) -> str:
    if dtype.kind not in _NUMERIC_KINDS:
        msg = f"{where}: an array of {dtype} cannot be recorded; only numbers can"
        raise RecordError(msg)
    return str(dtype.str)


def _b64(array: np.ndarray[Any, Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _encode_histogram(h: bh.Histogram[Any], where: str) -> dict[str, Any]:
    name = f"{type(h).__module__.split('.')[0]}.{type(h).__qualname__}"
    if name == "boost_histogram.Histogram" or type(h) is bh.Histogram:
        name = "boost_histogram.Histogram"
    if name not in _histogram_classes():
        msg = f"{where}: a {type(h).__qualname__} cannot be recorded; return a hist.Hist"
        raise RecordError(msg)
    raw = np.asarray(h.view(flow=True))
    return {
        "$hist": name,
        "uhi": _description(h, where),
        "raw": {"shape": list(raw.shape), "data": _b64(raw)},
    }


# Every unit of a run describes the same histograms: UHI's description (axes, storage,
# metadata; milliseconds each) is made once per kind of histogram, in each process.
_DESCRIPTIONS: dict[tuple[Any, ...], dict[str, Any]] = {}
_TEMPLATES: dict[str, bh.Histogram[Any]] = {}
_CACHED = 512


def _description(h: bh.Histogram[Any], where: str) -> dict[str, Any]:
    key = (
        type(h),
        type(h._hist),
        repr(h.axes),
        tuple(repr(axis.__dict__) for axis in h.axes),
        repr(h.__dict__),
    )
    found = _DESCRIPTIONS.get(key)
    if found is not None:
        return found
    try:
        document = uhi_serialization.to_uhi(h)
        document["storage"] = {"type": document["storage"]["type"]}
        plain: dict[str, Any] = json.loads(json.dumps(document, default=_uhi_default))
    except (TypeError, ValueError) as exc:
        msg = f"{where}: the histogram cannot be recorded ({exc})"
        raise RecordError(msg) from exc
    if len(_DESCRIPTIONS) >= _CACHED:
        _DESCRIPTIONS.clear()
    _DESCRIPTIONS[key] = plain
    return plain


def _template(uhi: dict[str, Any]) -> bh.Histogram[Any]:
    """An empty histogram as ``uhi`` describes it (a fresh copy each time)."""
    key = json.dumps(uhi, sort_keys=True)
    found = _TEMPLATES.get(key)
    if found is None:
        found = uhi_serialization.from_uhi(uhi)
        if len(_TEMPLATES) >= _CACHED:
            _TEMPLATES.clear()
        _TEMPLATES[key] = found
    return copy.deepcopy(found)


def _uhi_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    msg = f"{type(value).__name__} in the histogram's metadata is not JSON"
    raise TypeError(msg)


# --------------------------------------------------------------------------- decoding


def decode_result(document: Any, where: str = "result") -> Any:
    """The result a :func:`encode_result` document describes; :class:`RecordError` if malformed."""
    if isinstance(document, bool):
        msg = f"{where}: unexpected true/false"
        raise RecordError(msg)
    if isinstance(document, int | float):
        return document
    if not isinstance(document, dict) or not document:
        msg = f"{where}: expected a number or a tagged object, got {_kind(document)}"
        raise RecordError(msg)
    tag = next(iter(document))
    decoder = _DECODERS.get(tag)
    if decoder is None:
        msg = f"{where}: unknown tag {tag[:40]!r}"
        raise RecordError(msg)
    return decoder(document, where)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require(document: dict[str, Any], keys: set[str], where: str) -> None:
    if set(document) != keys:
        msg = f"{where}: expected the keys {sorted(keys)}, got {sorted(document)[:8]}"
        raise RecordError(msg)


def _decode_dict(document: dict[str, Any], where: str) -> dict[Any, Any]:
    _require(document, {"$dict"}, where)
    items = document["$dict"]
    if not isinstance(items, list):
        msg = f"{where}: $dict must hold a list of [key, value] pairs"
        raise RecordError(msg)
    out: dict[Any, Any] = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 2):
            msg = f"{where}: $dict must hold [key, value] pairs"
            raise RecordError(msg)
        key, value = item
        if isinstance(key, bool) or not isinstance(key, str | int) or key in out:
            msg = f"{where}: a key must be a str or int, once"
            raise RecordError(msg)
        out[key] = decode_result(value, f"{where}[{key!r}]")
    return out


def _numeric_dtype(text: Any, where: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        msg = f"{where}: {str(text)[:40]!r} is not a numeric dtype"
        raise RecordError(msg)
    return dtype


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not (
        isinstance(value, list)
        and len(value) <= 32
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)
    ):
        msg = f"{where}: shape must be a list of non-negative integers"
        raise RecordError(msg)
    if math.prod(value) > _MAX_BINS:
        msg = f"{where}: shape {value} is larger than saetta records"
        raise RecordError(msg)
    return tuple(value)


def _bytes(text: Any, size: int, where: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except ValueError:
        data = None
    if data is None or len(data) != size:
        msg = f"{where}: data is not base64 of {size} bytes"
        raise RecordError(msg)
    return data


def _decode_array(document: dict[str, Any], where: str) -> np.ndarray[Any, Any]:
    _require(document, {"$array", "shape", "data"}, where)
    dtype = _numeric_dtype(document["$array"], where)
    shape = _shape(document["shape"], where)
    data = _bytes(document["data"], math.prod(shape) * dtype.itemsize, where)
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _decode_scalar(document: dict[str, Any], where: str) -> Any:
    _require(document, {"$scalar", "data"}, where)
    dtype = _numeric_dtype(document["$scalar"], where)
    return np.frombuffer(_bytes(document["data"], dtype.itemsize, where), dtype=dtype)[0]


def _decode_table(document: dict[str, Any], where: str) -> Table:
    _require(document, {"$table"}, where)
    items = document["$table"]
    if not isinstance(items, list) or not all(
        isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) and isinstance(i[1], dict)
        for i in items
    ):
        msg = f"{where}: $table must list [name, array] pairs"
        raise RecordError(msg)
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        msg = f"{where}: $table names a column twice"
        raise RecordError(msg)
    columns = {name: _decode_array(array, f"{where}[{name!r}]") for name, array in items}
    try:
        return Table(columns)
    except AnalysisError as exc:
        raise RecordError(f"{where}: {exc}") from None


def _decode_shards(document: dict[str, Any], where: str) -> Shards:
    _require(document, {"$shards", "files"}, where)
    folder, files = document["$shards"], document["files"]
    if not isinstance(folder, str) or not isinstance(files, list):
        msg = f"{where}: $shards must name a folder and list its files"
        raise RecordError(msg)
    shards: dict[str, Shard] = {}
    for item in files:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and item[0] not in shards
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in item[1:])
        ):
            msg = f"{where}: each shard is [name, events, bytes], each name once"
            raise RecordError(msg)
        shards[item[0]] = Shard(item[0], item[1], item[2])
    return Shards(folder, shards)


def _decode_complex(document: dict[str, Any], where: str) -> complex:
    _require(document, {"$complex"}, where)
    parts = document["$complex"]
    if not (
        isinstance(parts, list)
        and len(parts) == 2
        and all(isinstance(p, int | float) and not isinstance(p, bool) for p in parts)
    ):
        msg = f"{where}: $complex must be [re, im]"
        raise RecordError(msg)
    return complex(parts[0], parts[1])


def _decode_fraction(document: dict[str, Any], where: str) -> fractions.Fraction:
    _require(document, {"$fraction"}, where)
    try:
        return fractions.Fraction(str(document["$fraction"])[:200])
    except (ValueError, ZeroDivisionError) as exc:
        msg = f"{where}: not a fraction"
        raise RecordError(msg) from exc


def _decode_decimal(document: dict[str, Any], where: str) -> decimal.Decimal:
    _require(document, {"$decimal"}, where)
    try:
        return decimal.Decimal(str(document["$decimal"])[:200])
    except decimal.InvalidOperation as exc:
        msg = f"{where}: not a decimal"
        raise RecordError(msg) from exc


_AXIS_TYPES = frozenset({"regular", "variable", "category_int", "category_str", "boolean"})


def _decode_histogram(document: dict[str, Any], where: str) -> bh.Histogram[Any]:
    _require(document, {"$hist", "uhi", "raw"}, where)
    cls = (
        _histogram_classes().get(document["$hist"]) if isinstance(document["$hist"], str) else None
    )
    uhi, raw = document["uhi"], document["raw"]
    if cls is None or not isinstance(uhi, dict) or not isinstance(raw, dict):
        msg = f"{where}: not a histogram record"
        raise RecordError(msg)
    axes = uhi.get("axes")
    if not isinstance(axes, list) or not 1 <= len(axes) <= 32:
        msg = f"{where}: a histogram needs 1 to 32 axes"
        raise RecordError(msg)
    bins = 1
    for axis in axes:
        if not isinstance(axis, dict) or axis.get("type") not in _AXIS_TYPES:
            msg = f"{where}: unknown axis {str(axis)[:60]}"
            raise RecordError(msg)
        default = 2 if axis["type"] == "boolean" else None
        extent = axis.get("bins", axis.get("edges", axis.get("categories", default)))
        size = len(extent) if isinstance(extent, list) else extent
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            msg = f"{where}: an axis has no valid number of bins"
            raise RecordError(msg)
        bins *= size + 2
    _require(raw, {"shape", "data"}, f"{where} raw")
    shape = _shape(raw["shape"], where)
    if bins > _MAX_BINS:
        msg = f"{where}: {bins:,} bins is more than saetta records"
        raise RecordError(msg)
    try:
        histogram = _template(uhi)
        view = np.asarray(histogram.view(flow=True))
    except Exception as exc:  # untrusted input: any failure means a malformed record
        msg = f"{where}: not a valid histogram ({type(exc).__name__})"
        raise RecordError(msg) from exc
    if view.shape != shape:
        msg = f"{where}: bin contents of shape {shape} do not fit the axes {view.shape}"
        raise RecordError(msg)
    data = _bytes(raw["data"], view.nbytes, where)
    histogram.view(flow=True)[...] = np.frombuffer(data, dtype=view.dtype).reshape(view.shape)
    return histogram if cls is bh.Histogram else cls(histogram)


_DECODERS = {
    "$dict": _decode_dict,
    "$array": _decode_array,
    "$scalar": _decode_scalar,
    "$complex": _decode_complex,
    "$shards": _decode_shards,
    "$table": _decode_table,
    "$fraction": _decode_fraction,
    "$decimal": _decode_decimal,
    "$hist": _decode_histogram,
}


# --------------------------------------------------------------------------- unit records


def record(outcome: UnitOutcome, identity: tuple[int, str]) -> str:
    """One finished unit as one line of JSON (no newline); ``identity`` is its file's
    (size, version) when the unit read it."""
    unit = outcome.unit
    document = {
        "saetta_record": RECORD_VERSION,
        "unit": [file_key(unit.path), unit.tree, unit.start, unit.stop, unit.format],
        "file": [identity[0], identity[1]],
        "columns": list(outcome.columns),
        "bytes_read": outcome.bytes_read,
        "seconds": outcome.seconds,
        "cache": [outcome.cache_hits, outcome.cache_misses],
        "peak_memory": outcome.peak_memory,
        "data_cache": list(outcome.data_cache),
        "worker": outcome.worker,
        "started_at": outcome.started_at,
        "result": encode_result(outcome.result),
    }
    return json.dumps(document, separators=(",", ":"))


_RECORD_KEYS = frozenset(
    {
        "saetta_record", "unit", "file", "columns", "bytes_read", "seconds", "cache",
        "peak_memory", "data_cache", "worker", "started_at", "result",
    }
)  # fmt: skip


def unrecord(line: str | bytes) -> tuple[UnitOutcome, tuple[int, str]]:
    """The outcome and file identity of one :func:`record` line; :class:`RecordError` if malformed."""
    try:
        document = json.loads(line)
    except (ValueError, RecursionError) as exc:
        msg = f"not JSON ({type(exc).__name__})"
        raise RecordError(msg) from exc
    if not isinstance(document, dict):
        msg = "not a saetta unit record"
        raise RecordError(msg)
    if document.get("saetta_record") != RECORD_VERSION:
        msg = f"record version {str(document.get('saetta_record'))[:20]}, not {RECORD_VERSION}"
        raise RecordError(msg)
    if set(document) != _RECORD_KEYS:
        msg = f"unexpected keys {sorted(set(document) ^ _RECORD_KEYS)[:5]}"
        raise RecordError(msg)
    fields, identity = document["unit"], document["file"]
    if not (isinstance(identity, list) and len(identity) == 2 and isinstance(identity[1], str)):
        msg = "file must be [size, version]"
        raise RecordError(msg)
    if not (
        isinstance(fields, list)
        and len(fields) == 5
        and all(isinstance(f, str) for f in (fields[0], fields[1], fields[4]))
    ):
        msg = "unit must be [path, tree, start, stop, format]"
        raise RecordError(msg)
    try:
        unit = WorkUnit(
            fields[0],
            fields[1],
            _integer(fields[2], "start"),
            _integer(fields[3], "stop"),
            fields[4],
        )
    except DatasetError as exc:  # an empty or negative range
        raise RecordError(str(exc)) from exc
    columns, cache, blocks = document["columns"], document["cache"], document["data_cache"]
    if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        msg = "columns must be a list of names"
        raise RecordError(msg)
    if not (isinstance(cache, list) and len(cache) == 2):
        msg = "cache must be [hits, misses]"
        raise RecordError(msg)
    if not (isinstance(blocks, list) and len(blocks) == 4):
        msg = "data_cache must hold 4 counts"
        raise RecordError(msg)
    if not isinstance(document["worker"], str):
        msg = "worker must be a string"
        raise RecordError(msg)
    outcome = UnitOutcome(
        unit,
        result=decode_result(document["result"]),
        columns=tuple(columns),
        bytes_read=_integer(document["bytes_read"], "bytes_read"),
        seconds=_number(document["seconds"], "seconds"),
        cache_hits=_integer(cache[0], "cache hits"),
        cache_misses=_integer(cache[1], "cache misses"),
        peak_memory=_integer(document["peak_memory"], "peak_memory"),
        data_cache=tuple(_integer(n, "data_cache") for n in blocks),  # type: ignore[arg-type]
        worker=document["worker"],
        started_at=_number(document["started_at"], "started_at"),
    )
    return outcome, (_integer(identity[0], "file size"), identity[1])


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{name} must be a non-negative integer"
        raise RecordError(msg)
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{name} must be a number"
        raise RecordError(msg)
    return float(value)
