"""Stage: execute (layer 6) — a run's fingerprint: what makes two runs' units interchangeable.

The analysis (its ``module:qualname`` and a hash of its module's source or of
its code, with the values bound to it), saetta's version, the files, the tree
and the chunk size. A run directory whose fingerprint differs is refused, so
results of two different analyses are never mixed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import marshal
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saetta._version import __version__
from saetta.dataset import Dataset, file_key
from saetta.samples import wrapped_analysis

__all__ = ["RunSpec", "analysis_fingerprint"]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What was run: equal specs give equal results, unit for unit."""

    analysis: str  # module:qualname
    code: str  # hash of the analysis' source (see analysis_fingerprint)
    saetta_version: str
    tree: str
    chunk_size: int
    files: tuple[str, ...]  # absolute paths, redacted URLs: the order of the units

    @classmethod
    def of(cls, analysis: Any, dataset: Dataset, chunk_size: int) -> RunSpec:
        name, code = analysis_fingerprint(analysis)
        tree = dataset.files[0].tree if dataset.files else "Events"
        files = tuple(sorted(file_key(f.path) for f in dataset.files))
        return cls(name, code, __version__, tree, chunk_size, files)

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """What ``other`` (a stored spec) has that this one does not, for people."""
        out = []
        if other.get("analysis") != self.analysis:
            out.append(f"analysis {other.get('analysis')!r}, not {self.analysis!r}")
        elif other.get("code") != self.code:
            out.append(f"the code of {self.analysis} changed since")
        if other.get("saetta_version") != self.saetta_version:
            out.append(f"saetta {other.get('saetta_version')}, not {self.saetta_version}")
        if other.get("tree") != self.tree:
            out.append(f"tree {other.get('tree')!r}, not {self.tree!r}")
        if other.get("chunk_size") != self.chunk_size:
            out.append(f"chunk size {other.get('chunk_size')!r}, not {self.chunk_size}")
        theirs = other.get("files")
        if not isinstance(theirs, list) or tuple(theirs) != self.files:
            count = len(theirs) if isinstance(theirs, list) else "?"
            out.append(f"other files ({count} there, {len(self.files)} here)")
        return out


def analysis_fingerprint(analysis: Any) -> tuple[str, str]:
    """``(module:qualname, hash)`` of an analysis.

    The hash covers the source file of the analysis' module (so editing the
    analysis, or a constant beside it, changes it), else the compiled code of the
    function itself (a notebook cell), and the arguments bound to it
    (``functools.partial``, closures, defaults) by their ``repr``.
    """
    function = wrapped_analysis(analysis)
    # A run over samples binds the samples' facts: they name the run too.
    bound: list[str] = [analysis.digest] if function is not analysis else []
    while isinstance(function, functools.partial):
        bound.append(repr((function.args, sorted(function.keywords.items()))))
        function = function.func
    module = getattr(function, "__module__", None) or "?"
    name = f"{module}:{getattr(function, '__qualname__', None) or type(function).__name__}"
    digest = hashlib.sha256(name.encode())
    source = _module_source(function)
    if source is not None:
        digest.update(source)
    code = getattr(function, "__code__", None)
    if code is not None:
        if source is None:
            digest.update(marshal.dumps(code))
        bound.append(repr(getattr(function, "__defaults__", None)))
        bound.append(repr(getattr(function, "__kwdefaults__", None)))
        for cell in getattr(function, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                bound.append(_short_repr(cell.cell_contents))
    for text in bound:
        digest.update(text.encode())
    return name, digest.hexdigest()[:32]


def _module_source(function: Any) -> bytes | None:
    try:
        path = inspect.getsourcefile(function)
    except TypeError:
        return None
    if not path or not os.path.isfile(path):
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _short_repr(value: Any) -> str:
    """A closure value's repr when it says what the value is (numbers, strings, tuples...)."""
    if isinstance(value, int | float | str | bytes | bool | tuple | frozenset | type(None)):
        return repr(value)[:10_000]
    return type(value).__qualname__
