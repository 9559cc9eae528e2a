"""Stage: fast simulation (layer 7) — how a calorimeter's showers are cut into voxels.

A shower is a row of voxel energies (MeV), as in the Fast Calorimeter Simulation
Challenge 2022 (CaloChallenge): the calorimeter is cut along the beam (z) into
readout *layers*, each layer into radial bins (``r_edges``, mm from the shower
axis) and ``n_alpha`` angular bins. Within a layer, voxels run angular bin by
angular bin, each through its radial bins (index ``alpha × n_r + r``); layers
follow each other in order. A layer with ``r_edges == (0,)`` has no voxels (the
CaloChallenge's photon binning skips some). Angular bin ``k`` of ``n`` spans
``[-π + 2πk/n, -π + 2π(k+1)/n)``.

:class:`Binning` reads and writes the CaloChallenge's binning XML, so the public
data sets' own files describe them here::

    <Bins>
      <Bin pid="11" name="electron">
        <Layer id="0" r_edges="0,4.65,9.3,..." n_bin_alpha="16" />
        ...
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from saetta.errors import DatasetError

__all__ = ["Binning", "Layer"]


@dataclass(frozen=True, slots=True)
class Layer:
    """One readout layer: radial bin edges (mm) and the number of angular bins."""

    id: int
    r_edges: tuple[float, ...]
    n_alpha: int = 1

    @property
    def n_r(self) -> int:
        return len(self.r_edges) - 1

    @property
    def voxels(self) -> int:
        return self.n_r * self.n_alpha if self.n_r > 0 else 0


@dataclass(frozen=True)
class Binning:
    """The voxels of one particle's showers: its layers, in order along the beam."""

    particle: str
    pid: int
    layers: tuple[Layer, ...]

    def __post_init__(self) -> None:
        for layer in self.layers:
            edges = np.asarray(layer.r_edges, dtype=float)
            if layer.n_alpha < 1 or len(edges) < 1 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
                msg = (
                    f"binning layer {layer.id}: give r_edges rising from 0 and n_alpha >= 1, "
                    f"not r_edges={layer.r_edges}, n_alpha={layer.n_alpha}"
                )
                raise DatasetError(msg)
        if self.voxels == 0:
            msg = "the binning has no voxels: every layer's r_edges is just 0"
            raise DatasetError(msg)

    @classmethod
    def regular(
        cls,
        layers: int,
        r_edges: tuple[float, ...],
        n_alpha: int,
        *,
        particle: str = "electron",
        pid: int = 11,
    ) -> Binning:
        """``layers`` readout layers alike."""
        return cls(particle, pid, tuple(Layer(i, tuple(r_edges), n_alpha) for i in range(layers)))

    @property
    def voxels(self) -> int:
        return sum(layer.voxels for layer in self.layers)

    @property
    def relevant(self) -> tuple[Layer, ...]:
        """The layers that have voxels."""
        return tuple(layer for layer in self.layers if layer.voxels)

    @cached_property
    def slices(self) -> dict[int, slice]:
        """Each relevant layer's voxels in a shower row, by layer id."""
        out: dict[int, slice] = {}
        start = 0
        for layer in self.relevant:
            out[layer.id] = slice(start, start + layer.voxels)
            start += layer.voxels
        return out

    def centres(self, layer_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The radius (mm) and angle (rad) at the middle of each of a layer's voxels, in
        voxel order: what the centre of energy and the width of a layer are taken over."""
        layer = next(layer for layer in self.layers if layer.id == layer_id)
        edges = np.asarray(layer.r_edges, dtype=float)
        r = 0.5 * (edges[:-1] + edges[1:])
        alpha = -math.pi + (np.arange(layer.n_alpha) + 0.5) * (2 * math.pi / layer.n_alpha)
        return np.tile(r, layer.n_alpha), np.repeat(alpha, layer.n_r)

    def positions(self, layer_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The voxel centres of a layer as (x, y) in mm; a layer with one angular bin is
        centred on the axis (x = y = 0 for every voxel), as the CaloChallenge does."""
        r, alpha = self.centres(layer_id)
        layer = next(layer for layer in self.layers if layer.id == layer_id)
        if layer.n_alpha == 1:
            return np.zeros_like(r), np.zeros_like(r)
        return r * np.cos(alpha), r * np.sin(alpha)

    def to_xml(self) -> str:
        """The CaloChallenge binning XML."""
        lines = ["<Bins>", f'   <Bin pid="{self.pid}" name="{self.particle}">']
        for layer in self.layers:
            edges = ",".join(f"{e:g}" for e in layer.r_edges)
            lines.append(
                f'      <Layer id="{layer.id}" r_edges="{edges}" n_bin_alpha="{layer.n_alpha}" />'
            )
        lines += ["   </Bin>", "</Bins>", ""]
        return "\n".join(lines)

    @classmethod
    def from_xml(cls, source: str | os.PathLike[str], particle: str | None = None) -> Binning:
        """Read a binning XML, from its text or a path; ``particle`` picks one of several."""
        text = os.fspath(source)
        where = "the binning XML"
        if not text.lstrip().startswith("<"):
            where = text
            try:
                with open(text, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                msg = f"cannot read the binning {where}: {exc.strerror or exc}"
                raise DatasetError(msg, path=where) from exc
        try:
            root = ET.fromstring(text)  # ElementTree expands no external entities
        except ET.ParseError as exc:
            msg = f"{where} is not XML: {exc}"
            raise DatasetError(msg, path=where) from exc
        bins = [b for b in root if b.tag in {"Bin", "Particle"}]
        if particle is not None:
            bins = [b for b in bins if b.get("name") == particle]
        if not bins:
            msg = f"{where} describes no {'particle ' + repr(particle) if particle else 'particle'}"
            raise DatasetError(msg, path=where)
        chosen = bins[0]
        layers: list[Layer] = []
        try:
            for element in chosen.iter("Layer"):
                edges = tuple(float(e) for e in element.get("r_edges", "0").split(","))
                layers.append(
                    Layer(
                        int(element.get("id", len(layers))),
                        edges,
                        int(element.get("n_bin_alpha", 1)),
                    )
                )
            pid = int(chosen.get("pid", 0))
        except ValueError as exc:
            msg = f"{where}: a layer's r_edges, n_bin_alpha or id is not a number ({exc})"
            raise DatasetError(msg, path=where) from exc
        return cls(chosen.get("name", "unknown"), pid, tuple(layers))

    def __repr__(self) -> str:
        return f"Binning({self.particle}: {len(self.relevant)} layers, {self.voxels:,} voxels)"
