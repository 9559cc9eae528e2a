"""Stage: output (layer 8) — walking a result: its histograms and values by "/"-joined key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import boost_histogram as bh

__all__ = ["RECORD", "STORAGES", "flatten", "is_category"]

#: The storage names of the JSON output (and of ``saetta inspect``).
STORAGES = {
    bh.storage.Double: "double",
    bh.storage.Int64: "int64",
    bh.storage.AtomicInt64: "atomic_int64",
    bh.storage.Unlimited: "unlimited",
    bh.storage.Weight: "weight",
    bh.storage.Mean: "mean",
    bh.storage.WeightedMean: "weighted_mean",
}
#: The name of the TObjString holding the JSON document (without histograms) in a ROOT output.
RECORD = "saetta"


def flatten(mapping: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a nested result, with its key path (``"cutflow/h"``)."""
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}/")
        else:
            yield name, value


def is_category(axis: Any) -> bool:
    """Whether a histogram axis is a category axis (string or integer)."""
    return isinstance(axis, bh.axis.StrCategory | bh.axis.IntCategory)
