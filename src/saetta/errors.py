"""Stage: foundation (layer 0) — saetta's one exception hierarchy.

::

    SaettaError
    ├── DatasetError        bad dataset spec, entry-count mismatch        .path
    ├── StorageError        a file cannot be opened or read               .url
    ├── FormatError         unreadable file, missing tree, bad type       .path .tree
    │   └── MissingBranchError (also KeyError)                            .branch .available
    ├── AnalysisError       the analysis returned something unmergeable   .key
    ├── UnitError           a work unit failed                            .unit (__cause__)
    ├── JournalError        a run directory cannot be used or resumed     .path
    ├── ExecutorError       unknown executor, missing extra               .name
    ├── UseCaseError        infeasible or malformed requirement
    └── QuantityError       a size, duration or count that cannot be read (also ValueError)

    Interrupted (a KeyboardInterrupt): Ctrl-C or SIGTERM stopped a run     .run_dir

    SaettaWarning (a UserWarning): something saetta corrected, such as a file given twice

Every error carries its context both as attributes and in ``str(exc)``, so the
one line the command-line tool prints names the culprit.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "AnalysisError",
    "DatasetError",
    "ExecutorError",
    "FormatError",
    "Interrupted",
    "JournalError",
    "MissingBranchError",
    "QuantityError",
    "SaettaError",
    "SaettaWarning",
    "StorageError",
    "UnitError",
    "UseCaseError",
]


class SaettaError(Exception):
    """Base class of every error saetta raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only context must survive the trip back from a worker process.
        return (_rebuild, (type(self), self.args, self.__dict__))


class DatasetError(SaettaError):
    """A dataset specification is malformed or inconsistent."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class StorageError(SaettaError):
    """A file could not be found, opened or read.

    ``transient`` is true for network trouble that may pass (a server down or
    slow), false for what will not (no such file, no permission).
    """

    def __init__(self, message: str, *, url: str, transient: bool = False) -> None:
        super().__init__(message)
        self.url = url
        self.transient = transient


class FormatError(SaettaError):
    """A file is not in a readable format, or lacks the expected tree."""

    def __init__(self, message: str, *, path: str, tree: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.tree = tree


class MissingBranchError(FormatError, KeyError):
    """A branch (column) the analysis needs is not in the file."""

    def __init__(self, branch: str, *, path: str, tree: str, available: Iterable[str]) -> None:
        self.branch = branch
        self.available = tuple(available)
        near = difflib.get_close_matches(branch, self.available, n=3)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        super().__init__(f"{branch!r} not in {tree} of {path}{hint}", path=path, tree=tree)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class AnalysisError(SaettaError):
    """The analysis returned a value that saetta cannot merge across work units."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class UnitError(SaettaError):
    """Work units failed; ``unit`` is the first, ``result`` the partial result (if any),
    with its report, and ``failures`` every failed unit."""

    def __init__(
        self, message: str, *, unit: Any, result: Any = None, failures: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(message)
        self.unit = unit
        self.result = result
        self.failures = failures


class JournalError(SaettaError):
    """A run directory cannot be created, read, or resumed with this run."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ExecutorError(SaettaError):
    """An executor is unknown, or needs an optional dependency that is missing."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class UseCaseError(SaettaError):
    """A use-case requirement is malformed or cannot be met."""


class QuantityError(SaettaError, ValueError):
    """A size, duration or count cannot be read; the message names the field."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run; the finished units are kept in ``run_dir``."""

    def __init__(self, run_dir: Any) -> None:
        super().__init__(f"interrupted; finished units are kept in {run_dir}")
        self.run_dir = run_dir


class SaettaWarning(UserWarning):
    """Something saetta noticed and corrected, such as the same file given twice."""


def _rebuild(cls: type[SaettaError], args: tuple[Any, ...], state: dict[str, Any]) -> SaettaError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc
