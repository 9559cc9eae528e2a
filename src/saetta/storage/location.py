"""Stage: storage (layer 1) — from what the user typed to files: paths, URLs, globs, identities.

Local paths and ``file://`` go straight to the disk; ``root://`` (XRootD),
``http(s)://`` and ``s3://`` go through fsspec, with credentials from their
usual places (X509/token variables for XRootD, the AWS environment and config
files for S3, ``headers`` in a catalog's storage options for HTTPS).

A URL that carries its own credentials (``https://user:pw@host/f.root``,
``root://host//f.root?authz=...``) is known everywhere by its redacted name;
the full URL stays in :attr:`StorageOptions.credentials`, in memory, and is
used only to reach the server.
"""

from __future__ import annotations

import glob
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import fsspec

from saetta.errors import StorageError
from saetta.storage import ranges
from saetta.storage.blockcache import claim_cache
from saetta.storage.retry import access_denied, first_line, retrying
from saetta.storage.url import is_remote, redact, scrub, secrets_of

__all__ = [
    "StorageOptions",
    "expand",
    "file_identity",
    "file_size",
    "name_files",
    "open_target",
]

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """How to reach remote files: per-protocol fsspec options, the cache, retries, credentials.

    ``protocol_options`` maps a protocol (``"s3"``, ``"https"``, ``"root"``) to the
    keyword arguments of its fsspec filesystem; ``credentials`` maps a file's
    redacted name to its full URL. Both may hold secrets, so they are never
    printed.
    """

    protocol_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    cache_dir: str | None = None
    cache_bytes: int = 50 * 1000**3
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def for_protocol(self, protocol: str) -> dict[str, Any]:
        aliases = {"http": "https", "https": "http", "s3a": "s3", "root": "xrootd"}
        options = dict(self.protocol_options.get(aliases.get(protocol, ""), {}))
        options.update(self.protocol_options.get(protocol, {}))
        if protocol in {"s3", "s3a"} and "AWS_MAX_ATTEMPTS" not in os.environ:
            # saetta retries network trouble itself (retrying: 1, 2, 4 s); botocore's own five
            # attempts per call, times the two calls of s3fs's info, times saetta's four,
            # made an unreachable endpoint take a minute to report.
            config = dict(options.get("config_kwargs") or {})
            config.setdefault("retries", {"total_max_attempts": 2})
            options["config_kwargs"] = config
        return options

    def real(self, path: str) -> str:
        """The URL to reach ``path`` by: its full form when it carries credentials."""
        return self.credentials.get(path, path)

    def secrets(self, path: str) -> tuple[str, ...]:
        """What must not be shown of ``path``'s full URL."""
        return secrets_of(self.real(path))

    def scrub(self, text: str) -> str:
        """``text`` without credentials: neither in URLs nor any secret of a known file."""
        secrets = sorted({s for url in self.credentials.values() for s in secrets_of(url)}, key=len)
        return scrub(text, reversed(secrets))


def name_files(urls: Iterable[str], options: StorageOptions) -> tuple[list[str], StorageOptions]:
    """Each file's name as shown and stored (redacted), and options that know the full URLs.

    Raises
    ------
    StorageError
        Two different URLs have the same redacted name (they differ only in credentials
        or query): saetta could not tell them apart in reports.
    """
    names: list[str] = []
    credentials = dict(options.credentials)
    for url in urls:
        name = redact(url)
        if name != url:
            if credentials.get(name, url) != url:
                msg = f"two URLs of {name} differ only in their credentials or query; give one"
                raise StorageError(msg, url=name)
            credentials[name] = url
        names.append(name)
    if len(credentials) == len(options.credentials):
        return names, options
    return names, replace(options, credentials=credentials)


def _filesystem(url: str, options: StorageOptions) -> tuple[Any, str]:
    protocol = urllib.parse.urlsplit(url).scheme
    try:
        fs, path = fsspec.core.url_to_fs(url, **options.for_protocol(protocol))
    except (ImportError, ValueError) as exc:
        msg = f"cannot open {redact(url)}: {first_line(exc, secrets_of(url))}"
        raise StorageError(msg, url=redact(url)) from exc
    return fs, path


def _unstrip(fs: Any, url: str, path: str) -> str:
    """fsspec's path of a glob match back into a full URL, with the pattern's credentials."""
    parts = urllib.parse.urlsplit(url)
    if "://" in path:
        match = str(path)
    elif parts.scheme == "root":
        match = f"root://{parts.netloc}/{path if path.startswith('/') else '/' + path}"
    else:
        match = str(fs.unstrip_protocol(path))
    found = urllib.parse.urlsplit(match)
    netloc = parts.netloc if "@" in parts.netloc and "@" not in found.netloc else found.netloc
    query = found.query or parts.query
    return urllib.parse.urlunsplit((found.scheme, netloc, found.path, query, found.fragment))


def expand(
    patterns: Iterable[str | os.PathLike[str]], options: StorageOptions | None = None
) -> list[str]:
    """Expand paths, URLs and glob patterns into a list of existing files, in the given order.

    A path that exists is taken literally, even with ``[`` or ``?`` in its name.
    Remote globs are expanded on the server. A pattern that matches nothing, or
    a file that does not exist, raises :class:`StorageError` naming it. Full URLs
    are returned (see :func:`name_files` for the names to show).
    """
    options = options or StorageOptions()
    files: list[str] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        if text.startswith("file://"):
            text = text.removeprefix("file://")
        if is_remote(text):
            files.extend(_expand_remote(options.real(text), options))
            continue
        text = os.path.expanduser(text)
        if os.path.isdir(text):
            msg = f"{text} is a directory; give the files in it, e.g. '{text}/*.root'"
            raise StorageError(msg, url=text)
        if os.path.exists(text):
            files.append(text)
        elif _GLOB_CHARS & set(text):
            matches = sorted(m for m in glob.glob(text, recursive=True) if not os.path.isdir(m))
            if not matches:
                msg = f"no file matches {text!r}"
                raise StorageError(msg, url=text)
            files.extend(matches)
        else:
            msg = f"file not found: {text}"
            raise StorageError(msg, url=text)
    return files


def _expand_remote(url: str, options: StorageOptions) -> list[str]:
    fs, path = _filesystem(url, options)
    if _GLOB_CHARS & set(urllib.parse.urlsplit(url).path):
        matches = sorted(_guarded(lambda: fs.glob(path), url, options))
        if not matches:
            msg = f"no file matches {redact(url)!r}"
            raise StorageError(msg, url=redact(url))
        return [_unstrip(fs, url, m) for m in matches]
    _guarded(lambda: fs.info(path), url, options)
    return [url]


def _guarded(action: Any, url: str, options: StorageOptions) -> Any:
    """``retrying(action)``, with a missing file or refused access as a one-line StorageError."""
    try:
        return retrying(action, url, options)
    except FileNotFoundError as exc:
        msg = f"file not found: {redact(url)}"
        raise StorageError(msg, url=redact(url)) from exc
    except PermissionError as exc:
        raise access_denied(url, exc, secrets_of(url)) from exc


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
    url = options.real(path)
    fs, remote = _filesystem(url, options)
    info = _guarded(lambda: fs.info(remote), url, options)
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
    fsspec keyword arguments that go with it.

    An HTTP(S) server is first asked for two bytes, once per file and process
    (through the cache tier: before its first block is fetched): one that ignores
    range requests would otherwise send the whole file for every basket.
    """
    options = options or StorageOptions()
    if not is_remote(path):
        return path.removeprefix("file://"), {}
    url = options.real(path)
    protocol = urllib.parse.urlsplit(url).scheme
    target_options = options.for_protocol(protocol)
    if options.cache_dir is not None:
        # refuse a folder that is not a data cache before reading anything
        claim_cache(options.cache_dir, options.cache_bytes)
    if options.cache_dir is None:
        if protocol in ranges.PROTOCOLS:
            _check_ranges(url, options)
        return url, target_options
    identity = file_identity(path, options)
    cache = {
        "url": url,
        "cache_dir": options.cache_dir,
        "max_bytes": options.cache_bytes,
        "identity": f"{identity[0]}-{identity[1]}",
        "size": identity[0],
    }
    # fsspec's URL chaining hands the inner protocol and its options to the cache layer.
    return f"saettacache::{url}", {"saettacache": cache, protocol: target_options}


def _check_ranges(url: str, options: StorageOptions) -> None:
    """Raise :class:`StorageError` unless the HTTP server answers a range request with 206."""
    if ranges.checked(url):
        return
    fs, _ = _filesystem(url, options)
    status, content_range = _guarded(lambda: ranges.probe(fs, url), url, options)
    ranges.judge(url, status, content_range)
