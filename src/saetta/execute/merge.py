"""Stage: execute (layer 6) — one fixed merge tree, whatever the executor.

Partial results combine along a binary tree over unit indices: node
``(level, k)`` covers units ``[k·2^level, (k+1)·2^level)``. The tree's shape
depends only on the number of units, never on which unit finished first, so
every executor — in this process, in worker processes, or on Dask workers —
adds the same numbers in the same order and gives bit-identical results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from saetta.accumulate import compatible, merge
from saetta.errors import AnalysisError
from saetta.execute.outcome import Failure, UnitOutcome

__all__ = ["MergeTree", "Partial", "combine", "settle"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Partial:
    """The merged result of a run of consecutive units, and what happened to each unit.

    ``conflicts`` holds results that do not merge with ``result`` (a histogram
    binned otherwise, a value of another kind), each with the ids of the units
    that gave it; :func:`settle` decides at the end which of them stands.
    """

    result: Any
    outcomes: tuple[UnitOutcome, ...]  # without their results, which are in ``result``
    conflicts: tuple[tuple[Any, frozenset[str]], ...] = ()

    @classmethod
    def of(cls, outcome: UnitOutcome) -> Partial:
        return cls(outcome.result, (replace(outcome, result=None),))


def combine(left: Partial, right: Partial) -> Partial:
    """Merge two partials of adjacent unit ranges, left first."""
    outcomes = left.outcomes + right.outcomes
    if not (left.conflicts or right.conflicts):
        if left.result is None or right.result is None:
            result = right.result if left.result is None else left.result
            return Partial(result, outcomes)
        try:
            compatible(left.result, right.result)
        except AnalysisError:
            pass
        else:
            return Partial(merge(left.result, right.result), outcomes)
    groups = _groups(left)
    for result, ids in _groups(right):
        for number, (kept, kept_ids) in enumerate(groups):
            try:
                compatible(kept, result)
            except AnalysisError:
                continue
            groups[number] = (merge(kept, result), kept_ids | ids)
            break
        else:
            groups.append((result, ids))
    (first, _), *others = groups
    return Partial(first, outcomes, tuple(others))


def _groups(partial: Partial) -> list[tuple[Any, frozenset[str]]]:
    """The results of a partial, each with the ids of its units (the main one first)."""
    if partial.result is None and not partial.conflicts:
        return []
    elsewhere = frozenset().union(*(ids for _, ids in partial.conflicts))
    main = frozenset(
        o.unit.id for o in partial.outcomes if o.failure is None and o.unit.id not in elsewhere
    )
    return [(partial.result, main), *partial.conflicts]


def settle(partial: Partial | None) -> Partial | None:
    """The final partial: of results that do not merge, the one of the most events stands,
    and the units of the others fail, each named with the reason."""
    if partial is None or not partial.conflicts:
        return partial
    groups = _groups(partial)
    events = {o.unit.id: o.unit.num_entries for o in partial.outcomes}
    order = {unit: number for number, unit in enumerate(events)}
    best = max(range(len(groups)), key=lambda i: (sum(events[u] for u in groups[i][1]), -i))
    winner, winner_ids = groups[best]
    example = min(winner_ids, key=order.__getitem__)
    reasons: dict[str, str] = {}
    for number, (result, ids) in enumerate(groups):
        if number == best:
            continue
        try:
            compatible(winner, result)
            reason = "it does not merge"  # pragma: no cover - groups differ by construction
        except AnalysisError as exc:
            reason = str(exc)
        message = f"its result does not merge with that of {example} and most units: {reason}"
        reasons.update(dict.fromkeys(ids, message))
    outcomes = tuple(
        replace(o, failure=Failure(o.unit, "AnalysisError", reasons[o.unit.id]))
        if o.unit.id in reasons
        else o
        for o in partial.outcomes
    )
    return Partial(winner, outcomes)


class MergeTree(Generic[T]):
    """Collects leaves in any order and combines siblings as soon as both exist.

    ``T`` is a partial, or a handle to one (a Dask future) when ``join``
    submits the combination elsewhere.
    """

    def __init__(self, leaves: int, join: Callable[[T, T], T]) -> None:
        self._leaves = leaves
        self._join = join
        self._waiting: dict[tuple[int, int], T] = {}
        self._root: T | None = None

    def add(self, index: int, value: T, level: int = 0) -> None:
        """Put ``value`` at node ``(level, index)``: a unit's result (level 0), or the
        merge of the units ``[index·2^level, (index+1)·2^level)`` made elsewhere."""
        k = index
        while True:
            if (1 << level) >= self._leaves:
                self._root = value
                return
            sibling = (level, k ^ 1)
            if (k ^ 1) << level >= self._leaves:  # no right sibling: carry up alone
                pass
            elif sibling in self._waiting:
                other = self._waiting.pop(sibling)
                value = self._join(other, value) if k & 1 else self._join(value, other)
            else:
                self._waiting[(level, k)] = value
                return
            level, k = level + 1, k >> 1

    @property
    def root(self) -> T | None:
        """The merge of all leaves, once every leaf has been added."""
        return self._root
