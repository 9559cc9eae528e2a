"""Stage: accumulate (layer 5) — how partial results of work units merge into one.

An analysis returns a *result*: a ``hist.Hist`` (or any boost-histogram), a
number, a numpy array, the :class:`~saetta.shards.Shards` it wrote, a
:class:`~saetta.tables.Table` of rows it found, or a dict whose values are
results. Two results of the same shape merge by summing: histograms bin by bin,
numbers and arrays element-wise, shards by listing both (never one file twice),
tables by appending rows, dicts key by key (a key present on one side only is kept).

Merging happens in work-unit order, so the outcome does not depend on the
executor or on which unit finished first.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from typing import Any

import boost_histogram as bh
import numpy as np

from saetta.errors import AnalysisError
from saetta.shards import Shards
from saetta.tables import Table

__all__ = ["check", "compatible", "merge"]

_KINDS = "hist.Hist, numbers, numpy arrays, saetta.Shards, saetta.Table, or dicts of them"


def check(result: Any, where: str = "result") -> None:
    """Raise :class:`AnalysisError` unless ``result`` is something saetta can merge."""
    if isinstance(result, bh.Histogram | numbers.Number | np.ndarray | Shards | Table):
        if isinstance(result, bool | np.bool_):
            msg = f"{where} is a bool, which cannot be summed; return a count instead"
            raise AnalysisError(msg, key=where)
        return
    if isinstance(result, Mapping):
        for key, value in result.items():
            check(value, f"{where}[{key!r}]")
        return
    msg = f"{where} is a {type(result).__name__}; an analysis must return {_KINDS}"
    raise AnalysisError(msg, key=where)


def merge(total: Any, part: Any, where: str = "result") -> Any:
    """Add ``part`` into ``total`` and return the sum; ``total`` may be updated in place.

    ``part`` is never modified. Pass ``copy.deepcopy`` of the first partial as
    ``total`` if the caller must keep it intact. Two results that cannot be
    merged raise :class:`AnalysisError` before anything is added, so ``total``
    is left as it was.
    """
    if total is None:
        return copy.deepcopy(part)
    compatible(total, part, where)
    return _add(total, part)


def compatible(total: Any, part: Any, where: str = "result") -> None:
    """Raise :class:`AnalysisError` unless ``part`` can be merged into ``total``."""
    if isinstance(total, Mapping) and isinstance(part, Mapping):
        for key, value in part.items():
            if key in total and total[key] is not None:
                compatible(total[key], value, f"{where}[{key!r}]")
        return
    if isinstance(total, bh.Histogram) and isinstance(part, bh.Histogram):
        if total.axes != part.axes:
            msg = f"{where}: histograms of different binning cannot be merged"
            raise AnalysisError(msg, key=where)
        if total.storage_type is not part.storage_type:
            msg = (
                f"{where}: a {total.storage_type.__name__} histogram cannot be merged with "
                f"a {part.storage_type.__name__} one"
            )
            raise AnalysisError(msg, key=where)
        return
    if isinstance(total, np.ndarray) and isinstance(part, np.ndarray):
        if total.shape != part.shape:
            msg = f"{where}: arrays of shapes {total.shape} and {part.shape} cannot be merged"
            raise AnalysisError(msg, key=where)
        return
    if isinstance(total, numbers.Number) and isinstance(part, numbers.Number):
        return
    if isinstance(total, Shards) and isinstance(part, Shards):
        total.compatible(part, where)
        return
    if isinstance(total, Table) and isinstance(part, Table):
        total.compatible(part, where)
        return
    msg = (
        f"{where}: cannot merge a {type(total).__name__} with a {type(part).__name__}; "
        f"every unit must return the same kinds ({_KINDS})"
    )
    raise AnalysisError(msg, key=where)


def _add(total: Any, part: Any) -> Any:
    if total is None:
        return copy.deepcopy(part)
    if isinstance(total, Mapping):
        out = dict(total)
        for key, value in part.items():
            out[key] = _add(out.get(key), value)
        return out
    if isinstance(total, bh.Histogram):
        total += part
        return total
    return total + part
