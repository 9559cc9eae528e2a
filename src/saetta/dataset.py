"""Stage: dataset (layer 2) — which events exist, and how they split into work units.

A :class:`Dataset` is a tuple of :class:`FileInfo` read once from each file's
metadata; :meth:`Dataset.units` cuts it into :class:`WorkUnit` values, one task
each. Format readers are found by name (``_FORMATS``) and imported on first use,
so this module depends on no reader.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from saetta._config import DEFAULT_CACHE_SIZE, config_home
from saetta.errors import DatasetError, SaettaWarning
from saetta.storage import (
    StorageOptions,
    expand,
    file_identity,
    file_size,
    is_remote,
    name_files,
    parse_size,
)

if TYPE_CHECKING:
    from saetta._typing import Column, Reader

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Dataset",
    "FileInfo",
    "WorkUnit",
    "available_formats",
    "file_key",
    "find_catalog",
    "forget_reader",
    "open_reader",
    "shared_reader",
]

#: Entries per work unit when none is given. Measured on the ADL queries over a
#: 2M-event file (see the README): past ~100k the per-unit overhead is < 2 %.
DEFAULT_CHUNK_SIZE = 250_000

_FORMATS = {
    "root": "saetta.formats.root:RootReader",
    "parquet": "saetta.formats.parquet:ParquetReader",
}
_SUFFIXES = {".root": "root", ".parquet": "parquet", ".parq": "parquet", ".pq": "parquet"}


def available_formats() -> list[str]:
    """Names of the file formats saetta can read."""
    return sorted(_FORMATS)


def find_catalog() -> Path | None:
    """The dataset catalog: ``$SAETTA_CATALOG``, ``./datasets.yaml``, or
    ``$XDG_CONFIG_HOME/saetta/datasets.yaml``; the first that exists.

    Raises
    ------
    DatasetError
        ``$SAETTA_CATALOG`` names a file that does not exist.
    """
    named = os.environ.get("SAETTA_CATALOG")
    if named:
        if not Path(named).is_file():
            msg = f"SAETTA_CATALOG names {named}, which is not a file"
            raise DatasetError(msg, path=named)
        return Path(named)
    candidates = [Path("datasets.yaml"), config_home() / "datasets.yaml"]
    return next((p for p in candidates if p.is_file()), None)


def format_of(path: str) -> str:
    """The format name for a file path, from its suffix."""
    name = path.split("?", 1)[0] if is_remote(path) else path
    suffix = os.path.splitext(name)[1].lower()
    try:
        return _SUFFIXES[suffix]
    except KeyError:
        known = ", ".join(sorted(_SUFFIXES))
        msg = f"cannot tell the format of {path} from its suffix (known: {known}); pass format="
        raise DatasetError(msg, path=path) from None


def open_reader(
    path: str,
    tree: str = "Events",
    format: str | None = None,
    storage: StorageOptions | None = None,
) -> Reader:
    """Open one file (path or URL) with the reader for its format."""
    name = format or format_of(path)
    try:
        target = _FORMATS[name]
    except KeyError:
        msg = f"unknown format {name!r}; available: {', '.join(available_formats())}"
        raise DatasetError(msg, path=path) from None
    module, _, cls = target.partition(":")
    reader_cls = getattr(importlib.import_module(module), cls)
    reader: Reader = reader_cls(path, tree, storage)
    return reader


class _OpenReaders:
    """The readers this process has open, least recently used first.

    Opening a file and parsing its tree metadata costs milliseconds (much more for
    real NanoAOD, with a thousand branches), so the dataset scan and every unit
    of the same file in this process share one reader. Keyed by the file's size
    and mtime too: a file rewritten in place is opened afresh, never served stale.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._readers: OrderedDict[tuple[object, ...], Reader] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        path: str,
        tree: str,
        format: str,
        storage: StorageOptions,
        identity: tuple[int, str] | None = None,
    ) -> Reader:
        identity = identity or file_identity(path, storage)
        key = (path, tree, format, identity, storage.cache_dir)
        with self._lock:
            reader = self._readers.pop(key, None)
        if reader is None:
            reader = open_reader(path, tree, format, storage)
        with self._lock:
            self._readers[key] = reader
            while len(self._readers) > self._capacity:
                _, old = self._readers.popitem(last=False)
                old.close()
        return reader

    def forget(self, path: str) -> None:
        with self._lock:
            stale = [key for key in self._readers if key[0] == path]
            readers = [self._readers.pop(key) for key in stale]
        for reader in readers:
            with contextlib.suppress(OSError):  # the connection may be dead already
                reader.close()


_OPEN_READERS = _OpenReaders(capacity=16)


def forget_reader(path: str) -> None:
    """Close and drop this process's readers of ``path`` (to reconnect after an error)."""
    _OPEN_READERS.forget(path)


def shared_reader(
    path: str,
    tree: str = "Events",
    format: str | None = None,
    storage: StorageOptions | None = None,
    identity: tuple[int, str] | None = None,
) -> Reader:
    """This process's open reader for a file (see :class:`_OpenReaders`); pass the file's
    ``identity`` if it is known, to save a stat (a round trip for a remote file)."""
    return _OPEN_READERS.get(
        path, tree, format or format_of(path), storage or StorageOptions(), identity
    )


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

    @classmethod
    def scan(
        cls,
        path: str,
        tree: str = "Events",
        format: str | None = None,
        storage: StorageOptions | None = None,
    ) -> FileInfo:
        """Read a file's metadata: entries, columns, natural split points."""
        name = format or format_of(path)
        reader = shared_reader(path, tree, name, storage)
        return cls(
            path=path,
            tree=tree,
            format=name,
            num_entries=reader.num_entries,
            size_bytes=file_size(path, storage),
            columns=tuple(reader.columns.values()),
            boundaries=tuple(reader.boundaries),
        )

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


_CATALOG_KEYS = frozenset({"files", "tree", "format", "storage_options", "description"})


def _catalog_entry(name: str, entry: object, source: str) -> dict[str, Any]:
    """One dataset of a catalog, checked: ``files`` (a pattern or a list of them),
    ``tree``, ``format``, ``storage_options`` (protocol -> options)."""

    def wrong(what: str) -> DatasetError:
        return DatasetError(f"dataset {name!r} in {source}: {what}", path=source)

    if not isinstance(entry, Mapping):
        raise wrong(f"must be a mapping with 'files: [...]', not a {type(entry).__name__}")
    unknown = sorted(str(k) for k in entry if k not in _CATALOG_KEYS)
    if unknown:
        raise wrong(f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_CATALOG_KEYS))}")
    files = entry.get("files")
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise wrong("'files' must be a path, URL or glob, or a non-empty list of them")
    tree = entry.get("tree", "Events")
    if not isinstance(tree, str) or not tree:
        raise wrong(f"'tree' must be a name, not {tree!r}")
    format = entry.get("format")
    if format is not None and format not in _FORMATS:
        raise wrong(f"'format' must be one of {', '.join(available_formats())}, not {format!r}")
    options = entry.get("storage_options") or {}
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Mapping) for k, v in options.items()
    ):
        raise wrong("'storage_options' must map a protocol to its options, e.g. {s3: {...}}")
    return {"files": files, "tree": tree, "format": format, "storage_options": options}


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
            cache_bytes=parse_size(cache_size),
        )
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        names, storage = name_files(expand(paths, storage), storage)
        files = _distinct(names)
        if not files:
            msg = "the dataset has no files"
            raise DatasetError(msg)
        if len(files) == 1:
            infos = [FileInfo.scan(files[0], tree, format, storage)]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
                infos = list(pool.map(lambda p: FileInfo.scan(p, tree, format, storage), files))
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
        """Open the dataset ``name`` of a catalog file (see :func:`find_catalog`).

        A catalog is YAML: ``name: {files: [url or glob, ...], tree: Events,
        storage_options: {s3: {...}}}``.
        """
        path = Path(catalog) if catalog is not None else find_catalog()
        if path is None:
            msg = (
                f"no dataset catalog found for @{name}: create datasets.yaml or set SAETTA_CATALOG"
            )
            raise DatasetError(msg)
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            msg = f"cannot read dataset catalog {path}: {reason}"
            raise DatasetError(msg, path=str(path)) from exc
        if not isinstance(document, Mapping):
            msg = f"dataset catalog {path} must map names to datasets, not be a {type(document).__name__}"
            raise DatasetError(msg, path=str(path))
        if name not in document:
            known = ", ".join(sorted(str(k) for k in document))
            msg = f"no dataset {name!r} in {path}; it has: {known or 'nothing'}"
            raise DatasetError(msg, path=str(path))
        entry = _catalog_entry(name, document[name], str(path))
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
