"""Stage: fit (layer 8) — :func:`read_fit_input`: the histograms and sample metadata of
an AGC ttbar run from saetta's ``.root`` (uproot) or ``.json`` output, nothing in the file
trusted and nothing unpickled; every histogram the model needs is checked to be there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saetta.errors import FormatError, SaettaError
from saetta.fit.inputs import NOMINAL, SAMPLE_FIELDS, FitInput, SampleInfo
from saetta.fit.variations import _SYSTEMATICS
from saetta.output.describe import read_json_text, root_file_errors

_MAX_OBJECT_BYTES = 2**30  # read_fit_input reads no larger ROOT object than this


def _required(info: SampleInfo) -> tuple[str, ...]:
    """The variations :func:`build_workspace` needs of a sample."""
    if not info.is_nominal_mc:
        return (NOMINAL,)
    found = [NOMINAL]
    for s in _SYSTEMATICS:
        if s.samples is None or info.name in s.samples:
            found += [s.up] if s.down is None else [s.up, s.down]
    return tuple(found)


def read_fit_input(
    path: str | os.PathLike[str], regions: Sequence[str] | None = ("4j1b", "4j2b")
) -> FitInput:
    """Read the histograms of an AGC ttbar run from saetta's output file.

    Histograms are named ``"{sample}/{region}/{variation}"``; the samples are those of
    the document's ``metadata.samples`` (``role``, ``variation_of``, ``variation``).
    Nothing in the file is trusted, and nothing is unpickled.

    Parameters
    ----------
    path
        A ``.root`` or ``.json`` output of saetta.
    regions
        The regions to fit: by default the AGC's two, ``4j1b`` and ``4j2b`` (the file
        holds other histograms too, the ML observables); ``None`` takes every region
        with a nominal histogram.

    Returns
    -------
    FitInput
        The regions' histograms of every known sample.

    Raises
    ------
    FormatError
        The file cannot be read, is not a saetta output, lacks the sample metadata or a
        histogram the model needs (named), or holds a malformed one.
    """
    name = os.fspath(path)
    suffix = Path(name).suffix.lower()
    if suffix == ".json":
        samples, found = _read_json(name)
    elif suffix == ".root":
        samples, found = _read_root(name)
    else:
        msg = f"cannot read {name}: give saetta's .root or .json output"
        raise FormatError(msg, path=name)
    present = sorted({region for sample, region, variation in found if variation == NOMINAL})
    if regions is None:
        regions = present
    missing = [r for r in regions if r not in present]
    if missing and present:
        msg = f"{name} has no region {missing[0]!r}; it has {', '.join(present)}"
        raise FormatError(msg, path=name)
    found = {key: value for key, value in found.items() if key[1] in regions}
    if not regions or not present:
        msg = f"{name} holds no '<sample>/<region>/nominal' histogram of its metadata's samples"
        raise FormatError(msg, path=name)
    for info in samples.values():
        for region in regions:
            for variation in _required(info):
                if (info.name, region, variation) not in found:
                    msg = f"{name} lacks histogram '{info.name}/{region}/{variation}'"
                    raise FormatError(msg, path=name)
    edges: dict[str, np.ndarray] = {}
    histograms = {}
    for key, (values, variances, bin_edges) in found.items():
        if key[1] not in edges:
            edges[key[1]] = bin_edges
        elif not np.array_equal(edges[key[1]], bin_edges):
            msg = f"{name}: histogram '{'/'.join(key)}' has other bin edges than its region"
            raise FormatError(msg, path=name)
        histograms[key] = (values, variances)
    try:
        return FitInput(samples, histograms, {r: edges[r] for r in regions})
    except SaettaError as exc:
        msg = f"{name}: {exc}"
        raise FormatError(msg, path=name) from exc


_Found = dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _document(name: str, text: str) -> dict[str, Any]:
    """saetta's JSON document, checked to be one."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        msg = f"{name} is not a saetta output: bad JSON: {exc}"
        raise FormatError(" ".join(msg.split()), path=name) from exc
    if not isinstance(document, dict) or not isinstance(document.get("saetta_version"), str):
        msg = f"{name} is not a saetta output (no saetta_version)"
        raise FormatError(msg, path=name)
    return document


def _samples(name: str, document: dict[str, Any]) -> dict[str, SampleInfo]:
    """The sample metadata of saetta's JSON document."""
    metadata = document.get("metadata")
    entries = metadata.get("samples") if isinstance(metadata, dict) else None
    if not isinstance(entries, dict) or not entries:
        msg = f"{name} has no sample metadata ('metadata' -> 'samples')"
        raise FormatError(msg, path=name)
    samples = {}
    for sample, entry in entries.items():
        fields: dict[str, Any] = (
            {k: entry.get(k) for k in SAMPLE_FIELDS} if isinstance(entry, dict) else {}
        )
        if not (
            fields
            and sample
            and "/" not in sample
            and isinstance(fields["role"], str)
            and all(isinstance(v, str | None) for v in fields.values())
        ):
            msg = f"{name}: malformed metadata of sample {sample!r}"
            raise FormatError(msg, path=name)
        try:
            samples[sample] = SampleInfo(sample, **fields)
        except SaettaError as exc:
            msg = f"{name}: {exc}"
            raise FormatError(msg, path=name) from exc
    return samples


def _split(key: str, samples: Mapping[str, SampleInfo]) -> tuple[str, str, str] | None:
    parts = key.split("/")
    if len(parts) != 3 or parts[0] not in samples or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def _read_json(name: str) -> tuple[dict[str, SampleInfo], _Found]:
    document = _document(name, read_json_text(name))
    samples = _samples(name, document)
    histograms = document.get("histograms")
    if not isinstance(histograms, dict):
        msg = f"{name} is not a saetta output: 'histograms' is not an object"
        raise FormatError(msg, path=name)
    found: _Found = {}
    for key, h in histograms.items():
        parts = _split(key, samples)
        if parts is not None:
            try:
                found[parts] = _json_histogram(h)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                msg = f"{name}: histogram {key!r} is malformed: {exc}"
                raise FormatError(msg, path=name) from exc
    return samples, found


def _numbers(items: Any, size: int) -> np.ndarray:
    if not (
        isinstance(items, list)
        and len(items) == size
        and all(type(v) in (int, float) for v in items)
    ):
        msg = f"not a list of {size} numbers"
        raise ValueError(msg)
    return np.asarray(items, dtype=np.float64)


def _json_histogram(h: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (axis,) = h["axes"]
    if axis["type"] == "regular":
        bins, lo, hi = axis["bins"], float(axis["lo"]), float(axis["hi"])
        if type(bins) is not int or not 0 < bins <= 10**6:
            msg = f"a regular axis of {bins!r} bins"
            raise ValueError(msg)
        edges = np.linspace(lo, hi, bins + 1)
    elif axis["type"] == "variable":
        edges = _numbers(axis["edges"], len(axis["edges"]))
    else:
        msg = f"a {axis['type']!r} axis, not regular or variable"
        raise ValueError(msg)
    under, over = (int(axis.get(side, True) is not False) for side in ("underflow", "overflow"))
    size = len(edges) - 1 + under + over
    values = _numbers(h["values"], size)
    variances = _numbers(h["variances"], size) if "variances" in h else values  # Poisson
    inside = slice(under, size - over)
    return values[inside].copy(), variances[inside].copy(), edges


def _read_root(name: str) -> tuple[dict[str, SampleInfo], _Found]:
    import uproot

    found: _Found = {}
    try:
        with uproot.open(name) as f:
            classes = f.classnames(recursive=True, cycle=False)
            if classes.get("saetta") != "TObjString":
                msg = f"{name} is not a saetta output (no 'saetta' record)"
                raise FormatError(msg, path=name)
            samples = _samples(name, _document(name, str(f["saetta"])))
            for key, classname in classes.items():
                parts = _split(key, samples)
                if parts is None:
                    continue
                size = f.key(key).data_uncompressed_bytes
                if classname not in {"TH1D", "TH1F"} or size > _MAX_OBJECT_BYTES:
                    msg = f"{name}: {key!r} is a {classname} of {size:,} bytes, not a TH1D"
                    raise FormatError(msg, path=name)
                h = f[key]
                found[parts] = (
                    np.asarray(h.values(), dtype=np.float64),
                    np.asarray(h.variances(), dtype=np.float64),
                    np.asarray(h.axis().edges(), dtype=np.float64),
                )
    except root_file_errors() as exc:
        msg = f"cannot read {name} as a ROOT file: {type(exc).__name__}: {exc}"
        raise FormatError(" ".join(msg.split()), path=name) from exc
    return samples, found
