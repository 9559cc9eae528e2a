"""Stage: output (layer 8) — a result as saetta's JSON document (see :mod:`saetta.output`)."""

from __future__ import annotations

import json
from typing import Any

import boost_histogram as bh
import numpy as np

from saetta._version import __version__
from saetta.errors import SaettaError
from saetta.execute import Result
from saetta.output.walk import STORAGES, flatten, is_category
from saetta.shards import Shards
from saetta.tables import Table

__all__ = ["to_json"]


def to_json(result: Result) -> dict[str, Any]:
    """The JSON document described in this module's docstring.

    Raises
    ------
    SaettaError
        A value that JSON cannot hold, named by its key.
    """
    histograms: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, value in flatten(result):
        if isinstance(value, bh.Histogram):
            histograms[key] = _histogram_json(value)
            continue
        if isinstance(value, Shards):
            plain: Any = {
                "folder": value.folder,
                "shards": [{"name": s.name, "events": s.events, "bytes": s.bytes} for s in value],
            }
        elif isinstance(value, Table):
            plain = {"table": value.to_dict()}
        else:
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
        "metadata": result.metadata,
    }


def _axis_json(axis: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": axis.name, "label": axis.label}
    if is_category(axis):
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
        "storage": STORAGES.get(h.storage_type, h.storage_type.__name__.lower()),
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
