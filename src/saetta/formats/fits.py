"""Stage: formats (layer 3) — FITS binary tables (gamma-ray event lists) by row ranges.

A file's *tree* is one binary-table HDU, by its ``EXTNAME`` (case-insensitive): the
default ``"Events"`` is the GADF DL3 and Fermi-LAT FT1 ``EVENTS`` HDU, or the file's
first binary table when none is named so. Its columns are the table's numeric
columns under their FITS names (``RA``, ``DEC``, ``ENERGY``, ``TIME``, ``EVENT_ID``):

- ``B``, ``I``, ``J``, ``K``, ``E``, ``D`` are flat columns in native byte order, and
  ``L`` (logical) is ``bool``;
- ``TZERO``/``TSCAL`` apply: the FITS conventions for unsigned and signed bytes
  (``I``/``J``/``K`` with ``TZERO`` = 2^15, 2^31, 2^63 are ``uint16``/``uint32``/
  ``uint64``; ``B`` with ``TZERO`` = −128 is ``int8``) keep their integer type, any other
  scaling gives ``float64`` (``TNULL`` values are not masked);
- a repeat count ``r > 1`` (``3E``) is a fixed-size collection, as in
  :mod:`saetta.formats.hdf5`: a counter ``nX`` and the values ``X_value``
  (underscores dropped from ``X``), so ``events.X.value`` holds ``r`` numbers per row;
- strings (``A``), bits (``X``), complex numbers (``C``, ``M``) and variable-length
  arrays (``P``, ``Q``) are not columns.

Column names with an underscore group like NanoAOD's (Fermi-LAT's ``EVENT_CLASS`` and
``EVENT_TYPE`` become ``events.EVENT.CLASS`` and ``events.EVENT.TYPE``); a name alone
of its prefix (DL3's ``EVENT_ID``) stays a plain field. The HDU's header keywords
are the reader's :attr:`~FITSReader.header`, which an analysis finds in
``events.attrs["header"]`` (a DL3 observation's pointing, ``RA_PNT`` and ``DEC_PNT``).

astropy parses the headers; the rows are read here, because a FITS table is stored
row after row at a known offset: a row range is one contiguous read of its bytes
(all of the row's columns: FITS tables are row-major), of which only the requested
columns are decoded. astropy would instead read a whole table into memory on its
first column access (astropy #8573), and fitsio reads local files only. The bytes
of the last row range read are kept (one range per thread), so an analysis that
touches its columns one at a time reads its rows once.

``boundaries`` split a table into at most 64 equal pieces (units are cut evenly
within them). A gzip-compressed
file (``.fits.gz``, as DL3 indexes and many data releases are) is read through a
decompressing stream: rows further on cost the decompression of what lies between,
rows before the last ones read the decompression from the file's start, so such a
file is read fastest whole, in one unit (a ``chunk_size`` of at least its rows).
``bytes_read`` counts the table bytes read (for a gzip file, uncompressed).

The column rules and the row reads stay in one module, longer than most, because
each read decodes exactly what the rules above describe.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from saetta._typing import Column, Jagged
from saetta.errors import FormatError
from saetta.formats import open_remote, opening, reason, require_columns
from saetta.storage import StorageOptions, is_remote, open_target, redact

if TYPE_CHECKING:
    from saetta.formats import FileDescription

__all__ = ["FITSReader", "describe"]

_UNREADABLE = (OSError, ValueError, TypeError, KeyError, IndexError, EOFError)
# Split points cost the planner time per file; a row-major table needs few (units are
# cut evenly between them anyway).
_MAX_BOUNDARIES = 64
_CODES = {"B": "u1", "I": "i2", "J": "i4", "K": "i8", "E": "f4", "D": "f8", "L": "i1"}
_SIZES = {"A": 1, "X": 1 / 8, "C": 8, "M": 16, "P": 8, "Q": 16} | {
    code: np.dtype(kind).itemsize for code, kind in _CODES.items()
}
# TZERO values that mean "this integer column is of the other signedness".
_OFFSET_TYPES: dict[tuple[str, float], str] = {
    ("B", -128): "i1",
    ("I", 2**15): "u2",
    ("J", 2**31): "u4",
    ("K", 2**63): "u8",
}
_STRUCTURAL = frozenset(
    {"XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP"}
)
_STRUCTURAL_PREFIXES = ("TTYPE", "TFORM", "TUNIT", "TSCAL", "TZERO", "TNULL", "TDIM", "TDISP")


@dataclass(frozen=True, slots=True)
class _Field:
    """One stored FITS column: where it lies in a row, and how to decode it."""

    name: str  # the column's FITS name
    offset: int  # bytes from the row's start
    code: str  # the TFORM type letter
    repeat: int
    scale: float
    zero: float

    @property
    def stored(self) -> np.dtype[Any]:
        kind = np.dtype(_CODES[self.code]).newbyteorder(">")
        return np.dtype((kind, (self.repeat,))) if self.repeat > 1 else kind

    @property
    def dtype(self) -> str:
        """The numpy type of the decoded values."""
        if self.code == "L":
            return "bool"
        if self.scale == 1.0 and self.zero == 0.0:
            return np.dtype(_CODES[self.code]).name
        offset_type = _OFFSET_TYPES.get((self.code, self.zero))
        if self.scale == 1.0 and offset_type is not None:
            return np.dtype(offset_type).name
        return "float64"

    def decode(self, raw: np.ndarray) -> np.ndarray:
        if self.code == "L":
            return np.asarray(raw == ord("T")).reshape(-1)
        # One copy: from the rows' strided big-endian bytes to a native contiguous array.
        native = raw.astype(raw.dtype.newbyteorder("=")).reshape(-1)
        target = np.dtype(self.dtype)
        if self.scale == 1.0 and self.zero == 0.0:
            return native
        if target.kind in "iu":  # the offset convention: flip the sign bit
            bits = native.view(np.dtype(f"u{native.itemsize}"))
            flipped = bits ^ np.array(1 << (8 * native.itemsize - 1), dtype=bits.dtype)
            return np.asarray(flipped.view(target))
        return native.astype(np.float64) * self.scale + self.zero


@dataclass(frozen=True, slots=True)
class _Table:
    """A binary-table HDU: where its rows start, their size and number, its header."""

    name: str
    data_start: int
    row_bytes: int
    rows: int
    header: dict[str, Any]  # the header's keywords and values


class FITSReader:
    """Reads the numeric columns of one FITS binary table by row ranges."""

    def __init__(
        self, path: str, tree: str = "Events", storage: StorageOptions | None = None
    ) -> None:
        self.path = path
        self.tree = tree
        shown = redact(path)
        self._raw: Any = None
        self._handle: Any = None
        self._lock = threading.Lock()
        self._last = threading.local()
        self._gzip = path.split("?", 1)[0].lower().endswith(".gz")
        with opening(shown, "FITS", _UNREADABLE):
            if is_remote(path):
                self._raw = open_remote(path, storage)
            else:
                url, _ = open_target(path, storage)
                self._raw = open(url, "rb")  # noqa: SIM115 - kept open for the reader's life
            self._handle = gzip.GzipFile(fileobj=self._raw) if self._gzip else self._raw
            # Readers live in the process's pool until it ends: close their files then
            # (or when a reader is dropped unclosed), not leave that to the interpreter.
            self._closer = weakref.finalize(self, _close, self._handle, self._raw)
            try:
                tables = _tables(self._handle)
            except Exception:
                self.close()
                raise
        try:
            self._table = _choose(tables, tree, shown)
            self._fields, self._skipped = _fields(self._table.header, self._table.row_bytes, shown)
        except FormatError:
            self.close()
            raise
        self._named = _named(self._fields)
        self._columns = {name: n.column for name, n in self._named.items()}
        self._header = _keywords(self._table.header)
        self._bytes_read = 0

    @property
    def num_entries(self) -> int:
        return self._table.rows

    @property
    def columns(self) -> Mapping[str, Column]:
        return self._columns

    @property
    def header(self) -> Mapping[str, Any]:
        """The table HDU's header keywords (not the table's structure: ``TTYPEn``, …)."""
        return self._header

    @property
    def boundaries(self) -> Sequence[int]:
        rows = self._table.rows
        if rows == 0:
            return [0, 0]
        step = max(1, math.ceil(rows / _MAX_BOUNDARIES))
        return [*range(0, rows, step), rows]

    @property
    def bytes_read(self) -> int:
        return self._bytes_read

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        require_columns(columns, self._columns, redact(self.path), self.tree)
        if not columns:
            return {}
        rows = self._rows(start, stop)
        out: dict[str, Any] = {}
        for name in columns:
            source = self._named[name]
            field = self._fields[source.source]
            if source.role == "counter":
                out[name] = np.full(stop - start, field.repeat, dtype=np.int32)
                continue
            values = field.decode(rows[field.name])
            if source.role == "values":
                offsets = np.arange(stop - start + 1, dtype=np.int64) * field.repeat
                out[name] = Jagged(offsets, values)
            else:
                out[name] = values
        return out

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a structured array of the stored (big-endian) fields."""
        if not 0 <= start <= stop <= self._table.rows:
            msg = f"rows [{start}:{stop}] are outside {redact(self.path)} ({self._table.rows} rows)"
            raise FormatError(msg, path=self.path, tree=self.tree)
        kept = getattr(self._last, "rows", None)
        if kept is not None and kept[0] == (start, stop):
            return kept[1]  # type: ignore[no-any-return]
        size = (stop - start) * self._table.row_bytes
        try:
            with self._lock:
                self._handle.seek(self._table.data_start + start * self._table.row_bytes)
                buffer = self._handle.read(size)
        except (OSError, EOFError, ValueError) as exc:
            msg = f"cannot read rows [{start}:{stop}] of {redact(self.path)} ({reason(exc)})"
            raise FormatError(msg, path=self.path, tree=self.tree) from exc
        if len(buffer) != size:
            msg = (
                f"{redact(self.path)} is truncated: rows [{start}:{stop}] of HDU "
                f"{self._table.name} need {size:,} bytes, the file holds {len(buffer):,} of them"
            )
            raise FormatError(msg, path=self.path, tree=self.tree)
        self._bytes_read += size
        layout = np.dtype(
            {
                "names": [f.name for f in self._fields.values()],
                "formats": [f.stored for f in self._fields.values()],
                "offsets": [f.offset for f in self._fields.values()],
                "itemsize": self._table.row_bytes,
            }
        )
        rows = np.frombuffer(buffer, dtype=layout, count=stop - start)
        self._last.rows = ((start, stop), rows)
        return rows

    def close(self) -> None:
        self._closer()

    def __repr__(self) -> str:
        return f"FITSReader({self.path!r}, {self.tree!r})"


def _close(*handles: Any) -> None:
    for handle in handles:
        with contextlib.suppress(OSError):
            handle.close()


@dataclass(frozen=True, slots=True)
class _Named:
    """A column as saetta names it: the FITS field it comes from, and its role."""

    source: str
    role: str  # "flat", "counter" or "values"
    column: Column


def _named(fields: Mapping[str, _Field]) -> dict[str, _Named]:
    named: dict[str, _Named] = {}
    for field in fields.values():
        if field.repeat == 1:
            named[field.name] = _Named(field.name, "flat", Column(field.name, field.dtype))
            continue
        base = field.name.replace("_", "")
        counter, values = f"n{base}", f"{base}_value"
        if counter in fields or values in fields or counter in named or values in named:
            continue  # a vector whose names would clash with another column's
        named[counter] = _Named(field.name, "counter", Column(counter, "int32"))
        named[values] = _Named(field.name, "values", Column(values, field.dtype, jagged=True))
    return named


# astropy's FITS parsing and the warning filters around it are process-wide state: two
# threads opening files at once (the reader pool, prefetching) must take turns.
_ASTROPY = threading.Lock()


def _tables(handle: Any) -> list[_Table]:
    """Every binary-table HDU of a FITS file, from its headers (no table data is read)."""
    tables = []
    with _ASTROPY, warnings.catch_warnings():
        # A non-standard card, or a file shorter than its headers say, is astropy's
        # warning; saetta checks what it reads itself (a truncated table fails its units).
        warnings.simplefilter("ignore", AstropyWarning)
        hdus = fits.open(handle, memmap=False, lazy_load_hdus=True, cache=False)
        for index, hdu in enumerate(hdus):
            if isinstance(hdu, fits.BinTableHDU):
                info = hdus.fileinfo(index)
                header = {
                    card.keyword: card.value
                    for card in hdu.header.cards
                    if card.keyword and card.keyword not in ("COMMENT", "HISTORY")
                }
                tables.append(
                    _Table(
                        str(hdu.name),
                        int(info["datLoc"]),
                        int(header["NAXIS1"]),
                        int(header["NAXIS2"]),
                        header,
                    )
                )
    return tables


def _choose(tables: Sequence[_Table], tree: str, shown: str) -> _Table:
    for table in tables:
        if table.name.lower() == tree.lower():
            return table
    if tree == "Events" and tables:
        return tables[0]
    held = ", ".join(t.name or "(unnamed)" for t in tables) or "no binary table"
    msg = f"no binary-table HDU {tree!r} in {shown}; it has: {held}"
    raise FormatError(msg, path=shown, tree=tree)


def _fields(
    header: Mapping[str, Any], row_bytes: int, shown: str
) -> tuple[dict[str, _Field], list[str]]:
    """The decodable columns of a table header, and the others (name and TFORM)."""
    fields: dict[str, _Field] = {}
    skipped: list[str] = []
    offset = 0
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        form = str(header.get(f"TFORM{i}", "")).strip().upper()
        name = str(header.get(f"TTYPE{i}", f"col{i}")).strip()
        digits = len(form) - len(form.lstrip("0123456789"))
        repeat = int(form[:digits]) if digits else 1
        code = form[digits : digits + 1]
        if code not in _SIZES:
            msg = f"{shown}: column {name!r} has a TFORM {form!r} that is not FITS"
            raise FormatError(msg, path=shown)
        if code in _CODES and repeat >= 1 and name and name not in fields:
            scale = float(header.get(f"TSCAL{i}", 1.0))
            zero = float(header.get(f"TZERO{i}", 0.0))
            fields[name] = _Field(name, offset, code, repeat, scale, zero)
        else:
            skipped.append(f"{name} ({form})")
        offset += math.ceil(repeat * _SIZES[code])
    if offset != row_bytes:
        msg = (
            f"{shown}: its columns take {offset} bytes a row, its header says NAXIS1 = {row_bytes}"
        )
        raise FormatError(msg, path=shown)
    return fields, skipped


def _keywords(header: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in header.items()
        if key not in _STRUCTURAL
        and not key.startswith(_STRUCTURAL_PREFIXES)
        and isinstance(value, bool | int | float | str)
    }


def describe(path: str, tree: str | None = None) -> FileDescription:
    """The binary-table HDUs (or only ``tree``): rows, columns, and a DL3 observation's facts."""
    from saetta.formats import FileDescription, column_lines

    shown = redact(path)
    with opening(shown, "FITS", _UNREADABLE):
        handle: Any = gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    try:
        with opening(shown, "FITS", _UNREADABLE):
            tables = _tables(handle)
        if tree is not None:
            tables = [_choose(tables, tree, shown)]
        parts = []
        for table in tables:
            fields, skipped = _fields(table.header, table.row_bytes, shown)
            lines = column_lines([n.column for n in _named(fields).values()], {})
            if skipped:
                lines.append(f"  not read: {', '.join(skipped)}")
            facts = [
                f"{key} = {table.header[key]}"
                for key in ("OBS_ID", "RA_PNT", "DEC_PNT", "LIVETIME", "TELESCOP", "INSTRUME")
                if key in table.header
            ]
            if facts:
                lines.insert(0, "  " + ", ".join(facts))
            title = f"HDU {table.name or '(unnamed)'}: binary table, {table.rows:,} rows"
            parts.append((title, tuple(lines)))
    finally:
        handle.close()
    header = f"{path}: FITS, {len(tables)} binary table{'s' if len(tables) != 1 else ''}"
    return FileDescription(header, tuple(parts))
