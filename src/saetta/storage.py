"""Stage: storage (layer 1) — from what the user typed to files that exist.

Everything that touches a path or URL before a format reader opens it lives
here, so remote protocols and the cache tier have one place to go.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from saetta.errors import StorageError

__all__ = ["expand", "file_identity", "file_size"]

_GLOB_CHARS = frozenset("*?[")


def expand(patterns: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Expand paths and glob patterns into a list of existing files, in the given order.

    A pattern that matches nothing, or a path that does not exist, raises
    :class:`StorageError` naming it.
    """
    files: list[str] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        if text.startswith("file://"):
            text = text.removeprefix("file://")
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


def file_size(path: str) -> int:
    """Size of a file in bytes."""
    try:
        return os.path.getsize(path)
    except OSError as exc:
        msg = f"cannot stat {path}: {exc.strerror or exc}"
        raise StorageError(msg, url=path) from exc


def file_identity(path: str) -> tuple[int, int]:
    """(size, modification time in ns): changes whenever the file is rewritten."""
    try:
        st = os.stat(path)
    except OSError as exc:
        msg = f"cannot stat {path}: {exc.strerror or exc}"
        raise StorageError(msg, url=path) from exc
    return (st.st_size, st.st_mtime_ns)
