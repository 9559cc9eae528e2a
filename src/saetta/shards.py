"""Stage: accumulate (layer 5) — event-level outputs: each work unit writes its own shard.

Histograms merge by summing; events cannot. An analysis that writes events (a
skim of NanoAOD to Parquet, a block of simulated showers to HDF5) writes one
*shard* per work unit and returns it in its result::

    def skim(events):
        selected = events[events.MET.pt > 100]
        return {"skim": saetta.write_shard(events, "skims/", {"MET_pt": selected.MET.pt})}

A shard's name comes from its unit (the source file's name, a digest of its
full path, and the entry range), or is given; it is written under a temporary
name and renamed into place, so a shard that exists is complete. The unit's
result holds a :class:`Shards` listing it, which the run directory records like
any result, so:

- a resumed run does not run a recorded unit again, and so never rewrites its shard;
- a unit killed after its rename but before it was recorded runs again and
  writes the same name (the same events, for a deterministic analysis), replacing
  the file: the folder never holds an event twice;
- merging two :class:`Shards` that name the same file raises: a shard is listed once.

The run's result lists every shard with its events and bytes
(``result["skim"].paths``), and the folder is a dataset saetta reads like any other.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saetta.errors import AnalysisError

__all__ = ["Shard", "Shards", "write_shard"]

_FORMATS = {".parquet": "parquet", ".h5": "hdf5", ".hdf5": "hdf5"}


@dataclass(frozen=True, slots=True)
class Shard:
    """One written file: its name in the shard folder, its events and its size."""

    name: str
    events: int
    bytes: int


class Shards:
    """The shards a run wrote into one folder; merging two lists them both, each once."""

    __slots__ = ("_shards", "folder")

    def __init__(self, folder: str | os.PathLike[str], shards: Mapping[str, Shard] | None = None):
        self.folder = os.fspath(folder)
        self._shards: dict[str, Shard] = dict(shards or {})

    def __iter__(self) -> Iterator[Shard]:
        return iter(sorted(self._shards.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._shards)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Shards)
            and self.folder == other.folder
            and self._shards == other._shards
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def events(self) -> int:
        return sum(s.events for s in self._shards.values())

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self._shards.values())

    @property
    def paths(self) -> list[str]:
        """The shard files, in name order."""
        return [os.path.join(self.folder, s.name) for s in self]

    def compatible(self, other: Shards, where: str = "result") -> None:
        """Raise :class:`AnalysisError` unless ``other`` lists other files of the same folder."""
        if os.path.abspath(self.folder) != os.path.abspath(other.folder):
            msg = f"{where}: shards of {self.folder} and of {other.folder} cannot be merged"
            raise AnalysisError(msg, key=where)
        twice = sorted(set(self._shards) & set(other._shards))
        if twice:
            msg = (
                f"{where}: the shard {twice[0]} was written by two work units; give each "
                "unit its own name (the default names it by file and entry range)"
            )
            raise AnalysisError(msg, key=where)

    def __add__(self, other: Shards) -> Shards:
        self.compatible(other)
        return Shards(self.folder, {**self._shards, **other._shards})

    def __repr__(self) -> str:
        return (
            f"Shards({len(self):,} files, {self.events:,} events, "
            f"{self.bytes / 1e6:,.1f} MB in {self.folder})"
        )


def write_shard(
    events: Any,
    folder: str | os.PathLike[str],
    table: Mapping[str, Any] | Callable[[Path], int],
    *,
    name: str | None = None,
    format: str = "parquet",
) -> Shards:
    """Write this unit's shard into ``folder``; returns the :class:`Shards` to put in the result.

    ``table`` is a mapping of column names to arrays (numpy or awkward, one entry per
    event written), or a function that writes the file at the path it is given and
    returns how many events it wrote (for a layout of one's own). ``name`` defaults
    to the unit's: ``<file stem>-<digest of its path>-<first>-<stop>`` plus the
    format's suffix (``parquet`` or ``hdf5``), so re-running a unit replaces its shard.
    """
    suffix = {"parquet": ".parquet", "hdf5": ".h5"}.get(format)
    if suffix is None:
        msg = f"unknown shard format {format!r}: parquet or hdf5"
        raise AnalysisError(msg)
    if name is None:
        name = _unit_name(events) + suffix
    if os.sep in name or name.startswith("."):
        msg = f"a shard name is a plain file name, not {name!r}"
        raise AnalysisError(msg)
    target = Path(folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.partial-{os.getpid()}")
    try:
        if callable(table):
            written = int(table(partial))
        else:
            written = _write_table(partial, table, _FORMATS.get(Path(name).suffix, format))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    # An earlier attempt at this unit killed mid-write (a worker that died, or a pool
    # torn down when another one did) left its partial file: saetta's own, now stale.
    for stale in target.parent.glob(f".{glob.escape(name)}.partial-*"):
        stale.unlink(missing_ok=True)
    return Shards(folder, {name: Shard(name, written, target.stat().st_size)})


def _unit_name(events: Any) -> str:
    attrs = getattr(events, "attrs", None) or {}
    if "path" not in attrs:
        msg = "write_shard needs the unit's events (or a name=) to name the shard"
        raise AnalysisError(msg)
    path = str(attrs["path"])
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    stem = Path(path.rstrip("/").split("?")[0]).name.split(".")[0] or "shard"
    return f"{stem}-{digest}-{int(attrs['start'])}-{int(attrs['stop'])}"


def _write_table(path: Path, table: Mapping[str, Any], format: str) -> int:
    import awkward as ak

    lengths = {len(v) for v in table.values()}
    if len(lengths) > 1:
        msg = f"the shard's columns have different lengths: {sorted(lengths)}"
        raise AnalysisError(msg)
    n = lengths.pop() if lengths else 0
    if format == "parquet":
        ak.to_parquet(ak.zip(dict(table), depth_limit=1) if table else ak.Array([]), path)
        return n
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in table.items():
            handle.create_dataset(key, data=np.asarray(value))
    return n
