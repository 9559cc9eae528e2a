"""Stage: execute (layer 6) — one fixed merge tree, whatever the executor.

Partial results combine along a binary tree over unit indices: node
``(level, k)`` covers units ``[k·2^level, (k+1)·2^level)``. The tree's shape
depends only on the number of units, never on which unit finished first, so
every executor — in this process, in worker processes, or on Dask workers —
adds the same numbers in the same order and gives bit-identical results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from saetta.accumulate import merge
from saetta.execute.outcome import UnitOutcome

__all__ = ["MergeTree", "Partial", "combine"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Partial:
    """The merged result of a run of consecutive units, and what happened to each unit."""

    result: Any
    outcomes: tuple[UnitOutcome, ...]  # without their results, which are in ``result``

    @classmethod
    def of(cls, outcome: UnitOutcome) -> Partial:
        from dataclasses import replace

        return cls(outcome.result, (replace(outcome, result=None),))


def combine(left: Partial, right: Partial) -> Partial:
    """Merge two partials of adjacent unit ranges, left first."""
    if left.result is None:
        result = right.result
    elif right.result is None:
        result = left.result
    else:
        result = merge(left.result, right.result)
    return Partial(result, left.outcomes + right.outcomes)


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

    def add(self, index: int, value: T) -> None:
        level, k = 0, index
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
