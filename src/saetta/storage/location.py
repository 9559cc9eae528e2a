"""Stage: storage (layer 1) — from what the user typed to bytes: paths, URLs, the cache tier.

Everything that touches a path or URL before a format reader parses it lives
here. Local paths and ``file://`` go straight to the disk; ``root://``
(XRootD), ``http(s)://`` and ``s3://`` go through fsspec, with credentials
from their usual places (X509/token variables for XRootD, the AWS environment
and config files for S3, ``headers`` in a catalog's storage options for HTTPS).
URLs are redacted (no user info, no query string) before they reach a message.

The cache tier (:class:`BlockCacheFileSystem`, off by default) keeps the byte
ranges a reader fetched from a remote file in local blocks, so a second run
reads from the local disk. It is keyed by the URL *and* the remote file's
size and modification time or ETag — a replaced file is never served stale —
bounded in size with least-recently-used eviction, and safe for several
processes sharing it: blocks are written to a temporary name and renamed
into place, and a block that vanishes under a reader is simply fetched again.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import fsspec
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from saetta.errors import StorageError

__all__ = [
    "BlockCacheFileSystem",
    "StorageOptions",
    "cache_counters",
    "cache_info",
    "clear_cache",
    "expand",
    "file_identity",
    "file_size",
    "is_remote",
    "open_target",
    "parse_size",
    "redact",
    "retrying",
]

T = TypeVar("T")

_GLOB_CHARS = frozenset("*?[")
# Bytes per cache block. Smaller blocks fetch fewer unneeded bytes around a basket (a ROOT
# file interleaves branches); larger ones mean fewer files. ROOT's own XCache uses 1 MiB.
_BLOCK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """How to reach remote files: per-protocol fsspec options, the cache, retries.

    ``protocol_options`` maps a protocol (``"s3"``, ``"https"``, ``"root"``) to the
    keyword arguments of its fsspec filesystem; they may hold secrets, so they
    are never printed.
    """

    protocol_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    cache_dir: str | None = None
    cache_bytes: int = 50 * 1000**3
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry; doubled each time

    def for_protocol(self, protocol: str) -> dict[str, Any]:
        aliases = {"http": "https", "https": "http", "s3a": "s3", "root": "xrootd"}
        options = dict(self.protocol_options.get(aliases.get(protocol, ""), {}))
        options.update(self.protocol_options.get(protocol, {}))
        return options


_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}  # fmt: skip


def parse_size(size: int | str) -> int:
    """Bytes from ``50GB``, ``512 MiB`` or a plain number."""
    if isinstance(size, int):
        return size
    text = str(size).strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    unit = text[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value < 0 or unit not in _UNITS:
        msg = f"cannot read {size!r} as a size; write e.g. 50GB or 512MiB"
        raise StorageError(msg, url="")
    return int(value * _UNITS[unit])


def is_remote(path: str) -> bool:
    """True for a URL that is not a local file."""
    scheme = urllib.parse.urlsplit(path).scheme
    return len(scheme) > 1 and scheme != "file"


def redact(url: str) -> str:
    """The URL without user, password or query string (tokens often live there)."""
    if not is_remote(url):
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def retrying(action: Callable[[], T], url: str, options: StorageOptions) -> T:
    """Call ``action``, retrying transient network errors with exponential backoff.

    A file that does not exist or may not be read is not retried. When the
    retries are spent, :class:`StorageError` names the (redacted) URL.
    """
    delay = options.backoff
    for attempt in range(options.retries + 1):
        try:
            return action()
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except StorageError:
            raise
        except (OSError, TimeoutError) as exc:
            if not is_remote(url):
                raise
            if attempt == options.retries:
                msg = (
                    f"cannot read {redact(url)} after {attempt + 1} attempts: "
                    f"{type(exc).__name__}: {_first_line(exc, url)}"
                )
                # already retried here: not worth retrying again further up
                raise StorageError(msg, url=redact(url), transient=False) from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError  # pragma: no cover - the loop returns or raises


def _first_line(exc: BaseException, url: str) -> str:
    text = " ".join(str(exc).split())
    return text.replace(url, redact(url))[:200] or type(exc).__name__


def _filesystem(url: str, options: StorageOptions) -> tuple[Any, str]:
    protocol = urllib.parse.urlsplit(url).scheme
    try:
        fs, path = fsspec.core.url_to_fs(url, **options.for_protocol(protocol))
    except (ImportError, ValueError) as exc:
        msg = f"cannot open {redact(url)}: {exc}"
        raise StorageError(msg, url=redact(url)) from exc
    return fs, path


def _unstrip(fs: Any, url: str, path: str) -> str:
    """fsspec's path back into a full URL."""
    if "://" in path:
        return str(path)
    protocol = urllib.parse.urlsplit(url).scheme
    if protocol == "root":
        parts = urllib.parse.urlsplit(url)
        return f"root://{parts.netloc}/{path if path.startswith('/') else '/' + path}"
    return str(fs.unstrip_protocol(path))


def expand(
    patterns: Iterable[str | os.PathLike[str]], options: StorageOptions | None = None
) -> list[str]:
    """Expand paths, URLs and glob patterns into a list of existing files, in the given order.

    Remote globs are expanded on the server. A pattern that matches nothing, or
    a file that does not exist, raises :class:`StorageError` naming it.
    """
    options = options or StorageOptions()
    files: list[str] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        if text.startswith("file://"):
            text = text.removeprefix("file://")
        if is_remote(text):
            files.extend(_expand_remote(text, options))
            continue
        text = os.path.expanduser(text)
        if _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                msg = f"no file matches {text!r}"
                raise StorageError(msg, url=text)
            files.extend(matches)
        elif os.path.isdir(text):
            msg = f"{text} is a directory; give the files in it, e.g. '{text}/*.root'"
            raise StorageError(msg, url=text)
        elif not os.path.exists(text):
            msg = f"file not found: {text}"
            raise StorageError(msg, url=text)
        else:
            files.append(text)
    return files


def _expand_remote(url: str, options: StorageOptions) -> list[str]:
    fs, path = _filesystem(url, options)
    if _GLOB_CHARS & set(path):
        matches = sorted(retrying(lambda: fs.glob(path), url, options))
        if not matches:
            msg = f"no file matches {redact(url)!r}"
            raise StorageError(msg, url=redact(url))
        return [_unstrip(fs, url, m) for m in matches]
    try:
        retrying(lambda: fs.info(path), url, options)
    except FileNotFoundError as exc:
        msg = f"file not found: {redact(url)}"
        raise StorageError(msg, url=redact(url)) from exc
    except PermissionError as exc:
        msg = f"permission denied: {redact(url)}"
        raise StorageError(msg, url=redact(url)) from exc
    return [url]


def file_identity(path: str, options: StorageOptions | None = None) -> tuple[int, str]:
    """(size, version): the version (mtime, ETag) changes whenever the file is replaced."""
    if not is_remote(path):
        try:
            st = os.stat(path.removeprefix("file://"))
        except OSError as exc:
            msg = f"cannot stat {path}: {exc.strerror or exc}"
            raise StorageError(msg, url=path) from exc
        return (st.st_size, str(st.st_mtime_ns))
    options = options or StorageOptions()
    fs, remote = _filesystem(path, options)
    try:
        info = retrying(lambda: fs.info(remote), path, options)
    except FileNotFoundError as exc:
        msg = f"file not found: {redact(path)}"
        raise StorageError(msg, url=redact(path)) from exc
    version = [
        str(info[k])
        for k in ("ETag", "etag", "mtime", "LastModified", "last_modified", "modify", "modified")
        if info.get(k) is not None
    ]
    return (int(info.get("size") or 0), "/".join(version))


def file_size(path: str, options: StorageOptions | None = None) -> int:
    """Size of a file in bytes."""
    return file_identity(path, options)[0]


def open_target(path: str, options: StorageOptions | None = None) -> tuple[str, dict[str, Any]]:
    """What a reader should open: the URL (through the cache tier when enabled) and the
    fsspec keyword arguments that go with it."""
    options = options or StorageOptions()
    if not is_remote(path):
        return path.removeprefix("file://"), {}
    protocol = urllib.parse.urlsplit(path).scheme
    target_options = options.for_protocol(protocol)
    if options.cache_dir is None:
        return path, target_options
    identity = file_identity(path, options)
    cache = {
        "url": path,
        "cache_dir": options.cache_dir,
        "max_bytes": options.cache_bytes,
        "identity": f"{identity[0]}-{identity[1]}",
        "size": identity[0],
    }
    # fsspec's URL chaining hands the inner protocol and its options to the cache layer.
    return f"saettacache::{path}", {"saettacache": cache, protocol: target_options}


# --- the cache tier ------------------------------------------------------------------------


class _Blocks:
    """Blocks of remote files on the local disk: ``<dir>/<file key>/<block index>``."""

    def __init__(self, directory: str, max_bytes: int) -> None:
        self.root = Path(directory)
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
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{index}.{uuid.uuid4().hex}"
        temporary.write_bytes(data)
        os.replace(temporary, folder / str(index))
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
        entries = []
        total = 0
        for path in self.root.glob("*/*"):
            if path.name.startswith("."):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime_ns, st.st_size, path))
            total += st.st_size
        entries.sort()
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


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


def cache_counters(directory: str, max_bytes: int) -> tuple[int, int, int, int]:
    """(hits, misses, bytes from cache, bytes from remote) of this process's cache use."""
    blocks = _blocks(directory, max_bytes)
    return (blocks.hits, blocks.misses, blocks.bytes_from_cache, blocks.bytes_from_remote)


class BlockCacheFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem reading one remote file through the local block cache.

    Opened by URL chaining, ``saettacache::root://host//path``, with the options of
    :func:`open_target`.
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
        return self.cat_ranges([path], [start or 0], [end if end is not None else self.size(path)])[
            0
        ]

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
            data = self.target.cat_ranges(
                [self.target_path] * len(missing),
                [i * _BLOCK for i in missing],
                [min((i + 1) * _BLOCK, size) for i in missing],
                on_error="raise",
            )
            for index, block in zip(missing, data, strict=True):
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
                    block = self.target.cat_file(
                        self.target_path, index * _BLOCK, min((index + 1) * _BLOCK, size)
                    )
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


def cache_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Files, blocks and bytes held by a cache folder."""
    root = Path(directory)
    blocks = [p for p in root.glob("*/*") if not p.name.startswith(".")]
    return {
        "directory": str(root),
        "files": len({p.parent for p in blocks}),
        "blocks": len(blocks),
        "bytes": sum(p.stat().st_size for p in blocks if p.exists()),
    }


def clear_cache(directory: str | os.PathLike[str]) -> int:
    """Delete every cached block under ``directory``; returns the bytes freed."""
    freed = 0
    for path in Path(directory).glob("*/*"):
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
    for folder in Path(directory).glob("*"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return freed
