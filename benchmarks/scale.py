"""How saetta's bookkeeping grows, from 10^3 to 10^6 files, and its fixed costs.

    python benchmarks/scale.py                        # the README's table (~15 min, 2 cores)
    python benchmarks/scale.py --files 1000,10000 --dispatch 1000 --no-dask   # a minute
    python benchmarks/scale.py --fixed-only           # import, first run, CLI end to end

A petabyte of NanoAOD-class data is about 10^6 files of ~1 GB and 10^7 work units.
Nobody runs that here, so each stage of the bookkeeping is measured alone, at growing
sizes, each in a fresh Python process (its time, and its peak resident memory above
that process's baseline after imports):

- **open**: ``Dataset.from_catalog`` of a synthetic catalog of N files whose listing
  gives each file's entries and bytes (0.5-2 M entries, ~1 kB per event: 10^6 files
  are ~1.3 PB), so no file is opened;
- **plan**: ``Dataset.units(250_000)`` of that dataset (~5 units per file);
- **journal**: R finished-unit records appended to a run directory as workers do
  (:func:`saetta.execute.journal.record_outcome`), then the resume lookup of a new
  session (:meth:`Journal.done`) over them;
- **dispatch**: a run of no-op units (``{"n": len(events)}``: the framework alone,
  no column read) through ``local``, ``processes:2`` and a local Dask cluster of two
  workers; per unit, and the driver's (and the Dask scheduler's) peak memory.

Each stage should grow no faster than linearly: the ``per item`` column says so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHUNK = 250_000


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the stages
# Each runs in its own process (``--stage NAME --n N --work DIR``) and prints one JSON line.


def _listing(work: Path, n: int) -> Path:
    """A catalog of n synthetic files: its YAML names a CSV listing url, entries, bytes."""
    import numpy as np

    listing = work / f"files-{n}.csv"
    if not listing.exists():
        rng = np.random.default_rng(n)
        entries = rng.integers(500_000, 2_000_001, n)
        sizes = (entries * rng.uniform(900, 1100, n)).astype(np.int64)
        with open(listing, "w") as out:
            out.write("url,entries,bytes\n")
            out.writelines(
                f"root://eos.example.org//store/data/run{i // 1000:04d}/f{i:07d}.root,{e},{b}\n"
                for i, (e, b) in enumerate(zip(entries.tolist(), sizes.tolist(), strict=True))
            )
    catalog = work / f"datasets-{n}.yaml"
    catalog.write_text(f"lake:\n  files_from: {listing}\n  tree: Events\n  format: root\n")
    return catalog


def stage_open(work: Path, n: int) -> dict[str, Any]:
    import saetta

    catalog = _listing(work, n)
    base = _peak_mb()
    started = time.perf_counter()
    dataset = saetta.Dataset.from_catalog("lake", catalog)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "mb": _peak_mb() - base,
        "files": len(dataset.files),
        "events": dataset.num_entries,
        "bytes": dataset.size_bytes,
    }


def stage_plan(work: Path, n: int, chunk: int = CHUNK) -> dict[str, Any]:
    """Planning's time, and its memory as tracemalloc sees it (numpy's arrays included):
    the process's peak is the open's, before."""
    import tracemalloc

    import saetta

    dataset = saetta.Dataset.from_catalog("lake", _listing(work, n))
    started = time.perf_counter()
    units = dataset.units(chunk)
    seconds = time.perf_counter() - started
    del units
    tracemalloc.start()
    units = dataset.units(chunk)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": seconds, "mb": peak / 2**20, "units": len(units)}


def _real_files(work: Path, count: int) -> list[str]:
    """count empty files: what the journal's resume lookup checks (their size, mtime)."""
    folder = work / "files"
    folder.mkdir(exist_ok=True)
    paths = [str(folder / f"f{i:05d}.root") for i in range(count)]
    for path in paths:
        if not os.path.exists(path):
            Path(path).touch()
    return paths


def stage_journal(work: Path, n: int) -> dict[str, Any]:
    """n records over min(n / 10, 1000) files, as one worker process writes them."""
    from saetta.dataset import Dataset, FileInfo
    from saetta.execute.journal import Journal, record_outcome
    from saetta.execute.outcome import UnitOutcome
    from saetta.storage import file_identity

    per_file = max(10, n // 1000)
    paths = _real_files(work, max(1, n // per_file))
    files = tuple(FileInfo(p, "Events", "root", per_file * 1000, 0, (), ()) for p in paths)
    dataset = Dataset(files)
    units = dataset.units(1000)
    run_dir = work / f"run-{n}"
    shutil.rmtree(run_dir, ignore_errors=True)
    journal = Journal(run_dir)
    journal.close()
    identities = {p: file_identity(p) for p in paths}
    base = _peak_mb()
    started = time.perf_counter()
    for unit in units:
        outcome = UnitOutcome(unit, result={"n": unit.num_entries}, seconds=0.01, worker="w:1")
        record_outcome(str(run_dir), outcome, identities[unit.path])
    write = time.perf_counter() - started
    segment_bytes = sum(p.stat().st_size for p in (run_dir / "units").iterdir())
    journal = Journal(run_dir)
    started = time.perf_counter()
    done = journal.done(units, dataset)
    lookup = time.perf_counter() - started
    journal.close()
    assert len(done) == len(units), (len(done), len(units))
    shutil.rmtree(run_dir)
    return {
        "seconds": write,
        "lookup_seconds": lookup,
        "mb": _peak_mb() - base,
        "records": len(units),
        "files_in_run_dir": 1,
        "record_bytes": segment_bytes / len(units),
    }


def _noop(events: Any) -> dict[str, int]:
    return {"n": len(events)}


def stage_dispatch(work: Path, n: int, executor: str) -> dict[str, Any]:
    import saetta
    from saetta.datagen import generate_nanoaod

    events = max(20_000, n)  # one unit holds at least one event
    path = work / f"events-{events}.root"
    if not path.exists():
        generate_nanoaod(path, events)
    dataset = saetta.Dataset.open(path, metadata_cache=False)
    scheduler_mb = None
    target: Any = executor
    cluster = client = None
    if executor.startswith("dask"):
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        client = target = Client(cluster)
    chunk = max(1, events // n)
    saetta.run(_noop, dataset, executor=target, chunk_size=events, run_dir=False, progress=False)
    base = _peak_mb()
    started = time.perf_counter()
    result = saetta.run(
        _noop, dataset, executor=target, chunk_size=chunk, run_dir=work / f"d-{executor}-{n}"
    )
    seconds = time.perf_counter() - started
    assert result["n"] == events
    if client is not None:
        scheduler_mb = client.run_on_scheduler(_scheduler_peak_mb)
        client.close()
        cluster.close()
    return {
        "seconds": seconds,
        "mb": _peak_mb() - base,
        "units": result.report.units_total,
        "scheduler_mb": scheduler_mb,
    }


def _scheduler_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- fixed costs


def _timed(command: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


FIRST_AND_SECOND = """
import sys, time
import saetta
from saetta.analyses import adl
query, run = getattr(adl, sys.argv[2]), saetta.run  # saetta's modules load here
for _ in range(2):
    started = time.perf_counter()
    run(query, sys.argv[1], run_dir=False, progress=False)
    print(time.perf_counter() - started)
"""


def fixed_costs(file: str, repeat: int) -> list[tuple[str, str, str]]:
    """(what, measured, command) rows: each a fresh process, the median of ``repeat``."""
    python = sys.executable
    saetta = str(Path(python).with_name("saetta"))
    rows = []
    importing = _timed([python, "-c", "import saetta"], repeat)
    bare = _timed([python, "-c", "pass"], repeat)
    rows.append(
        (
            "import saetta",
            f"{_median(importing) - _median(bare):.3f} s (+ {_median(bare):.3f} s Python start-up)",
            f'{python} -c "import saetta"',
        )
    )
    for query in ("q1", "q5", "analysis"):
        firsts, seconds = [], []
        for _ in range(repeat):
            done = subprocess.run(
                [python, "-c", FIRST_AND_SECOND, file, query],
                check=True,
                capture_output=True,
                text=True,
            )
            first, second = (float(x) for x in done.stdout.split())
            firsts.append(first)
            seconds.append(second)
        rows.append(
            (
                f"saetta.run(adl.{query}): first in a process, second",
                f"{_median(firsts):.2f} s, {_median(seconds):.2f} s",
                f"python benchmarks/scale.py --fixed-only --file {file}",
            )
        )
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "q1.json")
        cli = _timed([saetta, "run", "adl.q1", file, "-o", out], repeat)
    rows.append(
        (
            "saetta run adl.q1 (CLI, end to end)",
            f"{_median(cli):.2f} s",
            f"saetta run adl.q1 {file} -o q1.json",
        )
    )
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


# --------------------------------------------------------------------------- the driver


def _run_stage(
    work: Path, stage: str, n: int, executor: str = "", chunk: int = CHUNK
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--stage", stage, "--n", str(n), "--work", str(work)]
    command += ["--executor", executor, "--chunk", str(chunk)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0]}
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def _row(stage: str, n: int, what: str, measured: dict[str, Any], count: int) -> str:
    if "error" in measured:
        return f"| {stage} | {n:,} | {what} | failed: {measured['error']} | | |"
    seconds = measured["seconds"]
    extra = ""
    if "lookup_seconds" in measured:
        extra = f"; resume lookup {measured['lookup_seconds']:.2f} s"
    if measured.get("scheduler_mb") is not None:
        extra += f"; scheduler {measured['scheduler_mb']:.0f} MB peak"
    per = seconds / max(count, 1) * 1e6
    return (
        f"| {stage} | {n:,} | {what} | {seconds:.2f} s{extra} | {per:,.1f} µs "
        f"| {measured['mb']:,.0f} MB |"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="1000,10000,100000,1000000")
    parser.add_argument("--records", default="1000,10000,100000,1000000")
    parser.add_argument("--dispatch", default="1000,10000", help="no-op units per run")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--fixed-only", action="store_true")
    parser.add_argument("--no-fixed", action="store_true")
    parser.add_argument("--file", default="benchmarks/.data/nanoaod-2000000ev-seed1-zlib1.root")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the measurements here too")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help="keep the synthetic catalogs and files here")
    parser.add_argument("--executor", default="", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=CHUNK, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stage:  # one measurement, in this fresh process
        work = Path(args.work)
        if args.stage == "dispatch":
            measured = stage_dispatch(work, args.n, args.executor)
        elif args.stage == "plan":
            measured = stage_plan(work, args.n, args.chunk)
        else:
            measured = {"open": stage_open, "journal": stage_journal}[args.stage](work, args.n)
        print(json.dumps(measured))
        return measured

    report: dict[str, Any] = {"stages": [], "fixed": []}
    lines = []
    if not args.fixed_only:
        lines += [
            "| stage | N | what | time | per item | peak memory |",
            "|---|---:|---|---:|---:|---:|",
        ]
        with tempfile.TemporaryDirectory(prefix="saetta-scale-") as scratch:
            work = Path(args.work or scratch)
            os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # leave the user's cache alone
            for n in _counts(args.files):
                opened = _run_stage(work, "open", n)
                lines.append(_row("open", n, "files from the catalog", opened, n))
                planned = _run_stage(work, "plan", n)
                units = planned.get("units", 0)
                lines.append(_row("plan", n, f"{units:,} units of ≤ 250k", planned, units))
                report["stages"] += [("open", n, opened), ("plan", n, planned)]
                print(*lines[-2:], sep="\n", flush=True)
            largest = max(_counts(args.files), default=0)
            if largest >= 100_000:  # a petabyte's ten million units: smaller chunks
                planned = _run_stage(work, "plan", largest, chunk=100_000)
                units = planned.get("units", 0)
                lines.append(_row("plan", largest, f"{units:,} units of ≤ 100k", planned, units))
                report["stages"].append(("plan 100k", largest, planned))
                print(lines[-1], flush=True)
            for n in _counts(args.records):
                journal = _run_stage(work, "journal", n)
                lines.append(_row("journal", n, "records written, then looked up", journal, n))
                report["stages"].append(("journal", n, journal))
                print(lines[-1], flush=True)
            executors = ["local", "processes:2"] + ([] if args.no_dask else ["dask:2"])
            for n in _counts(args.dispatch):
                for executor in executors:
                    dispatched = _run_stage(work, "dispatch", n, executor)
                    lines.append(_row("dispatch", n, f"no-op units, {executor}", dispatched, n))
                    report["stages"].append((f"dispatch {executor}", n, dispatched))
                    print(lines[-1], flush=True)
    if not args.no_fixed:
        file = args.file
        if not os.path.exists(file):
            from saetta.datagen import generate_nanoaod

            generate_nanoaod(file, 2_000_000)
        rows = fixed_costs(file, args.repeat)
        report["fixed"] = rows
        lines += [
            "",
            "| fixed cost | measured (median of fresh processes) | command |",
            "|---|---:|---|",
        ]
        lines += [f"| {what} | {value} | `{command}` |" for what, value, command in rows]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _counts(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


if __name__ == "__main__":
    main()
