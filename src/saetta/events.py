"""Stage: events (layer 4) — a lazy, NanoAOD-shaped view of one work unit.

:func:`build_events` turns a file's flat branch list into an awkward record
array whose buffers are *virtual*: nothing is read until the analysis touches
it, and each column is read at most once per unit.

NanoAOD naming becomes structure:

- ``nJet`` + ``Jet_pt``, ``Jet_eta``, … → ``events.Jet``, a jagged collection;
- ``MET_pt``, ``MET_phi`` → ``events.MET``, one record per event;
- anything else (``run``, ``genWeight``, ``nJet``) stays a plain field.

Records with ``pt, eta, phi, mass`` get the ``vector`` package's Momentum4D
behaviour (``a + b``, ``.mass``, ``.deltaR``); with ``pt, phi`` only,
Momentum2D.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import vector

from saetta._typing import Column, Jagged, Reader
from saetta.errors import FormatError
from saetta.storage import redact

__all__ = ["NanoLayout", "UnitColumns", "build_events"]

_BEHAVIOR: dict[Any, Any] = dict(vector.backends.awkward.behavior)
# Field names vector reads as coordinates, other than pt and phi.
_COORDINATES = frozenset(
    {"x", "y", "z", "t", "rho", "eta", "theta", "tau", "px", "py", "pz"}
    | {"E", "e", "energy", "M", "m", "mass"}
)


@dataclass(frozen=True, slots=True)
class NanoLayout:
    """How a flat branch list groups into collections, records and plain fields."""

    collections: Mapping[str, tuple[str, tuple[Column, ...]]]  # name -> (counter, fields)
    records: Mapping[str, tuple[Column, ...]]
    plain: tuple[Column, ...]

    @classmethod
    def of(cls, columns: Mapping[str, Column]) -> NanoLayout:
        by_prefix: dict[str, list[Column]] = defaultdict(list)
        for column in columns.values():
            prefix, sep, rest = column.name.partition("_")
            if sep and prefix and rest:
                by_prefix[prefix].append(column)
        collections: dict[str, tuple[str, tuple[Column, ...]]] = {}
        records: dict[str, tuple[Column, ...]] = {}
        grouped: set[str] = set()
        for prefix, members in by_prefix.items():
            if prefix in columns:
                continue
            counter = columns.get(f"n{prefix}")
            jagged = tuple(c for c in members if c.jagged)
            if counter is not None and not counter.jagged and jagged:
                collections[prefix] = (counter.name, jagged)
                grouped.update(c.name for c in jagged)
            elif len(members) > 1 and not any(c.jagged for c in members):
                records[prefix] = tuple(members)
                grouped.update(c.name for c in members)
        plain = tuple(c for c in columns.values() if c.name not in grouped and not c.jagged)
        return cls(collections, records, plain)


@dataclass
class UnitColumns:
    """The columns of one unit, read on first request and kept for the unit's life.

    ``touched`` lists, in order, every column the analysis made it read.
    """

    reader: Reader
    start: int
    stop: int
    loaded: dict[str, Any] = field(default_factory=dict)
    touched: list[str] = field(default_factory=list)

    def prefetch(self, names: Sequence[str]) -> None:
        """Read several columns in one call (the reader may overlap their decompression)."""
        missing = [n for n in names if n not in self.loaded and n in self.reader.columns]
        if missing:
            self.loaded.update(self.reader.read(missing, self.start, self.stop))

    def get(self, name: str) -> Any:
        if name not in self.touched:
            self.touched.append(name)
        if name not in self.loaded:
            self.loaded.update(self.reader.read([name], self.start, self.stop))
        return self.loaded[name]


def build_events(cache: UnitColumns, *, attrs: Mapping[str, Any] | None = None) -> ak.Array:
    """A lazy NanoAOD-style record array over the unit behind ``cache``.

    Examples
    --------
    >>> events = build_events(cache)  # doctest: +SKIP
    >>> events.Jet.pt      # reads nJet and Jet_pt, nothing else  # doctest: +SKIP
    """
    form, sources = _form(tuple(cache.reader.columns.values()))
    length = cache.stop - cache.start
    buffers: dict[str, Callable[[], Any]] = {}
    for key, source, argument in sources:
        if source == "offsets":
            buffers[key] = functools.partial(_offsets, cache, argument)
        elif source == "content":
            column, counter = argument
            buffers[key] = functools.partial(_content, cache, column, counter)
        else:
            buffers[key] = functools.partial(_flat, cache, argument.name, argument.dtype, length)
    return ak.from_buffers(
        form,
        length,
        buffers,
        buffer_key="{form_key}-{attribute}",
        behavior=_BEHAVIOR,
        attrs=dict(attrs or {}),
    )


# (buffer key, "offsets" | "content" | "flat", what to read)
_Source = tuple[str, str, Any]


@functools.lru_cache(maxsize=64)
def _form(columns: tuple[Column, ...]) -> tuple[ak.forms.Form, tuple[_Source, ...]]:
    """The record form of a file's columns, and where each of its buffers comes from.

    Worked out once per set of columns, not once per unit: every unit of a file, and
    of the files written alike, has the same form.
    """
    layout = NanoLayout.of({c.name: c for c in columns})
    sources: list[_Source] = []
    fields: list[str] = []
    contents: list[dict[str, Any]] = []

    def flat(column: Column) -> dict[str, Any]:
        key = f"b{len(sources)}"
        sources.append((f"{key}-data", "flat", column))
        return {"class": "NumpyArray", "primitive": column.dtype, "form_key": key}

    for name, (counter, members) in sorted(layout.collections.items()):
        key = f"b{len(sources)}"
        sources.append((f"{key}-offsets", "offsets", counter))
        sub_fields = [c.name.partition("_")[2] for c in members]
        sub_contents = []
        for c in members:
            ckey = f"b{len(sources)}"
            sources.append((f"{ckey}-data", "content", (c, counter)))
            sub_contents.append({"class": "NumpyArray", "primitive": c.dtype, "form_key": ckey})
        record: dict[str, Any] = {
            "class": "RecordArray",
            "fields": sub_fields,
            "contents": sub_contents,
            "parameters": _record_parameters(name, sub_fields),
        }
        fields.append(name)
        contents.append(
            {"class": "ListOffsetArray", "offsets": "i64", "content": record, "form_key": key}
        )
    for name, members in sorted(layout.records.items()):
        sub_fields = [c.name.partition("_")[2] for c in members]
        fields.append(name)
        contents.append(
            {
                "class": "RecordArray",
                "fields": sub_fields,
                "contents": [flat(c) for c in members],
                "parameters": _record_parameters(name, sub_fields),
            }
        )
    for c in layout.plain:
        fields.append(c.name)
        contents.append(flat(c))
    form = ak.forms.from_dict({"class": "RecordArray", "fields": fields, "contents": contents})
    return form, tuple(sources)


def _record_parameters(name: str, fields: Sequence[str]) -> dict[str, Any]:
    have = set(fields)
    # vector refuses a record with a coordinate beyond the ones it is built on (a Jet
    # with pt, phi and mass but no eta, as a damaged file may give): leave it plain.
    if {"pt", "eta", "phi", "mass"} <= have and not have & (_COORDINATES - {"eta", "mass"}):
        return {"__record__": "Momentum4D", "collection": name}
    if {"pt", "phi"} <= have and not have & _COORDINATES:
        return {"__record__": "Momentum2D", "collection": name}
    return {"collection": name}


def _flat(cache: UnitColumns, name: str, dtype: str, length: int) -> np.ndarray:
    values = np.asarray(cache.get(name), dtype=dtype)
    if len(values) != length:
        msg = (
            f"{name} has {len(values)} entries in [{cache.start}:{cache.stop}] "
            f"of {redact(cache.reader.path)}, expected {length}"
        )
        raise FormatError(msg, path=cache.reader.path, tree=cache.reader.tree)
    return values


def _offsets(cache: UnitColumns, counter: str) -> np.ndarray:
    key = f"{counter}.offsets"
    if key not in cache.loaded:
        counts = np.asarray(cache.get(counter))
        length = cache.stop - cache.start
        # A damaged counter: offsets that shrink would send compiled kernels out of bounds.
        if len(counts) != length or (length and counts.min() < 0):
            what = f"{len(counts)} entries" if len(counts) != length else "a negative count"
            msg = (
                f"{counter} has {what} in [{cache.start}:{cache.stop}] "
                f"of {redact(cache.reader.path)}, expected {length} counts of 0 or more"
            )
            raise FormatError(msg, path=cache.reader.path, tree=cache.reader.tree)
        fresh = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=fresh[1:])
        cache.loaded[key] = fresh
    offsets: np.ndarray = cache.loaded[key]
    return offsets


def _content(cache: UnitColumns, column: Column, counter: str) -> np.ndarray:
    jagged: Jagged = cache.get(column.name)
    values = jagged.content[jagged.offsets[0] : jagged.offsets[-1]]
    expected = int(_offsets(cache, counter)[-1])
    if len(values) != expected:
        msg = (
            f"{column.name} holds {len(values)} values in [{cache.start}:{cache.stop}] "
            f"of {redact(cache.reader.path)} but {counter} counts {expected}"
        )
        raise FormatError(msg, path=cache.reader.path, tree=cache.reader.tree)
    return np.asarray(values, dtype=column.dtype)
