"""Stage: formats (layer 3) — ROOT files (TTree, and RNTuple where uproot reads it) via uproot."""

from __future__ import annotations

import contextlib
import importlib
import lzma
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
import uproot

from saetta._typing import Column, Jagged
from saetta.errors import FormatError, StorageError
from saetta.formats import opening, reason, require_columns
from saetta.storage import StorageOptions, is_remote, open_target, redact, retrying

if TYPE_CHECKING:
    from saetta.formats import FileDescription

__all__ = ["RootReader", "describe", "list_trees"]


def _decompression_errors() -> tuple[type[Exception], ...]:
    """What the decompressors uproot may use raise on a corrupt basket (none share a base)."""
    errors: list[type[Exception]] = [zlib.error, lzma.LZMAError]
    for module, name in (("isal.isal_zlib", "error"), ("cramjam", "DecompressionError")):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(module), name))
    return tuple(errors)


# What uproot raises on a file that is truncated, corrupt or not ROOT at all. uproot
# has no single error type for it, so the list is explicit. Found by fuzzing
# (tests/formats/test_fuzz.py): a damaged TTree gives a KeyInFileError (a KeyError),
# an AttributeError on a member read as None, a NotImplementedError, or with damaged
# streamers a RecursionError; a damaged basket whatever its decompressor raises.
_UNREADABLE = (
    OSError,
    ValueError,
    TypeError,
    LookupError,  # IndexError, KeyError
    AttributeError,
    ArithmeticError,
    EOFError,
    RuntimeError,  # RecursionError, NotImplementedError
    AssertionError,
    struct.error,
    *_decompression_errors(),
    uproot.deserialization.DeserializationError,
)


_TREE_CLASSES = frozenset({"TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple"})


def list_trees(path: str) -> list[str]:
    """Names of the trees (TTree, RNTuple) at the top of a ROOT file."""
    with opening(path, "ROOT", _UNREADABLE), uproot.open(path) as f:
        return _trees_in(f)


def _trees_in(file: Any) -> list[str]:
    """The names of the trees (TTree, RNTuple) at the top of an open ROOT file."""
    return sorted({k.split(";")[0] for k, v in file.classnames().items() if v in _TREE_CLASSES})


def _fastest_zlib() -> None:
    # ISA-L inflates ZLIB baskets 1.5-2x faster than the standard library's zlib,
    # with identical output; uproot picks its ZLIB decompressor from this attribute.
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return
    uproot.compression._DecompressZLIB.library = "isal"


_fastest_zlib()


class RootReader:
    """Reads NanoAOD-style flat and jagged numeric branches of one tree of a ROOT file."""

    def __init__(
        self, path: str, tree: str = "Events", storage: StorageOptions | None = None
    ) -> None:
        self.path = path
        self.tree = tree
        url, options = open_target(path, storage)
        shown = redact(path)
        with opening(shown, "ROOT", _UNREADABLE):
            # Plain threaded reads of a local file are ~10 % faster than uproot's default
            # fsspec source; a memory map is as fast but counts every page of the file it
            # touched as resident memory, so a worker would seem to grow with the dataset.
            if not is_remote(path):
                options = {"handler": uproot.source.file.MultithreadedFileSource}
            self._file = retrying(
                lambda: uproot.open(url, array_cache=None, **options),
                path,
                storage or StorageOptions(),
            )
        try:
            self._tree = self._file[tree]
        except KeyError as exc:
            trees = _trees_in(self._file)
            msg = f"no tree {tree!r} in {shown}; it has: {', '.join(trees) or 'no trees'}"
            if tree in trees:  # there, but a member of it is missing: a damaged tree
                msg = f"cannot read tree {tree!r} of {shown} ({reason(exc)})"
            self._file.close()
            raise FormatError(msg, path=path, tree=tree) from exc
        except _UNREADABLE as exc:
            msg = f"cannot read tree {tree!r} of {shown} ({reason(exc)})"
            self._file.close()
            raise FormatError(msg, path=path, tree=tree) from exc
        self._is_ttree = isinstance(self._tree, uproot.behaviors.TTree.TTree)
        if not (self._is_ttree or hasattr(self._tree, "arrays")):
            msg = f"{tree!r} in {shown} is a {type(self._tree).__name__}, not a tree"
            self._file.close()
            raise FormatError(msg, path=path, tree=tree)
        try:  # reads the branches' metadata: damage there shows only now
            self._columns = self._scan_columns()
            self._boundaries = self._scan_boundaries()
        except _UNREADABLE as exc:
            msg = f"cannot read the branches of tree {tree!r} of {shown} ({reason(exc)})"
            self._file.close()
            raise FormatError(msg, path=path, tree=tree) from exc
        # A damaged entry count (a trillion, or negative) would be cut into as many units.
        # With no basket in any branch ([0]), the tree holds no entries.
        held = self._boundaries[-1] if len(self._boundaries) > 1 else 0
        if held != self.num_entries or held < 0:
            msg = f"tree {tree!r} of {shown} counts {self.num_entries} entries, its baskets {held}"
            self._file.close()
            raise FormatError(msg, path=path, tree=tree)

    def _scan_columns(self) -> dict[str, Column]:
        columns: dict[str, Column] = {}
        if self._is_ttree:
            for name, branch in self._tree.iteritems(recursive=False):
                column = _column_of(name, branch.interpretation)
                if column is not None:
                    columns[name] = column
            return columns
        form = self._tree.to_akform()
        if isinstance(form, tuple):  # uproot returns (form, field paths) for an RNTuple
            form = form[0]
        for name in form.fields:
            content = form.content(name)
            if isinstance(content, ak.forms.NumpyForm):
                columns[name] = Column(name, content.primitive)
            elif isinstance(content, ak.forms.ListOffsetForm) and isinstance(
                content.content, ak.forms.NumpyForm
            ):
                columns[name] = Column(name, content.content.primitive, jagged=True)
        return columns

    @property
    def num_entries(self) -> int:
        return int(self._tree.num_entries)

    @property
    def columns(self) -> Mapping[str, Column]:
        return self._columns

    @property
    def boundaries(self) -> Sequence[int]:
        return self._boundaries

    def _scan_boundaries(self) -> list[int]:
        if not self._is_ttree:
            starts = [int(c.num_first_entry) for c in self._tree.cluster_summaries]
            return [*starts, self.num_entries]
        try:
            return [int(x) for x in self._tree.common_entry_offsets()]
        except _UNREADABLE:
            return [0, self.num_entries]

    @property
    def bytes_read(self) -> int:
        return int(self._file.file.source.num_requested_bytes)

    def read(self, columns: Sequence[str], start: int, stop: int) -> dict[str, Any]:
        require_columns(columns, self._columns, redact(self.path), self.tree)
        if not columns:
            return {}
        try:
            if self._is_ttree:
                arrays = self._tree.arrays(
                    list(columns), entry_start=start, entry_stop=stop, library="ak", how=dict
                )
            else:
                record = self._tree.arrays(list(columns), entry_start=start, entry_stop=stop)
                arrays = {name: record[name] for name in columns}
            out = {
                name: _jagged(arr) if self._columns[name].jagged else ak.to_numpy(arr)
                for name, arr in arrays.items()
            }
        except _UNREADABLE as exc:
            what = ", ".join(columns[:3]) + (
                f" and {len(columns) - 3} more" if len(columns) > 3 else ""
            )
            msg = f"cannot read {what} [{start}:{stop}] of {redact(self.path)} ({reason(exc)})"
            # A failed fetch surfaces from uproot's fsspec source as OSError, or as a
            # TypeError for HTTP and S3 (it indexes the error fsspec returned): the
            # network, not the file.
            if is_remote(self.path) and isinstance(exc, OSError | TypeError):
                raise StorageError(msg, url=redact(self.path), transient=True) from exc
            raise FormatError(msg, path=self.path, tree=self.tree) from exc
        return out

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"RootReader({self.path!r}, {self.tree!r})"


def _jagged(array: ak.Array) -> Jagged:
    layout = ak.to_layout(array)
    if not isinstance(layout, ak.contents.ListOffsetArray):
        layout = layout.to_ListOffsetArray64(True)
    return Jagged(np.asarray(layout.offsets.data), np.asarray(layout.content.data))


def _column_of(name: str, interpretation: Any) -> Column | None:
    if isinstance(interpretation, uproot.AsDtype) and interpretation.to_dtype.shape == ():
        return Column(name, interpretation.to_dtype.name)
    if isinstance(interpretation, uproot.AsJagged):
        content = interpretation.content
        if isinstance(content, uproot.AsDtype) and content.to_dtype.shape == ():
            return Column(name, content.to_dtype.name, jagged=True)
    return None


def describe(path: str, tree: str | None = None) -> FileDescription:
    """The file's size and compression, and each tree's entries and branches (for a
    TTree with compressed size and ratio); a wrong ``tree`` lists the trees there are."""
    from saetta.formats import FileDescription, column_lines

    trees = [tree] if tree else list_trees(path)
    if tree:
        RootReader(path, tree).close()
    with uproot.open(path) as f:
        header = (
            f"{path}: ROOT file, {os.path.getsize(path) / 1e6:,.1f} MB, "
            f"compression {f.file.compression}"
        )
        described: list[tuple[str, tuple[str, ...]]] = []
        for name in trees:
            t = f[name]
            if not hasattr(t, "iteritems"):
                described.append((f"\n{name}: {type(t).__name__}, {t.num_entries:,} entries", ()))
                continue
            sizes = {b.name: (b.compressed_bytes, b.uncompressed_bytes) for b in t.branches}
            reader = RootReader(path, name)
            try:
                lines = column_lines(reader.columns.values(), sizes)
            finally:
                reader.close()
            title = f"\n{name}: TTree, {t.num_entries:,} entries, {len(sizes)} branches"
            described.append((title, tuple(lines)))
    return FileDescription(header, tuple(described))
