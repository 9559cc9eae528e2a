"""Stage: formats (layer 3) — table-like HDF5 files via h5py; chunks are the natural split.

A file's *tree* is one HDF5 group: the one named by ``tree``, or, for the default
``"Events"`` when the file has no such group, the root group ``/``. Its datasets
(direct members only) that share their first dimension ``N`` are the columns of
``N`` entries:

- a 1-d numeric dataset ``x`` of length ``N`` is a flat column ``x``;
- a 2-d numeric dataset ``x`` of shape ``(N, 1)`` is a flat column ``x`` too (the
  CaloChallenge's ``incident_energies``);
- a 2-d numeric dataset ``x`` of shape ``(N, k)``, ``k > 1``, is a collection of ``k``
  values per entry: a flat ``int32`` counter ``nx`` (``k`` for every entry) and a
  jagged column ``x_value``, so ``events.x.value`` is a list of ``k`` numbers per
  event (the ML loader pads it with ``pad={"x": k}``). The CaloChallenge's
  ``showers`` (``N × 432``) reads as ``events.showers.value``. Underscores are
  dropped from the collection's name (``my_showers`` gives ``nmyshowers`` and
  ``myshowers_value``, ``events.myshowers.value``), because a collection's columns
  are grouped by the part of their name before the first ``_``; a 2-d dataset whose
  names would clash with another dataset's is skipped.

``N`` is the first dimension shared by the most such datasets (then by the most
bytes); datasets of other lengths or shapes, non-numeric ones (strings, compound,
object and variable-length types, references), links (soft, external), virtual
datasets and datasets stored in external raw files are not columns. A group with
no column at all is a :class:`~saetta.errors.FormatError` saying what it holds.

``boundaries`` are the HDF5 chunk boundaries along the first axis of the largest
column dataset (every 65,536 entries when it is not chunked), thinned to at most
10,000 pieces. ``bytes_read`` is an estimate: for each dataset read, its size on
disk (``dataset.id.get_storage_size()``, so compressed where it is, or the raw size
when HDF5 reports none) times the share of its entries read, rounded out to whole
chunks. A counter column is read from no bytes at all.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from saetta._typing import Column, Jagged
from saetta.errors import FormatError
from saetta.formats import open_remote, opening, reason, require_columns
from saetta.storage import StorageOptions, is_remote, open_target, redact

if TYPE_CHECKING:
    from saetta.formats import FileDescription

__all__ = ["HDF5Reader", "describe", "open_hdf5"]

# h5py raises OSError for most damage; a damaged object header can give the others.
_UNREADABLE = (OSError, ValueError, RuntimeError, TypeError, LookupError)
_UNCHUNKED_STEP = 65_536
_MAX_BOUNDARIES = 10_000
_NUMERIC = frozenset("biuf")  # bool, signed and unsigned integers, floats


@dataclass(frozen=True, slots=True)
class _Source:
    """Where a column comes from: a dataset of the group, and how it is read."""

    dataset: str
    role: str  # "flat", "counter" or "values"
    width: int  # values per entry (1 for a flat column)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What reading a dataset costs: bytes on disk and entries per chunk (0: contiguous)."""

    on_disk: int
    chunk_rows: int


def open_hdf5(path: str, storage: StorageOptions | None) -> tuple[Any, Any]:
    """An HDF5 file (local or remote) read-only, and the remote file object under it
    (None for a local file), for the caller to close after the file."""
    if is_remote(path):
        handle = open_remote(path, storage)
        return h5py.File(handle, "r"), handle
    # HDF5's default file locking (HDF5_USE_FILE_LOCKING): a file opened twice in one
    # process must be opened with the same locking both times.
    url, _ = open_target(path, storage)
    return h5py.File(url, "r"), None


class HDF5Reader:
    """Reads the numeric datasets of one group of an HDF5 file as columns, by entry ranges."""

    def __init__(
        self, path: str, tree: str = "Events", storage: StorageOptions | None = None
    ) -> None:
        self.path = path
        self.tree = tree
        shown = redact(path)
        with opening(shown, "HDF5", _UNREADABLE):
            self._file, self._handle = open_hdf5(path, storage)
        try:
            group, where = self._group(tree, shown)
            self._where = where
            self._scan(group, shown)
        except FormatError:
            self.close()
            raise
        except _UNREADABLE as exc:
            msg = f"cannot read group {tree!r} of {shown} ({reason(exc)})"
            self.close()
            raise FormatError(msg, path=shown, tree=tree) from exc
        self._bytes_read = 0

    def _group(self, tree: str, shown: str) -> tuple[Any, str]:
        """The group holding the columns, and its HDF5 path."""
        if tree in ("", "/"):
            return self._file, "/"
        link = self._file.get(tree, getlink=True)
        if link is None and tree == "Events":
            return self._file, "/"
        if link is None:
            groups = [
                name
                for name in sorted(self._file)
                if isinstance(self._file.get(name, getlink=True), h5py.HardLink)
                and isinstance(self._file[name], h5py.Group)
            ]
            msg = f"no group {tree!r} in {shown}; it has: {', '.join(['/', *groups])}"
            raise FormatError(msg, path=shown, tree=tree)
        if isinstance(link, h5py.ExternalLink):
            msg = f"{tree!r} in {shown} is a link to another file, not a group"
            raise FormatError(msg, path=shown, tree=tree)
        group = self._file[tree]
        if not isinstance(group, h5py.Group):
            if tree == "Events":  # a dataset named like the default tree: a column of /
                return self._file, "/"
            msg = f"{tree!r} in {shown} is a {type(group).__name__}, not a group"
            raise FormatError(msg, path=shown, tree=tree)
        return group, str(group.name)

    def _scan(self, group: Any, shown: str) -> None:
        candidates: dict[str, Any] = {}
        held: list[str] = []
        for name in sorted(group):
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                held.append(f"{name} ({type(link).__name__})")
                continue
            obj = group[name]
            if isinstance(obj, h5py.Group):
                held.append(f"{name}/ (group)")
            elif not isinstance(obj, h5py.Dataset):  # a named datatype
                held.append(f"{name} ({type(obj).__name__})")
            elif why := _not_a_column(obj):
                held.append(f"{name} ({why})")
            else:
                candidates[name] = obj
        if not candidates:
            what = ", ".join(held[:8]) + (", ..." if len(held) > 8 else "") or "nothing"
            msg = f"{shown} has no table columns in group {self._where!r}; it holds: {what}"
            raise FormatError(msg, path=shown, tree=self.tree)
        lengths = Counter(ds.shape[0] for ds in candidates.values())
        volume = Counter[int]()
        for ds in candidates.values():
            volume[ds.shape[0]] += _raw_bytes(ds)
        self._n: int = int(max(lengths, key=lambda n: (lengths[n], volume[n], n)))
        used = {name: ds for name, ds in candidates.items() if ds.shape[0] == self._n}
        self._columns: dict[str, Column] = {}
        self._sources: dict[str, _Source] = {}
        for name, ds in used.items():
            if ds.ndim == 1 or ds.shape[1] == 1:
                self._columns[name] = Column(name, ds.dtype.name)
                self._sources[name] = _Source(name, "flat", 1)
        taken = set(group)
        for name, ds in used.items():
            if ds.ndim == 1 or ds.shape[1] == 1:
                continue
            collection = name.replace("_", "")
            counter, values = f"n{collection}", f"{collection}_value"
            if not collection or {collection, counter, values} & (taken - {name}):
                continue
            taken |= {collection, counter, values}
            width = int(ds.shape[1])
            self._columns[counter] = Column(counter, "int32")
            self._sources[counter] = _Source(name, "counter", width)
            self._columns[values] = Column(values, ds.dtype.name, jagged=True)
            self._sources[values] = _Source(name, "values", width)
        if not self._columns:  # only matrices whose names clash with other members
            msg = f"{shown} has no table columns in group {self._where!r}: their names clash"
            raise FormatError(msg, path=shown, tree=self.tree)
        self._datasets = {s.dataset: used[s.dataset] for s in self._sources.values()}
        self._stored = {name: _stored(ds) for name, ds in self._datasets.items()}
        largest = max(self._datasets, key=lambda name: _raw_bytes(self._datasets[name]))
        self._boundaries = _boundaries(self._n, self._stored[largest].chunk_rows)

    @property
    def num_entries(self) -> int:
        return self._n

    @property
    def columns(self) -> Mapping[str, Column]:
        return self._columns

    @property
    def boundaries(self) -> Sequence[int]:
        return list(self._boundaries)

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        require_columns(columns, self._columns, redact(self.path), self.tree)
        out: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        n = max(stop - start, 0)
        try:
            for name in columns:
                source = self._sources[name]
                if source.role == "counter":
                    out[name] = np.full(n, source.width, dtype=np.int32)
                    continue
                if source.dataset not in arrays:
                    arrays[source.dataset] = _native(self._datasets[source.dataset][start:stop])
                    self._bytes_read += self._cost(source.dataset, start, stop)
                data = arrays[source.dataset]
                if source.role == "values":
                    offsets = np.arange(0, len(data) * source.width + 1, source.width)
                    out[name] = Jagged(offsets.astype(np.int64), data.reshape(-1))
                else:
                    out[name] = np.ascontiguousarray(data if data.ndim == 1 else data[:, 0])
        except _UNREADABLE as exc:
            msg = (
                f"cannot read {', '.join(columns)} [{start}:{stop}] of {redact(self.path)} "
                f"({reason(exc)})"
            )
            raise FormatError(msg, path=redact(self.path), tree=self.tree) from exc
        return out

    def _cost(self, dataset: str, start: int, stop: int) -> int:
        stored = self._stored[dataset]
        lo, hi = max(start, 0), min(stop, self._n)
        if stored.chunk_rows:
            lo = lo // stored.chunk_rows * stored.chunk_rows
            hi = min(-(-hi // stored.chunk_rows) * stored.chunk_rows, self._n)
        if hi <= lo:
            return 0
        return math.ceil(stored.on_disk * (hi - lo) / self._n)

    def close(self) -> None:
        self._file.close()
        if self._handle is not None:
            self._handle.close()

    def __repr__(self) -> str:
        return f"HDF5Reader({self.path!r})"


def _not_a_column(ds: Any) -> str:
    """Why a dataset cannot be a column (shape or type), or ``""`` if it can."""
    dtype = ds.dtype
    if dtype.kind not in _NUMERIC or dtype.fields is not None or dtype.subdtype is not None:
        return f"type {dtype}"
    if ds.is_virtual:
        return "virtual"
    if ds.external:
        return "stored in external files"
    shape = ds.shape
    if shape is None or len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] == 0):
        return f"{dtype.name}, shape {shape}"
    return ""


def _raw_bytes(ds: Any) -> int:
    return int(ds.size) * int(ds.dtype.itemsize)


def _stored(ds: Any) -> _Stored:
    on_disk = int(ds.id.get_storage_size()) or _raw_bytes(ds)
    return _Stored(on_disk, int(ds.chunks[0]) if ds.chunks else 0)


def _boundaries(n: int, chunk_rows: int) -> tuple[int, ...]:
    step = chunk_rows or _UNCHUNKED_STEP
    step *= max(1, -(-n // (step * _MAX_BOUNDARIES)))
    return (*range(0, n, step), n) if n else (0,)


def _native(data: np.ndarray) -> np.ndarray:
    """``data`` in this machine's byte order (a file may store big-endian numbers)."""
    return data if data.dtype.isnative else data.astype(data.dtype.newbyteorder("="))


def describe(path: str, tree: str | None = None) -> FileDescription:
    """Entries, the group read, chunking and compression, and the columns with their
    size on disk."""
    from saetta.formats import FileDescription, column_lines

    reader = HDF5Reader(path, tree or "Events")
    try:
        sizes: dict[str, tuple[int, int]] = {}
        for name, source in reader._sources.items():
            if source.role != "counter":
                ds = reader._datasets[source.dataset]
                sizes[name] = (reader._stored[source.dataset].on_disk, _raw_bytes(ds))
        columns = column_lines(reader.columns.values(), sizes)
        largest = max(reader._datasets.values(), key=_raw_bytes)
        codec = largest.compression or "none"
        chunks = f"chunks of {largest.chunks[0]:,} entries" if largest.chunks else "contiguous"
    finally:
        reader.close()
    header = f"{path}: HDF5, {reader.num_entries:,} entries in group {reader._where!r} ({chunks})"
    return FileDescription(header, ((f"compression: {codec}", tuple(columns)),))
