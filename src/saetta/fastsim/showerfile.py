"""Stage: fast simulation (layer 7) — showers in the CaloChallenge's HDF5 layout.

A shower file holds two datasets, as the Fast Calorimeter Simulation Challenge
2022 defined them: ``incident_energies`` (N × 1, MeV) and ``showers`` (N ×
voxels, MeV). saetta adds the binning description (its XML, see
:mod:`~saetta.fastsim.binning`) as the file attribute ``binning``, so a file says
how to read itself; the public CaloChallenge files lack it, and are read with
their binning XML given (``binning=``). Further attributes say who wrote a file
(``generator``: ``saetta simulate`` or a model's name) and with what seed.

Files are written under a temporary name and renamed into place: a shower file
that exists is complete. Nothing read from a file executes code.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from saetta.errors import DatasetError, FormatError
from saetta.fastsim.binning import Binning

__all__ = ["ShowerFile", "read_showers", "write_showers"]


@dataclass(frozen=True)
class ShowerFile:
    """Showers and their incident energies (MeV), with the binning of their voxels."""

    incident_energies: np.ndarray  # (N,) float64
    showers: np.ndarray  # (N, voxels) float32
    binning: Binning
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        energies = np.asarray(self.incident_energies, dtype=np.float64).reshape(-1)
        showers = np.asarray(self.showers, dtype=np.float32)
        if showers.ndim != 2 or len(showers) != len(energies):
            msg = (
                f"showers must be (N, voxels) with one incident energy each, not {showers.shape} "
                f"for {len(energies)} energies"
            )
            raise DatasetError(msg)
        if showers.shape[1] != self.binning.voxels:
            msg = (
                f"the showers have {showers.shape[1]:,} voxels, their binning "
                f"{self.binning.voxels:,}: is it the right binning XML?"
            )
            raise DatasetError(msg)
        object.__setattr__(self, "incident_energies", energies)
        object.__setattr__(self, "showers", showers)

    def __len__(self) -> int:
        return len(self.incident_energies)

    def __repr__(self) -> str:
        if len(self) == 0:
            return f"ShowerFile(0 showers, {self.binning!r})"
        low, high = self.incident_energies.min() / 1e3, self.incident_energies.max() / 1e3
        return f"ShowerFile({len(self):,} showers, {low:g}-{high:g} GeV, {self.binning!r})"


def write_showers(
    path: str | os.PathLike[str],
    incident_energies: np.ndarray,
    showers: np.ndarray,
    binning: Binning,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a shower file atomically; returns its path."""
    import h5py

    data = ShowerFile(incident_energies, showers, binning)
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        with h5py.File(partial, "w") as handle:
            handle.create_dataset(
                "incident_energies", data=data.incident_energies.reshape(-1, 1), dtype="f8"
            )
            # gzip level 1: most voxels of a shower are empty, and cheap to squeeze
            handle.create_dataset(
                "showers",
                data=data.showers,
                compression="gzip",
                compression_opts=1,
                chunks=(max(1, min(len(data), 1024)), data.showers.shape[1]),
            )
            handle.attrs["binning"] = binning.to_xml()
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def read_showers(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    binning: Binning | str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> ShowerFile:
    """Read one or more shower files (paths, a glob, or a folder of ``*.h5``) as one.

    ``binning`` (a :class:`Binning` or the path of a binning XML) is needed for files
    without the ``binning`` attribute, such as the CaloChallenge's own; ``limit``
    stops after that many showers.
    """
    import h5py

    files = _expand(paths)
    given = (
        binning if isinstance(binning, Binning) or binning is None else Binning.from_xml(binning)
    )
    energies: list[np.ndarray] = []
    showers: list[np.ndarray] = []
    found: Binning | None = given
    attrs: dict[str, Any] = {}
    left = limit if limit is not None else None
    for file in files:
        if left is not None and left <= 0:
            break
        try:
            with h5py.File(file, "r") as handle:
                if "incident_energies" not in handle or "showers" not in handle:
                    have = ", ".join(sorted(handle.keys())) or "nothing"
                    msg = f"{file} is not a shower file: it lacks incident_energies or showers (it has {have})"
                    raise FormatError(msg, path=str(file))
                mine = _binning_of(handle, file, given)
                if found is not None and mine != found:
                    msg = f"{file} has another binning than {files[0]}: read them separately"
                    raise FormatError(msg, path=str(file))
                found = mine
                n = len(handle["incident_energies"])
                take = n if left is None else min(n, left)
                energies.append(np.asarray(handle["incident_energies"][:take]).reshape(-1))
                showers.append(np.asarray(handle["showers"][:take], dtype=np.float32))
                if not attrs:
                    attrs = {k: _plain(v) for k, v in handle.attrs.items() if k != "binning"}
                if left is not None:
                    left -= take
        except OSError as exc:
            msg = f"cannot read {file} as HDF5: {exc}"
            raise FormatError(msg, path=str(file)) from exc
    assert found is not None
    return ShowerFile(np.concatenate(energies), np.concatenate(showers), found, attrs)


def _expand(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files: list[str] = []
    for item in (os.fspath(g) for g in given):
        if os.path.isdir(item):
            found = sorted(
                glob.glob(os.path.join(item, "*.h5")) + glob.glob(os.path.join(item, "*.hdf5"))
            )
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
        else:
            found = [item] if os.path.exists(item) else []
        if not found:
            msg = f"no shower files at {item}"
            raise DatasetError(msg, path=item)
        files += found
    return files


def _binning_of(handle: Any, file: str, given: Binning | None) -> Binning:
    if given is not None:
        return given
    text = handle.attrs.get("binning")
    if text is None:
        msg = f"{file} does not say its binning: pass its binning XML (--binning FILE.xml)"
        raise FormatError(msg, path=file)
    return Binning.from_xml(text.decode() if isinstance(text, bytes) else str(text))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
