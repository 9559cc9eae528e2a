"""Stage: fast simulation (layer 7) — producing showers at scale, as a saetta run.

``saetta simulate showers`` (the detailed simulation) and ``saetta fastsim
generate`` (a learned generator) both cut a request — N showers of a particle
over an energy range — into *jobs* of at most ``events_per_file`` showers, each
with its own seed, and run them as a saetta run over a table of jobs (a Parquet
file, one row per job and one job per work unit). Everything a run does, they
do: any executor or testbed spreads the jobs, each job writes its shard of the
output atomically (:func:`saetta.shards.write_shard`, the CaloChallenge HDF5
layout of :mod:`~saetta.fastsim.showerfile`), the run directory records each
finished one, and the same command again (after a kill, Ctrl-C, a lost node)
runs only the jobs still missing: no shower is ever written twice.

Energies are in the request as GeV and in the files as MeV (the CaloChallenge's
unit). ``"1-1000"`` draws each shower's energy log-uniformly between 1 and 1000
GeV; ``"10,100"`` gives each listed energy to the same number of showers. Job
``j`` of a request with seed ``s`` uses the seed ``(s × 1000003 + j) mod 2**31``:
its energies and its showers depend on nothing else, whatever executor runs it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from saetta.errors import DatasetError
from saetta.fastsim.binning import Binning
from saetta.fastsim.showerfile import write_showers
from saetta.shards import Shards, write_shard

__all__ = ["Energies", "Production", "produce"]

#: A job's showers: (incident energies in MeV, its seed) -> showers (N, voxels) in MeV.
MakeShowers = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True, slots=True)
class Energies:
    """Incident energies in GeV: a log-uniform range, or listed values shared out evenly."""

    low: float
    high: float
    values: tuple[float, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Energies:
        """``"1-1000"`` (log-uniform, GeV) or ``"10,100,1000"`` (these energies, GeV)."""
        try:
            if "," in text or "-" not in text:
                values = tuple(float(v) for v in text.split(","))
                if not values or min(values) <= 0:
                    raise ValueError
                return cls(min(values), max(values), values)
            low, high = (float(v) for v in text.split("-"))
        except ValueError:
            msg = f"energies: give LOW-HIGH or E1,E2,... in GeV (positive), not {text!r}"
            raise DatasetError(msg) from None
        if not 0 < low <= high:
            msg = f"energies: LOW-HIGH needs 0 < LOW <= HIGH, not {text!r}"
            raise DatasetError(msg)
        return cls(low, high)

    def draw(self, n: int, seed: int, offset: int) -> np.ndarray:
        """``n`` energies in MeV; ``offset`` is the request's showers before this job's."""
        if self.values:
            picks = (np.arange(offset, offset + n) % len(self.values)).astype(int)
            listed: np.ndarray = np.asarray(self.values, dtype=np.float64)[picks] * 1e3
            return listed
        rng = np.random.default_rng(seed)
        drawn: np.ndarray = np.exp(rng.uniform(np.log(self.low), np.log(self.high), n)) * 1e3
        return drawn

    def __str__(self) -> str:
        if self.values:
            return ",".join(f"{v:g}" for v in self.values) + " GeV"
        return f"{self.low:g}-{self.high:g} GeV (log-uniform)"


@dataclass(frozen=True)
class Production:
    """What a production wrote: its shards, and the request that made them."""

    folder: Path
    shards: Shards
    request: dict[str, Any]
    seconds: float
    report: Any

    @property
    def showers(self) -> int:
        return self.shards.events

    def __repr__(self) -> str:
        return (
            f"Production({self.showers:,} showers in {len(self.shards)} files, "
            f"{self.folder}, {self.seconds:.1f} s)"
        )


class _Jobs:
    """The analysis over the job table: each of its rows makes and writes one shard."""

    def __init__(
        self,
        folder: str,
        make: MakeShowers,
        energies: Energies,
        binning: Binning,
        attrs: dict[str, Any],
    ) -> None:
        self.folder = folder
        self.make = make
        self.energies = energies
        self.binning = binning
        self.attrs = attrs

    def __call__(self, events: Any) -> dict[str, Any]:
        shards: Shards | None = None
        rows = zip(
            np.asarray(events.job).tolist(),
            np.asarray(events.seed).tolist(),
            np.asarray(events.showers).tolist(),
            np.asarray(events.offset).tolist(),
            strict=True,
        )
        for job, seed, n, offset in rows:
            energies = self.energies.draw(n, seed, offset)
            showers = self.make(energies, seed)

            write = functools.partial(
                _write_job, energies=energies, showers=showers, binning=self.binning,
                attrs={**self.attrs, "seed": seed},
            )  # fmt: skip
            one = write_shard(None, self.folder, write, name=f"showers_{job:05d}.h5")
            shards = one if shards is None else shards + one
        assert shards is not None
        return {"showers": shards}


def _write_job(
    path: Path,
    *,
    energies: np.ndarray,
    showers: np.ndarray,
    binning: Binning,
    attrs: dict[str, Any],
) -> int:
    write_showers(path, energies, showers, binning, attrs)
    return len(energies)


def produce(
    folder: str | os.PathLike[str],
    make: MakeShowers,
    *,
    events: int,
    energies: Energies,
    binning: Binning,
    events_per_file: int = 1000,
    seed: int = 1,
    attrs: dict[str, Any] | None = None,
    executor: Any = "local",
    testbed: str | None = None,
    progress: bool | None = None,
) -> Production:
    """Make ``events`` showers into ``folder``, ``events_per_file`` per shard (see the module
    docstring); ``make`` must be picklable to run on other processes. Writes
    ``folder/production.json``, the request and its shards.

    Raises
    ------
    DatasetError
        A bad request, or ``folder`` holds another request's showers.
    UnitError
        Some jobs failed; the others' shards are kept, and the same call again makes
        only the missing ones.
    """
    from saetta.execute import run

    if events < 1 or events_per_file < 1:
        msg = "give a positive number of showers and of showers per file"
        raise DatasetError(msg)
    root = Path(folder)
    request = {
        "events": events,
        "energies_gev": asdict(energies),
        "events_per_file": events_per_file,
        "seed": seed,
        "particle": binning.particle,
        **(attrs or {}),
    }
    key = json.dumps(request, sort_keys=True)
    manifest = root / "production.json"
    state = root / ".jobs"
    if manifest.exists() or state.exists():
        before = _previous_request(manifest, state)
        if before is not None and before != key:
            msg = f"{root} holds showers of another request: give a new folder"
            raise DatasetError(msg, path=str(root))
    state.mkdir(parents=True, exist_ok=True)
    (state / "request.json").write_text(key)
    table = state / "jobs.parquet"
    if not table.exists():
        sizes = [
            min(events_per_file, events - start) for start in range(0, events, events_per_file)
        ]
        columns = {
            "job": pa.array(range(len(sizes)), pa.int64()),
            "seed": pa.array(
                [(seed * 1_000_003 + j) % 2**31 for j in range(len(sizes))], pa.int64()
            ),
            "showers": pa.array(sizes, pa.int64()),
            "offset": pa.array(np.cumsum([0, *sizes[:-1]]).tolist(), pa.int64()),
        }
        partial = table.with_suffix(".partial")
        pq.write_table(pa.table(columns), partial, row_group_size=1)
        os.replace(partial, table)
    job_attrs = {k: v for k, v in (attrs or {}).items() if isinstance(v, str | int | float)}
    result = run(
        _Jobs(str(root), make, energies, binning, job_attrs),
        [str(table)],
        executor=executor,
        testbed=testbed,
        chunk_size=1,
        progress=progress,
        run_dir=state / "run",
    )
    shards: Shards = result["showers"]
    document = {
        "request": request,
        "binning": binning.to_xml(),
        "shards": [{"name": s.name, "showers": s.events, "bytes": s.bytes} for s in shards],
        "showers": shards.events,
        "seconds": result.report.wall_seconds,
    }
    partial_manifest = manifest.with_suffix(".partial")
    partial_manifest.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(partial_manifest, manifest)
    return Production(root, shards, request, result.report.wall_seconds, result.report)


def _previous_request(manifest: Path, state: Path) -> str | None:
    stored = state / "request.json"
    if stored.exists():
        return stored.read_text()
    try:
        return json.dumps(json.loads(manifest.read_text())["request"], sort_keys=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Detailed:
    """Showers from the detailed simulation (:mod:`~saetta.fastsim.shower_mc`)."""

    def __init__(self, particle: str = "electron", calorimeter: str = "si-w") -> None:
        from saetta.fastsim.calorimeter import CALORIMETERS

        if calorimeter not in CALORIMETERS:
            msg = f"unknown calorimeter {calorimeter!r}; available: {', '.join(CALORIMETERS)}"
            raise DatasetError(msg)
        self.particle = particle
        self.calorimeter = calorimeter

    @property
    def binning(self) -> Binning:
        from saetta.fastsim.calorimeter import CALORIMETERS

        return CALORIMETERS[self.calorimeter].binning(self.particle)

    def __call__(self, energies: np.ndarray, seed: int) -> np.ndarray:
        from saetta.fastsim.calorimeter import CALORIMETERS
        from saetta.fastsim.shower_mc import simulate

        made = simulate(
            energies, particle=self.particle, seed=seed, calorimeter=CALORIMETERS[self.calorimeter]
        )
        return np.asarray(made.showers)


_LOADED: dict[str, Any] = {}  # generator files already loaded by this process


class Learned:
    """Showers from a trained generator file (:func:`~saetta.fastsim.model.save_model`),
    loaded once per process and sampled in batches."""

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 10_000) -> None:
        self.path = os.path.abspath(path)
        self.batch_size = batch_size

    def model(self) -> Any:
        from saetta.fastsim.model import load_model

        if self.path not in _LOADED:
            _LOADED[self.path] = load_model(self.path).eval()
        return _LOADED[self.path]

    @property
    def binning(self) -> Binning:
        return self.model().binning  # type: ignore[no-any-return]

    def __call__(self, energies: np.ndarray, seed: int) -> np.ndarray:
        import torch

        model = self.model()
        generator = torch.Generator().manual_seed(seed)
        parts = [
            model.sample(torch.from_numpy(energies[i : i + self.batch_size]).float(), generator)
            for i in range(0, len(energies), self.batch_size)
        ]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.binning.voxels), np.float32)
