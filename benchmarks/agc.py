"""The AGC ttbar analysis, saetta side by side with coffea: one run, same samples, same histograms.

saetta's ``saetta.analyses.agc.analysis`` over :class:`saetta.samples.Samples` (every
sample, every variation, the jet-parton assignment's in-loop ONNX inference) is
timed with ``executor="local"`` (1 process) and with a warmed pool of
``--processes`` workers; coffea runs the same analysis, written the coffea way
from the same published definitions (``peers/coffea_agc.py``, in
``benchmarks/.venv-coffea``, ``IterativeExecutor``, 1 process). Every histogram of
every sample and variation (sums of weights and of their squares, flow bins
included) is checked bin for bin against saetta's one-process result; a table of
event rates (total and per core), the saetta/coffea ratio per core, the time split
of saetta's one-process run (read, selection, variations, inference, fill) and the
wall time of one cold ``saetta run agc`` from the command line is printed and
written as JSON. The exit status is 1 when any histogram disagrees.

Usage::

    python benchmarks/agc.py                              # data/agc/samples.yaml
    python benchmarks/agc.py --generate 20000             # generate it first (Pythia 8)
    python benchmarks/agc.py --synthetic 20000            # synthetic events, no Pythia
    python benchmarks/agc.py --samples S.yaml --peers saetta --repeat 3 --no-ml
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from types import ModuleType
from typing import Any

__all__ = ["main"]

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_DIR = HERE / "peers"
ALL_PEERS = ("saetta", "coffea")
WARMUP_EVENTS = 2_000
REL_TOLERANCE = 1e-9
SPLIT = ("read", "selection", "variations", "inference", "fill")
ML_HISTOGRAMS = ("4j2b_ml_m_tophad", "4j2b_ml_m_w", "4j2b_ml_score")
GENERATE_HINT = "saetta generate agc data/agc --events-per-sample 20000 --executor processes:2"


def _load(name: str, path: pathlib.Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the ADL benchmark: its venv creation, peer runner and page-cache warming are reused
adl = _load("adl_benchmark", HERE / "adl.py")
adlspec = adl.adlspec
log = adl.log


# ----------------------------------------------------------------------------- samples

SYNTHETIC_SAMPLES: tuple[tuple[str, str, float | None, str | None], ...] = (
    ("ttbar", "signal", 729.84, None),
    ("ttbar__PS_var", "signal", 729.84, "ttbar"),
    ("single_top_t_chan", "background", 44.33, None),
    ("wjets", "background", 15487.164, None),
    ("data", "data", None, None),
)
SYNTHETIC_EVENTS_PER_FILE = 10_000


def write_synthetic(folder: pathlib.Path, events: int) -> pathlib.Path:
    """Synthetic AGC-like samples (``tests/agc_synthetic.py``) and their samples file."""
    import yaml

    target = folder / "samples.yaml"
    if target.exists():
        return target
    sys.path.insert(0, str(ROOT / "tests"))
    from agc_synthetic import agc_events, write_root

    log(f"writing synthetic samples, {events:,} events each, into {folder} ...")
    document: dict[str, Any] = {"luminosity": 3378.0, "tree": "Events", "samples": {}}
    seed = 0
    for name, role, xsec, variation_of in SYNTHETIC_SAMPLES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        files = []
        left, part = events, 0
        while left > 0:
            n = min(left, SYNTHETIC_EVENTS_PER_FILE)
            seed += 1  # also the files' luminosityBlock: (run, lumi, event) unique
            relative = f"{name}/{name}_{part:04d}.root"
            write_root(folder / relative, agc_events(n, seed))
            files.append(relative)
            left, part = left - n, part + 1
        entry: dict[str, Any] = {"files": files, "role": role}
        if role != "data":
            entry.update(xsec=xsec, generated=float(events))
        if variation_of:
            entry.update(variation_of=variation_of, variation="PS_var")
        document["samples"][name] = entry
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def prepare_samples(args: argparse.Namespace) -> tuple[pathlib.Path, str]:
    """The samples file to benchmark, and where it came from."""
    if args.synthetic:
        folder = pathlib.Path(args.data_dir) / f"agc-synthetic-{args.synthetic}"
        return write_synthetic(folder, args.synthetic).resolve(), "synthetic"
    path = pathlib.Path(args.samples)
    if args.generate and not path.exists():
        from saetta.generation import generate_agc

        log(f"generating the AGC samples, {args.generate:,} events each, into {path.parent} ...")
        started = time.perf_counter()
        path = generate_agc(
            path.parent, args.generate, executor=f"processes:{max(1, args.processes)}"
        )
        log(f"  done in {time.perf_counter() - started:.0f} s")
        return path.resolve(), "generated now"
    if not path.exists():
        msg = (
            f"{path} does not exist: generate the samples first,\n  {GENERATE_HINT}\n"
            "or pass --generate N (the same, from here), or --synthetic N (no Pythia)"
        )
        raise SystemExit(msg)
    return path.resolve(), "given"


def load_samples(path: pathlib.Path) -> Any:
    from saetta.samples import Samples

    return Samples.from_yaml(path)


def entries_of(samples: Any) -> dict[str, int]:
    import uproot

    out: dict[str, int] = {}
    for name, sample in samples.items():
        total = 0
        for path in sample.files:
            with uproot.open(path) as f:
                total += int(f[sample.tree].num_entries)
        out[name] = total
    return out


def peer_samples(samples: Any) -> dict[str, Any]:
    """What the coffea peer needs to know of the samples (it has no saetta)."""
    return {
        "luminosity_pb": samples.luminosity_pb,
        "samples": {
            name: {
                "files": list(s.files),
                "tree": s.tree,
                "weight": s.weight,
                "role": s.role,
                "variation_of": s.variation_of,
            }
            for name, s in samples.items()
        },
    }


def slice_root(source: str, tree: str, target: pathlib.Path, entries: int) -> None:
    """The first ``entries`` events of a NanoAOD file, same branches and types."""
    import awkward as ak
    import numpy as np
    import uproot

    with uproot.open(source) as f:
        arrays = f[tree].arrays(entry_stop=entries, how=dict)
    groups: dict[str, dict[str, Any]] = {}
    for name, values in arrays.items():
        prefix, _, field = name.partition("_")
        if field and values.ndim > 1:
            groups.setdefault(prefix, {})[field] = values
    data: dict[str, Any] = {
        name: np.asarray(values)
        for name, values in arrays.items()
        if values.ndim == 1 and not (name.startswith("n") and name[1:] in groups)
    }
    data.update({prefix: ak.zip(fields) for prefix, fields in groups.items()})
    types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    with uproot.recreate(partial) as out:
        out.mktree(
            tree,
            types,
            counter_name=lambda name: f"n{name}",
            field_name=lambda outer, inner: f"{outer}_{inner}",
        ).extend(data)
    os.replace(partial, target)


def warmup_samples(samples: Any, folder: pathlib.Path) -> Any:
    """The same samples, each of the first ``WARMUP_EVENTS`` events of its first file."""
    from dataclasses import replace

    from saetta.samples import Samples

    made = []
    for name, sample in samples.items():
        target = folder / f"{name}.root"
        source = sample.files[0]
        if not target.exists() or target.stat().st_mtime < os.stat(source).st_mtime:
            slice_root(source, sample.tree, target, WARMUP_EVENTS)
        made.append(replace(sample, files=(str(target),), luminosity_pb=None))
    return Samples(made, samples.luminosity_pb)


def warm_page_cache(samples: Any) -> float:
    return sum(adl.warm_page_cache(pathlib.Path(p)) for s in samples.values() for p in s.files)


# ----------------------------------------------------------------------------- saetta


def flatten(result: Any, names: Sequence[str]) -> dict[str, list[float]]:
    """``{"<sample>/<histogram>/<variation>/sumw" (and /sumw2): bins, flow included}``."""
    out: dict[str, list[float]] = {}
    for sample in names:
        for hist_name, by_variation in sorted(result[sample].items()):
            if hist_name.startswith("_"):
                continue
            for variation, h in sorted(by_variation.items()):
                view = h.view(flow=True)
                key = f"{sample}/{hist_name}/{variation}"
                out[key + "/sumw"] = [float(v) for v in view["value"]]
                out[key + "/sumw2"] = [float(v) for v in view["variance"]]
    return dict(sorted(out.items()))


@contextlib.contextmanager
def without_inference() -> Iterator[None]:
    """``assignment.best`` replaced, in this process only, by a stand-in that scores
    nothing: the analysis then runs without its ML part (its three histograms are
    filled with zeros; they are not compared)."""
    import numpy as np

    from saetta.analyses.agc import assignment

    original = assignment.best

    def stand_in(jets: Any, lepton: Any, model: Any = assignment.MODEL) -> Any:
        n = len(jets.offsets) - 1
        zeros = np.zeros(n)
        return assignment.Best(np.zeros(n, dtype=np.int64), zeros, zeros, zeros)

    assignment.best = stand_in  # type: ignore[assignment]
    try:
        yield
    finally:
        assignment.best = original  # type: ignore[assignment]


@contextlib.contextmanager
def timed_prefetch(clock: dict[str, float]) -> Iterator[None]:
    """saetta reads the columns earlier units used in one call before it calls the
    analysis (``UnitColumns.prefetch``); in this process, time those calls as "read"."""
    from saetta.events import UnitColumns

    original = UnitColumns.prefetch

    def prefetch(self: Any, names: Any) -> None:
        started = time.perf_counter()
        try:
            original(self, names)
        finally:
            clock["read"] += time.perf_counter() - started

    UnitColumns.prefetch = prefetch  # type: ignore[method-assign]
    try:
        yield
    finally:
        UnitColumns.prefetch = original  # type: ignore[method-assign]


def _lap(clock: dict[str, float], part: str, since: float) -> float:
    now = time.perf_counter()
    clock[part] += now - since
    return now


def _touch(events: Any, full: bool, data: bool) -> None:
    """Read (decompress and decode) every column the analysis reads, once."""
    import numpy as np

    from saetta.analyses import agc

    columns = {
        "Electron": ("pt", "eta", "phi", "mass", "cutBased", "sip3d"),
        "Muon": ("pt", "eta", "phi", "mass", "tightId", "sip3d", "pfRelIso04_all"),
        "Jet": ("pt", "eta", "phi", "mass", "btagCSVV2", "jetId"),
    }
    for collection, fields in columns.items():
        for field in fields:
            agc._jagged(events[collection][field])
    flat = (["genWeight"] if not data else []) + (
        ["run", "luminosityBlock", "event"] if full else []
    )
    for name in flat:
        if name in events.fields:
            np.asarray(events[name])


def timed_analysis(events: Any) -> dict[str, Any]:
    """``saetta.analyses.agc.analysis``, step by step as it is written, with a clock on
    each step: read (every column the analysis touches, decompressed and decoded
    first), selection (weights, leptons, the nominal jets, regions and observables),
    variations (the two jet-pT variations' copies, selections and observables, and
    the weight variations' factors), inference (``assignment.best``: features,
    ONNX Runtime, the best assignment's masses) and fill. Its histograms must be
    the analysis' own (checked by the driver)."""
    import numpy as np

    from saetta.analyses import agc
    from saetta.analyses.agc import assignment
    from saetta.samples import event_weights, sample_of
    from saetta.systematics import weight_variants

    clock = dict.fromkeys(SPLIT, 0.0)
    t = time.perf_counter()
    sample = sample_of(events)
    names = agc.variations_of(sample)
    full = len(names) > 1
    wjets = sample is not None and sample.name.startswith("wjets")
    _touch(events, full, sample is not None and sample.role == "data")
    t = _lap(clock, "read", t)
    counts = agc._Counts(names)
    t = _lap(clock, "fill", t)
    weights = event_weights(events)
    lepton = agc.select_lepton(events)
    t = _lap(clock, "selection", t)
    objects = agc.OBJECT_VARIATIONS if full else {"nominal": None}
    for name, vary in objects.items():
        step = "selection" if vary is None else "variations"
        varied = events if vary is None else vary(events)
        jets = agc._jets(varied)
        n_jets, n_b = jets.counts()
        selected = (lepton.count == 1) & (n_jets >= 4) & (n_b >= 1)
        t = _lap(clock, step, t)
        for region, in_region in (("4j1b", selected & (n_b == 1)), ("4j2b", selected & (n_b >= 2))):
            picked = np.flatnonzero(in_region)
            sub = jets.take(picked)
            observable = agc._ht(sub) if region == "4j1b" else agc._trijet_mass(sub)
            t = _lap(clock, step, t)
            weight_vars = agc.WEIGHT_VARIATIONS if (full and name == "nominal") else {}
            context = agc._Selected(sub.first_four_pt(), wjets)
            fills = list(weight_variants(weights[picked], context, weight_vars, prefix=name))
            t = _lap(clock, "variations" if weight_vars else step, t)
            for variation, w in fills:
                ok = ~np.isnan(observable)
                counts.fill(region, variation, observable[ok], w[ok])
            t = _lap(clock, "fill", t)
            if region == "4j2b" and name == "nominal":
                best = assignment.best(sub, lepton.take(picked))
                t = _lap(clock, "inference", t)
                for variation, w in fills:
                    counts.fill("4j2b_ml_m_tophad", variation, best.m_tophad, w)
                    counts.fill("4j2b_ml_m_w", variation, best.m_w, w)
                    counts.fill("4j2b_ml_score", variation, best.score, w)
                t = _lap(clock, "fill", t)
    out: dict[str, Any] = counts.histograms()
    _lap(clock, "fill", t)
    out["_split"] = clock
    return out


def _bits(rows: Any) -> Any:
    """Per feature, the sum of the float32 values' bit patterns (-0 as 0, one NaN)."""
    import numpy as np

    canonical = np.where(np.isnan(rows), np.float32(np.nan), rows + np.float32(0.0))
    return canonical.astype(np.float32).view(np.int32).astype(np.int64).sum(axis=0)


def feature_bits_analysis(events: Any) -> dict[str, Any]:
    """The jet-parton assignment's features of the analysis' 4j2b events (nominal jets),
    as :func:`_bits`: order-independent and exact, so that the peer's features can be
    compared one for one even when the model's scores would hide a difference."""
    import numpy as np

    from saetta.analyses import agc
    from saetta.analyses.agc import assignment

    lepton = agc.select_lepton(events)
    jets = agc._jets(events)
    n_jets, n_b = jets.counts()
    picked = np.flatnonzero((lepton.count == 1) & (n_jets >= 4) & (n_b >= 2))
    rows = assignment.features(jets.take(picked), lepton.take(picked))
    return {"bits": _bits(rows), "rows": len(rows)}


def run_saetta(
    samples: Any,
    warm: Any,
    repeat: int,
    chunk_size: int | None,
    processes: int,
    no_ml: bool,
) -> dict[str, dict[str, Any]]:
    """saetta with executor="local" (with its time split) and with a warmed pool."""
    import saetta
    from saetta.analyses import agc

    names = list(samples)
    out: dict[str, dict[str, Any]] = {}

    def measure(executor: Any, label: str) -> dict[str, Any]:
        reports: list[Any] = []

        def once() -> tuple[int, dict[str, list[float]]]:
            result = saetta.run(
                agc.analysis,
                samples,
                executor=executor,
                chunk_size=chunk_size,
                run_dir=False,
                progress=False,
            )
            reports.append(result.report)
            return result.report.events_processed, flatten(result, names)

        timing: dict[str, Any] = adlspec.time_best(once, repeat)
        best = min(reports, key=lambda r: r.wall_seconds)
        timing.update(
            report_wall_seconds=best.wall_seconds,
            unit_seconds=best.unit_seconds,
            bytes_read=best.bytes_read,
            units=best.units_total,
            executor=label,
            version=saetta.__version__,
        )
        log(f"  {label}: {_rate_text(timing)}")
        return timing

    # numba compilation (or loading its on-disk cache) and ONNX Runtime's session: in an
    # untimed run over the warm-up samples (the first 2,000 events of each sample)
    log("saetta, 1 process (executor='local') ...")
    started = time.perf_counter()
    saetta.run(agc.analysis, warm, executor="local", run_dir=False, progress=False)
    warmup = time.perf_counter() - started
    out["saetta-1p"] = measure("local", "local")
    out["saetta-1p"]["warmup_seconds"] = warmup

    if no_ml:
        with without_inference():
            saetta.run(agc.analysis, warm, executor="local", run_dir=False, progress=False)
            out["saetta-1p-noml"] = measure("local", "local, assignment.best stubbed (no ML)")
        out["saetta-1p-noml"]["ml"] = False

    # the time split: the analysis' steps with a clock each, same events, 1 process
    log("saetta, 1 process, time split ...")
    prefetched = {"read": 0.0}
    with timed_prefetch(prefetched):
        started = time.perf_counter()
        split_result = saetta.run(
            timed_analysis,
            samples,
            executor="local",
            chunk_size=chunk_size,
            run_dir=False,
            progress=False,
        )
        wall = time.perf_counter() - started
    parts = dict.fromkeys(SPLIT, 0.0)
    parts["read"] = prefetched["read"]
    for name in names:
        for part, seconds in split_result[name]["_split"].items():
            parts[part] += float(seconds)
    out["saetta-1p"]["split"] = {
        "wall_seconds": wall,
        "parts_seconds": parts,
        "other_seconds": wall - sum(parts.values()),
        "events": split_result.report.events_processed,
        "hists": flatten(split_result, names),
        "method": (
            "timed_analysis(): saetta.analyses.agc.analysis re-stated step by step from its "
            "internal helpers, a perf_counter around each step, run once with "
            "executor='local'; 'read' is decompressing and decoding every column the "
            "analysis touches: saetta's prefetch of the columns earlier units used (timed "
            "by wrapping UnitColumns.prefetch in this process) plus, in the first unit, "
            "reading them on first access (done first); 'other' is the run's wall time "
            "minus the parts (planning units, opening each file's tree, building the lazy "
            "events, merging the results)"
        ),
    }
    log(
        "  "
        + ", ".join(f"{p} {s:.3f} s" for p, s in parts.items())
        + f", other {wall - sum(parts.values()):.3f} s (wall {wall:.3f} s)"
    )
    bits = saetta.run(
        feature_bits_analysis, samples, executor="local", run_dir=False, progress=False
    )
    out["saetta-1p"]["feature_bits"] = {n: [float(v) for v in bits[n]["bits"]] for n in names}
    out["saetta-1p"]["feature_rows"] = {n: int(bits[n]["rows"]) for n in names}
    if processes < 2:
        return out

    log(f"saetta, {processes} processes ...")
    context: Any = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["saetta.execute.unit", "saetta.analyses.agc", "saetta.analyses.agc.assignment"]
    )
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
    try:
        started = time.perf_counter()
        saetta.run(
            agc.analysis,
            warm,
            executor=pool,
            chunk_size=max(1, WARMUP_EVENTS // (4 * processes)),
            run_dir=False,
            progress=False,
        )
        pool_warmup = time.perf_counter() - started
        label = f"pool of {processes} processes (forkserver, reused)"
        out[f"saetta-{processes}p"] = measure(pool, label)
        out[f"saetta-{processes}p"]["pool_warmup_seconds"] = pool_warmup
    finally:
        pool.shutdown(wait=True)
    return out


def cold_cli(samples_path: pathlib.Path, processes: int) -> dict[str, Any]:
    """One ``saetta run agc SAMPLES -o x.root --executor processes:N`` from a cold start."""
    binary = pathlib.Path(sys.executable).with_name("saetta")
    with tempfile.TemporaryDirectory(prefix="agc-bench-") as folder:
        command = [
            str(binary),
            "run",
            "agc",
            str(samples_path),
            "-o",
            str(pathlib.Path(folder) / "x.root"),
            "--executor",
            f"processes:{processes}",
        ]
        log(f"cold CLI: {' '.join(command[1:])} ...")
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    answer: dict[str, Any] = {
        "command": f"saetta run agc {samples_path} -o x.root --executor processes:{processes}",
        "seconds": seconds,
        "returncode": done.returncode,
    }
    if done.returncode != 0:
        answer["stderr"] = (done.stderr or done.stdout)[-3000:]
        log(f"  FAILED (exit {done.returncode}):\n{answer['stderr'][-1500:]}")
    else:
        log(f"  {seconds:.2f} s wall")
    return answer


# ----------------------------------------------------------------------------- coffea


def run_coffea(
    python: pathlib.Path,
    samples: Any,
    warm: Any,
    folder: pathlib.Path,
    repeat: int,
    chunk_size: int | None,
    no_ml: bool,
) -> dict[str, Any]:
    from saetta.analyses.agc import assignment

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, these in (("samples", samples), ("warmup", warm)):
        paths[label] = folder / f"coffea-{label}.json"
        paths[label].write_text(json.dumps(peer_samples(these), indent=1))
    command = [
        str(python),
        str(PEERS_DIR / "coffea_agc.py"),
        "--samples",
        str(paths["samples"]),
        "--warmup",
        str(paths["warmup"]),
        "--model",
        str(assignment.MODEL),
        "--repeat",
        str(repeat),
        "--chunksize",
        str(chunk_size or 250_000),
    ]
    label = "coffea (IterativeExecutor, 1 process)"
    if no_ml:
        command.append("--no-ml")
        label += ", no ML"
    answer = adl.run_peer(label, command)
    if "error" in answer:
        return answer
    result: dict[str, Any] = answer.pop("result")
    result.update(answer)
    marker = "/_features/bits"
    result["feature_bits"] = {
        key[: -len(marker)]: result["hists"].pop(key)
        for key in list(result["hists"])
        if key.endswith(marker)
    }
    log(f"  {_rate_text(result)}")
    return result


# ----------------------------------------------------------------------------- checks, table


def _is_ml(key: str) -> bool:
    return key.split("/")[1] in ML_HISTOGRAMS


def compare(
    reference: dict[str, Any], other: dict[str, Any], name: str, entries: int, skip_ml: bool
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One system's histograms against the reference's, bin for bin: equal, or equal to
    ``REL_TOLERANCE`` (summation order), or a mismatch."""
    problems: list[dict[str, Any]] = []
    tally = {"exact": 0, "within_tolerance": 0, "mismatch": 0, "skipped_ml": 0}
    if other.get("events") != entries:
        problems.append(
            {"system": name, "what": "events", "expected": entries, "got": other.get("events")}
        )
    mine, theirs = reference["hists"], other.get("hists", {})
    for key in sorted(set(mine) | set(theirs)):
        if skip_ml and _is_ml(key):
            tally["skipped_ml"] += 1
            continue
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None or len(a) != len(b):
            problems.append({"system": name, "histogram": key, "what": "missing or wrong length"})
            tally["mismatch"] += 1
            continue
        if a == b:
            tally["exact"] += 1
            continue
        scale = max((abs(v) for v in a), default=0.0)
        bad = [
            i
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            if not (
                abs(x - y) <= REL_TOLERANCE * max(abs(x), abs(y))
                or abs(x - y) <= REL_TOLERANCE * 1e-3 * scale
            )
        ]
        if not bad:
            tally["within_tolerance"] += 1
            continue
        tally["mismatch"] += 1
        problems.append(
            {
                "system": name,
                "histogram": key,
                "what": "bins differ",
                "bins": bad,
                "reference": [a[i] for i in bad],
                "got": [b[i] for i in bad],
                "reference_total": math.fsum(a),
                "got_total": math.fsum(b),
            }
        )
    return problems, tally


def _rate(res: dict[str, Any] | None) -> float | None:
    if not res or not res.get("seconds") or not res.get("events"):
        return None
    return float(res["events"]) / float(res["seconds"])


def _rate_text(res: dict[str, Any]) -> str:
    rate = _rate(res)
    return f"{res['seconds']:.3f} s, {rate / 1e3:,.1f} k events/s" if rate else "n/a"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_rows(
    systems: dict[str, dict[str, Any]],
    cores: dict[str, int],
    coffea_per_core: float | None,
    bad: set[str],
) -> list[list[str]]:
    rows = [["system", "cores", "seconds", "k ev/s", "k ev/s/core", "saetta/coffea per core"]]
    for name, res in systems.items():
        rate = _rate(res)
        if rate is None:
            continue
        per_core = rate / cores[name]
        ratio = (
            f"{per_core / coffea_per_core:.2f}"
            if coffea_per_core and name.startswith("saetta")
            else "-"
        )
        rows.append(
            [
                name + ("!" if name in bad else ""),
                str(cores[name]),
                f"{res['seconds']:.3f}",
                f"{rate / 1e3:,.1f}",
                f"{per_core / 1e3:,.1f}",
                ratio,
            ]
        )
    return rows


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="The AGC ttbar analysis: saetta side by side with coffea, same histograms"
    )
    parser.add_argument(
        "--samples", default="data/agc/samples.yaml", help="samples file (saetta generate agc)"
    )
    parser.add_argument(
        "--generate", type=int, metavar="N", help="generate N events per sample first if missing"
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="use synthetic samples of N events each (tests/agc_synthetic.py) instead",
    )
    parser.add_argument("--peers", default=",".join(ALL_PEERS), help=", ".join(ALL_PEERS))
    parser.add_argument("--processes", type=int, default=2, help="saetta's multi-process width")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per system; best kept")
    parser.add_argument("--json", help="output JSON (default benchmarks/results/agc-<date>.json)")
    parser.add_argument(
        "--no-ml",
        action="store_true",
        help="also run saetta (1 process) and coffea without the ML part: the inference's share",
    )
    parser.add_argument(
        "--chunk-size", type=int, help="events per unit/chunk (default: saetta's; coffea 250,000)"
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the cold CLI run")
    parser.add_argument(
        "--data-dir", default=str(HERE / ".data"), help="where synthetic/warm-up files go"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="never create benchmarks/.venv-coffea"
    )
    args = parser.parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(ALL_PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {', '.join(ALL_PEERS)}")
    args.peer_list = peers
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    peers: list[str] = args.peer_list
    samples_path, origin = prepare_samples(args)
    samples = load_samples(samples_path)
    counts = entries_of(samples)
    entries = sum(counts.values())
    data_dir = pathlib.Path(args.data_dir)
    key = hashlib.sha256(str(samples_path).encode()).hexdigest()[:10]
    warm = warmup_samples(samples, data_dir / f"agc-warmup-{key}")
    cache_seconds = warm_page_cache(samples)
    load_at_start = list(os.getloadavg())
    log(
        f"samples {samples_path} ({origin}): {len(samples)} samples, {entries:,} events "
        f"({', '.join(f'{n} {c:,}' for n, c in counts.items())}); page cache warmed in "
        f"{cache_seconds:.1f} s; load average {load_at_start[0]:.1f} on {os.cpu_count()} cores"
    )

    systems: dict[str, dict[str, Any]] = {}
    failures: dict[str, Any] = {}
    install: dict[str, Any] = {}
    cores: dict[str, int] = {}
    if "saetta" in peers:
        found = run_saetta(samples, warm, args.repeat, args.chunk_size, args.processes, args.no_ml)
        systems.update(found)
        for name in found:
            cores[name] = args.processes if name == f"saetta-{args.processes}p" else 1
    cli = None if args.no_cli or "saetta" not in peers else cold_cli(samples_path, args.processes)
    if "coffea" in peers:
        python = adl.ensure_venv(
            HERE / ".venv-coffea", ["coffea", "onnxruntime"], not args.no_install, install
        )
        if python is None:
            failures["coffea"] = {"error": "no coffea venv", "install": install.get(".venv-coffea")}
        else:
            runs = [("coffea", False)] + ([("coffea-noml", True)] if args.no_ml else [])
            for name, no_ml in runs:
                answer = run_coffea(
                    python, samples, warm, data_dir, args.repeat, args.chunk_size, no_ml
                )
                if "error" in answer:
                    failures[name] = answer
                    log(f"  {name} FAILED: {answer['error']}\n{answer.get('stderr', '')[-1500:]}")
                else:
                    answer["ml"] = not no_ml
                    systems[name] = answer
                    cores[name] = 1

    # agreement: every system (and the time-split run) against saetta-1p
    reference = "saetta-1p" if "saetta-1p" in systems else next(iter(systems), "")
    problems: list[dict[str, Any]] = []
    tallies: dict[str, dict[str, int]] = {}
    checked = dict(systems)
    if "saetta-1p" in systems:
        checked["saetta-1p-split"] = systems["saetta-1p"]["split"]
    for name, res in checked.items():
        if name == reference or not reference:
            continue
        skip_ml = name.endswith("-noml") or reference.endswith("-noml")
        found_problems, tally = compare(systems[reference], res, name, entries, skip_ml)
        problems.extend(found_problems)
        tallies[name] = tally
        res["agrees_with_" + reference] = not found_problems
    reference_bits = systems.get(reference, {}).get("feature_bits")
    for name, res in systems.items():
        theirs = res.get("feature_bits")
        if name == reference or not theirs or not reference_bits:
            continue
        for sample, mine in reference_bits.items():
            got = theirs.get(sample)
            if got != mine:
                differ = (
                    list(range(16))
                    if got is None
                    else [i for i, (a, b) in enumerate(zip(mine, got, strict=True)) if a != b]
                )
                problems.append(
                    {
                        "system": name,
                        "sample": sample,
                        "what": "assignment features differ (sums of float32 bit patterns)",
                        "features": differ,
                    }
                )
        tallies.setdefault(name, {})["feature_samples_equal"] = sum(
            theirs.get(s) == b for s, b in reference_bits.items()
        )
    bad = {p["system"] for p in problems}

    coffea_per_core = _rate(systems.get("coffea"))
    rows = summary_rows(systems, cores, coffea_per_core, bad)
    ratios = {
        name: (_rate(res) or 0) / cores[name] / coffea_per_core
        for name, res in systems.items()
        if name.startswith("saetta") and coffea_per_core and _rate(res)
    }

    split = systems.get("saetta-1p", {}).get("split")
    split_rows: list[list[str]] = []
    inference: dict[str, Any] = {}
    if split:
        wall = split["wall_seconds"]
        split_rows.append(["saetta-1p step", "seconds", "share"])
        for part, seconds in [*split["parts_seconds"].items(), ("other", split["other_seconds"])]:
            split_rows.append([part, f"{seconds:.3f}", f"{100 * seconds / wall:.1f} %"])
        split_rows.append(["total (wall)", f"{wall:.3f}", "100.0 %"])
        ml = split["parts_seconds"]["inference"]
        inference["saetta_split"] = {
            "inference_seconds": ml,
            "share_of_run": ml / wall,
            "adds_to_run_without": ml / (wall - ml) if wall > ml else None,
        }
    for system in ("saetta-1p", "coffea"):
        with_ml, without = systems.get(system), systems.get(f"{system}-noml")
        if with_ml and without:
            t_ml, t_no = with_ml["seconds"], without["seconds"]
            inference[f"{system}_vs_noml"] = {
                "seconds_with_ml": t_ml,
                "seconds_without_ml": t_no,
                "share_of_run": (t_ml - t_no) / t_ml,
                "adds_to_run_without": (t_ml - t_no) / t_no,
            }

    notes = [
        (
            "k ev/s = thousand events per second over all samples (best of --repeat runs); per "
            "core = divided by the processes used."
        ),
        (
            "saetta/coffea per core: saetta's events/s per core over coffea's (1 process); "
            "target (reported, not asserted): >= 2 with every variation and the ML on."
        ),
        (
            "saetta: numba compilation and the ONNX session are excluded by an untimed run over "
            f"the warm-up samples (first {WARMUP_EVENTS:,} events of each sample); saetta-"
            f"{args.processes}p reuses one pool started and warmed once; coffea: an untimed "
            "pass over the same warm-up samples first."
        ),
        (
            "inference's share: assignment.best's time in the time split over the run's wall "
            "time (target: adds <= 15 % to the run without it); with --no-ml also from runs "
            "where it is stubbed out (saetta, this process only) or skipped (coffea --no-ml)."
        ),
        (
            "agreement: every histogram (sample x region x variation, sums of weights and of "
            "their squares, flow bins) against saetta-1p: exact, or within a relative "
            f"{REL_TOLERANCE:g} (summation order), else a mismatch."
        ),
    ]

    print()
    print(table(rows))
    if split_rows:
        print()
        print(table(split_rows))
    print()
    for label, value in inference.items():
        print(
            f"inference ({label}): {100 * value['share_of_run']:.1f} % of the run, adds "
            + (
                f"{100 * value['adds_to_run_without']:.1f} %"
                if value.get("adds_to_run_without") is not None
                else "-"
            )
        )
    if cli:
        state = "" if cli["returncode"] == 0 else f" (FAILED, exit {cli['returncode']})"
        print(f"cold CLI ({cli['command']}): {cli['seconds']:.2f} s wall{state}")
    print()
    for note in notes:
        print("  " + note)
    for name, failure in failures.items():
        print(f"\n!!! {name} did not run: {failure.get('error')}")
    for name, tally in tallies.items():
        print(
            f"{name} vs {reference}: {tally['exact']} histograms exact, "
            f"{tally['within_tolerance']} within {REL_TOLERANCE:g}, {tally['mismatch']} differ"
            + (f", {tally['skipped_ml']} ML ones not compared" if tally["skipped_ml"] else "")
            + (
                f"; assignment features identical in {tally['feature_samples_equal']} of "
                f"{len(reference_bits or {})} samples"
                if "feature_samples_equal" in tally
                else ""
            )
        )
    if problems:
        print(f"\n!!! MISMATCH: {len(problems)} disagreements with {reference}:")
        for p in problems[:40]:
            print("!!!   " + json.dumps(p)[:400])
    else:
        print(f"\nall histograms agree with {reference}: {', '.join(tallies) or 'no other system'}")

    report: dict[str, Any] = {
        "benchmark": "agc",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "samples": {
            "path": str(samples_path),
            "origin": origin,
            "entries": counts,
            "total_entries": entries,
            "bytes": sum(os.stat(p).st_size for s in samples.values() for p in s.files),
            "warmup_files": {n: list(s.files) for n, s in warm.items()},
            "page_cache_warm_seconds": cache_seconds,
        },
        "settings": {
            "peers": peers,
            "repeat": args.repeat,
            "processes": args.processes,
            "chunk_size": args.chunk_size,
            "no_ml_runs": args.no_ml,
        },
        "systems": systems,
        "cores": cores,
        "failures": failures,
        "install": install,
        "cold_cli": cli,
        "reference": reference,
        "agreement": not problems and bool(reference),
        "comparison": tallies,
        "mismatches": problems,
        "events_per_second": {n: _rate(s) for n, s in systems.items()},
        "ratio_saetta_over_coffea_per_core": ratios,
        "inference": inference,
        "notes": notes,
    }
    out = (
        pathlib.Path(args.json)
        if args.json
        else (HERE / "results" / f"agc-{datetime.date.today().isoformat()}.json")
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
