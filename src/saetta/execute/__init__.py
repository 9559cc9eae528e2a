"""Stage: execute (layer 6) — run an analysis over a dataset's work units and merge.

- :mod:`~saetta.execute.run`: :func:`run`, the driver loop.
- :mod:`~saetta.execute.unit`: one unit on one worker (the failure boundary).
- :mod:`~saetta.execute.placement`: executors by name (``local``, ``processes:N``, ``dask``),
  each in its own module (:mod:`~saetta.execute.futures`, :mod:`~saetta.execute.processes`,
  :mod:`~saetta.execute.dask`).
- :mod:`~saetta.execute.outcome`: :class:`Result`, :class:`RunReport`, :class:`Failure`.
"""

from __future__ import annotations

from saetta.execute.futures import LocalExecutor
from saetta.execute.outcome import Failure, Result, RunReport
from saetta.execute.placement import available_executors
from saetta.execute.run import run

__all__ = ["Failure", "LocalExecutor", "Result", "RunReport", "available_executors", "run"]
