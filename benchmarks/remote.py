"""Throughput over XRootD (a real server on localhost): no cache, cold cache, warm cache.

    python benchmarks/remote.py [FILE]        # needs root and .ci/services/xrootd.sh

The server's own byte count says how much each run fetched from it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from storage_services import start_service

import saetta
from saetta.analyses import adl

DEFAULT = "benchmarks/.data/nanoaod-2000000ev-seed1-zlib1.root"


def main(path: str) -> None:
    server = start_service("xrootd")
    cache = tempfile.mkdtemp(prefix="saetta-bench-cache-")
    try:
        shutil.copy(path, server.root / "bench.root")
        url = server.url("bench.root")
        for label, options in (
            ("no cache", {}),
            ("cold cache", {"cache": cache}),
            ("warm cache", {"cache": cache}),
        ):
            before = server.bytes_served()
            started = time.perf_counter()
            dataset = saetta.Dataset.open(url, **options)
            result = saetta.run(adl.analysis, dataset, run_dir=False, progress=False)
            seconds = time.perf_counter() - started
            served = server.bytes_served() - before
            print(
                f"{label:>10}: {seconds:.2f} s, {dataset.num_entries / seconds:,.0f} events/s, "
                f"{result.report.bytes_read / seconds / 1e6:,.1f} MB/s read, "
                f"{served / 1e6:,.1f} MB from the server"
            )
    finally:
        server.close()
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
