"""Stage: execute (layer 6) — the run directory: what a run is, what is done, what failed.

::

    RUN_DIR/
      run.json          the run: analysis, files with their size and version, tree,
                        chunk size, units, and the command that started it
      units/<i>.pkl     the outcome of unit i, with its partial result, written by the
                        worker that computed it (temporary name, then rename)
      failures.json     the units that failed in the latest session, with reasons
      report.json       the latest session's RunReport

A unit is done when its file exists. Re-running with the same run directory
runs only the units that are not done; done units enter the same merge tree at
their own positions, so the final result equals an uninterrupted run's, and
no unit is ever merged twice. A file whose size or version changed since the
run started invalidates that file's units instead of mixing old and new data.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from saetta._version import __version__
from saetta.dataset import Dataset, WorkUnit
from saetta.errors import JournalError
from saetta.execute.outcome import UnitOutcome
from saetta.storage import file_identity

__all__ = ["Journal", "RunSpec", "default_run_dir", "record_outcome"]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Enough to recognise a run again (the CLI keeps its command beside it, command.json)."""

    analysis: str
    tree: str
    chunk_size: int
    units: int
    files: tuple[tuple[str, int, str], ...]  # path, size, version

    @classmethod
    def of(
        cls,
        analysis: Any,
        dataset: Dataset,
        chunk_size: int,
        units: int,
    ) -> RunSpec:
        module = getattr(analysis, "__module__", None) or "?"
        name = f"{module}:{getattr(analysis, '__qualname__', None) or type(analysis).__name__}"
        files = tuple((f.path, *file_identity(f.path, dataset.storage)) for f in dataset.files)
        tree = dataset.files[0].tree if dataset.files else "Events"
        return cls(name, tree, chunk_size, units, files)


def default_run_dir() -> Path:
    """A new run directory under the user cache: ``~/.cache/saetta/runs/<time>-<id>``."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "saetta" / "runs"
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def record_outcome(directory: str, index: int, outcome: UnitOutcome) -> None:
    """Write a finished unit's outcome into the run directory, atomically."""
    target = Path(directory) / "units" / f"{index}.pkl"
    temporary = target.with_name(f".{index}.{uuid.uuid4().hex}")
    with open(temporary, "wb") as f:
        pickle.dump(outcome, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, target)


class Journal:
    """A run directory in use (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], spec: RunSpec) -> None:
        self.directory = Path(directory).expanduser()
        self.spec = spec
        self.invalidated: tuple[str, ...] = ()
        try:
            (self.directory / "units").mkdir(parents=True, exist_ok=True)
            self._check_or_write(spec)
        except OSError as exc:
            msg = f"cannot use run directory {self.directory}: {exc.strerror or exc}"
            raise JournalError(msg, path=str(self.directory)) from exc

    def _check_or_write(self, spec: RunSpec) -> None:
        path = self.directory / "run.json"
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except ValueError as exc:
                msg = f"{path} is not a saetta run description ({exc})"
                raise JournalError(msg, path=str(self.directory)) from exc
            for key in ("analysis", "tree", "chunk_size", "units"):
                if old.get(key) != getattr(spec, key):
                    msg = (
                        f"run directory {self.directory} holds another run ({key} "
                        f"{old.get(key)!r}, not {getattr(spec, key)!r}); choose another run directory"
                    )
                    raise JournalError(msg, path=str(self.directory))
            old_files = {p: (s, v) for p, s, v in old.get("files", [])}
            if set(old_files) != {p for p, _, _ in spec.files}:
                msg = f"run directory {self.directory} was made for other files"
                raise JournalError(msg, path=str(self.directory))
            self.invalidated = tuple(p for p, s, v in spec.files if tuple(old_files[p]) != (s, v))
        document = {**asdict(spec), "saetta_version": __version__}
        temporary = path.with_name(f".run.json.{uuid.uuid4().hex}")
        temporary.write_text(json.dumps(document, indent=1) + "\n")
        os.replace(temporary, path)

    def done(self, units: tuple[WorkUnit, ...]) -> dict[int, UnitOutcome]:
        """Outcomes of units finished in earlier sessions (none of an invalidated file)."""
        found: dict[int, UnitOutcome] = {}
        for path in (self.directory / "units").glob("*.pkl"):
            try:
                index = int(path.stem)
                with open(path, "rb") as f:
                    outcome = pickle.load(f)
            except (ValueError, OSError, pickle.UnpicklingError, EOFError):
                continue  # unreadable: run the unit again
            if not 0 <= index < len(units) or outcome.unit != units[index]:
                continue
            if outcome.unit.path in self.invalidated:
                path.unlink(missing_ok=True)
                continue
            found[index] = outcome
        return found

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
        (self.directory / "failures.json").write_text(json.dumps(failures, indent=1) + "\n")
        (self.directory / "report.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")
