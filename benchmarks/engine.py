"""The engine's own figures, as the README quotes them: 1 vs 2 processes measured inside
the run, the effect of the chunk size, and the decoded-column cache.

    python benchmarks/engine.py [FILE]     # default: the 2M-event file adl.py generates

Times are RunReport.wall_seconds (the run itself: no dataset scan, no pool start-up),
best of 3 after a warm-up.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import saetta
from saetta.analyses import adl

DEFAULT = "benchmarks/.data/nanoaod-2000000ev-seed1-zlib1.root"


def best(analysis: Any, dataset: saetta.Dataset, repeat: int = 3, **options: Any) -> float:
    saetta.run(analysis, dataset, run_dir=False, progress=False, **options)  # warm-up
    return min(
        saetta.run(analysis, dataset, run_dir=False, progress=False, **options).report.wall_seconds
        for _ in range(repeat)
    )


def main(path: str) -> None:
    dataset = saetta.Dataset.open(path)
    context: Any = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["saetta.execute.unit", "saetta.analyses.adl"])
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        print("1 vs 2 processes (warm pool):")
        for query in ("q2", "q6", "q8"):
            one = best(adl.QUERIES[query], dataset)
            two = best(adl.QUERIES[query], dataset, executor=pool)
            print(
                f"  {query}: 1 process {one:.3f} s, 2 processes {two:.3f} s, ratio {one / two:.2f}"
            )
    print("chunk size (one process):")
    for query in ("q6", "q8"):
        times = [
            best(adl.QUERIES[query], dataset, chunk_size=size)
            for size in (250_000, 100_000, 50_000)
        ]
        print(
            f"  {query}: "
            + " / ".join(f"{t:.2f}" for t in times)
            + " s at 250k / 100k / 50k entries per unit"
        )
    cache = tempfile.mkdtemp(prefix="saetta-column-cache-")
    try:
        plain = best(adl.q7, dataset)
        filling = saetta.run(
            adl.q7, dataset, column_cache=cache, run_dir=False, progress=False
        ).report.wall_seconds
        cached = min(
            saetta.run(
                adl.q7, dataset, column_cache=cache, run_dir=False, progress=False
            ).report.wall_seconds
            for _ in range(3)
        )
        print(
            f"column cache, q7: plain {plain:.3f} s, filling the cache {filling:.3f} s, "
            f"from the cache {cached:.3f} s ({plain / cached:.1f}x plain, "
            f"{filling / cached:.1f}x the filling run)"
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
