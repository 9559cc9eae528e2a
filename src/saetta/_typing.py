"""Stage: foundation (layer 0) — the protocols pluggable pieces implement.

``dataset.py`` takes a :class:`Reader` without importing ``formats/``; every
format module implements it and is checked by one contract suite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

__all__ = ["Column", "Jagged", "Reader"]


@dataclass(frozen=True, slots=True)
class Column:
    """One readable column (branch) of a file.

    ``dtype`` is the numpy dtype name of the values; ``jagged`` says whether each
    entry holds a variable-length list of them (NanoAOD's ``Jet_pt``).
    """

    name: str
    dtype: str
    jagged: bool = False


class Jagged(NamedTuple):
    """A jagged column: entry ``i`` holds ``content[offsets[i]:offsets[i + 1]]``."""

    offsets: np.ndarray
    content: np.ndarray


class Reader(Protocol):
    """Reads entry ranges of named columns from one tree (or table) of one file."""

    path: str
    tree: str

    @property
    def num_entries(self) -> int: ...

    @property
    def columns(self) -> Mapping[str, Column]: ...

    @property
    def boundaries(self) -> Sequence[int]:
        """Entry numbers where reading is cheapest to split (clusters, row groups)."""
        ...

    @property
    def bytes_read(self) -> int:
        """Bytes fetched from storage so far (compressed, as on disk)."""
        ...

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        """Read ``columns`` for entries ``[start, stop)``.

        Flat columns come back as 1-d numpy arrays, jagged ones as
        :class:`Jagged` pairs.
        """
        ...

    def close(self) -> None: ...
