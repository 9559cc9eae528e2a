"""Stage: dataset (layer 3) — which events exist, and how they split into work units.

A :class:`Dataset` is a tuple of :class:`FileInfo` read once from each file's
metadata (by the reader of its format, :mod:`saetta.formats`);
:meth:`Dataset.units` cuts it into :class:`WorkUnit` values, one task each.
Named datasets come from the catalog (:mod:`saetta.catalog`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from saetta._config import DEFAULT_CACHE_SIZE
from saetta.errors import DatasetError, SaettaWarning
from saetta.formats import format_of
from saetta.formats.pool import shared_reader
from saetta.quantities import parse_bytes
from saetta.storage import (
    StorageOptions,
    expand,
    file_size,
    is_remote,
    name_files,
)

if TYPE_CHECKING:
    from saetta._typing import Column

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Dataset",
    "FileInfo",
    "WorkUnit",
    "file_key",
]

#: Entries per work unit when none is given. Measured on the ADL queries over a
#: 2M-event file (see the README): past ~100k the per-unit overhead is < 2 %.
DEFAULT_CHUNK_SIZE = 250_000


@dataclass(frozen=True, slots=True)
class WorkUnit:
    """One contiguous entry range ``[start, stop)`` of one tree in one file."""

    path: str
    tree: str
    start: int
    stop: int
    format: str = "root"

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            msg = f"empty or negative entry range [{self.start}, {self.stop}) in {self.path}"
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
    """What saetta knows about one file after reading its metadata once."""

    path: str
    tree: str
    format: str
    num_entries: int
    size_bytes: int
    columns: tuple[Column, ...] = field(repr=False)
    boundaries: tuple[int, ...] = field(repr=False)

    @property
    def largest_cluster(self) -> int:
        """Entries of the largest stretch between two natural split points (clusters)."""
        edges = sorted({0, self.num_entries, *self.boundaries})
        return max((b - a for a, b in itertools.pairwise(edges)), default=0)

    def units(self, chunk_size: int) -> Iterator[WorkUnit]:
        """Cut the file into units of at most ``chunk_size`` entries, on natural boundaries
        where they allow it."""
        for start, stop in _split(self.boundaries, self.num_entries, chunk_size):
            yield WorkUnit(self.path, self.tree, start, stop, self.format)


def _scan(path: str, tree: str, format: str | None, storage: StorageOptions) -> FileInfo:
    """Read a file's metadata once: entries, columns, natural split points."""
    name = format or format_of(path)
    reader = shared_reader(path, tree, name, storage)
    return FileInfo(
        path=path,
        tree=tree,
        format=name,
        num_entries=reader.num_entries,
        size_bytes=file_size(path, storage),
        columns=tuple(reader.columns.values()),
        boundaries=tuple(reader.boundaries),
    )


def file_key(path: str) -> str:
    """What identifies a file whatever the working directory: its absolute path, or its URL."""
    return path if is_remote(path) else os.path.abspath(path)


def _distinct(names: Sequence[str]) -> list[str]:
    """The files once each, in the given order.

    The same file given twice (twice by name, through a symlink, as a relative and an
    absolute path, or matched by two globs) would be processed twice: it is kept once,
    with a :class:`~saetta.errors.SaettaWarning`.
    """
    seen: dict[object, str] = {}
    out: list[str] = []
    for name in names:
        key: object = file_key(name)
        if not is_remote(name):
            with contextlib.suppress(OSError):
                st = os.stat(name)
                key = (st.st_dev, st.st_ino)
        if key in seen:
            first = seen[key]
            again = "given more than once" if first == name else f"the same file as {first}"
            warnings.warn(f"{name} is {again}; reading it once", SaettaWarning, stacklevel=4)
            continue
        seen[key] = name
        out.append(name)
    return out


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


@dataclass(frozen=True, slots=True)
class Dataset:
    """A set of files holding the same tree, with their metadata.

    Examples
    --------
    >>> ds = saetta.Dataset.open(["data/*.root"])  # doctest: +SKIP
    >>> ds.num_entries, len(ds.units(chunk_size=100_000))  # doctest: +SKIP
    (2000000, 20)
    """

    files: tuple[FileInfo, ...]
    name: str = ""
    storage: StorageOptions = field(default_factory=StorageOptions, repr=False)

    @classmethod
    def open(
        cls,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        tree: str = "Events",
        *,
        format: str | None = None,
        name: str = "",
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
        cache: str | os.PathLike[str] | None = None,
        cache_size: int | str = DEFAULT_CACHE_SIZE,
    ) -> Dataset:
        """Open files (paths, URLs or glob patterns) and read each one's metadata once.

        Parameters
        ----------
        paths
            A path, a URL (``root://``, ``https://``, ``s3://``), a glob pattern, or a
            list of them. Remote globs are expanded on the server.
        tree
            The tree (ROOT) holding the events; ignored for Parquet.
        format
            ``"root"`` or ``"parquet"``; by default taken from each file's suffix.
        name
            A label shown in reports.
        storage_options
            fsspec options per protocol, e.g. ``{"s3": {"endpoint_url": ...}}``.
            Credentials are better left to their usual places (the AWS environment,
            X509 variables, netrc), which work without this.
        cache, cache_size
            A folder for the data cache tier (see :func:`saetta.run`), used from
            the metadata scan on.

        Raises
        ------
        StorageError
            A path does not exist, a pattern matches nothing, a server cannot be reached.
        FormatError
            A file is not readable in its format, or lacks the tree.
        """
        storage = StorageOptions(
            protocol_options=dict(storage_options or {}),
            cache_dir=os.fspath(cache) if cache is not None else None,
            cache_bytes=int(parse_bytes(cache_size, "cache size", plain_number=True)),
        )
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        names, storage = name_files(expand(paths, storage), storage)
        files = _distinct(names)
        if not files:
            msg = "the dataset has no files"
            raise DatasetError(msg)
        if len(files) == 1:
            infos = [_scan(files[0], tree, format, storage)]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
                infos = list(pool.map(lambda p: _scan(p, tree, format, storage), files))
        return cls(tuple(infos), name, storage)

    @classmethod
    def from_catalog(
        cls,
        name: str,
        catalog: str | os.PathLike[str] | None = None,
        *,
        cache: str | os.PathLike[str] | None = None,
        cache_size: int | str = DEFAULT_CACHE_SIZE,
    ) -> Dataset:
        """Open the dataset ``name`` of a catalog file (see :mod:`saetta.catalog`)."""
        from saetta.catalog import catalog_entry

        entry = catalog_entry(name, catalog)
        return cls.open(
            entry["files"],
            entry["tree"],
            format=entry["format"],
            name=name,
            storage_options=entry["storage_options"],
            cache=cache,
            cache_size=cache_size,
        )

    @property
    def num_entries(self) -> int:
        return sum(f.num_entries for f in self.files)

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def columns(self) -> dict[str, Column]:
        """Columns present in every file (the first file's type)."""
        if not self.files:
            return {}
        common = {c.name: c for c in self.files[0].columns}
        for info in self.files[1:]:
            names = {c.name for c in info.columns}
            common = {k: v for k, v in common.items() if k in names}
        return common

    def units(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[WorkUnit, ...]:
        """All work units of the dataset, in canonical order (by path, then entry).

        The order does not depend on the order the files were given in, so that
        merging in unit order gives the same result for any file order.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            msg = f"chunk size must be a positive number of entries, not {chunk_size!r}"
            raise DatasetError(msg)
        units = [u for info in self.files for u in info.units(chunk_size)]
        units.sort(key=lambda u: (file_key(u.path), u.tree, u.start))
        return tuple(units)

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Dataset({label}{len(self.files):,} file{'s' if len(self.files) != 1 else ''}, "
            f"{self.num_entries:,} entries, "
            f"{self.size_bytes / 1e6:,.1f} MB)"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{f.path}</td><td>{f.format}</td><td>{f.tree}</td>"
            f"<td style='text-align:right'>{f.num_entries:,}</td>"
            f"<td style='text-align:right'>{f.size_bytes / 1e6:,.1f}</td></tr>"
            for f in self.files[:20]
        )
        more = f"<p>… and {len(self.files) - 20} more files</p>" if len(self.files) > 20 else ""
        return (
            f"<b>{self!r}</b><table><tr><th>file</th><th>format</th><th>tree</th>"
            f"<th>entries</th><th>MB</th></tr>{rows}</table>{more}"
        )
