"""Stage: output (layer 8) — write a :class:`~saetta.Result` to ROOT or JSON.

ROOT (``.root``): every histogram as a ROOT histogram (``TH1D`` for one axis),
nested dicts as directories (``cutflow/h``), and a ``TObjString`` named
``saetta`` holding the JSON document below without the histograms.

JSON (``.json``), one document::

    {
      "saetta_version": "0.1.0",
      "complete": true,                     # false: some units failed (see report.failures)
      "report": {...},                      # RunReport.to_dict(): events, bytes, time, failures
      "histograms": {                       # keys: result keys, "/"-joined for nested dicts
        "q1_met": {
          "axes": [{"type": "regular", "name": "x", "label": "...",
                    "bins": 100, "lo": 0.0, "hi": 200.0}],  # or "type": "variable", "edges": [...]
          "values": [...],                  # bins + 2 per axis: underflow first, overflow last
          "variances": [...]                # sum of squared weights, same layout
        }
      },
      "values": {"n_selected": 1234}        # numbers and arrays, same key scheme
    }
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boost_histogram as bh
import numpy as np

from saetta._version import __version__
from saetta.errors import SaettaError
from saetta.execute import Result

__all__ = ["save", "to_json"]


def save(result: Result, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path``; the suffix (``.root`` or ``.json``) picks the format."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in {".root", ".json"}:
        msg = f"cannot write {target}: give a .root or .json output file"
        raise SaettaError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    if suffix == ".json":
        temporary.write_text(json.dumps(to_json(result), indent=1) + "\n")
    else:
        _write_root(result, temporary)
    temporary.replace(target)
    return target


def to_json(result: Result) -> dict[str, Any]:
    """The JSON document described in this module's docstring."""
    histograms: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, value in _flatten(result):
        if isinstance(value, bh.Histogram):
            histograms[key] = _histogram_json(value)
        else:
            values[key] = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
    return {
        "saetta_version": __version__,
        "complete": result.report.complete,
        "report": result.report.to_dict(),
        "histograms": histograms,
        "values": values,
    }


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}/")
        else:
            yield name, value


def _histogram_json(h: Any) -> dict[str, Any]:
    axes = []
    for axis in h.axes:
        entry: dict[str, Any] = {"name": axis.name, "label": axis.label}
        if isinstance(axis, bh.axis.Regular) and axis.transform is None:
            entry |= {
                "type": "regular",
                "bins": len(axis),
                "lo": axis.edges[0],
                "hi": axis.edges[-1],
            }
        else:
            entry |= {"type": "variable", "edges": axis.edges.tolist()}
        axes.append(entry)
    out = {"axes": axes, "values": h.values(flow=True).tolist()}
    variances = h.variances(flow=True)
    if variances is not None:
        out["variances"] = variances.tolist()
    return out


def _write_root(result: Result, path: Path) -> None:
    import uproot

    document = to_json(result)
    del document["histograms"]
    with uproot.recreate(path) as f:
        for key, value in _flatten(result):
            if isinstance(value, bh.Histogram):
                f[key] = value
        f["saetta"] = json.dumps(document)
