"""Stage: formats (layer 3) — a local cache of *decoded* columns, in front of any reader.

Decompressing and decoding baskets is most of the cost of reading a ROOT file.
The second time an analysis reads the same columns of the same file, they come
from Arrow IPC files (LZ4-compressed, memory-mapped) instead:
``<cache>/<file key>/<column>/<start>-<stop>.arrow``.

The file key hashes the path, the tree, and the file's size and modification
time, so a rewritten file is never served stale. Files are written to a
temporary name and renamed into place, so concurrent worker processes on one
node can share the cache; the cache is kept under its size bound by removing
the least recently used files. The folder is one saetta made for this
(:func:`~saetta.storage.disk.claim_folder`), and eviction removes only files
named as cached columns.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from saetta._typing import Column, Jagged, Reader
from saetta.storage import atomic_path, claim_folder, evict_lru, is_remote

__all__ = ["CachedReader", "claim_column_cache"]

_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_KEY = re.compile(r"[0-9a-f]{20}")
_ENTRY = re.compile(r"[0-9]+-[0-9]+\.arrow")


def claim_column_cache(directory: str | os.PathLike[str]) -> None:
    """Make ``directory`` a column cache, or refuse it: see :func:`~saetta.storage.claim_folder`."""
    claim_folder(directory, "column-cache", "column cache")


class CachedReader:
    """A :class:`~saetta._typing.Reader` that keeps what it reads in ``directory``."""

    def __init__(
        self,
        reader: Reader,
        directory: str | os.PathLike[str],
        identity: tuple[int, str],
        max_bytes: int = 20 * 1024**3,
    ) -> None:
        self._reader = reader
        self.path = reader.path
        self.tree = reader.tree
        self._root = Path(directory)
        claim_column_cache(self._root)
        where = reader.path if is_remote(reader.path) else os.path.abspath(reader.path)
        text = f"{where}\0{reader.tree}\0{identity[0]}\0{identity[1]}"
        self._folder = (
            self._root / hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]
        )
        self._max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    @property
    def num_entries(self) -> int:
        return self._reader.num_entries

    @property
    def columns(self) -> Mapping[str, Column]:
        return self._reader.columns

    @property
    def boundaries(self) -> Sequence[int]:
        return self._reader.boundaries

    @property
    def header(self) -> Mapping[str, Any]:
        return getattr(self._reader, "header", {})

    @property
    def bytes_read(self) -> int:
        return self._reader.bytes_read

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        missing = []
        for name in columns:
            cached = self._load(name, start, stop)
            if cached is None:
                missing.append(name)
            else:
                out[name] = cached
        self.hits += len(columns) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self._reader.read(missing, start, stop)
            for name, values in fresh.items():
                self._store(name, start, stop, values)
            out.update(fresh)
            self._evict()
        return out

    def close(self) -> None:
        self._reader.close()

    def _file(self, name: str, start: int, stop: int) -> Path:
        return self._folder / name / f"{start}-{stop}.arrow"

    def _load(self, name: str, start: int, stop: int) -> Any:
        path = self._file(name, start, stop)
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (FileNotFoundError, pa.ArrowInvalid):
            return None
        os.utime(path)  # recently used: last to be evicted
        array = table.column(0).combine_chunks()
        if self.columns[name].jagged:
            return Jagged(
                np.asarray(array.offsets, dtype=np.int64),
                array.values.to_numpy(zero_copy_only=False),
            )
        return array.to_numpy(zero_copy_only=False)

    def _store(self, name: str, start: int, stop: int, values: Any) -> None:
        if isinstance(values, Jagged):
            offsets = pa.array(values.offsets.astype(np.int64, copy=False))
            array: pa.Array = pa.LargeListArray.from_arrays(offsets, pa.array(values.content))
        else:
            array = pa.array(np.asarray(values))
        table = pa.table({"v": array})
        with (
            atomic_path(self._file(name, start, stop), private=True) as temporary,
            pa.OSFile(str(temporary), "wb") as sink,
            pa.ipc.new_file(sink, table.schema, options=_IPC_OPTIONS) as writer,
        ):
            writer.write_table(table)

    def _evict(self) -> None:
        evict_lru(self._entries(), self._max_bytes)

    def _entries(self) -> Iterator[Path]:
        """The cached columns under the cache folder: ``<file key>/<column>/<range>.arrow``."""
        for folder in _listing(self._root):
            if _KEY.fullmatch(folder.name) and not folder.is_symlink():
                for column in _listing(folder):
                    if not column.is_symlink():
                        yield from (p for p in _listing(column) if _ENTRY.fullmatch(p.name))


def _listing(folder: Path) -> list[Path]:
    """The entries of a folder; none if it is not one, or another process just removed it."""
    try:
        return list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
