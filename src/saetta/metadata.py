"""Stage: dataset (layer 3) — each file's metadata: read once, and kept on disk.

:func:`read_metadata` gives a :class:`~saetta.units.FileInfo` per file, read by the
reader of its format (:mod:`saetta.formats`) or taken from the cache below.

Reading a file's entries, columns and cluster boundaries means opening it: a round
trip or more for a remote file, tens of milliseconds to parse a NanoAOD file's
thousand branches. :meth:`saetta.Dataset.open` keeps what it read here, so that the
next open of the same files only checks each file's identity.

One SQLite database, ``$XDG_CACHE_HOME/saetta/metadata/files.sqlite``
(``$SAETTA_METADATA_CACHE`` names another database file, ``off`` turns the cache
off), in WAL mode with a busy timeout: several processes read and write it at once.
An entry is keyed as the data cache's blocks are: by the file's key (absolute path,
or redacted URL), tree and format, and is valid only for the identity (size,
version) the file had when it was read: a rewritten file is read again. Values are
plain JSON (never pickle); a list of columns shared by many files is stored once.

The cache is an optimisation, never a cause of failure: a database that cannot be
opened, read or written is passed over silently and the files are opened as
without it. A corrupt database at saetta's own path (a folder saetta claimed) is
rebuilt; one elsewhere is left as it is.

Longer than most modules because reading and caching share the keys, identities
and JSON documents: one module keeps both sides of them in step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from saetta._config import cache_home
from saetta._typing import Column
from saetta.errors import StorageError
from saetta.formats import format_of
from saetta.formats.pool import shared_reader
from saetta.storage import StorageOptions, claim_folder, file_identity, is_remote
from saetta.units import FileInfo, file_key

__all__ = [
    "MetadataCache",
    "formats_of",
    "metadata_path",
    "open_metadata_cache",
    "read_metadata",
    "scan",
]

# Threads checking files' identities: a local stat takes microseconds (a network file
# system's, a millisecond), so local files go in batches; a remote one is a round trip.
_LOCAL_THREADS, _LOCAL_BATCH = 8, 256
_REMOTE_THREADS = 32
_SCAN_THREADS = 8  # files opened at once to read their metadata

#: (file key, tree, format) of one entry.
Key = tuple[str, str, str]
#: (size, version) of a file, as :func:`saetta.storage.file_identity` gives it.
Identity = tuple[int, str]

_KIND = "metadata-cache"
# Bumped when the tables change; a database of another version is left alone (another
# saetta may be using it), never migrated or deleted.
_VERSION = 1
_BUSY_S = 30.0  # how long a writer waits for another process's transaction
# Keys per SELECT: SQLite before 3.32 allows 999 parameters per statement.
_BATCH = 900
_OFF = frozenset({"off", "0", "false", "no"})
_SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS files (key TEXT NOT NULL, tree TEXT NOT NULL, "
        "format TEXT NOT NULL, size INTEGER NOT NULL, version TEXT NOT NULL, "
        "info TEXT NOT NULL, PRIMARY KEY (key, tree, format)) WITHOUT ROWID"
    ),
    "CREATE TABLE IF NOT EXISTS columns (hash TEXT PRIMARY KEY, columns TEXT) WITHOUT ROWID",
)


def metadata_path() -> Path:
    """saetta's own metadata database: ``$XDG_CACHE_HOME/saetta/metadata/files.sqlite``."""
    return cache_home() / "metadata" / "files.sqlite"


def open_metadata_cache(setting: bool | str | os.PathLike[str] = True) -> MetadataCache | None:
    """The metadata cache to use, or None for none.

    ``setting`` is ``True`` (``$SAETTA_METADATA_CACHE`` if set, ``off`` meaning
    none; else saetta's own, :func:`metadata_path`), ``False`` (none), or the path
    of a database file.
    """
    if setting is False:
        return None
    if setting is not True:
        return MetadataCache(setting)
    named = os.environ.get("SAETTA_METADATA_CACHE", "")
    if named.lower() in _OFF:
        return None
    if named:
        return MetadataCache(named)
    path = metadata_path()
    try:
        claim_folder(path.parent, _KIND, "metadata cache")
    except StorageError:  # someone else's folder at that name: go without
        return None
    return MetadataCache(path, own=True)


class _Unusable(Exception):
    """The database is there but not one this saetta may use."""


# What a database can fail with: its own errors, the disk's, a row that is not JSON.
_FAILURES = (sqlite3.Error, OSError, ValueError, _Unusable)


def _corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class MetadataCache:
    """One SQLite database of file metadata (see the module's docstring).

    Documents are JSON objects; their ``"columns"`` value (any JSON) is stored once
    per distinct value, and documents read back share one decoded value per
    distinct one. ``own``: the database is at saetta's own path, so a corrupt
    one may be deleted and rebuilt.
    """

    def __init__(self, path: str | os.PathLike[str], *, own: bool = False) -> None:
        self.path = Path(path)
        self.own = own
        self._db: sqlite3.Connection | None = None
        self._off = False  # unusable for the rest of this object's life
        self._rebuilt = False

    def lookup(self, wanted: Mapping[Key, Identity]) -> dict[Key, dict[str, Any]]:
        """The documents of the files in ``wanted`` whose entry matches their identity."""
        found: dict[Key, dict[str, Any]] = {}
        if wanted:
            with self._guard() as db:  # a database that fails knows nothing
                if db is not None:
                    found = _lookup(db, wanted)
        return found

    def store(self, entries: Sequence[tuple[Key, Identity, Mapping[str, Any]]]) -> None:
        """Keep ``entries`` (key, identity when read, document), replacing older ones."""
        if not entries:
            return
        digests: dict[int, str] = {}  # id of a columns value -> its hash: many files share one
        column_rows: dict[str, str] = {}
        file_rows = []
        for key, identity, document in entries:
            value = document["columns"]
            digest = digests.get(id(value))
            if digest is None:
                text = json.dumps(value, separators=(",", ":"))
                digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:24]
                digests[id(value)] = digest
                column_rows[digest] = text
            info = json.dumps({**document, "columns": digest}, separators=(",", ":"))
            file_rows.append((*key, *identity, info))
        for _ in range(2):  # a second time into a rebuilt database
            written = False
            with self._guard() as db:
                if db is None:
                    return
                with _transaction(db):
                    db.executemany(
                        "INSERT OR IGNORE INTO columns (hash, columns) VALUES (?, ?)",
                        column_rows.items(),
                    )
                    db.executemany(
                        "INSERT OR REPLACE INTO files (key, tree, format, size, version, info) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        file_rows,
                    )
                written = True
            if written:
                return

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection | None]:
        """The connection (None when unusable); a database failure in the block ends it."""
        db = self._connection()
        if db is None:
            yield None
            return
        try:
            yield db
        except _FAILURES as exc:
            self._failed(exc)

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None and not self._off:
            try:
                self._db = self._connect()
            except _FAILURES as exc:
                self._failed(exc)
        return self._db

    def _failed(self, exc: Exception) -> None:
        """Give the database up, silently: a corrupt one of saetta's own is deleted, to
        be made anew on the next use."""
        self.close()
        if isinstance(exc, sqlite3.Error) and _corrupt(exc) and self.own and not self._rebuilt:
            self._rebuilt = True
            self._remove()
        else:
            self._off = True

    def _connect(self) -> sqlite3.Connection:
        foreign = not self.own and self.path.is_file() and self.path.stat().st_size > 0
        db = sqlite3.connect(self.path, timeout=_BUSY_S, isolation_level=None)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != _VERSION and (version != 0 or foreign):
                # Another saetta's database, or a file that is not ours to fill.
                raise _Unusable(self.path)
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            if version == 0:
                with _transaction(db):
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")


def _lookup(db: sqlite3.Connection, wanted: Mapping[Key, Identity]) -> dict[Key, dict[str, Any]]:
    texts: dict[Key, str] = {}
    names = sorted({key[0] for key in wanted})
    for batch in _batches(names):
        marks = ",".join("?" * len(batch))
        for key, tree, format, size, version, info in db.execute(
            f"SELECT key, tree, format, size, version, info FROM files WHERE key IN ({marks})",
            batch,
        ):
            if wanted.get((key, tree, format)) == (size, version):
                texts[key, tree, format] = info
    documents = {key: d for key, d in ((k, _decoded(t)) for k, t in texts.items()) if d}
    hashes = sorted({d["columns"] for d in documents.values()})
    columns: dict[str, Any] = {}
    for batch in _batches(hashes):
        marks = ",".join("?" * len(batch))
        for digest, text in db.execute(
            f"SELECT hash, columns FROM columns WHERE hash IN ({marks})", batch
        ):
            with contextlib.suppress(ValueError):
                columns[digest] = json.loads(text)
    return {
        key: {**document, "columns": columns[document["columns"]]}
        for key, document in documents.items()
        if document["columns"] in columns
    }


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock at once (waiting up to the busy timeout)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _decoded(text: str) -> dict[str, Any] | None:
    """A stored document, or None if it is not one (a row not written by saetta)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("columns"), str):
        return None
    return document


def _batches(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


# --------------------------------------------------------------------------- reading


def scan(
    path: str,
    tree: str,
    format: str | None,
    storage: StorageOptions,
    identity: tuple[int, str] | None = None,
) -> FileInfo:
    """Read a file's metadata once: entries, columns, natural split points."""
    name = format or format_of(path)
    identity = identity or file_identity(path, storage)
    reader = shared_reader(path, tree, name, storage, identity)
    return FileInfo(
        path=path,
        tree=tree,
        format=name,
        num_entries=reader.num_entries,
        size_bytes=identity[0],
        columns=tuple(reader.columns.values()),
        boundaries=tuple(reader.boundaries),
        file_entries=reader.num_entries,
    )


def formats_of(names: Sequence[str], format: str | None) -> list[str]:
    """Each file's format: ``format``, or :func:`~saetta.formats.format_of` its suffix
    (asked once per suffix: it parses the URL)."""
    if format is not None:
        return [format] * len(names)
    by_suffix: dict[str, str] = {}
    out = []
    for name in names:
        suffix = os.path.splitext(name.split("?", 1)[0] if is_remote(name) else name)[1].lower()
        if suffix not in by_suffix:
            by_suffix[suffix] = format_of(name)
        out.append(by_suffix[suffix])
    return out


def _identities(names: Sequence[str], storage: StorageOptions) -> list[Identity]:
    """Each file's (size, version), checked a few files at a time (more of them remote)."""
    out: list[Identity] = [(0, "")] * len(names)
    remote = [i for i, n in enumerate(names) if is_remote(n)]
    local = sorted(set(range(len(names))) - set(remote))

    def check(task: list[int]) -> list[Identity]:
        return [file_identity(names[i], storage) for i in task]

    for group, threads, per_task in (
        (local, _LOCAL_THREADS, _LOCAL_BATCH),
        (remote, _REMOTE_THREADS, 1),
    ):
        tasks = [group[k : k + per_task] for k in range(0, len(group), per_task)]
        if len(tasks) <= 1:
            found = [check(task) for task in tasks]
        else:
            with ThreadPoolExecutor(max_workers=min(threads, len(tasks))) as pool:
                found = list(pool.map(check, tasks))
        for task, identities in zip(tasks, found, strict=True):
            for i, identity in zip(task, identities, strict=True):
                out[i] = identity
    return out


def read_metadata(
    names: list[str],
    tree: str,
    format: str | None,
    storage: StorageOptions,
    metadata_cache: bool | str | os.PathLike[str],
) -> list[FileInfo]:
    """The metadata of files to open: from the metadata cache for those unchanged since
    they were read, by reading the others (which the cache then keeps)."""
    if not names:
        return []
    formats = formats_of(names, format)
    identities = _identities(names, storage)
    keys: list[Key] = [(file_key(n), tree, f) for n, f in zip(names, formats, strict=True)]
    # One tuple per distinct set of columns, shared by the files that have it: a million
    # NanoAOD files do not make a billion Column objects.
    shared: dict[tuple[Column, ...], tuple[Column, ...]] = {}
    infos: list[FileInfo | None] = [None] * len(names)
    with contextlib.ExitStack() as stack:
        cache = open_metadata_cache(metadata_cache)
        if cache is not None:
            stack.enter_context(cache)
            known = cache.lookup(dict(zip(keys, identities, strict=True)))
            decoded: dict[int, tuple[Column, ...]] = {}  # the cache gives one list per set
            for i, key in enumerate(keys):
                if key in known:
                    infos[i] = _from_document(names[i], tree, formats[i], known[key], decoded)
            for columns in decoded.values():
                shared.setdefault(columns, columns)
        missing = [i for i, info in enumerate(infos) if info is None]
        if len(missing) == 1:
            i = missing[0]
            scanned = [scan(names[i], tree, formats[i], storage, identities[i])]
        else:
            with ThreadPoolExecutor(max_workers=max(1, min(_SCAN_THREADS, len(missing)))) as pool:
                scanned = list(
                    pool.map(
                        lambda i: scan(names[i], tree, formats[i], storage, identities[i]),
                        missing,
                    )
                )
        documents: list[tuple[Key, Identity, dict[str, Any]]] = []
        lists: dict[int, list[list[Any]]] = {}  # id of a shared columns tuple -> its JSON
        for i, info in zip(missing, scanned, strict=True):
            columns = shared.setdefault(info.columns, info.columns)
            infos[i] = info if columns is info.columns else replace(info, columns=columns)
            if id(columns) not in lists:
                lists[id(columns)] = [[c.name, c.dtype, c.jagged] for c in columns]
            document = {
                "entries": info.num_entries,
                "bytes": info.size_bytes,
                "boundaries": list(info.boundaries),
                "columns": lists[id(columns)],
            }
            documents.append((keys[i], identities[i], document))
        if cache is not None:
            cache.store(documents)
    return [info for info in infos if info is not None]


def _from_document(
    path: str,
    tree: str,
    format: str,
    document: Mapping[str, Any],
    decoded: dict[int, tuple[Column, ...]],
) -> FileInfo | None:
    """A file's FileInfo from its cached document, or None if the document is not one.
    ``decoded`` maps the id of a columns list to its columns, decoded once."""
    try:
        entries, size, boundaries = document["entries"], document["bytes"], document["boundaries"]
        listed = document["columns"]
        columns = decoded.get(id(listed))
        if columns is None:
            columns = tuple(Column(name, dtype, jagged) for name, dtype, jagged in listed)
            if not all(
                isinstance(c.name, str) and isinstance(c.dtype, str) and isinstance(c.jagged, bool)
                for c in columns
            ):
                return None
            decoded[id(listed)] = columns
    except (KeyError, TypeError, ValueError):
        return None
    if not all(type(n) is int and n >= 0 for n in (entries, size, *boundaries)):
        return None
    return FileInfo(path, tree, format, entries, size, columns, tuple(boundaries), entries)
