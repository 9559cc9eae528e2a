"""Stage: accumulate (layer 5) — tables as results: rows that merge by concatenation.

Some analyses find things rather than count them: a gravitational-wave search
returns its triggers (a time, an SNR, a template per row), an event display its
selected events. Such a result is a :class:`Table` of named, equal-length numpy
columns::

    def search(events):
        ...
        return {"triggers": saetta.Table({"time": times, "snr": snrs})}

Tables merge by appending rows. Partial results merge in work-unit order, and the
run directory records each unit's result once, so the merged table holds every
unit's rows exactly once and in the same order whatever the executor, the order
units finished in, or a crash and ``--resume`` in between. Its rows can then be
sorted (:meth:`Table.sorted`) and written as Parquet (:meth:`Table.write_parquet`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from saetta.errors import AnalysisError

__all__ = ["Table"]

_KINDS = frozenset("biuf")  # bool, integers, floats


class Table:
    """Named columns of one length, each of numbers (bool, integers or floats).

    Examples
    --------
    >>> t = Table({"time": [1.0, 2.5], "snr": [9.1, 12.4]})
    >>> len(t), t.names
    (2, ('time', 'snr'))
    >>> t["snr"].max()
    np.float64(12.4)
    """

    __slots__ = ("_columns",)

    def __init__(self, columns: Mapping[str, Any]) -> None:
        converted: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            array = np.asarray(values)
            if array.ndim != 1:
                msg = f"table column {name!r} is {array.ndim}-d; a column is 1-d"
                raise AnalysisError(msg, key=name)
            if array.dtype.kind not in _KINDS:
                msg = f"table column {name!r} holds {array.dtype}; a column holds numbers"
                raise AnalysisError(msg, key=name)
            converted[str(name)] = array
        lengths = {len(a) for a in converted.values()}
        if len(lengths) > 1:
            shown = ", ".join(f"{k}: {len(v)}" for k, v in converted.items())
            msg = f"table columns differ in length ({shown})"
            raise AnalysisError(msg)
        self._columns = converted

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._columns)

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """The columns (the arrays themselves: do not modify them)."""
        return dict(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The rows, each a dict of plain Python values."""
        for i in range(len(self)):
            yield {k: v[i].item() for k, v in self._columns.items()}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Table)
            and self.names == other.names
            and all(
                a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
                for a, b in zip(self._columns.values(), other._columns.values(), strict=True)
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def compatible(self, other: Table, where: str = "table") -> None:
        """Raise :class:`AnalysisError` unless ``other`` has the same columns and kinds."""
        if not self._columns or not other._columns:
            return
        if self.names != other.names:
            msg = f"{where}: tables of columns {self.names} and {other.names} cannot be merged"
            raise AnalysisError(msg, key=where)

    def __add__(self, other: Table) -> Table:
        """This table's rows, then ``other``'s (how partial results merge)."""
        if not other._columns:
            return self
        if not self._columns:
            return other
        return Table({k: np.concatenate([v, other._columns[k]]) for k, v in self._columns.items()})

    def sorted(self, by: str | Sequence[str]) -> Table:
        """The rows ordered by one column, or several (the first most significant); stable."""
        keys = [by] if isinstance(by, str) else list(by)
        order = np.lexsort([self._columns[k] for k in reversed(keys)]) if keys else None
        return Table({k: v[order] for k, v in self._columns.items()})

    def to_arrow(self) -> Any:
        """The table as a ``pyarrow.Table``."""
        import pyarrow as pa

        return pa.table({k: pa.array(v) for k, v in self._columns.items()})

    def write_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write the rows to a Parquet file, under a temporary name renamed into place."""
        import pyarrow.parquet as pq

        target = os.fspath(path)
        partial = f"{target}.partial-{os.getpid()}"
        try:
            pq.write_table(self.to_arrow(), partial)
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.remove(partial)

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain lists per column (what the JSON output holds)."""
        return {k: v.tolist() for k, v in self._columns.items()}

    def __repr__(self) -> str:
        return f"Table({len(self):,} rows: {', '.join(self.names)})"

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(n)}</th>" for n in self.names)
        rows = []
        for row in list(self)[:10]:
            cells = "".join(f"<td>{html.escape(_shown(v))}</td>" for v in row.values())
            rows.append(f"<tr>{cells}</tr>")
        more = f"<p>… {len(self) - 10:,} more rows</p>" if len(self) > 10 else ""
        return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _shown(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
