"""Stage: output (layer 8) — a result as a ROOT file of histograms (see :mod:`saetta.output`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boost_histogram as bh
import numpy as np

from saetta.errors import SaettaError
from saetta.execute import Result
from saetta.output.json_doc import to_json
from saetta.output.walk import RECORD, STORAGES, flatten, is_category

__all__ = ["root_objects", "write_root"]


def root_objects(result: Result) -> dict[str, Any]:
    """Every histogram as an object uproot writes, checked before any file is opened."""
    document = to_json(result)
    del document["histograms"]
    objects: dict[str, Any] = {}
    for key, value in flatten(result):
        if not isinstance(value, bh.Histogram):
            continue
        _check_root_name(key, objects)
        objects[key] = _to_root(key, value)
    objects[RECORD] = json.dumps(document)
    return objects


def _check_root_name(key: str, taken: Mapping[str, Any]) -> None:
    """A key uproot can write: no empty path part, not both a histogram and a folder."""
    parts = key.split("/")
    folders = {"/".join(parts[:i]) for i in range(1, len(parts))}
    if parts[0] == RECORD:
        problem = f"{RECORD!r} is the name of saetta's own record"
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


def write_root(objects: Mapping[str, Any], path: Path) -> None:
    import uproot

    with uproot.recreate(path) as f:
        for key, value in objects.items():
            f[key] = value


def _to_root(key: str, h: bh.Histogram[Any]) -> Any:
    import uproot

    storage = STORAGES.get(h.storage_type, h.storage_type.__name__)
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
    if all(is_category(a) or (a.traits.underflow and a.traits.overflow) for a in h.axes):
        return h
    axes = [a if is_category(a) else bh.axis.Variable(a.edges, metadata=a.metadata) for a in h.axes]
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
    return np.arange(len(axis)) + 0.5 if is_category(axis) else np.asarray(axis.centers)


def _root_axis(axis: Any, name: str, identify: Any) -> Any:
    title = str(getattr(axis, "label", None) or getattr(axis, "name", None) or "")
    if is_category(axis):
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
