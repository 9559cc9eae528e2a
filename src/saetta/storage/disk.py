"""Stage: storage (layer 1) — the local disk: atomic writes, folders saetta owns, eviction.

saetta deletes files only in folders it made for itself. Each such folder (a
run directory, a data cache, a column cache) holds a marker file
``.saetta-<kind>`` written when saetta claimed it; a folder without one that
is not empty is refused, whatever the user points saetta at, and within an
owned folder saetta removes only the files it names itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from saetta.errors import StorageError

__all__ = ["atomic_path", "atomic_write", "claim_folder", "evict_lru", "lock_folder", "owns"]

_MARKER = ".saetta-"


def _file_mode() -> int:
    """The mode a new file gets under this process's umask (read without changing it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, private: bool = False) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it when the block succeeds.

    Missing folders are made. Concurrent writers of one target each get their own
    temporary file; the last to finish wins, and a reader never sees a half-written
    file. On an error the temporary file is removed, and an ``OSError`` (in the
    block too) becomes a :class:`StorageError` naming ``target``. ``private`` files
    are readable by their owner only.
    """
    path = Path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        temporary = Path(name)
        try:
            yield temporary
            os.chmod(temporary, 0o600 if private else _file_mode())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as exc:
        msg = f"cannot write {path}: {exc.strerror or exc}"
        raise StorageError(msg, url=str(path)) from exc


def atomic_write(
    target: str | os.PathLike[str], data: str | bytes, *, private: bool = False
) -> None:
    """Write ``data`` to ``target`` through :func:`atomic_path`."""
    with atomic_path(target, private=private) as temporary:
        temporary.write_bytes(data.encode() if isinstance(data, str) else data)


def lock_folder(folder: str | os.PathLike[str]) -> int | str:
    """Hold ``folder/lock`` exclusively (``flock``; the system releases it when this process
    ends, killed or not): its file descriptor, or who holds it (``"pid 7 on host"``)."""
    path = Path(folder) / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        return holder
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    return fd


def owns(folder: str | os.PathLike[str], kind: str) -> bool:
    """Whether ``folder`` is a folder saetta claimed as ``kind``."""
    return (Path(folder) / f"{_MARKER}{kind}").is_file()


def claim_folder(folder: str | os.PathLike[str], kind: str, what: str) -> bool:
    """Make ``folder`` saetta's ``kind`` folder, or check it already is; True if saetta made it.

    A new folder is created readable by its owner only. An existing one must
    be saetta's (its marker) or empty; anything else raises
    :class:`StorageError` — saetta never mixes its files with someone else's.
    ``what`` names the kind for people ("data cache").
    """
    path = Path(folder).expanduser()
    made = False
    try:
        if not path.exists():
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
            made = True
        if owns(path, kind):
            return made
        if not path.is_dir():
            msg = f"cannot use {what} {path}: it is not a folder"
            raise StorageError(msg, url=str(path))
        present = sorted(p.name for p in path.iterdir())
        other = next((n for n in present if n.startswith(_MARKER)), None)
        if other == f"{_MARKER}{kind}":  # claimed meanwhile, by another thread or process
            return made
        if other is not None:
            msg = f"{path} is a saetta {other.removeprefix(_MARKER)} folder, not a {what}"
            raise StorageError(msg, url=str(path))
        if present:
            msg = (
                f"{path} is not empty and is not a saetta {what}; give a new or empty "
                "folder (saetta only ever deletes files in folders it made)"
            )
            raise StorageError(msg, url=str(path))
        (path / f"{_MARKER}{kind}").touch(mode=0o600, exist_ok=True)
    except OSError as exc:
        msg = f"cannot use {what} {path}: {exc.strerror or exc}"
        raise StorageError(msg, url=str(path)) from exc
    return made


def evict_lru(files: Iterable[Path], max_bytes: int) -> int:
    """Remove the least recently used of ``files`` until they total at most ``max_bytes``.

    Returns the bytes freed. A file another process removed meanwhile is skipped.
    """
    entries = []
    total = 0
    for path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        entries.append((st.st_mtime_ns, st.st_size, path))
        total += st.st_size
    entries.sort()
    freed = 0
    for _, size, path in entries:
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        freed += size
    return freed
