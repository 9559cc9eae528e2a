"""Stage: storage (layer 1) — the cache tier: blocks of remote files on the local disk.

:class:`BlockCacheFileSystem` (off by default) keeps the byte ranges a reader
fetched from a remote file in local 1 MiB blocks, so a second run reads from
the local disk: ``<cache>/<file key>/<block index>``. It is keyed by the URL
*and* the remote file's size and modification time or ETag — a replaced file
is never served stale — bounded in size with least-recently-used eviction,
and safe for several processes sharing it: blocks are written to a temporary
name and renamed into place, and a block that vanishes under a reader is
simply fetched again. A block whose length is not what was asked for (a
server that ignores range requests) is refused, never cached.

The cache folder is one saetta made (:func:`~saetta.storage.disk.claim_folder`);
eviction and :func:`clear_cache` delete only files named as blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from saetta.errors import StorageError
from saetta.storage import ranges
from saetta.storage.disk import atomic_path, claim_folder, evict_lru, owns
from saetta.storage.url import redact

__all__ = ["BlockCacheFileSystem", "cache_counters", "cache_info", "claim_cache", "clear_cache"]

# Bytes per cache block. Smaller blocks fetch fewer unneeded bytes around a basket (a ROOT
# file interleaves branches); larger ones mean fewer files. ROOT's own XCache uses 1 MiB.
_BLOCK = 1024 * 1024
_KIND = "data-cache"
_KEY = re.compile(r"[0-9a-f]{24}")
# A block, or one being written (atomic_path names it).
_BLOCK_NAME = re.compile(r"[0-9]+|\.[0-9]+\.\w+\.tmp")


def _own_files(root: Path, *, partial: bool = False) -> Iterator[Path]:
    """The block files under ``root`` (with ``partial``, blocks being written too)."""
    try:
        folders = [
            p
            for p in root.iterdir()
            if _KEY.fullmatch(p.name) and p.is_dir() and not p.is_symlink()  # never follow one
        ]
    except FileNotFoundError:
        return
    for folder in folders:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        for name in names:
            if _BLOCK_NAME.fullmatch(name) and (partial or not name.startswith(".")):
                yield folder / name


class _Blocks:
    """Blocks of remote files on the local disk: ``<dir>/<file key>/<block index>``."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        self.root = Path(directory)
        claim_folder(self.root, _KIND, "data cache")
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.bytes_from_cache = 0
        self.bytes_from_remote = 0
        self._written = 0
        self._lock = threading.Lock()

    def has(self, key: str, index: int) -> bool:
        return (self.root / key / str(index)).exists()

    def read(self, key: str, index: int, start: int, stop: int) -> bytes | None:
        """Bytes ``[start, stop)`` of a cached block, or None if it is not (or no longer) there."""
        path = self.root / key / str(index)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(stop - start)
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        with self._lock:
            self.bytes_from_cache += len(data)
        return data

    def count_hit(self) -> None:
        with self._lock:
            self.hits += 1

    def put(self, key: str, index: int, data: bytes) -> None:
        folder = self.root / key
        folder.mkdir(mode=0o700, exist_ok=True)
        with atomic_path(folder / str(index), private=True) as temporary:
            temporary.write_bytes(data)
        with self._lock:
            self.misses += 1
            self.bytes_from_remote += len(data)
            self._written += len(data)
            due = self._written > self.max_bytes // 10
            if due:
                self._written = 0
        if due:
            self.evict()

    def evict(self) -> None:
        evict_lru(_own_files(self.root), self.max_bytes)


# One block store (and so one set of counters) per cache folder in this process, shared by
# every file opened through it, so a unit can tell which hits and misses it caused.
_BLOCK_STORES: dict[str, _Blocks] = {}
_BLOCK_STORES_LOCK = threading.Lock()


def _blocks(directory: str, max_bytes: int) -> _Blocks:
    key = f"{os.path.abspath(directory)}:{max_bytes}"
    with _BLOCK_STORES_LOCK:
        if key not in _BLOCK_STORES:
            _BLOCK_STORES[key] = _Blocks(directory, max_bytes)
        return _BLOCK_STORES[key]


def claim_cache(directory: str, max_bytes: int) -> None:
    """Make ``directory`` this process's data cache, or refuse it (see ``claim_folder``)."""
    _blocks(directory, max_bytes)


def cache_counters(directory: str, max_bytes: int) -> tuple[int, int, int, int]:
    """(hits, misses, bytes from cache, bytes from remote) of this process's cache use."""
    blocks = _blocks(directory, max_bytes)
    return (blocks.hits, blocks.misses, blocks.bytes_from_cache, blocks.bytes_from_remote)


def _wrong_length(url: str, got: int, wanted: int) -> StorageError:
    msg = (
        f"{redact(url)}: the server answered {got:,} bytes to a request for {wanted:,}; "
        "it does not seem to support HTTP range requests, which saetta needs to read "
        "parts of a remote file"
    )
    return StorageError(msg, url=redact(url))


class BlockCacheFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem reading one remote file through the local block cache.

    Opened by URL chaining, ``saettacache::root://host//path``, with the options of
    :func:`~saetta.storage.location.open_target`.
    """

    protocol = "saettacache"

    def __init__(
        self,
        target_protocol: str,
        target_options: Mapping[str, Any] | None = None,
        url: str = "",
        cache_dir: str = "",
        max_bytes: int = 50 * 1000**3,
        identity: str = "",
        size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # One instance per remote file: the target filesystem is made from the full URL
        # (XRootD needs its host), and every path given to this one means that file.
        self.target, self.target_path = fsspec.core.url_to_fs(url, **(target_options or {}))
        self.target_protocol = target_protocol
        self.url = url
        self.blocks = _blocks(cache_dir, max_bytes)
        self.identity = identity
        self._size = size

    def _key(self) -> str:
        text = f"{redact(self.url)}\0{self.identity}"
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:24]

    def size(self, path: str) -> int:
        if self._size is not None:
            return self._size
        return int(self.target.size(self.target_path))

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return {"name": path, "size": self.size(path), "type": "file"}

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        stop = end if end is not None else self.size(path)
        return self.cat_ranges([path], [start or 0], [stop])[0]

    def _fetch(self, indices: list[int], size: int) -> list[bytes]:
        """Whole blocks from the server, each checked to be exactly what was asked for."""
        if self.target_protocol in ranges.PROTOCOLS and not ranges.checked(self.url):
            ranges.judge(self.url, *ranges.probe(self.target, self.url))
        starts = [i * _BLOCK for i in indices]
        stops = [min((i + 1) * _BLOCK, size) for i in indices]
        data = self.target.cat_ranges(
            [self.target_path] * len(indices), starts, stops, on_error="raise"
        )
        for block, start, stop in zip(data, starts, stops, strict=True):
            if len(block) != stop - start:
                raise _wrong_length(self.url, len(block), stop - start)
        return list(data)

    def cat_ranges(
        self,
        paths: list[str],
        starts: list[int],
        ends: list[int],
        max_gap: Any = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes]:
        key = self._key()
        size = self.size(self.target_path)
        spans = [(s, max(s, min(e, size))) for s, e in zip(starts, ends, strict=True)]
        blocks = sorted(
            {i for s, e in spans if e > s for i in range(s // _BLOCK, (e - 1) // _BLOCK + 1)}
        )
        fetched: dict[int, bytes] = {}
        missing = [i for i in blocks if not self.blocks.has(key, i)]
        if missing:
            for index, block in zip(missing, self._fetch(missing, size), strict=True):
                self.blocks.put(key, index, block)
                fetched[index] = block
        for index in blocks:
            if index not in fetched:
                self.blocks.count_hit()
        out = []
        for start, end in spans:
            pieces = []
            for index in range(start // _BLOCK, (end - 1) // _BLOCK + 1) if end > start else ():
                lo = max(start, index * _BLOCK) - index * _BLOCK
                hi = min(end, (index + 1) * _BLOCK) - index * _BLOCK
                piece = (
                    fetched[index][lo:hi]
                    if index in fetched
                    else self.blocks.read(key, index, lo, hi)
                )
                if piece is None:  # evicted by another process since has(): fetch it again
                    [block] = self._fetch([index], size)
                    self.blocks.put(key, index, block)
                    fetched[index] = block
                    piece = block[lo:hi]
                pieces.append(piece)
            out.append(b"".join(pieces))
        return out

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> Any:
        return _CachedFile(self, path, mode=mode, size=self.size(path))


class _CachedFile(AbstractBufferedFile):  # type: ignore[misc]
    def _fetch_range(self, start: int, end: int) -> bytes:
        return bytes(self.fs.cat_ranges([self.path], [start], [end])[0])


fsspec.register_implementation("saettacache", BlockCacheFileSystem, clobber=True)


def _owned(directory: str | os.PathLike[str]) -> Path:
    root = Path(directory).expanduser()
    if not root.exists():
        msg = f"no data cache at {root}"
        raise StorageError(msg, url=str(root))
    if not owns(root, _KIND):
        msg = (
            f"{root} is not a saetta data cache (it has no {'.saetta-' + _KIND} marker); "
            "saetta only looks into and deletes from folders it made"
        )
        raise StorageError(msg, url=str(root))
    return root


def cache_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Files, blocks and bytes held by a data cache folder."""
    root = _owned(directory)
    blocks = list(_own_files(root))
    sizes = []
    for block in blocks:
        try:
            sizes.append(block.stat().st_size)
        except FileNotFoundError:
            continue
    return {
        "directory": str(root),
        "files": len({p.parent for p in blocks}),
        "blocks": len(sizes),
        "bytes": sum(sizes),
    }


def clear_cache(directory: str | os.PathLike[str]) -> int:
    """Delete every cached block in a data cache folder; returns the bytes freed.

    Only block files (and key folders left empty) are removed; anything else
    in the folder stays, and a folder saetta did not make is refused.
    """
    root = _owned(directory)
    freed = 0
    for path in list(_own_files(root, partial=True)):
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
    for folder in root.iterdir():
        if _KEY.fullmatch(folder.name) and not folder.is_symlink() and folder.is_dir():
            with contextlib.suppress(OSError):  # not empty, or another process removed it
                folder.rmdir()
    return freed
