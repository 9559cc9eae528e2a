"""Stage: formats (layer 2) — gravitational-wave strain (GWOSC HDF5) as padded time windows.

A GWOSC strain file holds one time series, the dataset ``strain/Strain``, whose
attributes ``Xstart`` (GPS seconds of the first sample) and ``Xspacing`` (seconds
between samples) place it in time; the group ``meta`` says which detector recorded it.

Each *entry* is one time window of ``window`` seconds: entry ``i`` owns samples
``[i·W, (i+1)·W)``, ``W = window·rate`` (the last window is clipped at the file's
end). A matched filter needs data on either side of what it reports, so an entry
carries its own span plus ``pad`` seconds either side (fewer at the file's edges):

- ``time`` (float64): GPS time of the entry's first own sample, ``Xstart + i·window``;
- ``before`` (int64): padding samples before the own span;
- ``span`` (int64): samples in the own span;
- ``nstrain`` (int64) and ``strain_value`` (float64, jagged): the padded samples,
  so ``events.strain.value[i]`` is window ``i`` from own start − pad to own end + pad.

An analysis reports what it finds in ``value[before:before + span]`` only: the own
spans tile the file exactly once, so nothing is found twice or lost at a boundary.

The *tree* is a spec, ``"strain/Strain?window=64&pad=16"`` (built by :func:`windows`);
the dataset alone, or the engine's default tree ``"Events"``, means the defaults.
``boundaries`` are every entry. One read per call fetches the union of the requested
windows' samples; ``bytes_read`` counts them (padding included) as stored on disk.

The window spec and the reader stay together, longer than most: the spec decides
what an entry is, and every read follows from it.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from saetta._typing import Column, Jagged
from saetta.errors import DatasetError, FormatError
from saetta.formats import opening, reason, require_columns
from saetta.formats.hdf5 import open_hdf5
from saetta.storage import StorageOptions, redact

if TYPE_CHECKING:
    from saetta.formats import FileDescription

__all__ = ["StrainReader", "describe", "windows"]

# h5py raises OSError for most damage; a damaged object header can give the others.
_UNREADABLE = (OSError, ValueError, RuntimeError, TypeError, LookupError)
_DATASET = "strain/Strain"
_WINDOW = 64.0
_PAD = 16.0
_EXPECTED = (
    "expected 'DATASET' or 'DATASET?window=SECONDS&pad=SECONDS', "
    "e.g. 'strain/Strain?window=64&pad=16'"
)
_COLUMNS = {
    "time": Column("time", "float64"),
    "before": Column("before", "int64"),
    "span": Column("span", "int64"),
    "nstrain": Column("nstrain", "int64"),
    "strain_value": Column("strain_value", "float64", jagged=True),
}


def windows(window: float = _WINDOW, pad: float = _PAD, dataset: str = _DATASET) -> str:
    """The tree spec reading ``dataset`` as windows of ``window`` seconds, each padded by
    ``pad`` seconds either side.

    Raises
    ------
    DatasetError
        ``window`` is not positive, ``pad`` is negative, or either is not finite.

    Examples
    --------
    >>> windows(32, 8)
    'strain/Strain?window=32&pad=8'
    """
    spec = _Spec(dataset, float(window), float(pad))
    if why := spec.problem():
        msg = f"bad strain windows: {why}"
        raise DatasetError(msg)
    return str(spec)


@dataclass(frozen=True, slots=True)
class _Spec:
    """What a tree spec asks for: the dataset, and the windows' length and padding (s)."""

    dataset: str
    window: float
    pad: float

    def problem(self) -> str:
        if not self.dataset or set(self.dataset) & set("?&="):
            return f"dataset {self.dataset!r} must be an HDF5 path without '?', '&' or '='"
        if not (math.isfinite(self.window) and self.window > 0):
            return f"window must be a positive number of seconds, not {self.window!r}"
        if not (math.isfinite(self.pad) and self.pad >= 0):
            return f"pad must be zero or a positive number of seconds, not {self.pad!r}"
        return ""

    def __str__(self) -> str:
        return f"{self.dataset}?window={_number(self.window)}&pad={_number(self.pad)}"


def _number(value: float) -> str:
    """A float as short as it reads back exactly."""
    return str(int(value)) if value.is_integer() else repr(value)


def _parse(tree: str, shown: str) -> _Spec:
    dataset, _, query = tree.partition("?")
    if dataset in ("", "Events"):
        dataset = _DATASET
    values = {"window": _WINDOW, "pad": _PAD}
    seen: set[str] = set()
    for part in query.split("&") if query else ():
        key, equals, text = part.partition("=")
        why = ""
        if key not in values:
            why = f"unknown key {key!r} (keys: pad, window)"
        elif not equals or key in seen:
            why = f"{key!r} must be given once, as {key}=SECONDS"
        else:
            try:
                values[key] = float(urllib.parse.unquote(text))
            except ValueError:
                why = f"{key}={text!r} is not a number"
        if why:
            msg = f"bad strain tree {tree!r} for {shown}: {why}; {_EXPECTED}"
            raise FormatError(msg, path=shown, tree=tree)
        seen.add(key)
    spec = _Spec(dataset, values["window"], values["pad"])
    if why := spec.problem():
        msg = f"bad strain tree {tree!r} for {shown}: {why}; {_EXPECTED}"
        raise FormatError(msg, path=shown, tree=tree)
    return spec


class StrainReader:
    """Reads a GWOSC strain file as padded time windows, one per entry."""

    def __init__(
        self, path: str, tree: str = "Events", storage: StorageOptions | None = None
    ) -> None:
        self.path = path
        self.tree = tree
        shown = redact(path)
        self._spec = _parse(tree, shown)
        with opening(shown, "HDF5", _UNREADABLE):
            self._file, self._handle = open_hdf5(path, storage)
        try:
            self._scan(shown)
        except FormatError:
            self.close()
            raise
        except _UNREADABLE as exc:
            msg = f"cannot read {self._spec.dataset!r} of {shown} ({reason(exc)})"
            self.close()
            raise FormatError(msg, path=shown, tree=tree) from exc
        self._bytes_read = 0

    def _fail(self, shown: str, why: str) -> FormatError:
        return FormatError(f"{shown}: {why}", path=shown, tree=self.tree)

    def _attribute(self, ds: Any, key: str, shown: str) -> float:
        """A finite numeric scalar attribute (positive for ``Xspacing``) as a float."""
        value = ds.attrs.get(key)
        number = np.asarray(value) if value is not None else None
        if number is not None and number.ndim == 0 and number.dtype.kind in "iuf":
            found = float(number)
            if math.isfinite(found) and (key != "Xspacing" or found > 0):
                return found
        plain = value.item() if isinstance(value, np.generic) else value
        what = "missing" if value is None else f"{plain!r}, not a valid number"
        raise self._fail(shown, f"attribute {key} of {self._spec.dataset!r} is {what}")

    def _scan(self, shown: str) -> None:
        name = self._spec.dataset
        link = self._file.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink) or not isinstance(self._file[name], h5py.Dataset):
            groups = sorted(
                key
                for key in self._file
                if isinstance(self._file.get(key, getlink=True), h5py.HardLink)
                and isinstance(self._file[key], h5py.Group)
            )
            what = "no dataset" if link is None else "not a dataset at"
            held = ", ".join(groups) or "none"
            raise self._fail(shown, f"{what} {name!r}, not a GWOSC strain file (groups: {held})")
        ds = self._file[name]
        if ds.ndim != 1 or ds.dtype.kind != "f" or ds.dtype.fields is not None:
            why = f"{name!r} is {ds.dtype} of shape {ds.shape}, not a 1-d float time series"
            raise self._fail(shown, why)
        start = self._attribute(ds, "Xstart", shown)
        spacing = self._attribute(ds, "Xspacing", shown)
        n = int(ds.shape[0])
        points = ds.attrs.get("Npoints")
        if np.ndim(points) == 0 and np.asarray(points).dtype.kind in "iu" and int(points) != n:
            raise self._fail(shown, f"{name!r} holds {n:,} samples but Npoints says {points}")
        self._n_window = _samples(self._spec.window, spacing, "window", shown, self.tree)
        self._n_pad = _samples(self._spec.pad, spacing, "pad", shown, self.tree)
        self._dataset = ds
        self._samples = n
        self._start = start
        self._spacing = spacing
        self._entries = -(-n // self._n_window)
        self._per_sample = (int(ds.id.get_storage_size()) or n * ds.dtype.itemsize) / max(n, 1)
        self._chunk = int(ds.chunks[0]) if ds.chunks else 0
        meta = self._file.get("meta")
        detector = meta.get("Detector") if isinstance(meta, h5py.Group) else None
        self._detector = _text(detector[()]) if isinstance(detector, h5py.Dataset) else ""

    @property
    def num_entries(self) -> int:
        return self._entries

    @property
    def columns(self) -> Mapping[str, Column]:
        return _COLUMNS

    @property
    def boundaries(self) -> Sequence[int]:
        return list(range(self._entries + 1))

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    @property
    def header(self) -> Mapping[str, Any]:
        """The file's facts an analysis needs: sampling rate (Hz), GPS start and sample
        spacing as stored, detector (``""`` if the file does not say), window and
        padding (s), and duration (s)."""
        return {
            "rate": 1.0 / self._spacing,
            "Xstart": self._start,
            "Xspacing": self._spacing,
            "detector": self._detector,
            "window": self._spec.window,
            "pad": self._spec.pad,
            "duration": self._samples * self._spacing,
        }

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        require_columns(columns, _COLUMNS, redact(self.path), self.tree)
        entries = np.arange(max(start, 0), min(max(stop, start), self._entries), dtype=np.int64)
        own_lo = entries * self._n_window
        own_hi = np.minimum(own_lo + self._n_window, self._samples)
        lo = np.maximum(own_lo - self._n_pad, 0)
        hi = np.minimum(own_hi + self._n_pad, self._samples)
        values = {
            "time": self._start + entries * self._spec.window,
            "before": own_lo - lo,
            "span": own_hi - own_lo,
            "nstrain": hi - lo,
        }
        out: dict[str, Any] = {name: values[name] for name in columns if name in values}
        if "strain_value" in columns:
            out["strain_value"] = self._padded(lo, hi, start, stop)
        return out

    def _padded(self, lo: np.ndarray, hi: np.ndarray, start: int, stop: int) -> Jagged:
        """The windows' padded samples, from one read of the span they cover together."""
        offsets = np.zeros(len(lo) + 1, dtype=np.int64)
        np.cumsum(hi - lo, out=offsets[1:])
        if not len(lo):
            return Jagged(offsets, np.zeros(0, dtype=np.float64))
        first, last = int(lo[0]), int(hi[-1])
        try:
            data = np.asarray(self._dataset[first:last], dtype=np.float64)
        except _UNREADABLE as exc:
            shown = redact(self.path)
            msg = f"cannot read strain windows [{start}:{stop}] of {shown} ({reason(exc)})"
            raise FormatError(msg, path=shown, tree=self.tree) from exc
        self._bytes_read += self._cost(first, last)
        if len(lo) == 1:
            return Jagged(offsets, data)
        # Neighbouring windows share their padding: each gets its own copy.
        content = np.concatenate([data[a - first : b - first] for a, b in zip(lo, hi, strict=True)])
        return Jagged(offsets, content)

    def _cost(self, first: int, last: int) -> int:
        if self._chunk:
            first = first // self._chunk * self._chunk
            last = min(-(-last // self._chunk) * self._chunk, self._samples)
        return math.ceil((last - first) * self._per_sample)

    def close(self) -> None:
        self._file.close()
        if self._handle is not None:
            self._handle.close()

    def __repr__(self) -> str:
        return f"StrainReader({self.path!r}, {self.tree!r})"


def _samples(seconds: float, spacing: float, what: str, shown: str, tree: str) -> int:
    """``seconds`` as a whole number of samples ``spacing`` apart."""
    exact = seconds / spacing
    whole = round(exact)
    if abs(exact - whole) > 1e-9 * max(1.0, exact) or (what == "window" and whole < 1):
        msg = (
            f"{what} of {_number(seconds)} s is {exact:g} samples at {1 / spacing:g} Hz in "
            f"{shown}: it must be a whole number of samples"
        )
        raise FormatError(msg, path=shown, tree=tree)
    return int(whole)


def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else b""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def describe(path: str, tree: str | None = None) -> FileDescription:
    """Detector, GPS start, duration, sampling rate and the windows of a strain file."""
    from saetta.formats import FileDescription, column_lines

    reader = StrainReader(path, tree or "Events")
    try:
        header = reader.header
        ds = reader._dataset
        on_disk = int(ds.id.get_storage_size()) or reader._samples * ds.dtype.itemsize
        raw = reader._samples * ds.dtype.itemsize
        codec = ds.compression or "none"
        spec = reader._spec
    finally:
        reader.close()
    detector = header["detector"] or "unknown detector"
    text = (
        f"{path}: GWOSC strain, {detector}, GPS {_number(header['Xstart'])} + "
        f"{_number(header['duration'])} s at {header['rate']:g} Hz"
    )
    title = (
        f"{reader.num_entries:,} windows of {spec.window:g} s, padded by {spec.pad:g} s "
        f"({spec.dataset}, compression: {codec})"
    )
    columns = column_lines(_COLUMNS.values(), {"strain_value": (on_disk, raw)})
    return FileDescription(text, ((title, tuple(columns)),))
