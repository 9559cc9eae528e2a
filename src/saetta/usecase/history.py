"""Stage: use cases (layer 7) — each testbed's history of calibrations and validations.

Every ``saetta plan`` and ``saetta validate`` appends one row to a SQLite file:
``$SAETTA_HISTORY`` if set, else ``$XDG_DATA_HOME/saetta/history.sqlite``
(``~/.local/share/saetta/history.sqlite``). ``saetta testbeds history NAME`` shows
how the per-core rate on a testbed evolved: a new saetta version, a new node
type, a slower file system all show up there.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from saetta._config import data_home
from saetta._version import __version__
from saetta.errors import UseCaseError

if TYPE_CHECKING:
    from saetta.usecase import Calibration, Measurement, Validation

__all__ = [
    "HistoryEntry",
    "entries",
    "format_history",
    "from_calibration",
    "from_validation",
    "history_path",
    "record",
]

_COLUMNS = {
    "kind": "TEXT NOT NULL",
    "testbed": "TEXT NOT NULL",
    "date": "TEXT NOT NULL",
    "saetta_version": "TEXT NOT NULL",
    "host": "TEXT NOT NULL",
    "usecase": "TEXT NOT NULL",
    "analysis": "TEXT NOT NULL",
    "rate_hz": "REAL NOT NULL",
    "events": "INTEGER NOT NULL",
    "workers": "INTEGER NOT NULL",
    "wall_s": "REAL NOT NULL",
    "alpha": "REAL",
    "peak_memory": "INTEGER NOT NULL",
    "predicted_s": "REAL",
    "verdict": "TEXT NOT NULL",
}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One calibration or validation on one testbed."""

    kind: str  # "calibration" or "validation"
    testbed: str
    date: str  # ISO 8601, UTC
    saetta_version: str
    host: str
    usecase: str
    analysis: str
    rate_hz: float  # events/s per core
    events: int  # events processed
    workers: int  # the most workers used
    wall_s: float  # wall time of the run (calibration: of all its runs)
    alpha: float | None  # efficiency loss per added worker (calibration only)
    peak_memory: int  # bytes, per worker
    predicted_s: float | None  # validation: the prediction for this run
    verdict: str  # FEASIBLE, NOT FEASIBLE, PASS, FAIL


def history_path() -> Path:
    """Where the history lives: ``$SAETTA_HISTORY`` or ``$XDG_DATA_HOME/saetta/history.sqlite``."""
    if os.environ.get("SAETTA_HISTORY"):
        return Path(os.environ["SAETTA_HISTORY"])
    return data_home() / "history.sqlite"


@contextmanager
def _connect(path: Path, *, create: bool) -> Iterator[sqlite3.Connection]:
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as connection, connection:
            columns = ", ".join(f"{k} {v}" for k, v in _COLUMNS.items())
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, {columns})"
            )
            yield connection
    except (OSError, sqlite3.Error) as exc:
        msg = f"cannot use the testbed history {path}: {exc}"
        raise UseCaseError(msg) from exc


def record(entry: HistoryEntry, path: str | os.PathLike[str] | None = None) -> Path:
    """Append ``entry`` to the history; return the file it went to.

    Raises
    ------
    UseCaseError
        The history file cannot be created or written.
    """
    target = Path(path) if path is not None else history_path()
    values = dataclasses.astuple(entry)
    with _connect(target, create=True) as connection:
        connection.execute(
            f"INSERT INTO history ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(values))})",
            values,
        )
    return target


def entries(
    testbed: str | None = None, path: str | os.PathLike[str] | None = None
) -> tuple[HistoryEntry, ...]:
    """The recorded entries, oldest first; only ``testbed``'s when given."""
    target = Path(path) if path is not None else history_path()
    if not target.exists():
        return ()
    where, arguments = ("WHERE testbed = ?", (testbed,)) if testbed is not None else ("", ())
    with _connect(target, create=False) as connection:
        rows = connection.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM history {where} ORDER BY date, id", arguments
        ).fetchall()
    return tuple(HistoryEntry(*row) for row in rows)


def from_calibration(calibration: Calibration, verdict: str) -> HistoryEntry:
    """The history entry of a calibration (``verdict``: its plan's)."""
    when = (calibration.date, calibration.saetta_version, calibration.host)
    rate, alpha = calibration.rate_hz, calibration.model.alpha
    return _entry("calibration", calibration, calibration.runs, when, verdict, rate, alpha)


def from_validation(validation: Validation) -> HistoryEntry:
    """The history entry of a validation run."""
    when = (validation.date, __version__, socket.gethostname())
    return _entry(
        "validation",
        validation.plan.calibration,
        (validation.measurement,),
        when,
        validation.verdict,
        validation.rate_hz,
        alpha=None,
        predicted_s=validation.predicted.time_s,
    )


def _entry(
    kind: str,
    calibration: Calibration,
    runs: Sequence[Measurement],
    when: tuple[str, str, str],
    verdict: str,
    rate_hz: float,
    alpha: float | None,
    predicted_s: float | None = None,
) -> HistoryEntry:
    """An entry for ``runs`` (all of a calibration's, or a validation's one) on the
    calibration's testbed; ``when`` is (date, saetta version, host)."""
    date, version, host = when
    return HistoryEntry(
        kind, calibration.testbed, date, version, host, calibration.usecase,
        calibration.analysis, rate_hz, sum(m.events for m in runs), max(m.workers for m in runs),
        sum(m.wall_s for m in runs), alpha, max(m.peak_memory for m in runs), predicted_s, verdict,
    )  # fmt: skip


def format_history(rows: tuple[HistoryEntry, ...]) -> str:
    """A table of how the rate per core evolved, per analysis: change against its first entry."""
    header = (
        f"{'date':<20} {'kind':<11} {'analysis':<14} {'saetta':<8} {'host':<14} "
        f"{'rate/core':>11} {'change':>7} {'events':>11} {'workers':>7} {'wall':>8} {'verdict'}"
    )
    first: dict[str, float] = {}
    lines = [header]
    for e in rows:
        base = first.setdefault(e.analysis, e.rate_hz)
        change = f"{100 * (e.rate_hz / base - 1):+.1f}%" if base else "-"
        predicted = f" (pred {e.predicted_s:.3g} s)" if e.predicted_s is not None else ""
        lines.append(
            f"{e.date[:19]:<20} {e.kind:<11} {e.analysis[:14]:<14} {e.saetta_version[:8]:<8} "
            f"{e.host[:14]:<14} {e.rate_hz / 1e3:>9.4g} k {change:>7} {e.events:>11,} "
            f"{e.workers:>7} {e.wall_s:>7.3g}s {e.verdict}{predicted}"
        )
    return "\n".join(lines)
