"""Stage: execute (layer 6) — the run directory: what a run is, what is done, what failed.

::

    RUN_DIR/
      .saetta-run       marks the folder as saetta's (saetta deletes only in its own folders)
      run.json          what was run (its fingerprint) and the command that started it
      lock              held by the one saetta process running it, while it runs
      units/*.jsonl     finished units, one JSON line each, appended by the worker that
                        computed it (one file per worker process)
      failures.json     the units that failed in the latest session, with reasons
      report.json       the latest session's RunReport

Nothing here is ever unpickled: records are plain JSON
(:mod:`saetta.execute.record`), checked before use, and a malformed one is a
one-line :class:`~saetta.errors.JournalError` naming the file.

Re-running with the same run directory runs only the units that are not done;
done units enter the same merge tree at their own positions, so the final
result equals an uninterrupted run's, and no unit is ever merged twice. The
run's *fingerprint* — the analysis (its name and the hash of its module's
source), saetta's version, the files, the tree and the chunk size — must match,
or the run directory is refused: results of two different analyses are never
mixed. A file whose size or version changed since its units were recorded
invalidates just those units.

One module for the whole run directory (longer than most): the driver's side
(:class:`Journal`), the workers' side (:func:`record_outcome`) and
:func:`remove_run` must agree on every file either side writes.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from saetta._version import __version__
from saetta.dataset import Dataset, Units
from saetta.errors import JournalError, StorageError
from saetta.execute.fingerprint import RunSpec
from saetta.execute.outcome import UnitOutcome
from saetta.execute.record import RecordError, record, unrecord
from saetta.storage import atomic_write, claim_folder, file_identity, lock_folder

__all__ = [
    "RUN_FORMAT",
    "Journal",
    "record_outcome",
    "remove_run",
]

RUN_FORMAT = 2  # run.json's "saetta_run"; 1 was saetta 0.1's, with pickled records
RUN_KIND = "run"
SEGMENT_NAME = re.compile(r"[A-Za-z0-9._-]+\.jsonl")


# --------------------------------------------------------------------------- worker side

_SEGMENTS: dict[tuple[str, int], str] = {}
_SEGMENTS_LOCK = threading.Lock()


def record_outcome(directory: str, outcome: UnitOutcome, identity: tuple[int, str]) -> None:
    """Append a finished unit to this process's segment of the run directory.

    One ``write`` per record to a file opened for appending: a process killed
    mid-write leaves at most its last line unfinished, which the journal ignores.
    The file is closed again at once, so long-lived workers (Dask) hold nothing open.
    """
    line = (record(outcome, identity) + "\n").encode()
    key = (directory, os.getpid())
    with _SEGMENTS_LOCK:
        if key not in _SEGMENTS:
            name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            _SEGMENTS[key] = os.path.join(directory, "units", name)
        path = _SEGMENTS[key]
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- driver side


class Journal:
    """A run directory in use by this process (see the module docstring).

    Opening one claims the folder (a new one is made readable by its owner only)
    and takes its lock; :meth:`start` checks or records the run's fingerprint;
    :meth:`close` lets go of the lock.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser().absolute()
        self.made = False
        self._lock_fd: int | None = None
        self._stored: dict[str, Any] | None = None
        try:
            self.made = claim_folder(self.directory, RUN_KIND, "run directory")
        except StorageError as exc:
            raise JournalError(str(exc), path=str(self.directory)) from exc
        try:
            (self.directory / "units").mkdir(mode=0o700, exist_ok=True)
            self._lock()
            self._stored = self._read_run()
        except OSError as exc:
            self.close()
            msg = f"cannot use run directory {self.directory}: {exc.strerror or exc}"
            raise JournalError(msg, path=str(self.directory)) from exc
        except JournalError:
            self.close()
            raise

    def _lock(self) -> None:
        held = lock_folder(self.directory)
        if isinstance(held, str):
            msg = (
                f"run directory {self.directory} is in use by another saetta run ({held}); "
                "wait for it to finish, or give another --run-dir"
            )
            raise JournalError(msg, path=str(self.directory))
        self._lock_fd = held

    def _read_run(self) -> dict[str, Any] | None:
        path = self.directory / "run.json"
        if not path.exists():
            return None
        try:
            document = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as exc:
            msg = f"{path} is not a saetta run description ({type(exc).__name__})"
            raise JournalError(msg, path=str(self.directory)) from exc
        if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
            version = document.get("saetta_version") if isinstance(document, dict) else None
            msg = (
                f"{path} was written by saetta {version or '?'}, whose records this version "
                "does not read; start afresh with a new --run-dir"
                if isinstance(document, dict) and "analysis" in document
                else f"{path} is not a saetta run description"
            )
            raise JournalError(msg, path=str(self.directory))
        if document.get("saetta_run") != RUN_FORMAT:
            msg = f"{path} has run format {document.get('saetta_run')!r}, not {RUN_FORMAT}"
            raise JournalError(msg, path=str(self.directory))
        return document

    @property
    def chunk_size(self) -> int | None:
        """The chunk size recorded by an earlier session, if any."""
        if self._stored is None:
            return None
        size = self._stored["spec"].get("chunk_size")
        return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None

    @property
    def command(self) -> Mapping[str, Any] | None:
        """The command recorded by the session that started the run, if any."""
        return _command_of(self._stored)

    def start(self, spec: RunSpec, command: Mapping[str, Any] | None = None) -> None:
        """Check ``spec`` against the run recorded here, or record it (with ``command``).

        Raises
        ------
        JournalError
            The run directory holds another run; it says what differs and how to start afresh.
        """
        if self._stored is not None:
            differences = spec.differences(self._stored["spec"])
            if differences:
                msg = (
                    f"run directory {self.directory} holds another run ({'; '.join(differences)}); "
                    "saetta never mixes results of different runs: give a new --run-dir "
                    "to start afresh"
                )
                raise JournalError(msg, path=str(self.directory))
            command = command or self.command
        document = {
            "saetta_run": RUN_FORMAT,
            "saetta_version": __version__,
            "created": (self._stored or {}).get("created") or _now(),
            "updated": _now(),
            "spec": {**asdict(spec), "files": list(spec.files)},
            "command": dict(command) if command else None,
        }
        try:
            atomic_write(
                self.directory / "run.json", json.dumps(document, indent=1) + "\n", private=True
            )
        except StorageError as exc:
            msg = f"cannot write the run description into {self.directory}: {exc}"
            raise JournalError(msg, path=str(self.directory)) from exc
        self._stored = document

    def done(self, units: Units, dataset: Dataset) -> dict[int, UnitOutcome]:
        """Outcomes of units finished in earlier sessions whose file has not changed since.

        Each record is found among ``units`` by :meth:`Units.locate`, so the lookup costs
        the same per record at a thousand units as at ten million.
        """
        identities: dict[str, tuple[int, str]] = {}
        found: dict[int, UnitOutcome] = {}
        for segment in self._segments():
            for number, line in _complete_lines(segment):
                try:
                    outcome, identity = unrecord(line)
                except RecordError as exc:
                    msg = (
                        f"{segment}:{number} is not a saetta unit record ({exc}); something other "
                        "than saetta wrote into this run directory: give a new --run-dir"
                    )
                    raise JournalError(msg, path=str(self.directory)) from exc
                u = outcome.unit
                index = units.locate(u.path, u.tree, u.start, u.stop)
                if index is None or index in found:
                    continue
                unit = units[index]  # as this session names its file
                if unit.path not in identities:
                    identities[unit.path] = file_identity(unit.path, dataset.storage)
                if identities[unit.path] == identity:
                    same = unit == u and unit.file_entries == u.file_entries
                    found[index] = outcome if same else replace(outcome, unit=unit)
        return found

    def _segments(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.directory / "units"))
        except OSError as exc:
            msg = f"cannot read {self.directory / 'units'}: {exc.strerror or exc}"
            raise JournalError(msg, path=str(self.directory)) from exc
        return [self.directory / "units" / n for n in names if SEGMENT_NAME.fullmatch(n)]

    def write_summary(self, report: Any) -> None:
        """The latest session's report and failures, for people and for --resume."""
        failures = [
            {
                "unit": f.unit.id,
                "events": f.unit.num_entries,
                "error": f.error,
                "message": f.message,
                "traceback": f.traceback,
            }
            for f in report.failures
        ]
        atomic_write(
            self.directory / "failures.json", json.dumps(failures, indent=1) + "\n", private=True
        )
        atomic_write(
            self.directory / "report.json",
            json.dumps(report.to_dict(), indent=1) + "\n",
            private=True,
        )

    def close(self, *, discard: bool = False) -> None:
        """Let go of the run directory; with ``discard``, remove it if this session made it
        and no unit finished (a run that failed while setting up leaves nothing behind)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if discard and self.made and not self._segments_with_records():
            with contextlib.suppress(JournalError, OSError):
                remove_run(self.directory)

    def _segments_with_records(self) -> bool:
        try:
            return any(p.stat().st_size > 0 for p in self._segments())
        except (OSError, JournalError):
            return True


def _complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The finished lines of a segment, numbered from 1, read as a stream (a segment of
    millions of records is never held whole); an unfinished last line is left out."""
    try:
        with open(path, "rb") as segment:
            for number, line in enumerate(segment, start=1):
                if line.endswith(b"\n") and line.strip():
                    yield number, line
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise JournalError(msg, path=str(path.parent.parent)) from exc


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _command_of(document: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    command = document.get("command") if document else None
    return command if isinstance(command, Mapping) else None


_OWN_FILES = ("run.json", "lock", "failures.json", "report.json", f".saetta-{RUN_KIND}")


def remove_run(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete a run directory saetta made: only the files it writes there.

    Returns what was left because saetta did not write it (the folder then stays).

    Raises
    ------
    JournalError
        The folder is not a saetta run directory, or a run is using it.
    """
    folder = Path(directory)
    if not (folder / f".saetta-{RUN_KIND}").is_file():
        msg = f"{folder} is not a saetta run directory; saetta deletes only its own"
        raise JournalError(msg, path=str(folder))
    lock = folder / "lock"
    if lock.exists():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = f"{folder} is in use by a running saetta run"
            raise JournalError(msg, path=str(folder)) from None
        finally:
            os.close(fd)
    units = folder / "units"
    for path in units.iterdir() if units.is_dir() else ():
        if SEGMENT_NAME.fullmatch(path.name):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        units.rmdir()
    for name in _OWN_FILES:
        (folder / name).unlink(missing_ok=True)
    for path in folder.iterdir():
        if path.name.startswith(".run.json.") or path.name.startswith(
            (".failures.json.", ".report.json.")
        ):
            path.unlink(missing_ok=True)  # temporary files of an interrupted write
    left = sorted(folder.rglob("*"))
    if not left:
        folder.rmdir()
    return left
