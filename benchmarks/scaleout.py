"""Scale-out efficiency: all eight ADL queries on 1 and 2 Dask workers, same file, same run.

python benchmarks/scaleout.py [FILE]      # default: the 2M-event file adl.py generates
"""

from __future__ import annotations

import sys

import distributed

import saetta
from saetta.analyses import adl

DEFAULT = "benchmarks/.data/nanoaod-2000000ev-seed1-zlib1.root"


def main(path: str) -> None:
    dataset = saetta.Dataset.open(path)
    rates = {}
    for workers in (1, 2):
        with (
            distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):

            def once() -> float:
                result = saetta.run(
                    adl.analysis,
                    dataset,
                    executor=client,
                    chunk_size=125_000,
                    run_dir=False,
                    progress=False,
                )
                return result.report.wall_seconds

            once()  # warm-up: numba caches, open readers
            best = min(once() for _ in range(3))
            rates[workers] = dataset.num_entries / best
            print(f"dask, {workers} worker(s): {best:.2f} s, {rates[workers]:,.0f} events/s")
    print(
        f"2 workers / 1 worker: {rates[2] / rates[1]:.2f} (efficiency {rates[2] / rates[1] / 2:.2f})"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
