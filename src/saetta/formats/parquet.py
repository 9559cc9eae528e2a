"""Stage: formats (layer 3) — Parquet files via pyarrow; row groups are the natural split."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saetta._typing import Column, Jagged
from saetta.errors import FormatError
from saetta.formats import open_remote, opening, require_columns
from saetta.storage import StorageOptions, is_remote, open_target, redact

if TYPE_CHECKING:
    from saetta.formats import FileDescription

__all__ = ["ParquetReader", "describe"]

_UNREADABLE = (pa.ArrowException, OSError, ValueError)


class ParquetReader:
    """Reads flat and list-of-number columns of one Parquet file, by row ranges.

    ``tree`` is kept for reports only: a Parquet file holds one table.
    """

    def __init__(
        self, path: str, tree: str = "Events", storage: StorageOptions | None = None
    ) -> None:
        self.path = path
        self.tree = tree
        shown = redact(path)
        self._handle: Any = None
        self._lock = threading.Lock()
        with opening(shown, "Parquet", _UNREADABLE):
            if is_remote(path):
                # No read-ahead: fsspec's default would fetch from a column to the end
                # of the file; pyarrow asks for exactly the column chunks it needs.
                self._handle = open_remote(path, storage, cache_type="none")
                self._file = pq.ParquetFile(self._handle)
            else:
                self._file = pq.ParquetFile(open_target(path, storage)[0])
        meta = self._file.metadata
        rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        # A damaged row count (a trillion, or negative) would be cut into as many units.
        if meta.num_rows != sum(rows) or any(n < 0 for n in rows):
            held = " + ".join(map(str, rows[:8])) + (" + ..." if len(rows) > 8 else "")
            msg = f"{shown} counts {meta.num_rows} rows, its row groups {held or 'none'}"
            self.close()
            raise FormatError(msg, path=shown)
        self._group_starts = [0, *accumulate(rows)]
        self._columns = _scan(self._file.schema_arrow)
        self._bytes_read = 0

    @property
    def num_entries(self) -> int:
        return int(self._file.metadata.num_rows)

    @property
    def columns(self) -> Mapping[str, Column]:
        return self._columns

    @property
    def boundaries(self) -> Sequence[int]:
        return list(self._group_starts)

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        require_columns(columns, self._columns, redact(self.path), self.tree)
        if not columns:
            return {}
        starts = self._group_starts
        first = max(i for i in range(len(starts) - 1) if starts[i] <= start)
        last = max(i for i in range(len(starts) - 1) if starts[i] < stop)
        groups = list(range(first, last + 1))
        try:
            # One ParquetFile is shared by the threads of a process (the reader pool, the
            # ML loader's prefetch); its pre-buffered reads are not safe to overlap
            # ("ReadRangeCache did not find matching cache entry").
            with self._lock:
                table = self._file.read_row_groups(groups, columns=list(columns))
        except (pa.ArrowException, OSError, ValueError) as exc:
            msg = (
                f"cannot read {', '.join(columns)} [{start}:{stop}] of {redact(self.path)} ({exc})"
            )
            raise FormatError(msg, path=self.path, tree=self.tree) from exc
        self._bytes_read += self._column_bytes(groups, columns)
        table = table.slice(start - starts[first], stop - start)
        out: dict[str, Any] = {}
        for name in columns:
            chunked = table.column(name)
            array = chunked.combine_chunks()
            if self._columns[name].jagged:
                out[name] = Jagged(
                    np.asarray(array.offsets, dtype=np.int64),
                    np.asarray(array.values.to_numpy(zero_copy_only=False)),
                )
            else:
                out[name] = np.asarray(array.to_numpy(zero_copy_only=False))
        return out

    def _column_bytes(self, groups: Sequence[int], columns: Sequence[str]) -> int:
        meta = self._file.metadata
        wanted = set(columns)
        # Only the chunks just read: pyarrow aborts the process (a C++ exception it does
        # not translate) on the metadata of a chunk whose size statistics are damaged,
        # which reading that chunk reports as an OSError instead.
        schema = self._file.schema
        leaves = [c for c in range(len(schema)) if schema.column(c).path.split(".")[0] in wanted]
        total = 0
        for g in groups:
            rg = meta.row_group(g)
            for c in leaves:
                total += rg.column(c).total_compressed_size
        return total

    def close(self) -> None:
        self._file.close()
        if self._handle is not None:
            self._handle.close()

    def __repr__(self) -> str:
        return f"ParquetReader({self.path!r})"


def _scan(schema: pa.Schema) -> dict[str, Column]:
    columns: dict[str, Column] = {}
    for f in schema:
        t = f.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            columns[f.name] = Column(f.name, np.dtype(t.to_pandas_dtype()).name)
        elif (pa.types.is_list(t) or pa.types.is_large_list(t)) and (
            pa.types.is_integer(t.value_type)
            or pa.types.is_floating(t.value_type)
            or pa.types.is_boolean(t.value_type)
        ):
            columns[f.name] = Column(
                f.name, np.dtype(t.value_type.to_pandas_dtype()).name, jagged=True
            )
    return columns


def describe(path: str, tree: str | None = None) -> FileDescription:
    """Rows, row groups, the codec and the columns (``tree`` is ignored: one table)."""
    import pyarrow.parquet as pq

    from saetta.formats import FileDescription, column_lines

    reader = ParquetReader(path)
    try:
        meta = pq.ParquetFile(path).metadata
        columns = column_lines(reader.columns.values(), {})
    finally:
        reader.close()
    codec = meta.row_group(0).column(0).compression if meta.num_row_groups else "-"
    header = f"{path}: Parquet, {reader.num_entries:,} rows in {meta.num_row_groups} row groups"
    return FileDescription(header, ((f"compression: {codec}", tuple(columns)),))
