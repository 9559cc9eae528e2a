"""Stage: fast simulation (layer 7) — calorimeter showers, simulated in detail and learned.

- :mod:`~saetta.fastsim.binning`: :class:`Binning`, how showers are cut into voxels
  (the CaloChallenge's binning XML);
- :mod:`~saetta.fastsim.showerfile`: shower files in the CaloChallenge's HDF5 layout;
- :mod:`~saetta.fastsim.calorimeter`, :mod:`~saetta.fastsim.shower_mc`: the sampling
  calorimeters and the detailed (numba) electromagnetic shower simulation;
- :mod:`~saetta.fastsim.production`: showers made at scale as a saetta run, one shard per job;
- :mod:`~saetta.fastsim.model`: :class:`ShowerGenerator`, the learned generator (torch);
- :mod:`~saetta.fastsim.training`: training it as a ``saetta train`` job;
- :mod:`~saetta.fastsim.metrics`, :mod:`~saetta.fastsim.evaluation`: the CaloChallenge's
  metrics, and :func:`evaluate` with its HTML report.

torch is needed for the generator, its training and the classifier tests
(``pip install 'saetta[ml]'``), not for simulating, reading or writing showers.
"""

from __future__ import annotations

from saetta.fastsim.binning import Binning, Layer
from saetta.fastsim.showerfile import ShowerFile, read_showers, write_showers

__all__ = ["Binning", "Layer", "ShowerFile", "read_showers", "write_showers"]


def __dir__() -> list[str]:
    return __all__
