"""Stage: dataset (layer 3) — work units: entry ranges of files, planned by the million.

A :class:`FileInfo` says what is known of one file; :func:`plan` cuts files into
:class:`WorkUnit` values, one task each, kept together as :class:`Units`: a
sequence backed by arrays, so that ten million units take a few hundred
megabytes and a few seconds to plan (:meth:`saetta.Dataset.units`).

Longer than most modules because the unit values, the arrays behind them and the
planning that fills those arrays must agree on one canonical order.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from saetta._typing import Column
from saetta.errors import DatasetError
from saetta.storage import is_remote

__all__ = ["FileInfo", "Units", "WorkUnit", "file_key", "plan"]

_ITER_BATCH = 65_536  # units turned into Python ints at a time while iterating


@dataclass(frozen=True, slots=True)
class WorkUnit:
    """One contiguous entry range ``[start, stop)`` of one tree in one file.

    ``file_entries`` is what the dataset expects the whole file to hold (0: not
    known); a unit that finds the file holding another number fails, naming it,
    instead of silently missing or inventing events.
    """

    path: str
    tree: str
    start: int
    stop: int
    format: str = "root"
    file_entries: int = field(default=0, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            msg = f"empty or negative entry range [{self.start}, {self.stop}) in {self.path}"
            raise DatasetError(msg, path=self.path)
        if self.file_entries and self.stop > self.file_entries:
            msg = (
                f"entry range [{self.start}, {self.stop}) past the end of {self.path} "
                f"({self.file_entries:,} entries)"
            )
            raise DatasetError(msg, path=self.path)

    @property
    def num_entries(self) -> int:
        return self.stop - self.start

    @property
    def id(self) -> str:
        """A stable name for the unit, also the key that identifies its result."""
        return f"{self.path}[{self.start}:{self.stop}]"

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What saetta knows about one file after reading its metadata once.

    ``num_entries`` are the entries the dataset takes from the file (a sample
    takes a prefix); ``file_entries`` those the whole file held when read, or as
    its catalog says (0: not known), checked again by each unit. A file taken
    from a catalog's description is not opened (``scanned`` is false): its
    ``columns`` and ``boundaries`` are not known, and empty.
    """

    path: str
    tree: str
    format: str
    num_entries: int
    size_bytes: int
    columns: tuple[Column, ...] = field(repr=False)
    boundaries: tuple[int, ...] = field(repr=False)
    file_entries: int = field(default=0, repr=False, compare=False)
    scanned: bool = field(default=True, repr=False, compare=False)

    @property
    def largest_cluster(self) -> int:
        """Entries of the largest stretch between two natural split points (clusters)."""
        edges = sorted({0, self.num_entries, *self.boundaries})
        return max((b - a for a, b in itertools.pairwise(edges)), default=0)

    def units(self, chunk_size: int) -> Iterator[WorkUnit]:
        """Cut the file into units of at most ``chunk_size`` entries, on natural boundaries
        where they allow it."""
        for start, stop in _split(self.boundaries, self.num_entries, chunk_size):
            yield WorkUnit(self.path, self.tree, start, stop, self.format, self.file_entries)


class Units(Sequence[WorkUnit]):
    """The work units of a dataset, in canonical order: a sequence of :class:`WorkUnit`.

    Made by :meth:`Dataset.units`. Kept as three arrays (each unit's file, start
    and stop) beside the files, and a :class:`WorkUnit` is made only when one is
    asked for: ten million units take ~200 MB, not the ~2 GB of as many objects.
    It behaves as the tuple of those units: ``len``, indexing (a slice gives a
    tuple), iteration, ``in``, and ``==`` element by element against a tuple, a
    list or another :class:`Units`.

    Examples
    --------
    >>> units = ds.units(100_000)  # doctest: +SKIP
    >>> units[0], units.locate(file_key("a.root"), "Events", 0, 100_000)  # doctest: +SKIP
    (WorkUnit(path='a.root', tree='Events', start=0, stop=100000, format='root'), 0)
    """

    __slots__ = ("_file", "_files", "_index", "_keys", "_start", "_stop")

    def __init__(
        self,
        files: tuple[FileInfo, ...],
        file: np.ndarray,
        start: np.ndarray,
        stop: np.ndarray,
        keys: Sequence[str] | None = None,
    ) -> None:
        if not len(file) == len(start) == len(stop):
            lengths = f"{len(file)}, {len(start)}, {len(stop)}"
            msg = f"units need one file, start and stop each, not {lengths}"
            raise ValueError(msg)
        self._files = files
        self._file = file
        self._start = start
        self._stop = stop
        self._keys = keys  # each file's file_key, if known: saves computing them again
        self._index: dict[tuple[str, str], tuple[int, int]] | None = None

    @property
    def files(self) -> tuple[FileInfo, ...]:
        """The files the units are of, in canonical order (by file key, then tree)."""
        return self._files

    def __len__(self) -> int:
        return len(self._start)

    @overload
    def __getitem__(self, index: int) -> WorkUnit: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[WorkUnit, ...]: ...

    def __getitem__(self, index: int | slice) -> WorkUnit | tuple[WorkUnit, ...]:
        if isinstance(index, slice):
            return tuple(self._units(index))
        position = operator.index(index)
        count = len(self._start)
        if not -count <= position < count:
            msg = f"unit {position} out of range: there are {count:,}"
            raise IndexError(msg)
        position %= count
        return self._unit(
            int(self._file[position]), int(self._start[position]), int(self._stop[position])
        )

    def __iter__(self) -> Iterator[WorkUnit]:
        return self._units(slice(None))

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, WorkUnit):
            return False
        at = self.locate(file_key(value.path), value.tree, value.start, value.stop)
        return at is not None and self[at] == value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Units):
            if len(self) != len(other):
                return False
            if (
                self._files == other._files
                and np.array_equal(self._file, other._file)
                and np.array_equal(self._start, other._start)
                and np.array_equal(self._stop, other._stop)
            ):
                return True
        elif not isinstance(other, tuple | list):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # compared by value, like a list: unhashable

    def __repr__(self) -> str:
        files = len(self._files)
        return f"Units({len(self):,} units of {files:,} file{'s' if files != 1 else ''})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Units, (self._files, self._file, self._start, self._stop))

    def locate(self, key: str, tree: str, start: int, stop: int) -> int | None:
        """The position of the unit ``[start, stop)`` of ``tree`` in the file ``key``, or None.

        ``key`` is the file's :func:`file_key` (absolute path, or URL), as the run
        journal records it. Logarithmic in the units of that file: a dict from
        file to its units, made on the first call, then a binary search.
        """
        index = self._index
        if index is None:
            index = self._index = self._file_spans()
        span = index.get((key, tree))
        if span is None:
            return None
        low, high = span
        at = low + int(np.searchsorted(self._start[low:high], start))
        while at < high and self._start[at] == start:  # the same file twice: either copy
            if self._stop[at] == stop:
                return at
            at += 1
        return None

    def _file_spans(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Where each file's units are: (file key, tree) -> [first, last + 1)."""
        ends = np.cumsum(np.bincount(self._file, minlength=len(self._files))).tolist()
        keys = self._keys if self._keys is not None else _file_keys(f.path for f in self._files)
        self._keys = None  # not needed any more
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        low = 0
        for info, key, end in zip(self._files, keys, ends, strict=True):
            name = (key, info.tree)
            spans[name] = (spans[name][0], end) if name in spans else (low, end)
            low = end
        return spans

    def _unit(self, file: int, start: int, stop: int) -> WorkUnit:
        info = self._files[file]
        return WorkUnit(info.path, info.tree, start, stop, info.format, info.file_entries)

    def _units(self, which: slice) -> Iterator[WorkUnit]:
        low, high, step = which.indices(len(self))
        for first in range(low, high, _ITER_BATCH * step) if step > 0 else ():
            batch = slice(first, min(high, first + _ITER_BATCH * step), step)
            for file, start, stop in zip(
                self._file[batch].tolist(),
                self._start[batch].tolist(),
                self._stop[batch].tolist(),
                strict=True,
            ):
                yield self._unit(file, start, stop)
        if step < 0:
            for position in range(low, high, step):
                yield self[position]


def file_key(path: str) -> str:
    """What identifies a file whatever the working directory: its absolute path, or its URL."""
    return _file_keys((path,))[0]


def _file_keys(paths: Iterable[str]) -> list[str]:
    """:func:`file_key` of each path."""
    absolute = os.path.abspath
    return [path if is_remote(path) else absolute(path) for path in paths]


def _split(
    boundaries: Sequence[int], num_entries: int, chunk_size: int
) -> Iterator[tuple[int, int]]:
    edges = sorted({0, num_entries, *(b for b in boundaries if 0 < b < num_entries)})
    segments: list[tuple[int, int]] = []
    for lo, hi in itertools.pairwise(edges):
        pieces = -(-(hi - lo) // chunk_size)
        cuts = [lo + (hi - lo) * i // pieces for i in range(pieces + 1)]
        segments.extend(itertools.pairwise(cuts))
    start = None
    stop = 0
    for lo, hi in segments:
        if start is None:
            start, stop = lo, hi
        elif hi - start <= chunk_size:
            stop = hi
        else:
            yield start, stop
            start, stop = lo, hi
    if start is not None:
        yield start, stop


def _even_split(entries: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_split` of many files without inner boundaries at once: every file's units,
    in order, as arrays (position of the file in ``entries``, start, stop)."""
    pieces = -(-entries // chunk)
    owner = np.repeat(np.arange(len(entries), dtype=np.int64), pieces)
    ends = np.cumsum(pieces)
    step = np.arange(len(owner), dtype=np.int64) - (ends - pieces)[owner]
    entries_of = entries[owner]
    start = entries_of * step // pieces[owner]
    del step, entries_of
    # A unit stops where the next one of its file starts, the last one at the file's end.
    stop = np.empty_like(start)
    stop[:-1] = start[1:]
    filled = pieces > 0
    stop[ends[filled] - 1] = entries[filled]
    return owner, start, stop


def _cut(
    files: tuple[FileInfo, ...], keys: list[str], chunk: int, ranks: np.ndarray | None
) -> Units:
    """The units of ``files`` (in canonical order already, of file keys ``keys``): those
    of a file in entry order, files one after the other, or by ``ranks`` then start where
    given (one file given twice)."""
    count = len(files)
    entries = np.fromiter((f.num_entries for f in files), np.int64, count)
    # Most files (any a catalog describes) have no inner boundary: all cut at once.
    even = np.fromiter(
        (not f.boundaries or not any(0 < b < f.num_entries for b in f.boundaries) for f in files),
        np.bool_,
        count,
    )
    pieces = -(-entries // chunk)
    even &= entries.astype(np.float64) * pieces < 2.0**62  # no overflow in entries * step
    while True:
        picked = np.flatnonzero(even)
        owner, start, stop = _even_split(entries[picked], chunk)
        joined = (owner[1:] == owner[:-1]) & (stop[1:] - start[:-1] <= chunk)
        if not joined.any():
            break
        # _split joins these pieces (it never does without inner boundaries): leave it to it.
        even[picked[np.unique(owner[1:][joined])]] = False
    dtype = np.int32 if count < 2**31 else np.int64
    if len(picked) == count:
        all_file, all_start, all_stop = owner.astype(dtype), start, stop
    else:
        all_file, all_start, all_stop = _merged(files, chunk, even, pieces, (owner, start, stop))
    if ranks is not None:
        order = np.lexsort((all_start, ranks[all_file]))  # stable: files in the given order
        all_file, all_start, all_stop = all_file[order], all_start[order], all_stop[order]
    return Units(files, all_file, all_start, all_stop, keys)


def _merged(
    files: tuple[FileInfo, ...],
    chunk: int,
    even: np.ndarray,
    pieces: np.ndarray,
    even_units: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The units of all ``files``: those of the ``even`` ones (``even_units``, of
    ``pieces`` each) and those of the others, cut by :func:`_split` one by one."""
    count = len(files)
    owner, start, stop = even_units
    picked = np.flatnonzero(even)
    cut = {
        j: list(_split(files[j].boundaries, files[j].num_entries, chunk))
        for j in np.flatnonzero(~even).tolist()
    }
    counts = np.where(even, pieces, 0)
    counts[list(cut)] = [len(pieces_of) for pieces_of in cut.values()]
    offsets = np.concatenate(([0], np.cumsum(counts)))
    total = int(offsets[-1])
    all_file = np.repeat(np.arange(count, dtype=np.int32 if count < 2**31 else np.int64), counts)
    all_start = np.empty(total, np.int64)
    all_stop = np.empty(total, np.int64)
    first_even = np.cumsum(pieces[picked]) - pieces[picked]
    where = np.arange(len(owner), dtype=np.int64) + (offsets[picked] - first_even)[owner]
    all_start[where] = start
    all_stop[where] = stop
    for j, segments in cut.items():
        if segments:
            span = slice(offsets[j], offsets[j + 1])
            all_start[span] = [a for a, _ in segments]
            all_stop[span] = [b for _, b in segments]
    return all_file, all_start, all_stop


def plan(files: Sequence[FileInfo], chunk_size: int) -> Units:
    """The work units of ``files``, in canonical order: by file key and tree, then entry.

    The files are sorted, not the units: a file's units come in entry order already.
    """
    keys = _file_keys(f.path for f in files)
    names = list(zip(keys, (f.tree for f in files), strict=True))
    order = sorted(range(len(names)), key=names.__getitem__)
    ordered = tuple(files[i] for i in order)
    names = [names[i] for i in order]
    ranks = None
    if any(map(operator.eq, names, names[1:])):
        # A file given twice (a Dataset made by hand): its units interleave by start.
        changes = np.fromiter(map(operator.ne, names, names[1:]), np.bool_, len(names) - 1)
        ranks = np.concatenate(([0], np.cumsum(changes, dtype=np.int64)))
    return _cut(ordered, [key for key, _ in names], chunk_size, ranks)
