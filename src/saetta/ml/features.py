"""Stage: ML (layer 7) — what a network sees of an event, and which split the event is in.

:class:`Features` turns a unit's events into fixed-shape arrays:

- a flat feature (``MET_pt``, or a derived per-event value) is one column of
  ``"flat"``, shape ``(n, k)``, in the order given;
- the features of a padded collection (``Jet_pt, Jet_eta`` with ``pad={"Jet": 6}``)
  are ``"Jet"``, shape ``(n, 6, f)``, with ``"Jet_mask"`` ``(n, 6)`` true where an
  object exists: the first 6 objects in the file's order (NanoAOD's: by pt), the
  rest filled with ``pad_value``;
- ``"target"`` and ``"weight"`` (when named) keep their own numeric type, except
  bool (as int64) and unsigned integers (as int64), which torch lacks.

Features are float32 unless ``dtype`` says otherwise; a NaN in the data stays NaN
(padding never is). A derived feature comes from ``derive(events)``, a function
returning ``{name: array}`` (per-event or per-object, awkward or numpy); a name
``C_x`` of a per-object feature puts it in collection ``C``.

:func:`split_codes` gives each event its split from its identity alone: the
file's name (not its folder nor its URL, so a copy on another server is split the
same way) and its entry number, hashed with SplitMix64 to a uniform number in
[0, 1) and cut at the cumulative fractions. It depends on nothing else: not the
seed, the chunk size, the rank count nor the file order, so an event is in the
same split on every run, and no event is ever in two.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import awkward as ak
import cloudpickle
import numpy as np

from saetta._typing import Column
from saetta.errors import AnalysisError, DatasetError
from saetta.systematics import splitmix64, stream_of

__all__ = ["Features", "Split", "split_codes"]

Derive = Callable[[Any], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Split:
    """Named fractions of the events, e.g. ``{"train": 0.8, "val": 0.2}``, summing to 1."""

    fractions: Mapping[str, float]

    @classmethod
    def of(cls, spec: Mapping[str, float] | None) -> Split:
        fractions = dict(spec) if spec else {"train": 1.0}
        bad = {k: v for k, v in fractions.items() if not isinstance(v, int | float) or v <= 0}
        if bad or not all(isinstance(k, str) and k for k in fractions):
            msg = f"split: give names and positive fractions, e.g. {{'train': 0.8, 'val': 0.2}}, not {spec!r}"
            raise DatasetError(msg)
        total = math.fsum(fractions.values())
        if abs(total - 1) > 1e-9:
            msg = f"split: the fractions add up to {total:g}, not 1"
            raise DatasetError(msg)
        return cls(fractions)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.fractions)

    def index(self, name: str) -> int:
        if name not in self.fractions:
            msg = f"no split {name!r}; the splits are {', '.join(map(repr, self.fractions))}"
            raise DatasetError(msg)
        return self.names.index(name)

    @property
    def cuts(self) -> np.ndarray:
        """Upper edges of all splits but the last, in [0, 1)."""
        return np.cumsum(list(self.fractions.values()))[:-1]


def split_codes(path: str, start: int, stop: int, split: Split) -> np.ndarray:
    """The split index (``uint8``) of entries ``[start, stop)`` of the file at ``path``."""
    name = os.path.basename(urlsplit(path).path if "://" in path else path)
    entries = np.arange(start, stop, dtype=np.uint64)
    with np.errstate(over="ignore"):
        key = splitmix64(splitmix64(entries) ^ np.uint64(stream_of(name)))
    uniform = (key >> np.uint64(11)).astype(np.float64) * 2.0**-53
    codes: np.ndarray = np.searchsorted(split.cuts, uniform, side="right").astype(np.uint8)
    return codes


@dataclass(frozen=True)
class Features:
    """Which fields become which arrays (see the module docstring); built by :meth:`of`."""

    flat: tuple[str, ...]
    padded: Mapping[str, tuple[int, tuple[str, ...]]]  # collection -> (length, feature names)
    target: str | None = None
    weight: str | None = None
    derive: Derive | None = field(default=None, compare=False)
    dtype: str = "float32"
    pad_value: float = 0.0
    branches: tuple[str, ...] = ()  # the file's branches these need (derive may read more)

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        columns: Mapping[str, Column],
        *,
        pad: Mapping[str, int] | None = None,
        target: str | None = None,
        weight: str | None = None,
        derive: Derive | None = None,
        dtype: str = "float32",
        pad_value: float = 0.0,
    ) -> Features:
        """Check ``names`` against the dataset's ``columns`` and group them.

        A name that is not a branch must come from ``derive``; without one it is a
        :class:`DatasetError` with the nearest branch names.
        """
        pad = dict(pad or {})
        for collection, length in pad.items():
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                msg = f"pad[{collection!r}] must be a positive number of objects, not {length!r}"
                raise DatasetError(msg)
        if isinstance(names, str):
            names = [names]
        if not names:
            msg = "give at least one feature"
            raise DatasetError(msg)
        if len(set(names)) != len(names):
            msg = f"a feature is named twice in {list(names)}"
            raise DatasetError(msg)
        flat: list[str] = []
        padded: dict[str, list[str]] = {c: [] for c in pad}
        for name in names:
            column = columns.get(name)
            if column is None:
                if derive is None:
                    raise _missing(name, columns)
                collection = name.partition("_")[0]
                # A derived name is per-object if its collection is padded; checked per unit.
                (padded[collection] if collection in pad else flat).append(name)
            elif column.jagged:
                collection = name.partition("_")[0]
                if collection not in pad:
                    msg = (
                        f"{name} holds a list per event: give its length, "
                        f"pad={{{collection!r}: 6}}, to pad or cut it to 6 objects"
                    )
                    raise DatasetError(msg)
                padded[collection].append(name)
            else:
                flat.append(name)
        for collection, fields in padded.items():
            if not fields:
                msg = f"pad names {collection!r}, but no feature of it is asked for"
                raise DatasetError(msg)
        for role, named in (("target", target), ("weight", weight)):
            if named is not None and named not in columns and derive is None:
                raise _missing(named, columns, role)
            if named is not None and named in columns and columns[named].jagged:
                msg = f"{role} {named!r} holds a list per event; a {role} is one number per event"
                raise DatasetError(msg)
        needed = [*names, *(n for n in (target, weight) if n)]
        branches = [n for n in needed if n in columns]
        counters = {f"n{n.partition('_')[0]}" for n in branches if columns[n].jagged}
        branches += sorted(c for c in counters if c in columns)
        return cls(
            flat=tuple(flat),
            padded={c: (pad[c], tuple(f)) for c, f in padded.items()},
            target=target,
            weight=weight,
            derive=derive,
            dtype=dtype,
            pad_value=pad_value,
            branches=tuple(branches),
        )

    def arrays(self, events: Any) -> dict[str, np.ndarray]:
        """The arrays of every event of ``events`` (see the module docstring)."""
        derived: object = self.derive(events) if self.derive is not None else {}
        if not isinstance(derived, Mapping):
            msg = f"derive returned a {type(derived).__name__}, not a dict of arrays"
            raise AnalysisError(msg)
        n = len(events)
        out: dict[str, np.ndarray] = {}
        if self.flat:
            columns = [self._flat(_field(events, derived, name), name, n) for name in self.flat]
            out["flat"] = np.stack(columns, axis=1).astype(self.dtype, copy=False)
        for collection, (length, names) in self.padded.items():
            stacked = np.empty((n, length, len(names)), dtype=self.dtype)
            counts: np.ndarray | None = None
            for k, name in enumerate(names):
                values = _field(events, derived, name)
                if _depth(values) != 2:
                    msg = f"{name} must hold a list of numbers per event, to pad into {collection}"
                    raise AnalysisError(msg)
                these = np.asarray(ak.num(values, axis=1), dtype=np.int64)
                if counts is None:
                    counts = these
                elif not np.array_equal(counts, these):
                    msg = f"{name} holds other numbers of objects than {names[0]}"
                    raise AnalysisError(msg)
                flat = np.asarray(ak.to_numpy(ak.flatten(values, axis=1)))
                stacked[:, :, k] = _padded(flat, counts, length, self.pad_value)
            out[collection] = stacked
            out[f"{collection}_mask"] = np.arange(length) < np.asarray(counts)[:, None]
        for role, named in (("target", self.target), ("weight", self.weight)):
            if named is not None:
                column = np.asarray(self._flat(_field(events, derived, named), named, n))
                if column.dtype == np.bool_ or column.dtype.kind == "u":
                    column = column.astype(np.int64)
                out[role] = column
        return out

    def _flat(self, values: Any, name: str, n: int) -> np.ndarray:
        if _depth(values) != 1:
            msg = f"{name} must hold one number per event"
            raise AnalysisError(msg)
        flat = ak.to_numpy(values) if isinstance(values, ak.Array) else np.asarray(values)
        if len(flat) != n:
            msg = f"{name} holds {len(flat)} values for {n} events"
            raise AnalysisError(msg)
        return flat

    def __getstate__(self) -> dict[str, Any]:
        # Loader workers get a pickle: a lambda of a notebook must travel too.
        state = {f: getattr(self, f) for f in self.__dataclass_fields__}
        state["derive"] = cloudpickle.dumps(self.derive) if self.derive is not None else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        derive = state.pop("derive")
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "derive", cloudpickle.loads(derive) if derive else None)


def _padded(flat: np.ndarray, counts: np.ndarray, length: int, fill: float) -> np.ndarray:
    """``(events, length)``: each event's first ``length`` values of ``flat`` (its objects,
    event after event, ``counts`` each), then ``fill``. A numpy gather: awkward's
    pad_none, fill_none and to_numpy (through float64) cost 3.6 times as much."""
    starts = np.cumsum(counts) - counts
    slots = np.arange(length)
    present = slots < counts[:, None]
    if not len(flat):
        return np.full((len(counts), length), fill, dtype=np.float64)
    index = np.minimum(starts[:, None] + slots, len(flat) - 1)
    return np.where(present, flat[index], fill)


def _field(events: Any, derived: Mapping[str, Any], name: str) -> Any:
    if name in derived:
        return derived[name]
    if name in events.fields:
        return events[name]
    prefix, _, rest = name.partition("_")
    if prefix in events.fields and rest in events[prefix].fields:
        return events[prefix][rest]
    msg = f"no field {name!r} in the events, nor returned by derive"
    raise AnalysisError(msg)


def _depth(values: Any) -> int:
    if isinstance(values, ak.Array):
        return int(values.ndim)
    return int(np.ndim(values))


def _missing(name: str, columns: Mapping[str, Column], role: str = "feature") -> DatasetError:
    near = difflib.get_close_matches(name, sorted(columns), n=3)
    hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
    return DatasetError(f"{role} {name!r} is not a branch of the dataset{hint}")
