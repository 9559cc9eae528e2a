"""Stage: generation (layer 9) — event samples generated through saetta's own executors.

``saetta generate agc`` writes the AGC's samples with Pythia 8
(:mod:`saetta.pythia`): each sample split into files of ``events_per_file``
events, each file one *job* with its own seed. The jobs are a table (a Parquet
file, one row per job: its index, sample, block, seed and events) and generating is an
analysis over that table with one row per work unit, so everything saetta does
for a run it does here too: any executor or testbed spreads the jobs, the run
directory records each finished one, and the same command again (after a
crash, a kill, Ctrl-C) generates only the files still missing. Each file is
written under a temporary name and renamed into place, so a file that exists is
complete.

File ``p`` (0-based) of the sample at position ``s`` of :data:`saetta.pythia.SAMPLES`
is its block ``b = s × 100000 + p + 1``: its events have ``luminosityBlock = b``, so
``(run, luminosityBlock, event)`` names each event once across every sample, and it
uses the Pythia seed ``(seed × 100003 + b) mod 900000000 + 1``. A sample's files
depend on nothing else: the same command gives the same files, on any executor,
whichever other samples are generated with them. At the end the samples file (``samples.yaml``, :mod:`saetta.samples`)
records each sample's files, cross-section and generated events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from saetta.errors import SaettaError

__all__ = ["AgcJobs", "generate_agc", "job_table"]

_FILES_PER_SAMPLE = 100_000


@dataclass(frozen=True, slots=True)
class Job:
    index: int  # the row of the job table
    sample: str
    block: int
    seed: int
    events: int
    file: str  # relative to the output folder


def job_table(
    samples: list[str], events_per_sample: int, events_per_file: int, seed: int
) -> list[Job]:
    """The jobs: each sample's events cut into files of at most ``events_per_file``."""
    from saetta import pythia

    position = {name: i for i, name in enumerate(pythia.SAMPLES)}
    jobs: list[Job] = []
    for sample in samples:
        left, part = events_per_sample, 0
        while left > 0:
            n = min(left, events_per_file)
            block = position[sample] * _FILES_PER_SAMPLE + part + 1
            jobs.append(
                Job(
                    len(jobs),
                    sample,
                    block,
                    (seed * 100_003 + block) % pythia.SEED_MAX + 1,
                    n,
                    f"{sample}/{sample}_{part:04d}.root",
                )
            )
            left -= n
            part += 1
    if part > _FILES_PER_SAMPLE:
        msg = f"at most {_FILES_PER_SAMPLE:,} files per sample: give more --events-per-file"
        raise SaettaError(msg)
    return jobs


class AgcJobs:
    """The analysis that generates: for each job row of its unit, write that job's file."""

    def __init__(
        self, folder: str | os.PathLike[str], files: dict[int, str], compression: str = "zlib:1"
    ) -> None:
        self.folder = os.fspath(folder)
        self.files = files
        self.compression = compression

    def __call__(self, events: Any) -> dict[str, Any]:
        from saetta import pythia

        names = list(pythia.SAMPLES)
        out: dict[str, Any] = {}
        rows = zip(
            np.asarray(events.job).tolist(),
            np.asarray(events.sample).tolist(),
            np.asarray(events.block).tolist(),
            np.asarray(events.seed).tolist(),
            np.asarray(events.events).tolist(),
            strict=True,
        )
        for job, sample, block, seed, n in rows:
            written = pythia.generate_file(
                Path(self.folder) / self.files[job],
                names[sample],
                n,
                seed,
                block=block,
                compression=self.compression,
            )
            mine = out.setdefault(names[sample], {})
            mine["events"] = mine.get("events", 0) + written.events
            mine["sum_weights"] = mine.get("sum_weights", 0.0) + written.sum_weights
            mine["sigma_x_events"] = (
                mine.get("sigma_x_events", 0.0) + written.sigma_gen_pb * written.events
            )
            mine["seconds"] = mine.get("seconds", 0.0) + written.seconds
        return out


def generate_agc(
    folder: str | os.PathLike[str],
    events_per_sample: int,
    *,
    samples: list[str] | None = None,
    events_per_file: int = 10_000,
    seed: int = 1,
    executor: Any = "local",
    testbed: str | None = None,
    progress: bool | None = None,
    compression: str = "zlib:1",
) -> Path:
    """Generate the AGC samples into ``folder`` and write ``folder/samples.yaml``.

    Raises
    ------
    SaettaError
        A sample name is unknown, or some jobs failed (the others' files are kept;
        the same call again generates only what is missing).
    """
    import saetta
    from saetta import pythia
    from saetta.analyses.agc import LUMINOSITY_PB

    names = list(samples) if samples else list(pythia.SAMPLES)
    unknown = [n for n in names if n not in pythia.SAMPLES]
    if unknown:
        msg = f"unknown sample {unknown[0]!r}; available: {', '.join(pythia.SAMPLES)}"
        raise SaettaError(msg)
    if events_per_sample < 1 or events_per_file < 1:
        msg = "give a positive number of events per sample and per file"
        raise SaettaError(msg)
    root = Path(folder)
    jobs = job_table(names, events_per_sample, events_per_file, seed)
    state = root / ".jobs"
    state.mkdir(parents=True, exist_ok=True)
    # the table's name says what it holds (and its layout's version): another call gets its own
    spec = f"v2-{seed}-{events_per_sample}-{events_per_file}-{'-'.join(names)}"
    table = state / f"jobs-{spec}.parquet"
    if not table.exists():
        order = {name: i for i, name in enumerate(pythia.SAMPLES)}
        columns = {
            "job": pa.array([j.index for j in jobs], pa.int64()),
            "sample": pa.array([order[j.sample] for j in jobs], pa.int32()),
            "block": pa.array([j.block for j in jobs], pa.int64()),
            "seed": pa.array([j.seed for j in jobs], pa.int64()),
            "events": pa.array([j.events for j in jobs], pa.int64()),
        }
        partial = table.with_suffix(".tmp")
        pq.write_table(pa.table(columns), partial, row_group_size=1)
        os.replace(partial, table)
    for name in names:
        (root / name).mkdir(exist_ok=True)
    result = saetta.run(
        AgcJobs(root, {j.index: j.file for j in jobs}, compression),
        [str(table)],
        executor=executor,
        testbed=testbed,
        chunk_size=1,
        progress=progress,
        run_dir=state / table.stem,
    )
    lines: dict[str, Any] = {}
    for name in names:
        made = result[name]
        card = pythia.SAMPLES[name]
        entry: dict[str, Any] = {
            "files": sorted(j.file for j in jobs if j.sample == name),
            "xsec": card.xsec_pb,
            "generated": float(made["sum_weights"]),
            "role": card.role,
            "generated_events": int(made["events"]),
            "pythia_sigma_pb": float(made["sigma_x_events"] / max(made["events"], 1)),
        }
        if card.variation_of is not None:
            entry["variation_of"] = card.variation_of
            entry["variation"] = card.variation
        lines[name] = entry
    document = {
        "luminosity": LUMINOSITY_PB,
        "tree": "Events",
        "samples": lines,
    }
    target = root / "samples.yaml"
    header = (
        "# The AGC samples, generated by saetta with Pythia 8 (saetta generate agc).\n"
        "# xsec: the AGC's cross-section (pb); generated: the sum of generator weights;\n"
        "# pythia_sigma_pb: Pythia's own estimate, for comparison.\n"
    )
    partial_yaml = target.with_suffix(".tmp")
    partial_yaml.write_text(header + yaml.safe_dump(document, sort_keys=False))
    os.replace(partial_yaml, target)
    return target
