"""Stage: formats (layer 3) — one module per on-disk format, each a :class:`~saetta._typing.Reader`.

- :mod:`saetta.formats.root`: ROOT TTree and RNTuple, through uproot.
- :mod:`saetta.formats.parquet`: Parquet, through pyarrow; row groups are the natural split.
- :mod:`saetta.formats.hdf5`: table-like HDF5 groups, through h5py; chunks are the natural split.
- :mod:`saetta.formats.fits`: FITS binary tables (gamma-ray event lists), row ranges.
- :mod:`saetta.formats.strain`: gravitational-wave strain (GWOSC HDF5) as padded time windows.

- :mod:`saetta.formats.pool`: the readers a process keeps open, shared by its units.
- :mod:`saetta.formats.column_cache`: decoded columns kept on disk, for any reader.

A reader is registered here by name (``_FORMATS``, ``"module:Class"``) and by
file suffix, and imported on first use; adding a format is one module with a
:class:`~saetta._typing.Reader` class and ``describe(path)`` for ``saetta inspect``,
and one line in each of the two tables.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saetta._registry import load
from saetta.errors import DatasetError, FormatError, MissingBranchError, StorageError
from saetta.storage import StorageOptions, is_remote, open_target, retrying

if TYPE_CHECKING:
    from saetta._typing import Reader

__all__ = [
    "FileDescription",
    "available_formats",
    "column_lines",
    "describe",
    "format_of",
    "open_reader",
    "open_remote",
    "opening",
    "reason",
    "require_columns",
]

_FORMATS = {
    "root": "saetta.formats.root:RootReader",
    "parquet": "saetta.formats.parquet:ParquetReader",
    "hdf5": "saetta.formats.hdf5:HDF5Reader",
    "fits": "saetta.formats.fits:FITSReader",
    "strain": "saetta.formats.strain:StrainReader",
}
_SUFFIXES = {
    ".root": "root",
    ".parquet": "parquet",
    ".parq": "parquet",
    ".pq": "parquet",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".fits": "fits",
    ".fit": "fits",
    ".fits.gz": "fits",
}


def available_formats() -> list[str]:
    """Names of the file formats saetta can read."""
    return sorted(_FORMATS)


def format_of(path: str) -> str:
    """The format name for a file path, from its suffix."""
    name = path.split("?", 1)[0] if is_remote(path) else path
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".gz":
        suffix = os.path.splitext(name[:-3])[1].lower() + suffix
    try:
        return _SUFFIXES[suffix]
    except KeyError:
        known = ", ".join(sorted(_SUFFIXES))
        msg = f"cannot tell the format of {path} from its suffix (known: {known}); pass format="
        raise DatasetError(msg, path=path) from None


def open_reader(
    path: str,
    tree: str = "Events",
    *,
    format: str | None = None,
    storage: StorageOptions | None = None,
) -> Reader:
    """Open one file (path or URL) with the reader for its format."""
    name = format or format_of(path)
    if name not in _FORMATS:
        msg = f"unknown format {name!r}; available: {', '.join(available_formats())}"
        raise DatasetError(msg, path=path)
    reader: Reader = load(_FORMATS[name])(path, tree, storage)
    return reader


@dataclass(frozen=True, slots=True)
class FileDescription:
    """What ``saetta inspect`` shows of an event file: one header line, then each tree
    (or the one table of a Parquet file) with its columns."""

    header: str
    trees: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (title, column lines)

    def __str__(self) -> str:
        parts = [self.header]
        for title, lines in self.trees:
            parts += [title, *lines]
        return "\n".join(parts)


def describe(path: str, tree: str | None = None, *, format: str | None = None) -> FileDescription:
    """Describe an event file with its format's reader module (only ``tree``, if given).

    Without ``format``, the suffix decides, except that an HDF5 file holding a
    gravitational-wave strain series (GWOSC's ``strain/Strain``) is described as one.
    """
    name = format or format_of(path)
    if format is None and name == "hdf5" and _holds_strain(path):
        name = "strain"
    if name not in _FORMATS:
        msg = f"unknown format {name!r}; available: {', '.join(available_formats())}"
        raise DatasetError(msg, path=path)
    module, _, _ = _FORMATS[name].partition(":")
    found: FileDescription = load(f"{module}:describe")(path, tree)
    return found


def _holds_strain(path: str) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("strain/Strain"), h5py.Dataset)
    except (OSError, ValueError):
        return False  # not readable: the HDF5 description says why


@contextlib.contextmanager
def opening(shown: str, kind: str, unreadable: tuple[type[Exception], ...]) -> Iterator[None]:
    """Open a file inside this block: a missing or forbidden file is a
    :class:`StorageError`, one of the reader's ``unreadable`` errors a
    :class:`FormatError` (``"<file> is not a readable <kind> file (why)"``)."""
    try:
        yield
    except FileNotFoundError as exc:
        msg = f"file not found: {shown}"
        raise StorageError(msg, url=shown) from exc
    except PermissionError as exc:
        msg = f"permission denied: {shown}"
        raise StorageError(msg, url=shown) from exc
    except unreadable as exc:
        msg = f"{shown} is not a readable {kind} file ({reason(exc)})"
        raise FormatError(msg, path=shown) from exc


def open_remote(path: str, storage: StorageOptions | None, **options: Any) -> Any:
    """A file object (fsspec's) for a remote file, opened with the storage's retries;
    ``options`` go to ``fs.open`` (``cache_type="none"``: no read-ahead)."""
    import fsspec

    url, protocol_options = open_target(path, storage)
    fs, remote = fsspec.core.url_to_fs(url, **protocol_options)
    return retrying(lambda: fs.open(remote, "rb", **options), path, storage or StorageOptions())


def reason(exc: BaseException) -> str:
    """An exception on one line for a message: its type and at most 200 characters."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def column_lines(columns: Iterable[Any], sizes: Mapping[str, tuple[int, int]]) -> list[str]:
    """A table of columns: name, type, and where known compressed size and ratio."""
    header = f"  {'branch':<28}{'type':<16}"
    if sizes:
        header += f"{'compressed':>14}{'ratio':>8}"
    lines = [header]
    for c in columns:
        kind = f"{c.dtype}[]" if c.jagged else c.dtype
        line = f"  {c.name:<28}{kind:<16}"
        if c.name in sizes:
            comp, raw = sizes[c.name]
            line += f"{comp / 1e6:>11.2f} MB{raw / comp if comp else 0:>8.2f}"
        lines.append(line)
    return lines


def require_columns(
    wanted: Iterable[str], available: Mapping[str, object], path: str, tree: str
) -> None:
    """Raise :class:`MissingBranchError` (with near misses) for the first absent column."""
    for name in wanted:
        if name not in available:
            raise MissingBranchError(name, path=path, tree=tree, available=available)
