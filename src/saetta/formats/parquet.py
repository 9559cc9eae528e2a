"""Stage: formats (layer 3) — Parquet files via pyarrow; row groups are the natural split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saetta._typing import Column, Jagged
from saetta.errors import FormatError, StorageError
from saetta.formats import require_columns
from saetta.storage import StorageOptions, is_remote, open_target, redact, retrying

__all__ = ["ParquetReader"]


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
        url, options = open_target(path, storage)
        self._handle: Any = None
        try:
            if is_remote(path):
                # No read-ahead: fsspec's default would fetch from a column to the end
                # of the file; pyarrow asks for exactly the column chunks it needs.
                fs, remote = fsspec.core.url_to_fs(url, **options)
                self._handle = retrying(
                    lambda: fs.open(remote, "rb", cache_type="none"),
                    path,
                    storage or StorageOptions(),
                )
                self._file = pq.ParquetFile(self._handle)
            else:
                self._file = pq.ParquetFile(url)
        except FileNotFoundError as exc:
            msg = f"file not found: {shown}"
            raise StorageError(msg, url=shown) from exc
        except PermissionError as exc:
            msg = f"permission denied: {shown}"
            raise StorageError(msg, url=shown) from exc
        except (pa.ArrowException, OSError, ValueError) as exc:
            msg = f"{shown} is not a readable Parquet file ({type(exc).__name__}: {exc})"
            raise FormatError(msg, path=shown) from exc
        meta = self._file.metadata
        self._group_starts = [
            0,
            *accumulate(meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
        ]
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
        total = 0
        for g in groups:
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                chunk = rg.column(c)
                if chunk.path_in_schema.split(".")[0] in wanted:
                    total += chunk.total_compressed_size
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
