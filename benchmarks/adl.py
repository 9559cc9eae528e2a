"""The eight IRIS-HEP ADL benchmark queries, side by side: saetta, ROOT RDataFrame, coffea, ...

One run, one file, one machine: every system runs every query on the same
NanoAOD-like ROOT file (ZLIB-1), its histograms are checked bin for bin
(flow bins included) against saetta's, and a table of event rates and ratios
is printed and written as JSON.

Systems (``--peers``):

- ``saetta``: ``saetta.run(query, file)`` with ``executor="local"`` (1 process) and
  with a pool of ``--processes`` worker processes (the pool ``processes:N`` makes,
  started once and warmed up, so its start-up is not timed; see the notes printed);
- ``rdf``, ``rdf-mt``: ROOT RDataFrame, single-thread and ``EnableImplicitMT(N)``,
  in ``benchmarks/.venv-root`` (``pip install root``), as a subprocess;
- ``handwritten``: uproot + awkward + numpy, no numba (``peers/handwritten.py``);
- ``coffea``: coffea's processor/NanoEvents, 1 process, in ``benchmarks/.venv-coffea``;
- ``readspeed``: ROOT's ``rootreadspeed`` on each query's branches, one thread: the
  raw read-and-decompress rate, the I/O limit.

Usage::

    python benchmarks/adl.py                       # 2M events, all peers
    python benchmarks/adl.py --events 20000 --peers saetta,handwritten
    python benchmarks/adl.py --file my.root --queries q1,q5 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import multiprocessing
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from types import ModuleType
from typing import Any

__all__ = ["main"]

HERE = pathlib.Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"
ALL_PEERS = ("saetta", "rdf", "rdf-mt", "handwritten", "coffea", "readspeed")
WARMUP_EVENTS = 2_000
PEER_TIMEOUT = 3 * 3600  # seconds; a hung peer must not hang the benchmark forever


def _load_spec() -> ModuleType:
    """``peers/adlspec.py`` (standard library only, shared with the peers' own venvs)."""
    spec = importlib.util.spec_from_file_location("adlspec", PEERS_DIR / "adlspec.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


adlspec = _load_spec()


def log(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------- input file


def prepare_file(args: argparse.Namespace, data_dir: pathlib.Path) -> tuple[pathlib.Path, bool]:
    """The benchmark file: ``--file``, or a generated one cached by events and seed."""
    if args.file:
        return pathlib.Path(args.file).resolve(), False
    from saetta.datagen import generate_nanoaod

    path = data_dir / f"nanoaod-{args.events}ev-seed{args.seed}-zlib1.root"
    if path.exists():
        return path, False
    log(f"generating {args.events:,} events into {path} ...")
    started = time.perf_counter()
    generate_nanoaod(path, args.events, seed=args.seed, compression="zlib:1")
    log(f"  done in {time.perf_counter() - started:.1f} s")
    return path, True


def warmup_file(data_dir: pathlib.Path, seed: int) -> pathlib.Path:
    """A tiny file of the same schema, for untimed warm-up runs (JIT, imports, pools)."""
    from saetta.datagen import generate_nanoaod

    path = data_dir / f"warmup-{WARMUP_EVENTS}ev-seed{seed + 1000}-zlib1.root"
    if not path.exists():
        generate_nanoaod(path, WARMUP_EVENTS, seed=seed + 1000, compression="zlib:1")
    return path


def warm_page_cache(path: pathlib.Path) -> float:
    """Read the whole file once, so that every system starts from the page cache."""
    started = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass
    return time.perf_counter() - started


def file_entries(path: pathlib.Path) -> int:
    import uproot

    with uproot.open(path) as f:
        return int(f["Events"].num_entries)


# ----------------------------------------------------------------------------- saetta


def run_saetta(
    path: pathlib.Path,
    warm: pathlib.Path,
    queries: Sequence[str],
    repeat: int,
    chunk_size: int,
    processes: int,
) -> dict[str, dict[str, Any]]:
    """saetta with executor="local", and with a warmed pool of ``processes`` workers."""
    import saetta
    from saetta.analyses import adl

    out: dict[str, dict[str, Any]] = {}

    def measure(query: str, executor: Any) -> dict[str, Any]:
        reports: list[Any] = []

        def once() -> tuple[int, dict[str, list[float]]]:
            result = saetta.run(
                adl.QUERIES[query],
                str(path),
                executor=executor,
                chunk_size=chunk_size,
                progress=False,
            )
            reports.append(result.report)
            hists = {
                name: [float(v) for v in result[name].view(flow=True)]
                for name in adlspec.QUERY_HISTOGRAMS[query]
            }
            return result.report.events_processed, hists

        timing: dict[str, Any] = adlspec.time_best(once, repeat)
        best = min(reports, key=lambda r: r.wall_seconds)
        timing.update(
            report_wall_seconds=best.wall_seconds,
            unit_seconds=best.unit_seconds,
            bytes_read=best.bytes_read,
            columns=list(best.columns),
            units=best.units_total,
        )
        return timing

    # 1 process: numba compilation (or loading numba's on-disk cache) happens in an
    # untimed run of the same query on the warm-up file.
    log("saetta, 1 process (executor='local') ...")
    local: dict[str, Any] = {}
    for query in queries:
        started = time.perf_counter()
        saetta.run(adl.QUERIES[query], str(warm), executor="local", progress=False)
        compile_seconds = time.perf_counter() - started
        local[query] = measure(query, "local")
        local[query]["warmup_seconds"] = compile_seconds
        log(f"  {query}: {_rate_text(local[query])}")
    out["saetta-1p"] = {
        "queries": local,
        "executor": "local",
        "version": saetta.__version__,
        "warmup": "untimed run of each query on a 2,000-event file first (numba JIT)",
    }
    if processes < 1:
        return out

    # N processes: the pool saetta's "processes:N" builds (forkserver, adl preloaded),
    # started once, warmed on many tiny units so that every worker has loaded the
    # kernels, then reused for every timed run (saetta does not shut down a pool it
    # did not create). The cost of a cold executor="processes:N" run is measured apart.
    log(f"saetta, {processes} processes ...")
    started = time.perf_counter()
    cold = saetta.run(
        adl.q1,
        str(warm),
        executor=f"processes:{processes}",
        chunk_size=chunk_size,
        progress=False,
    )
    cold_seconds = time.perf_counter() - started
    context: Any = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["saetta.execute.unit", "saetta.analyses.adl"])
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
    pooled: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        for query in queries:
            saetta.run(
                adl.QUERIES[query],
                str(warm),
                executor=pool,
                chunk_size=max(1, WARMUP_EVENTS // (4 * processes)),
                progress=False,
            )
        pool_warmup = time.perf_counter() - started
        for query in queries:
            pooled[query] = measure(query, pool)
            log(f"  {query}: {_rate_text(pooled[query])}")
    finally:
        pool.shutdown(wait=True)
    out[f"saetta-{processes}p"] = {
        "queries": pooled,
        "executor": f"processes:{processes} (one pool, reused)",
        "version": saetta.__version__,
        "warmup": (
            "pool started once and every query run untimed on a 2,000-event file split into "
            "small units, so every worker has its numba kernels"
        ),
        "pool_warmup_seconds": pool_warmup,
        "cold_processes_run_seconds": cold_seconds,
        "cold_processes_run_note": (
            f"wall time of one saetta.run(q1, <2,000-event file>, executor='processes:"
            f"{processes}') from a cold start: the fixed cost each run() with a processes "
            f"executor pays for starting its pool (excluded from the table)"
        ),
        "cold_processes_run_events": cold.report.events_processed,
    }
    return out


# ----------------------------------------------------------------------------- peers (subprocesses)


def _venv_python(venv: pathlib.Path) -> pathlib.Path:
    return venv / "bin" / "python"


def ensure_venv(
    venv: pathlib.Path, packages: Sequence[str], install: bool, notes: dict[str, Any]
) -> pathlib.Path | None:
    """The venv's python, creating the venv (``python -m venv`` + pip) if allowed and needed."""
    marker = venv / ".adlbench-installed"
    python = _venv_python(venv)
    if marker.exists() and python.exists():
        notes[venv.name] = {"status": "present", "packages": list(packages)}
        return python
    if not install:
        notes[venv.name] = {"status": "missing, --no-install given"}
        return None
    log(f"creating {venv} and installing {' '.join(packages)} (once) ...")
    started = time.perf_counter()
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", *packages],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            notes[venv.name] = {
                "status": "install failed",
                "command": " ".join(step),
                "stderr": done.stderr[-3000:],
                "seconds": time.perf_counter() - started,
            }
            log(f"  FAILED: {' '.join(step)}\n{done.stderr[-1500:]}")
            return None
    marker.write_text(" ".join(packages) + "\n")
    seconds = time.perf_counter() - started
    notes[venv.name] = {"status": "installed", "packages": list(packages), "seconds": seconds}
    log(f"  installed in {seconds:.0f} s")
    return python


def run_peer(name: str, command: Sequence[str], timeout: float = PEER_TIMEOUT) -> dict[str, Any]:
    """Run a peer script; its JSON answer, or ``{"error": ...}`` saying why there is none."""
    log(f"{name} ...")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=PEERS_DIR,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-3000:]
        return {"error": f"exit status {done.returncode}", "stderr": tail}
    try:
        answer: dict[str, Any] = adlspec.parse_output(done.stdout)
    except ValueError as exc:
        return {"error": str(exc), "stderr": done.stderr[-3000:]}
    answer["process_seconds"] = time.perf_counter() - started
    for query, res in answer.get("queries", {}).items():
        log(f"  {query}: {_rate_text(res)}")
    return answer


READSPEED_REAL = re.compile(r"Real time:\s*([0-9.eE+-]+)\s*s")
READSPEED_BYTES = re.compile(r"(Uncompressed|Compressed) data read:\s*([0-9]+) bytes")


def find_rootreadspeed(root_venv: pathlib.Path) -> pathlib.Path | None:
    found = sorted(root_venv.glob("lib/python3*/site-packages/ROOT/bin/rootreadspeed"))
    return found[0] if found else None


def _readspeed_once(
    binary: pathlib.Path, path: pathlib.Path, branches: Sequence[str]
) -> tuple[float, dict[str, int]] | str:
    """(its "Real time" in seconds, bytes read), or the reason it failed."""
    command = [str(binary), "--files", str(path), "--trees", "Events", "--branches", *branches]
    done = subprocess.run([*command, "--threads", "0"], capture_output=True, text=True, check=False)
    match = READSPEED_REAL.search(done.stdout)
    if done.returncode != 0 or match is None:
        return f"{' '.join(command)} failed: {(done.stderr or done.stdout)[-2000:]}"
    detail = {kind.lower() + "_bytes": int(n) for kind, n in READSPEED_BYTES.findall(done.stdout)}
    return float(match.group(1)), detail


def run_readspeed(
    binary: pathlib.Path,
    path: pathlib.Path,
    warm: pathlib.Path,
    queries: Sequence[str],
    repeat: int,
    entries: int,
) -> dict[str, Any]:
    """``rootreadspeed --threads 0`` (no thread pool) on each query's branch list.

    rootreadspeed's "Real time" includes a fixed start-up (opening the file, loading
    ROOT's dictionaries: ~0.15 s here), as large as reading MET_pt for 2M events. The
    rate reported is therefore the marginal one, from the same command on the
    2,000-event warm-up file: ``seconds = (T(file) - T(warm-up)) * N / (N - n)``,
    so that ``N / seconds`` is the read-and-decompress rate; raw times are kept too.
    """
    log("rootreadspeed, 1 thread ...")
    small = WARMUP_EVENTS
    results: dict[str, Any] = {}
    for query in queries:
        branches = adlspec.BRANCHES[query]
        raw: list[float] = []
        base: list[float] = []
        detail: dict[str, int] = {}
        for _ in range(max(3, repeat)):  # cheap, and a difference of two times is noisy
            for target, times in ((path, raw), (warm, base)):
                answer = _readspeed_once(binary, target, branches)
                if isinstance(answer, str):
                    return {"error": f"rootreadspeed failed on {query}", "stderr": answer}
                times.append(answer[0])
                if target == path:
                    detail = answer[1]
        marginal = (min(raw) - min(base)) * entries / (entries - small) if entries > small else 0.0
        results[query] = {
            "seconds": marginal if marginal > 0 else min(raw),
            "marginal": marginal > 0,
            "raw_seconds": raw,
            "startup_seconds": base,
            "events": entries,
            "branches": branches,
            **detail,
        }
        log(f"  {query}: {_rate_text(results[query])} (raw {min(raw):.3f} s)")
    return {"system": "readspeed", "binary": str(binary), "queries": results}


# ----------------------------------------------------------------------------- checks, table


def compare(
    systems: dict[str, dict[str, Any]], reference: str, queries: Sequence[str], entries: int
) -> list[dict[str, Any]]:
    """Every histogram of every system against the reference system's, bin for bin."""
    problems: list[dict[str, Any]] = []
    ref = systems[reference]["queries"]
    for name, system in systems.items():
        for query in queries:
            res = system.get("queries", {}).get(query)
            if res is None:
                continue
            if res.get("events") != entries:
                problems.append(
                    {
                        "system": name,
                        "query": query,
                        "what": "events",
                        "expected": entries,
                        "got": res.get("events"),
                    }
                )
            if name == reference or "hists" not in res or query not in ref:
                continue
            for hist_name in adlspec.QUERY_HISTOGRAMS[query]:
                mine, theirs = ref[query]["hists"].get(hist_name), res["hists"].get(hist_name)
                if theirs is None or mine is None or len(theirs) != len(mine):
                    problems.append(
                        {
                            "system": name,
                            "query": query,
                            "histogram": hist_name,
                            "what": "missing or wrong length",
                        }
                    )
                    continue
                bins = [i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]
                if bins:
                    problems.append(
                        {
                            "system": name,
                            "query": query,
                            "histogram": hist_name,
                            "what": "bins differ",
                            "bins": bins,
                            "reference": [mine[i] for i in bins],
                            "got": [theirs[i] for i in bins],
                            "reference_total": sum(mine),
                            "got_total": sum(theirs),
                        }
                    )
            res["agrees_with_" + reference] = not any(
                p["system"] == name and p["query"] == query for p in problems
            )
    return problems


def _rate(res: dict[str, Any] | None) -> float | None:
    if not res or not res.get("seconds") or not res.get("events"):
        return None
    return float(res["events"]) / float(res["seconds"])


def _rate_text(res: dict[str, Any]) -> str:
    rate = _rate(res)
    return f"{res['seconds']:.3f} s, {rate / 1e3:,.0f} k events/s" if rate else "n/a"


RATIOS: dict[str, tuple[str, str]] = {
    "saetta/rdf": ("saetta-1p", "rdf"),
    "saetta/handwritten": ("saetta-1p", "handwritten"),
    "saetta/raw-read": ("saetta-1p", "readspeed"),
}


def ratios(
    systems: dict[str, dict[str, Any]], queries: Sequence[str], processes: int
) -> dict[str, dict[str, float | None]]:
    pairs = dict(RATIOS)
    pairs[f"saetta {processes}p/1p"] = (f"saetta-{processes}p", "saetta-1p")
    out: dict[str, dict[str, float | None]] = {}
    for query in queries:
        row: dict[str, float | None] = {}
        for label, (num, den) in pairs.items():
            a = _rate(systems.get(num, {}).get("queries", {}).get(query))
            b = _rate(systems.get(den, {}).get("queries", {}).get(query))
            row[label] = a / b if a and b else None
        out[query] = row
    return out


def table(
    systems: dict[str, dict[str, Any]],
    queries: Sequence[str],
    ratio_rows: dict[str, dict[str, float | None]],
    problems: list[dict[str, Any]],
) -> str:
    names = [n for n, s in systems.items() if "queries" in s]
    labels = list(next(iter(ratio_rows.values())).keys()) if ratio_rows else []
    head = ["query", *names, *labels]
    rows = [head]
    for query in queries:
        row = [query]
        for name in names:
            rate = _rate(systems[name]["queries"].get(query))
            bad = any(p["system"] == name and p["query"] == query for p in problems)
            row.append((f"{rate / 1e3:,.0f}" if rate else "-") + ("!" if bad else ""))
        for label in labels:
            value = ratio_rows[query][label]
            row.append(f"{value:.2f}" if value else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ADL benchmark queries: saetta side by side with RDataFrame, coffea, ..."
    )
    parser.add_argument("--events", type=int, default=2_000_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--file", help="use this ROOT file (tree Events) instead of generating")
    parser.add_argument("--queries", default=",".join(adlspec.QUERY_NAMES))
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per system; best kept")
    parser.add_argument("--json", help="output JSON (default benchmarks/results/adl-<date>.json)")
    parser.add_argument("--peers", default=",".join(ALL_PEERS), help=", ".join(ALL_PEERS))
    parser.add_argument("--chunk-size", type=int, default=250_000, help="events per chunk")
    parser.add_argument("--processes", type=int, default=2, help="saetta's multi-process width")
    parser.add_argument("--threads", type=int, default=2, help="rdf-mt's EnableImplicitMT(N)")
    parser.add_argument(
        "--data-dir", default=str(HERE / ".data"), help="where generated files are cached"
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not create benchmarks/.venv-root or .venv-coffea; skip their peers if missing",
    )
    args = parser.parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(ALL_PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {', '.join(ALL_PEERS)}")
    args.peer_list = peers
    args.query_list = adlspec.parse_queries(args.queries)
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    queries: list[str] = args.query_list
    peers: list[str] = args.peer_list
    data_dir = pathlib.Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path, generated = prepare_file(args, data_dir)
    warm = warmup_file(data_dir, args.seed)
    entries = file_entries(path)
    cache_seconds = warm_page_cache(path)
    load_at_start = list(os.getloadavg())
    log(
        f"file {path} ({entries:,} events, {path.stat().st_size / 1e6:,.0f} MB), "
        f"page cache warmed in {cache_seconds:.1f} s; queries {','.join(queries)}; "
        f"repeat {args.repeat}; load average {load_at_start[0]:.1f} on {os.cpu_count()} cores"
    )

    systems: dict[str, dict[str, Any]] = {}
    failures: dict[str, Any] = {}
    install: dict[str, Any] = {}
    common = [
        "--file",
        str(path),
        "--queries",
        ",".join(queries),
        "--repeat",
        str(args.repeat),
        "--warmup",
        str(warm),
    ]

    def record(name: str, answer: dict[str, Any]) -> None:
        if "error" in answer:
            failures[name] = answer
            log(f"  {name} FAILED: {answer['error']}\n{answer.get('stderr', '')[-1500:]}")
        else:
            systems[name] = answer

    if "saetta" in peers:
        systems.update(
            run_saetta(path, warm, queries, args.repeat, args.chunk_size, args.processes)
        )
    if "handwritten" in peers:
        record(
            "handwritten",
            run_peer(
                "handwritten (uproot + awkward + numpy)",
                [
                    sys.executable,
                    str(PEERS_DIR / "handwritten.py"),
                    *common,
                    "--step-size",
                    str(args.chunk_size),
                ],
            ),
        )
    root_venv = HERE / ".venv-root"
    if {"rdf", "rdf-mt", "readspeed"} & set(peers):
        root_python = ensure_venv(root_venv, ["root", "numpy"], not args.no_install, install)
        runs: list[tuple[str, int]] = []
        if "rdf" in peers:
            runs.append(("rdf", 1))
        if "rdf-mt" in peers:
            runs.append((f"rdf-mt{args.threads}", args.threads))
        for name, threads in runs:
            if root_python is None:
                failures[name] = {"error": "no ROOT venv", "install": install.get(root_venv.name)}
                continue
            record(
                name,
                run_peer(
                    f"ROOT RDataFrame, {threads} thread(s)",
                    [
                        str(root_python),
                        str(PEERS_DIR / "rdf.py"),
                        *common,
                        "--threads",
                        str(threads),
                    ],
                ),
            )
        if "readspeed" in peers:
            binary = find_rootreadspeed(root_venv) if root_python else None
            if binary is None:
                failures["readspeed"] = {"error": "rootreadspeed not found in the ROOT venv"}
            else:
                record(
                    "readspeed", run_readspeed(binary, path, warm, queries, args.repeat, entries)
                )
    if "coffea" in peers:
        coffea_python = ensure_venv(HERE / ".venv-coffea", ["coffea"], not args.no_install, install)
        if coffea_python is None:
            failures["coffea"] = {"error": "no coffea venv", "install": install.get(".venv-coffea")}
        else:
            record(
                "coffea",
                run_peer(
                    "coffea (IterativeExecutor, 1 process)",
                    [
                        str(coffea_python),
                        str(PEERS_DIR / "coffea_adl.py"),
                        *common,
                        "--chunksize",
                        str(args.chunk_size),
                    ],
                ),
            )

    with_hists = [n for n, s in systems.items() if n != "readspeed"]
    reference = "saetta-1p" if "saetta-1p" in systems else next(iter(with_hists), "")
    problems = compare(systems, reference, queries, entries) if reference else []
    ratio_rows = ratios(systems, queries, args.processes)

    notes = [
        "k events/s = thousand events per second (best of --repeat runs); higher is better.",
        "ratios are event-rate ratios: saetta (1 process) over the other system; >1: saetta faster.",
        (
            "saetta: numba compilation excluded by an untimed warm-up run of each query on a "
            f"{WARMUP_EVENTS:,}-event file; saetta-{args.processes}p reuses one warmed process "
            "pool (cold pool start-up is in the JSON: cold_processes_run_seconds)."
        ),
        (
            "rdf: wall time of the event loop minus RDataFrame's own JIT phase (also warmed up "
            "on the small file); rdf-mt: ROOT.EnableImplicitMT(N)."
        ),
        (
            "handwritten, coffea: wall time of one pass over the file after an untimed warm-up "
            "pass on the small file; coffea computes kinematics in float64 (cast) to agree."
        ),
        (
            "readspeed: rootreadspeed --threads 0 on the query's branches (counters included); "
            "its fixed start-up is removed by subtracting the same command's time on the "
            "warm-up file (raw times in the JSON)."
        ),
    ]
    print()
    print(table(systems, queries, ratio_rows, problems))
    print()
    for note in notes:
        print("  " + note)
    for name, failure in failures.items():
        print(f"\n!!! {name} did not run: {failure.get('error')}")
    if problems:
        print(
            f"\n!!! MISMATCH: {len(problems)} histogram/event-count disagreements with {reference}:"
        )
        for p in problems:
            print("!!!   " + json.dumps(p)[:400])
    else:
        checked = [n for n in systems if n not in (reference, "readspeed")]
        print(
            f"\nall histograms agree bin for bin (flow bins included) with {reference}: "
            f"{', '.join(checked) or 'no other system'}"
        )

    report: dict[str, Any] = {
        "benchmark": "adl",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "file": {
            "path": str(path),
            "entries": entries,
            "bytes": path.stat().st_size,
            "generated_now": generated,
            "seed": None if args.file else args.seed,
            "compression": "zlib:1" if not args.file else "as given",
            "page_cache_warm_seconds": cache_seconds,
        },
        "settings": {
            "queries": queries,
            "peers": peers,
            "repeat": args.repeat,
            "chunk_size": args.chunk_size,
            "processes": args.processes,
            "rdf_threads": args.threads,
            "warmup_file": str(warm),
        },
        "systems": systems,
        "failures": failures,
        "install": install,
        "reference": reference,
        "agreement": not problems and bool(reference),
        "all_peers_ran": not failures,
        "mismatches": problems,
        "ratios": ratio_rows,
        "events_per_second": {
            name: {q: _rate(s["queries"].get(q)) for q in queries} for name, s in systems.items()
        },
        "notes": notes,
    }
    out = (
        pathlib.Path(args.json)
        if args.json
        else (HERE / "results" / f"adl-{datetime.date.today().isoformat()}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten {out}")
    report["json_path"] = str(out)
    return report


def _cli() -> int:
    report = main()
    return 0 if report["agreement"] else 1


if __name__ == "__main__":
    sys.exit(_cli())
