"""Stage: dataset (layer 3) — which events exist, and how they split into work units.

A :class:`Dataset` is a tuple of :class:`FileInfo`, one per file: read once from
the file's metadata by the reader of its format (:mod:`saetta.formats`) and kept
in the metadata cache (:mod:`saetta.metadata`), so that opening the same files
again only checks each one's identity; or taken as described (entries and size,
from a catalog, :mod:`saetta.catalog`) without opening the file at all.
:meth:`Dataset.units` cuts it into work units, one task each: :class:`Units`, a
sequence of :class:`WorkUnit` kept as arrays, so that ten million of them take
a few hundred megabytes and a few seconds to plan.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from saetta._config import DEFAULT_CACHE_SIZE
from saetta._typing import Column
from saetta.errors import DatasetError, SaettaWarning
from saetta.metadata import formats_of, read_metadata, scan
from saetta.quantities import parse_bytes
from saetta.storage import StorageOptions, expand, is_remote, name_files
from saetta.units import FileInfo, Units, WorkUnit, file_key, plan

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Dataset",
    "FileInfo",
    "Units",
    "WorkUnit",
    "file_key",
]

#: Entries per work unit when none is given. Measured on the ADL queries over a
#: 2M-event file (see the README): past ~100k the per-unit overhead is < 2 %.
DEFAULT_CHUNK_SIZE = 250_000


def _distinct(names: Sequence[str], unopened: Container[int] = ()) -> list[int]:
    """The positions of the files once each, in the given order.

    The same file given twice (twice by name, through a symlink, as a relative and an
    absolute path, or matched by two globs) would be processed twice: it is kept once,
    with a :class:`~saetta.errors.SaettaWarning`. Files in ``unopened`` (described,
    not opened) are told apart by name only: they are not even stat'ed.
    """
    seen: dict[object, str] = {}
    out: list[int] = []
    for position, name in enumerate(names):
        key: object = file_key(name)
        if position not in unopened and not is_remote(name):
            with contextlib.suppress(OSError):
                st = os.stat(name)
                key = (st.st_dev, st.st_ino)
        if key in seen:
            first = seen[key]
            again = "given more than once" if first == name else f"the same file as {first}"
            warnings.warn(f"{name} is {again}; reading it once", SaettaWarning, stacklevel=4)
            continue
        seen[key] = name
        out.append(position)
    return out


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
        paths: str
        | os.PathLike[str]
        | Mapping[str, Any]
        | Iterable[str | os.PathLike[str] | Mapping[str, Any]],
        tree: str = "Events",
        *,
        format: str | None = None,
        name: str = "",
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
        cache: str | os.PathLike[str] | None = None,
        cache_size: int | str = DEFAULT_CACHE_SIZE,
        metadata_cache: bool | str | os.PathLike[str] = True,
    ) -> Dataset:
        """Open files (paths, URLs or glob patterns) and read each one's metadata once.

        Parameters
        ----------
        paths
            A path, a URL (``root://``, ``https://``, ``s3://``), a glob pattern, or a
            list of them. Remote globs are expanded on the server. A file may also be
            described, ``{"url": ..., "entries": N, "bytes": B}``, as a catalog does:
            it is then taken as described, not opened nor even stat'ed (its units
            check the entries when they run).
        tree
            The tree (ROOT) or group (HDF5; the root group when the file has no
            ``Events``) holding the events; ignored for Parquet.
        format
            ``"root"``, ``"parquet"`` or ``"hdf5"``; by default taken from each file's suffix.
        name
            A label shown in reports.
        storage_options
            fsspec options per protocol, e.g. ``{"s3": {"endpoint_url": ...}}``.
            Credentials are better left to their usual places (the AWS environment,
            X509 variables, netrc), which work without this.
        cache, cache_size
            A folder for the data cache tier (see :func:`saetta.run`), used from
            the metadata scan on.
        metadata_cache
            Keep each opened file's metadata, and take it from there the next time
            while the file is unchanged (see :mod:`saetta.metadata`): ``True``
            (``$SAETTA_METADATA_CACHE``, ``off`` for none, else saetta's own),
            ``False``, or the path of a database file.

        Raises
        ------
        StorageError
            A path does not exist, a pattern matches nothing, a server cannot be reached.
        FormatError
            A file is not readable in its format, or lacks the tree.
        DatasetError
            A described file's description is malformed.
        """
        storage = StorageOptions(
            protocol_options=dict(storage_options or {}),
            cache_dir=os.fspath(cache) if cache is not None else None,
            cache_bytes=int(parse_bytes(cache_size, "cache size", plain_number=True)),
        )
        if isinstance(paths, str | os.PathLike | Mapping):
            paths = [paths]
        urls: list[str] = []
        described: dict[int, tuple[int, int]] = {}  # position in urls -> (entries, bytes)
        for item in paths:
            if isinstance(item, Mapping):
                url, entries, size = _described(item)
                described[len(urls)] = (entries, size)
                urls.append(url)
            else:
                urls.extend(expand([item], storage))
        names, storage = name_files(urls, storage)
        kept = _distinct(names, described)
        if not kept:
            msg = "the dataset has no files"
            raise DatasetError(msg)
        opened = [i for i in kept if i not in described]
        read = read_metadata([names[i] for i in opened], tree, format, storage, metadata_cache)
        infos = dict(zip(opened, read, strict=True))
        unopened = [i for i in kept if i in described]
        formats = formats_of([names[i] for i in unopened], format)
        for i, fmt in zip(unopened, formats, strict=True):
            entries, size = described[i]
            infos[i] = FileInfo(names[i], tree, fmt, entries, size, (), (), entries, False)
        return cls(tuple(infos[i] for i in kept), name, storage)

    @classmethod
    def from_catalog(
        cls,
        name: str,
        catalog: str | os.PathLike[str] | None = None,
        *,
        cache: str | os.PathLike[str] | None = None,
        cache_size: int | str = DEFAULT_CACHE_SIZE,
        metadata_cache: bool | str | os.PathLike[str] = True,
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
            metadata_cache=metadata_cache,
        )

    @property
    def num_entries(self) -> int:
        return sum(f.num_entries for f in self.files)

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def columns(self) -> dict[str, Column]:
        """Columns present in every file (the first file's type).

        Files a catalog described (not opened) are taken to have the columns of the
        others; if no file was opened, the first one is, now.
        """
        known = [f for f in self.files if f.scanned]
        if not known and self.files:
            first = self.files[0]
            known = [scan(first.path, first.tree, first.format, self.storage)]
        if not known:
            return {}
        common = {c.name: c for c in known[0].columns}
        for info in known[1:]:
            names = {c.name for c in info.columns}
            common = {k: v for k, v in common.items() if k in names}
        return common

    def units(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Units:
        """All work units of the dataset, in canonical order (by file key, tree, then entry).

        The order does not depend on the order the files were given in, so that
        merging in unit order gives the same result for any file order.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            msg = f"chunk size must be a positive number of entries, not {chunk_size!r}"
            raise DatasetError(msg)
        return plan(self.files, chunk_size)

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


def _described(item: Mapping[str, Any]) -> tuple[str, int, int]:
    """A described file's (url, entries, bytes), checked."""
    from saetta.catalog import file_problem

    problem = file_problem(item)
    if problem is not None:
        msg = f"cannot take {dict(item)!r} as a file: {problem}"
        raise DatasetError(msg)
    url = os.fspath(item["url"]).removeprefix("file://")
    if not is_remote(url):
        url = os.path.expanduser(url)
    return url, item["entries"], item["bytes"]
