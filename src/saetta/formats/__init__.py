"""Stage: formats (layer 3) — one module per on-disk format, each a :class:`~saetta._typing.Reader`.

- :mod:`saetta.formats.root`: ROOT TTree and RNTuple, through uproot.
- :mod:`saetta.formats.parquet`: Parquet, through pyarrow; row groups are the natural split.

Readers are chosen by name in :func:`saetta.dataset.open_reader`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from saetta.errors import MissingBranchError

__all__ = ["require_columns"]


def require_columns(
    wanted: Iterable[str], available: Mapping[str, object], path: str, tree: str
) -> None:
    """Raise :class:`MissingBranchError` (with near misses) for the first absent column."""
    for name in wanted:
        if name not in available:
            raise MissingBranchError(name, path=path, tree=tree, available=available)
