"""Stage: formats (layer 2) — the readers this process keeps open, shared by its units."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from saetta.formats import format_of, open_reader
from saetta.storage import StorageOptions, file_identity

if TYPE_CHECKING:
    from saetta._typing import Reader

__all__ = ["forget_reader", "shared_reader"]


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
            reader = open_reader(path, tree, format=format, storage=storage)
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
