"""Stage: execute (layer 6) — where units run: placements, chosen by executor name.

- ``local``: in this process, one unit after another (easiest to debug);
- ``processes:N``: N worker processes on this machine (``processes``: one per core);
- ``dask``, ``dask:N``: a Dask LocalCluster of N workers; ``dask://host:port``: an
  existing Dask scheduler (needs the ``dask`` extra);
- any ``concurrent.futures.Executor`` or ``distributed.Client`` instance.

Each resolves to a :class:`Placement`: something that drives a :class:`Job` (the
work units of one run, some perhaps done already) to one merged
:class:`~saetta.execute.merge.Partial`, and is closed afterwards. Every placement
keeps a bounded window of units in flight and merges along the same fixed tree
(:meth:`Job.merge_tree`), so results do not depend on where units ran. Names map
to ``"module:function"`` strings imported on first use, so optional engines load
only when asked for; adding a backend is one module with a factory
``(argument, preload) -> Placement`` and one entry in ``_EXECUTORS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from saetta._registry import load
from saetta.dataset import WorkUnit
from saetta.errors import ExecutorError
from saetta.execute.merge import MergeTree, Partial
from saetta.execute.outcome import UnitOutcome
from saetta.execute.unit import Analysis, UnitOptions

__all__ = ["Job", "Placement", "available_executors", "parse_workers", "resolve_executor"]

T = TypeVar("T")

_EXECUTORS: dict[str, str] = {
    "local": "saetta.execute.futures:local",
    "processes": "saetta.execute.processes:processes",
    "dask": "saetta.execute.dask:connect",
}


@dataclass(frozen=True, slots=True)
class Job:
    """One run's work for a placement: the analysis, every unit, and those already done."""

    analysis: Analysis
    units: Sequence[WorkUnit]  # a dataset's Units, or a tuple
    options: UnitOptions
    done: Mapping[int, UnitOutcome] = field(default_factory=dict)
    bar: Any = None  # a tqdm progress bar, or None

    def merge_tree(self, join: Callable[[T, T], T]) -> tuple[MergeTree[Any], list[int]]:
        """The run's merge tree with the done units in it, and the indices still to run."""
        tree: MergeTree[Any] = MergeTree(len(self.units), join)
        for index, outcome in self.done.items():
            tree.add(index, Partial.of(outcome))
        return tree, [i for i in range(len(self.units)) if i not in self.done]

    def advance(self, unit: WorkUnit) -> None:
        """Move the progress bar on by a finished unit's events."""
        if self.bar is not None:
            self.bar.update(unit.num_entries)


class Placement(Protocol):
    """Where a run's units go: how many workers, how to drive a job there, how to let go."""

    name: str

    @property
    def workers(self) -> int: ...

    def drive(self, job: Job) -> Partial | None: ...

    def close(self, *, cancel: bool = False) -> None: ...


def available_executors() -> list[str]:
    """Names accepted by ``run(..., executor=NAME)``."""
    return sorted(_EXECUTORS)


def parse_workers(name: str, argument: str, default: int) -> int:
    """The N of ``name:N`` (``default`` when there is none); a clear error if it is not
    a positive number."""
    try:
        workers = int(argument) if argument else default
    except ValueError:
        workers = 0
    if workers < 1:
        msg = f"'{name}:{argument}' needs a positive number of workers, e.g. {name}:4"
        raise ExecutorError(msg, name=name)
    return workers


def resolve_executor(spec: Any, preload: Sequence[str] = ()) -> Placement:
    """Turn ``"local"``, ``"processes:4"``, ``"dask://host:8786"``, an Executor or a
    ``distributed.Client`` into a :class:`Placement`.

    ``preload`` names modules worth importing once in each new worker process
    (the analysis' own module), where the backend can.
    """
    if isinstance(spec, Executor):
        from saetta.execute.futures import FuturesPlacement

        workers = int(getattr(spec, "_max_workers", 0) or os.cpu_count() or 1)
        return FuturesPlacement(spec, type(spec).__name__, workers, owned=False, pickle=True)
    if type(spec).__module__.startswith("distributed"):
        from saetta.execute.dask import wrap

        return wrap(spec)
    if not isinstance(spec, str):
        msg = f"executor must be a name or an Executor, not {type(spec).__name__}"
        raise ExecutorError(msg, name=str(spec))
    name, _, argument = spec.partition(":")
    if name not in _EXECUTORS:
        msg = f"unknown executor {spec!r}; available: {', '.join(available_executors())}"
        raise ExecutorError(msg, name=name)
    factory: Callable[[str, Sequence[str]], Placement] = load(_EXECUTORS[name])
    return factory(argument, preload)
