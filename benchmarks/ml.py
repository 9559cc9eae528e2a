"""saetta.ml.Loader against a raw read and a hand-written loop, and the training launcher.

One run, one generated NanoAOD-like file (``saetta.datagen.generate_nanoaod``), one
machine. The features are six padded jets x (Jet_pt, Jet_eta, Jet_btag) and MET_pt;
the target is PV_npvs. Measured, in this order:

- ``raw read``: ``uproot.open(path)["Events"].arrays([nJet, Jet_pt, Jet_eta, Jet_btag,
  MET_pt, PV_npvs])`` with uproot's default (serial) executors, array cache off: the
  read-and-decompress rate of the columns the loader reads (also with ``library="np"``,
  which builds one numpy array per event for the jagged branches);
- ``hand-written``: the loop a physicist writes: ``uproot.iterate`` in steps of
  ``--chunk-size``, ``ak.pad_none`` / ``ak.fill_none`` / ``ak.to_numpy`` / ``np.stack``
  per step, ``torch.from_numpy`` batches of ``--batch-size`` (no shuffling);
- ``saetta``: ``ml.Loader(..., shuffle=True, seed=1, workers=W)`` for W = 0 (background
  threads of this process) and W = ``--workers`` (loader processes), without and with a
  column cache, two epochs each; ``shuffle=False`` once more, for the profile;
- ``training``: the reference MLP (19 -> 64 -> 64 -> 1, Adam, MSE) trained on the
  loader's batches, the wall time split into waiting in ``next(iterator)`` and the step;
- ``DDP``: ``saetta.ml.train`` of the same MLP on 1 and on 2 ranks (``--skip-ddp``: not).

Every configuration must deliver exactly the file's events; the loader's (file, entry)
pairs must be every entry once, and its feature arrays (untimed passes) must equal a
hand-written padding of the raw read, entry for entry. The targets (loader >= 3x the
hand-written loop and >= 0.8x the raw read, data wait <= 5 % of the step time with
loader workers, 2-rank DDP >= 1.8x one rank) are printed as met or not met, with what
was measured, and a profile line for each one that is not. The exit status is 1 when a
correctness check fails (never for a target).

Usage::

    python benchmarks/ml.py                                   # 2M events
    python benchmarks/ml.py --events 20000 --chunk-size 2500 --json out.json
    python benchmarks/ml.py --skip-ddp --repeat 3
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

HERE = pathlib.Path(__file__).resolve().parent
JET_FEATURES = ("Jet_pt", "Jet_eta", "Jet_btag")
FEATURES = (*JET_FEATURES, "MET_pt")
TARGET = "PV_npvs"
#: what the loader reads for these features (the jets' counter too); the raw read reads these
BRANCHES = ("nJet", *JET_FEATURES, "MET_pt", TARGET)
PAD = 6
GENERATE_CHUNK = 50_000
INPUT_SCALE = 50.0  # the MLP sees features / 50 and fits target / 20
TARGET_SCALE = 20.0
STEP_REFERENCE_BATCHES = 40
PERTURBED = 0.05  # other processes' share of the cores above which the timings are flagged

TARGETS: dict[str, tuple[str, float]] = {
    # name: (comparison, threshold)
    "loader / hand-written": (">=", 3.0),
    "loader / raw read": (">=", 0.8),
    "data wait / step time, loader workers": ("<=", 0.05),
    "DDP 2 ranks / 1 rank": (">=", 1.8),
}

SCRIPT = '''\
"""The training script of benchmarks/ml.py: the reference MLP on saetta.ml.Loader batches."""

import time

import torch
import torch.distributed as dist

from saetta import ml


def loader(data):
    return ml.Loader(
        data, {features!r}, pad={{"Jet": {pad}}}, target={target!r}, batch_size={batch_size},
        shuffle=True, seed={seed}, chunk_size={chunk_size}, workers=0,
    )


def train(run):
    torch.manual_seed(run.seed)
    model = run.distribute(torch.nn.Sequential(
        torch.nn.Linear({inputs}, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    ))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run.track(model=model, optimizer=optimizer)
    for epoch in run.epochs():
        loss_value, events = 0.0, 0
        started = time.perf_counter()
        for batch in run.batches(epoch):
            x = torch.cat([batch["Jet"].flatten(1), batch["flat"]], 1) / {input_scale}
            loss = torch.nn.functional.mse_loss(
                model(x).squeeze(-1), batch["target"].float() / {target_scale}
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
            events += len(batch["entry"])
        slowest = torch.tensor([time.perf_counter() - started], dtype=torch.float64)
        total = torch.tensor([events], dtype=torch.int64)
        if run.world_size > 1:
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            dist.all_reduce(total)
        run.log(
            epoch=epoch, loss=run.mean(loss_value), loop_seconds=slowest.item(),
            loop_events=total.item(), torch_threads=torch.get_num_threads(),
        )
'''


def log(message: str) -> None:
    print(message, flush=True)


def cpu_now() -> tuple[float, float | None]:
    """(this process's CPU seconds, all threads; the machine's busy CPU seconds, from
    /proc/stat: user, nice, system, irq, softirq, where there is one)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return usage.ru_utime + usage.ru_stime, None
    busy = sum(values[i] for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")
    return usage.ru_utime + usage.ru_stime, busy


def usage_since(start: tuple[float, float | None], wall: float) -> dict[str, float | None]:
    """CPU used since ``start`` (:func:`cpu_now`) over ``wall`` seconds: by this process,
    and by the whole machine (this process, its loader or rank processes, and others)."""
    own, busy = cpu_now()
    return {
        "wall_seconds": wall,
        "cpu_self_seconds": own - start[0],
        "cpu_machine_seconds": busy - start[1]
        if busy is not None and start[1] is not None
        else None,
    }


def _rate(events: int, seconds: float) -> float | None:
    return events / seconds if seconds > 0 and events else None


def _k(rate: float | None) -> str:
    return f"{rate / 1e3:,.0f}" if rate else "-"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- input file


def file_entries(path: pathlib.Path) -> int | None:
    """The file's entries, or None when it is not a readable file with the branches."""
    import uproot

    try:
        with uproot.open(path) as f:
            tree = f["Events"]
            if any(name not in tree for name in BRANCHES):
                return None
            return int(tree.num_entries)
    except Exception:  # noqa: BLE001 - a partial or foreign file: it is written again
        return None


def prepare_file(events: int, seed: int, data_dir: pathlib.Path) -> tuple[pathlib.Path, bool]:
    """The benchmark file, generated once per (events, seed) and reused (the ADL
    benchmark's file of the same name is the same content)."""
    from saetta.datagen import generate_nanoaod

    path = data_dir / f"nanoaod-{events}ev-seed{seed}-zlib1.root"
    if path.exists() and file_entries(path) == events:
        return path, False
    log(f"generating {events:,} events into {path} ...")
    started = time.perf_counter()
    generate_nanoaod(path, events, seed=seed, chunk_events=GENERATE_CHUNK)
    log(f"  done in {time.perf_counter() - started:.1f} s")
    return path, True


def warm_page_cache(path: pathlib.Path) -> float:
    """Read the whole file once, so that every measurement starts from the page cache."""
    started = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- (a) raw read


def raw_read(path: pathlib.Path, repeat: int, library: str) -> tuple[dict[str, Any], Any]:
    """``tree.arrays(BRANCHES)``, open included, best of ``repeat``; and the arrays."""
    import uproot

    times: list[float] = []
    arrays: Any = None
    cpu = cpu_now()
    for _ in range(repeat):
        arrays = None
        started = time.perf_counter()
        with uproot.open(path) as f:
            arrays = f["Events"].arrays(list(BRANCHES), library=library, array_cache=None)
        times.append(time.perf_counter() - started)
    events = len(arrays["nJet"]) if library == "np" else len(arrays)
    usage = usage_since(cpu, sum(times))
    return {"seconds": min(times), "all_seconds": times, "events": events, "usage": usage}, arrays


# ----------------------------------------------------------------------------- (b) hand-written


def pad_by_hand(arrays: Any) -> dict[str, Any]:
    """The features as a physicist pads them with awkward (no saetta)."""
    import awkward as ak
    import numpy as np

    padded = [ak.pad_none(arrays[name], PAD, clip=True) for name in JET_FEATURES]
    jets = np.stack([ak.to_numpy(ak.fill_none(p, 0.0)) for p in padded], axis=-1)
    return {
        "Jet": jets.astype(np.float32),
        "Jet_mask": ~ak.to_numpy(ak.is_none(padded[0], axis=1)),
        "flat": ak.to_numpy(arrays["MET_pt"]).astype(np.float32)[:, None],
        "target": ak.to_numpy(arrays[TARGET]),
    }


def handwritten(path: pathlib.Path, step_size: int, batch_size: int, repeat: int) -> dict[str, Any]:
    """``uproot.iterate`` + awkward padding + ``torch.from_numpy`` batches; best of ``repeat``."""
    import torch
    import uproot

    times: list[float] = []
    events = batches = 0
    cpu = cpu_now()
    for _ in range(repeat):
        events = batches = 0
        started = time.perf_counter()
        for arrays in uproot.iterate(
            {str(path): "Events"}, [*FEATURES, TARGET], step_size=step_size, library="ak"
        ):
            features = pad_by_hand(arrays)
            for first in range(0, len(features["target"]), batch_size):
                last = first + batch_size
                batch = {k: torch.from_numpy(v[first:last]) for k, v in features.items()}
                events += len(batch["target"])
                batches += 1
        times.append(time.perf_counter() - started)
    return {
        "seconds": min(times),
        "all_seconds": times,
        "events": events,
        "batches": batches,
        "usage": usage_since(cpu, sum(times)),
    }


# ----------------------------------------------------------------------------- (c) saetta


def make_loader(
    path: pathlib.Path,
    args: argparse.Namespace,
    workers: int,
    *,
    shuffle: bool = True,
    column_cache: pathlib.Path | None = None,
) -> Any:
    from saetta import ml

    return ml.Loader(
        str(path),
        list(FEATURES),
        pad={"Jet": PAD},
        target=TARGET,
        batch_size=args.batch_size,
        shuffle=shuffle,
        seed=args.seed,
        chunk_size=args.chunk_size,
        workers=workers,
        column_cache=column_cache,
    )


def time_epoch(loader: Any, epoch: int, entries: int) -> dict[str, Any]:
    """One epoch of torch batches, counting ``len(batch["entry"])``; the (file, entry)
    pairs are checked after the clock stops."""
    import numpy as np

    kept: list[tuple[Any, Any]] = []
    events = 0
    first: float | None = None
    cpu = cpu_now()
    started = time.perf_counter()
    batches = loader.epoch(epoch, "train")
    for batch in batches:
        if first is None:
            first = time.perf_counter() - started
        events += len(batch["entry"])
        kept.append((batch["file"], batch["entry"]))
    seconds = time.perf_counter() - started
    usage = usage_since(cpu, seconds)
    order = np.concatenate([e.numpy() for _, e in kept]) if kept else np.zeros(0, np.int64)
    files = np.concatenate([f.numpy() for f, _ in kept]) if kept else np.zeros(0, np.int64)
    every_entry_once = bool(
        len(order) == entries and np.array_equal(np.sort(order), np.arange(entries))
    )
    return {
        "seconds": seconds,
        "events": events,
        "events_per_s": _rate(events, seconds),
        "batches": len(kept),
        "expected_batches": len(batches),
        "first_batch_seconds": first,
        "every_entry_once": every_entry_once,
        "one_file": bool((files == 0).all()),
        "failures": len(loader.failures),
        "order_sha256": hashlib.sha256(order.tobytes()).hexdigest()[:16],
        "usage": usage,
        "ok": every_entry_once
        and bool((files == 0).all())
        and events == entries
        and len(kept) == len(batches)
        and not loader.failures,
    }


def run_loaders(
    path: pathlib.Path, args: argparse.Namespace, entries: int, scratch: pathlib.Path
) -> dict[str, dict[str, Any]]:
    """Every loader configuration, two epochs each, each on a new Loader."""
    configurations: list[tuple[str, int, bool, bool]] = [
        # name, workers, shuffle, column cache
        ("saetta W=0", 0, True, False),
        (f"saetta W={args.workers}", args.workers, True, False),
        ("saetta W=0 + column cache", 0, True, True),
        (f"saetta W={args.workers} + column cache", args.workers, True, True),
        ("saetta W=0 shuffle=False", 0, False, False),
    ]
    out: dict[str, dict[str, Any]] = {}
    for name, workers, shuffle, cached in configurations:
        cache = scratch / f"cache-w{workers}" if cached else None
        started = time.perf_counter()
        loader = make_loader(path, args, workers, shuffle=shuffle, column_cache=cache)
        opened = time.perf_counter() - started
        epochs = [time_epoch(loader, epoch, entries) for epoch in (0, 1)]
        out[name] = {
            "workers": workers,
            "shuffle": shuffle,
            "column_cache": cached,
            "loader_seconds": opened,
            "units": len(loader.units),
            "epochs": epochs,
        }
        log(
            f"  {name}: epoch 0 {epochs[0]['seconds']:.2f} s ({_k(epochs[0]['events_per_s'])} "
            f"k ev/s), epoch 1 {epochs[1]['seconds']:.2f} s ({_k(epochs[1]['events_per_s'])} "
            f"k ev/s){'' if all(e['ok'] for e in epochs) else '  !!! events wrong'}"
        )
    return out


def check_content(
    path: pathlib.Path,
    args: argparse.Namespace,
    reference: dict[str, Any],
    scratch: pathlib.Path,
) -> dict[str, dict[str, Any]]:
    """Untimed: the loader's arrays, put back in entry order, against the hand padding."""
    import numpy as np

    entries = len(reference["target"])
    checks: list[tuple[str, int, pathlib.Path | None]] = [
        ("W=0, from the file", 0, None),
        (f"W={args.workers}, from the file", args.workers, None),
        ("W=0, from the column cache", 0, scratch / "cache-w0"),
    ]
    out: dict[str, dict[str, Any]] = {}
    for name, workers, cache in checks:
        loader = make_loader(path, args, workers, column_cache=cache)
        got = {k: np.zeros_like(v) for k, v in reference.items()}
        seen = np.zeros(entries, dtype=np.int64)
        for batch in loader.epoch(2, "train"):
            entry = batch["entry"].numpy()
            np.add.at(seen, entry, 1)
            for key, array in got.items():
                array[entry] = batch[key].numpy()
        differ = [
            key
            for key, array in got.items()
            if array.dtype != reference[key].dtype or not np.array_equal(array, reference[key])
        ]
        out[name] = {
            "every_entry_once": bool((seen == 1).all()),
            "arrays_differ": differ,
            "ok": bool((seen == 1).all()) and not differ,
        }
    return out


def time_split(
    path: pathlib.Path, args: argparse.Namespace, arrays: Any, repeat: int
) -> dict[str, float]:
    """Pieces of the loader's per-unit work, timed apart with the public API, serially:
    the padding (``loader.features_of`` on each unit's already-read events) and the
    split hash (``ml.split_codes`` of each unit)."""
    from saetta import ml

    loader = make_loader(path, args, 0)
    units = [(u.path, u.start, u.stop) for u in loader.units]
    pad_times: list[float] = []
    split_times: list[float] = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        for _, start, stop in units:
            loader.features_of(arrays[start:stop])
        pad_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for unit_path, start, stop in units:
            ml.split_codes(unit_path, start, stop, loader.split)
        split_times.append(time.perf_counter() - started)
    return {"padding_seconds": min(pad_times), "split_hash_seconds": min(split_times)}


# ----------------------------------------------------------------------------- (d) training


def reference_mlp() -> Any:
    import torch

    inputs = PAD * len(JET_FEATURES) + 1
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )


def _step(model: Any, optimizer: Any, batch: dict[str, Any]) -> None:
    import torch

    x = torch.cat([batch["Jet"].flatten(1), batch["flat"]], 1) / INPUT_SCALE
    loss = torch.nn.functional.mse_loss(
        model(x).squeeze(-1), batch["target"].float() / TARGET_SCALE
    )
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()


def step_reference(batch_size: int) -> dict[str, Any]:
    """The training step alone, on batches already in memory: its ceiling."""
    import torch

    torch.manual_seed(0)
    model = reference_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = {
        "Jet": torch.rand(batch_size, PAD, len(JET_FEATURES)) * 100,
        "flat": torch.rand(batch_size, 1) * 100,
        "target": torch.randint(0, 60, (batch_size,), dtype=torch.int32),
    }
    for _ in range(5):
        _step(model, optimizer, batch)
    started = time.perf_counter()
    for _ in range(STEP_REFERENCE_BATCHES):
        _step(model, optimizer, batch)
    seconds = time.perf_counter() - started
    return {
        "step_seconds": seconds / STEP_REFERENCE_BATCHES,
        "events_per_s": batch_size * STEP_REFERENCE_BATCHES / seconds,
    }


def train_epochs(loader: Any, entries: int) -> list[dict[str, Any]]:
    """Two epochs of the reference MLP; the wall time split into ``next()`` and the step."""
    import torch

    torch.manual_seed(0)
    model = reference_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    out: list[dict[str, Any]] = []
    for epoch in (0, 1):
        waited = stepped = 0.0
        first_wait: float | None = None
        events = 0
        iterator = iter(loader.epoch(epoch, "train"))
        cpu = cpu_now()
        began = time.perf_counter()
        while True:
            asked = time.perf_counter()
            batch = next(iterator, None)
            got = time.perf_counter()
            waited += got - asked
            if batch is None:
                break
            if first_wait is None:
                first_wait = got - asked
            _step(model, optimizer, batch)
            stepped += time.perf_counter() - got
            events += len(batch["entry"])
        wall = time.perf_counter() - began
        out.append(
            {
                "epoch": epoch,
                "seconds": wall,
                "events": events,
                "events_per_s": _rate(events, wall),
                "wait_seconds": waited,
                "step_seconds": stepped,
                "first_batch_wait_seconds": first_wait,
                "wait_over_step": waited / stepped if stepped else None,
                "wait_share": waited / wall if wall else None,
                "ok": events == entries,
                "usage": usage_since(cpu, wall),
            }
        )
    return out


def run_training(
    path: pathlib.Path, args: argparse.Namespace, entries: int
) -> dict[str, dict[str, Any]]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads)
    try:
        out: dict[str, dict[str, Any]] = {"in memory (no loader)": step_reference(args.batch_size)}
        for workers in (0, args.workers):
            name = f"saetta W={workers}"
            epochs = train_epochs(make_loader(path, args, workers), entries)
            out[name] = {"workers": workers, "epochs": epochs}
            log(
                f"  {name}: "
                + ", ".join(
                    f"epoch {e['epoch']} {e['seconds']:.2f} s, wait {100 * e['wait_share']:.0f} %"
                    for e in epochs
                )
            )
    finally:
        torch.set_num_threads(before)
    return out


# ----------------------------------------------------------------------------- (e) DDP


def run_ddp(
    path: pathlib.Path, args: argparse.Namespace, entries: int, scratch: pathlib.Path
) -> dict[str, dict[str, Any]]:
    """``saetta.ml.train`` of the reference MLP on 1 and on 2 ranks, one epoch each."""
    import torch

    from saetta import ml

    script = scratch / "train_mlp.py"
    script.write_text(
        SCRIPT.format(
            features=list(FEATURES),
            pad=PAD,
            target=TARGET,
            batch_size=args.batch_size,
            seed=args.seed,
            chunk_size=args.chunk_size,
            inputs=PAD * len(JET_FEATURES) + 1,
            input_scale=INPUT_SCALE,
            target_scale=TARGET_SCALE,
        ),
        encoding="utf-8",
    )
    before = torch.get_num_threads()
    out: dict[str, dict[str, Any]] = {}
    for ranks in (1, 2):
        cpu = cpu_now()
        try:
            result = ml.train(
                script,
                data=str(path),
                epochs=1,
                world_size=ranks,
                directory=scratch / f"ddp-{ranks}",
                checkpoint_every=0,
                progress=False,
            )
        finally:
            torch.set_num_threads(before)  # 1 rank runs in this process, and sets them
        logged = dict(result.losses[-1]) if result.losses else {}
        loop_seconds = float(logged.get("loop_seconds", 0.0))
        out[f"{ranks} rank{'s' if ranks > 1 else ''}"] = {
            "ranks": ranks,
            "seconds": result.seconds,
            "events": result.events,
            "events_per_s": result.events_per_s,
            "data_wait": result.data_wait,
            "loop_seconds": loop_seconds,
            "loop_events": logged.get("loop_events"),
            "loop_events_per_s": _rate(result.events, loop_seconds),
            "torch_threads_per_rank": logged.get("torch_threads"),
            "digests": list(result.digests),
            "loss": logged.get("loss"),
            "usage": usage_since(cpu, result.seconds),
            "ok": result.events == entries
            and logged.get("loop_events") == entries
            and len(result.digests) == ranks
            and len(set(result.digests)) == 1,
        }
        log(
            f"  {ranks} rank(s): {result.seconds:.2f} s end to end, loop {loop_seconds:.2f} s, "
            f"{result.events:,} events"
        )
    return out


# ----------------------------------------------------------------------------- targets


def _verdict(name: str, value: float | None) -> dict[str, Any]:
    comparison, threshold = TARGETS[name]
    met = (
        None
        if value is None
        else (value >= threshold if comparison == ">=" else value <= threshold)
    )
    return {"value": value, "comparison": comparison, "threshold": threshold, "met": met}


def targets_and_profile(
    raw: dict[str, Any],
    hand: dict[str, Any],
    loaders: dict[str, dict[str, Any]],
    split: dict[str, float],
    training: dict[str, dict[str, Any]],
    ddp: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    entries: int,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The targets, each with its basis, and a profile line for each one not met."""
    w0 = loaders["saetta W=0"]["epochs"][1]
    wn = loaders[f"saetta W={args.workers}"]["epochs"][1]
    in_order = loaders["saetta W=0 shuffle=False"]["epochs"][1]
    raw_rate = _rate(raw["events"], raw["seconds"])
    hand_rate = _rate(hand["events"], hand["seconds"])
    loader_rate = w0["events_per_s"]
    results: dict[str, dict[str, Any]] = {}
    profile: list[str] = []
    per_m = 1e6 / entries  # seconds per million events

    results["loader / hand-written"] = _verdict(
        "loader / hand-written", loader_rate / hand_rate if loader_rate and hand_rate else None
    )
    results["loader / hand-written"]["basis"] = (
        "saetta W=0, epoch 1 (no cache) over the hand-written loop (which does not shuffle)"
    )
    results["loader / raw read"] = _verdict(
        "loader / raw read", loader_rate / raw_rate if loader_rate and raw_rate else None
    )
    results["loader / raw read"]["basis"] = (
        "saetta W=0, epoch 1 (no cache) over tree.arrays of the same branches, 1 thread"
    )
    others = {
        name: {
            f"epoch {i}": {
                "/ hand-written": e["events_per_s"] / hand_rate if hand_rate else None,
                "/ raw read": e["events_per_s"] / raw_rate if raw_rate else None,
            }
            for i, e in enumerate(config["epochs"])
            if e["events_per_s"]
        }
        for name, config in loaders.items()
    }
    for name in ("loader / hand-written", "loader / raw read"):
        key = "/ hand-written" if "hand" in name else "/ raw read"
        threshold = TARGETS[name][1]
        results[name]["also_met_by"] = [
            f"{config} {epoch}"
            for config, by_epoch in others.items()
            for epoch, ratio in by_epoch.items()
            if (ratio[key] or 0) >= threshold
        ]
    shuffle_s = max(0.0, w0["seconds"] - in_order["seconds"])
    pieces = {
        "read (tree.arrays, 1 thread)": raw["seconds"],
        "padding (features_of per unit)": split["padding_seconds"],
        "split hash (split_codes per unit)": split["split_hash_seconds"],
        "shuffle (shuffle=True minus False)": shuffle_s,
    }
    serial = sum(pieces.values())
    split_text = ", ".join(
        f"{name} {seconds * per_m:.2f} s ({100 * seconds / serial:.0f} %)"
        for name, seconds in pieces.items()
    )
    loader_text = (
        f"per 1M events: loader W=0 epoch {w0['seconds'] * per_m:.2f} s; its pieces timed "
        f"apart, serially: {split_text}; sum {serial * per_m:.2f} s (the loader reads and "
        f"pads on 2 background threads, so its wall time can be under the sum); "
        f"hand-written loop {hand['seconds'] * per_m:.2f} s (the same read and awkward padding)"
    )
    results["loader / hand-written"]["time_split_per_million_events"] = {
        name: seconds * per_m for name, seconds in pieces.items()
    }
    unshuffled = in_order["events_per_s"]
    if unshuffled and hand_rate and raw_rate:
        loader_text += (
            f"; with shuffle=False the loader gives {unshuffled / hand_rate:.2f}x the hand loop "
            f"and {unshuffled / raw_rate:.2f}x the raw read"
        )
    if not results["loader / hand-written"]["met"]:
        profile.append(f"loader / hand-written: {loader_text}")
    if not results["loader / raw read"]["met"]:
        profile.append(
            f"loader / raw read: padding costs {split['padding_seconds'] / raw['seconds']:.2f}x "
            f"the read itself; loader {w0['seconds'] * per_m:.2f} s vs raw read "
            f"{raw['seconds'] * per_m:.2f} s per 1M events"
            + ("" if profile else f"; {loader_text}")
        )

    trained = training.get(f"saetta W={args.workers}", {}).get("epochs", [])
    steady = trained[1] if len(trained) > 1 else None
    name = "data wait / step time, loader workers"
    results[name] = _verdict(name, steady["wait_over_step"] if steady else None)
    results[name]["basis"] = (
        f"training with W={args.workers}, epoch 1: time in next(iterator) over time in the step"
    )
    if steady and not results[name]["met"]:
        memory = training["in memory (no loader)"]
        per_batch = args.batch_size / memory["events_per_s"]
        profile.append(
            f"data wait: the step takes {1e3 * per_batch:.1f} ms per {args.batch_size}-event batch "
            f"in memory ({_k(memory['events_per_s'])} k ev/s, {args.torch_threads} torch "
            f"thread(s)); the loader alone delivers {_k(wn['events_per_s'])} k ev/s with "
            f"W={args.workers}, so the step waits "
            f"{100 * (steady['wait_share'] or 0):.0f} % of the epoch "
            f"({steady['wait_seconds']:.2f} s in next(), {steady['step_seconds']:.2f} s in steps); "
            f"on {os.cpu_count()} cores the "
            f"{args.workers} loader processes and the training thread share them"
        )

    name = "DDP 2 ranks / 1 rank"
    one, two = ddp.get("1 rank"), ddp.get("2 ranks")
    ratio = None
    if one and two and one["loop_events_per_s"] and two["loop_events_per_s"]:
        ratio = two["loop_events_per_s"] / one["loop_events_per_s"]
    results[name] = _verdict(name, ratio)
    results[name]["basis"] = (
        "events over the slowest rank's time in its epoch loop (from train(run)); the "
        "launcher's end-to-end ratio is beside it"
    )
    if one and two:
        results[name]["end_to_end_ratio"] = (
            two["events_per_s"] / one["events_per_s"] if one["events_per_s"] else None
        )
    if one and two and ratio is not None and not results[name]["met"]:
        startup = {r["ranks"]: r["seconds"] - r["loop_seconds"] for r in (one, two)}
        profile.append(
            f"DDP: in the epoch loop, 1 rank {_k(one['loop_events_per_s'])} k ev/s "
            f"({one['torch_threads_per_rank']} torch threads (the launcher's cores / ranks) "
            f"beside its loader's 2 reading threads on {os.cpu_count()} cores; data wait "
            f"{100 * one['data_wait']:.0f} %), 2 ranks {_k(two['loop_events_per_s'])} k ev/s "
            f"({two['torch_threads_per_rank']} torch thread(s) each; data wait "
            f"{100 * two['data_wait']:.0f} %): {ratio:.2f}x. Outside the loop (TrainResult."
            f"seconds minus the slowest loop): 1 rank {startup[1]:.1f} s (in this process), "
            f"2 ranks {startup[2]:.1f} s (spawned processes: imports, gloo, loader, checkpoint, "
            f"exit), so end to end {results[name].get('end_to_end_ratio') or 0:.2f}x"
        )
    return results, profile


# ----------------------------------------------------------------------------- main


def foreign_load(
    raw: dict[str, Any],
    raw_np: dict[str, Any],
    hand: dict[str, Any],
    loaders: dict[str, dict[str, Any]],
    training: dict[str, dict[str, Any]],
    ddp: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Other processes' CPU during the measurements that run in this process alone (the
    raw reads, the hand-written loop, W=0 epochs, W=0 training, DDP's 1 rank): the
    machine's busy CPU seconds minus this process's. Those with loader or rank processes
    cannot be told apart from others' and are not counted."""
    measured = [raw["usage"], raw_np["usage"], hand["usage"]]
    measured += [e["usage"] for c in loaders.values() if c["workers"] == 0 for e in c["epochs"]]
    measured += [
        e["usage"] for c in training.values() if c.get("workers") == 0 for e in c["epochs"]
    ]
    measured += [r["usage"] for r in ddp.values() if r["ranks"] == 1]
    if any(u["cpu_machine_seconds"] is None for u in measured):
        return {"core_seconds": None, "wall_seconds": None, "share_of_machine": None}
    wall = sum(u["wall_seconds"] for u in measured)
    foreign = sum(max(0.0, u["cpu_machine_seconds"] - u["cpu_self_seconds"]) for u in measured)
    cores = os.cpu_count() or 1
    return {
        "core_seconds": foreign,
        "wall_seconds": wall,
        "share_of_machine": foreign / (wall * cores) if wall else None,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="saetta.ml.Loader vs a raw read and a hand-written loop; training; DDP"
    )
    parser.add_argument("--events", type=int, default=2_000_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator and loader seed")
    parser.add_argument(
        "--data-dir", default=str(HERE / ".data"), help="where the generated file is cached"
    )
    parser.add_argument("--json", help="output JSON (default benchmarks/results/ml-<date>.json)")
    parser.add_argument("--skip-ddp", action="store_true", help="do not run the DDP comparison")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs of the raw read and hand loop; best kept"
    )
    parser.add_argument("--workers", type=int, default=2, help="loader processes (W) to compare")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument(
        "--chunk-size", type=int, default=100_000, help="events per unit / uproot.iterate step"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch.set_num_threads for the MLP training"
    )
    args = parser.parse_args(argv)
    for name in ("events", "repeat", "workers", "batch_size", "chunk_size", "torch_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    data_dir = pathlib.Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path, generated = prepare_file(args.events, args.seed, data_dir)
    entries = file_entries(path) or 0

    import awkward
    import torch
    import uproot

    import saetta

    cache_seconds = warm_page_cache(path)
    load_at_start = list(os.getloadavg())
    log(
        f"file {path} ({entries:,} events, {path.stat().st_size / 1e6:,.0f} MB), page cache "
        f"warmed in {cache_seconds:.1f} s; load average {load_at_start[0]:.1f} on "
        f"{os.cpu_count()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    started_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="saetta-ml-bench-") as folder:
        scratch = pathlib.Path(folder)
        log("raw read (uproot tree.arrays, 1 thread) ...")
        raw, arrays = raw_read(path, args.repeat, "ak")
        raw_np, _ = raw_read(path, 1, "np")
        log(f"  {raw['seconds']:.2f} s; library='np' {raw_np['seconds']:.2f} s")
        log("hand-written loop (uproot.iterate + awkward + torch.from_numpy) ...")
        hand = handwritten(path, args.chunk_size, args.batch_size, args.repeat)
        log(f"  {hand['seconds']:.2f} s")
        log("saetta.ml.Loader ...")
        loaders = run_loaders(path, args, entries, scratch)
        log("time split of the loader's pieces, and the content checks (untimed passes) ...")
        split = time_split(path, args, arrays, args.repeat)
        content = check_content(path, args, pad_by_hand(arrays), scratch)
        del arrays
        log(f"training the reference MLP ({args.torch_threads} torch thread(s)) ...")
        training = run_training(path, args, entries)
        ddp: dict[str, dict[str, Any]] = {}
        if not args.skip_ddp:
            log("DDP (saetta.ml.train), 1 and 2 ranks ...")
            ddp = run_ddp(path, args, entries, scratch)
    total_seconds = time.perf_counter() - started_all

    results, profile = targets_and_profile(raw, hand, loaders, split, training, ddp, args, entries)
    w0_orders = [e["order_sha256"] for e in loaders["saetta W=0"]["epochs"]]
    cached_orders = [e["order_sha256"] for e in loaders["saetta W=0 + column cache"]["epochs"]]
    checks = {
        "raw read delivers every event": raw["events"] == entries == raw_np["events"],
        "hand-written loop delivers every event": hand["events"] == entries,
        "every loader epoch: every (file, entry) once, no failure": all(
            e["ok"] for config in loaders.values() for e in config["epochs"]
        ),
        "loader arrays equal the hand padding, entry for entry": all(
            c["ok"] for c in content.values()
        ),
        "same seed and epoch, same order (cache or not)": w0_orders == cached_orders,
        "another epoch, another order": w0_orders[0] != w0_orders[1],
        "training sees every event": all(
            e["ok"] for config in training.values() for e in config.get("epochs", [])
        ),
        "DDP: every event once, same weights on every rank": all(r["ok"] for r in ddp.values()),
    }
    if args.skip_ddp:
        del checks["DDP: every event once, same weights on every rank"]
    ok = all(checks.values())
    others = foreign_load(raw, raw_np, hand, loaders, training, ddp)

    rows = [["configuration", "epoch 0 k ev/s", "epoch 1 k ev/s", "/ hand (ep 1)", "/ raw (ep 1)"]]
    raw_rate = _rate(raw["events"], raw["seconds"])
    hand_rate = _rate(hand["events"], hand["seconds"])
    rows.append(["raw read, tree.arrays (1 thread)", _k(raw_rate), "", "", "1.00"])
    rows.append(
        ["raw read, library='np'", _k(_rate(raw_np["events"], raw_np["seconds"])), "", "", ""]
    )
    rows.append(["hand-written loop", _k(hand_rate), "", "1.00", ""])
    for name, config in loaders.items():
        e0, e1 = config["epochs"]
        bad = "" if e0["ok"] and e1["ok"] else "!"
        rows.append(
            [
                name + bad,
                _k(e0["events_per_s"]),
                _k(e1["events_per_s"]),
                f"{e1['events_per_s'] / hand_rate:.2f}"
                if hand_rate and e1["events_per_s"]
                else "-",
                f"{e1['events_per_s'] / raw_rate:.2f}" if raw_rate and e1["events_per_s"] else "-",
            ]
        )
    train_rows = [["training (MLP)", "epoch", "k ev/s", "in next() s", "in step s", "wait/step"]]
    memory = training["in memory (no loader)"]
    train_rows.append(["in memory (no loader)", "-", _k(memory["events_per_s"]), "-", "-", "-"])
    for name, config in training.items():
        for e in config.get("epochs", []):
            train_rows.append(
                [
                    name,
                    str(e["epoch"]),
                    _k(e["events_per_s"]),
                    f"{e['wait_seconds']:.2f}",
                    f"{e['step_seconds']:.2f}",
                    f"{e['wait_over_step']:.2f}" if e["wait_over_step"] is not None else "-",
                ]
            )
    ddp_rows = [
        ["DDP (saetta.ml.train)", "end-to-end s", "k ev/s", "loop s", "loop k ev/s", "wait"]
    ]
    for name, r in ddp.items():
        ddp_rows.append(
            [
                f"{name} ({r['torch_threads_per_rank']} torch thr/rank)",
                f"{r['seconds']:.2f}",
                _k(r["events_per_s"]),
                f"{r['loop_seconds']:.2f}",
                _k(r["loop_events_per_s"]),
                f"{100 * r['data_wait']:.0f} %",
            ]
        )

    notes = [
        (
            f"machine: {os.cpu_count()} cores ({platform.machine()}, {platform.platform()}); "
            "every configuration competes for these cores."
        ),
        (
            "k ev/s = thousand events per second; events: the file's entries; the page cache is "
            "warm (the file is read once first); --repeat best-of for the raw read and the "
            "hand-written loop only."
        ),
        (
            "raw read: uproot.open + tree.arrays of nJet, Jet_pt, Jet_eta, Jet_btag, MET_pt, "
            "PV_npvs (uproot's serial executors, array cache off). library='np' builds one "
            "numpy array per event for the jagged branches: slower, not the target's basis."
        ),
        (
            "hand-written: uproot.iterate (step --chunk-size) + ak.pad_none/fill_none/to_numpy "
            "+ np.stack + torch.from_numpy per batch; no shuffle, no entry numbers."
        ),
        (
            "saetta: each configuration is a new Loader (shuffle=True, seed, chunk_size, "
            "batch_size as given), its epochs 0 and 1 timed from loader.epoch() to the last "
            "batch (torch tensors), counting len(batch['entry']); epoch 0 is the first of the "
            "Loader (W>0: the loader processes start each epoch; the fork server they come "
            "from starts, importing saetta and torch, at the first W>0 epoch of this process: "
            f"in 'saetta W={args.workers}' epoch 0). The W=0 loader reads on 2 background "
            "threads (prefetch=2). column cache: epoch 0 fills it, epoch 1 reads from it."
        ),
        (
            f"training: the MLP 19-64-64-1 (Adam, MSE of target/{TARGET_SCALE:g}, features/"
            f"{INPUT_SCALE:g}), torch.set_num_threads({args.torch_threads}) in this process; "
            "'in next() s': wall time in next(iterator), 'in step s': forward, backward, "
            "optimizer step. 'in memory': the step alone on one batch held in memory."
        ),
        (
            "DDP: saetta.ml.train(script, world_size=N, epochs=1, checkpoint_every=0); the "
            "launcher gives each rank cores/N torch threads; 1 rank runs in this process, 2 "
            "ranks are spawned. end-to-end: TrainResult.seconds (spawn, imports, gloo, the "
            "epoch, the checkpoint); loop: the slowest rank's epoch loop, measured in train(run)"
            "; wait: TrainResult.data_wait."
        ),
        (
            "each loader epoch and training epoch is measured once (compare its epochs 0 and 1 "
            "for the spread); 'other processes': the machine's busy CPU (/proc/stat) minus this "
            "process's (getrusage) during the measurements that run in this process alone, "
            f"flagged above {100 * PERTURBED:g} % of the cores."
        ),
    ]

    print()
    print(table(rows))
    print()
    print(table(train_rows))
    if ddp_rows[1:]:
        print()
        print(table(ddp_rows))
    print()
    for name, verdict in results.items():
        value = verdict["value"]
        state = "n/a" if verdict["met"] is None else ("met" if verdict["met"] else "NOT MET")
        extra = ""
        if verdict.get("also_met_by"):
            extra = f"; met by: {', '.join(verdict['also_met_by'])}"
        if verdict.get("end_to_end_ratio") is not None:
            extra = f"; end to end {verdict['end_to_end_ratio']:.2f}"
        shown = "-" if value is None else f"{value:.2f}"
        print(
            f"target {name} {verdict['comparison']} {verdict['threshold']:g}: {shown} "
            f"[{state}] ({verdict['basis']}{extra})"
        )
    if profile:
        print()
        for line in profile:
            print(f"profile: {line}")
    print()
    for note in notes:
        print("  " + note)
    share = others["share_of_machine"]
    if share is not None:
        print(
            f"\nother processes on this machine used {others['core_seconds']:.1f} core-seconds "
            f"during the {others['wall_seconds']:.0f} s of measurements that run in this process "
            f"alone ({100 * share:.1f} % of its {os.cpu_count()} cores)"
            + (
                ": !!! the timings are perturbed; rerun on a quiet machine"
                if share > PERTURBED
                else ""
            )
        )
    print()
    for check, passed in checks.items():
        print(f"{'ok ' if passed else '!!! FAILED'} {check}")
    if ok:
        print("\nall correctness checks passed")
    else:
        print("\n!!! a correctness check FAILED")

    report: dict[str, Any] = {
        "benchmark": "ml",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "versions": {
            "saetta": saetta.__version__,
            "torch": torch.__version__,
            "uproot": uproot.__version__,
            "awkward": awkward.__version__,
        },
        "file": {
            "path": str(path),
            "entries": entries,
            "bytes": path.stat().st_size,
            "generated_now": generated,
            "seed": args.seed,
            "compression": "zlib:1",
            "page_cache_warm_seconds": cache_seconds,
        },
        "settings": {
            "features": list(FEATURES),
            "pad": {"Jet": PAD},
            "target": TARGET,
            "branches_read": list(BRANCHES),
            "batch_size": args.batch_size,
            "chunk_size": args.chunk_size,
            "workers": args.workers,
            "repeat": args.repeat,
            "torch_threads_training": args.torch_threads,
            "skip_ddp": args.skip_ddp,
        },
        "raw_read": {**raw, "events_per_s": raw_rate},
        "raw_read_np": {**raw_np, "events_per_s": _rate(raw_np["events"], raw_np["seconds"])},
        "handwritten": {**hand, "events_per_s": hand_rate},
        "loaders": loaders,
        "loader_time_split": split,
        "content_checks": content,
        "training": training,
        "ddp": ddp,
        "targets": results,
        "profile": profile,
        "checks": checks,
        "ok": ok,
        "other_processes": others,
        "measuring_seconds": total_seconds,
        "notes": notes,
    }
    out = (
        pathlib.Path(args.json)
        if args.json
        else (HERE / "results" / f"ml-{datetime.date.today().isoformat()}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten {out}")
    report["json_path"] = str(out)
    return report


def _cli() -> int:
    report = main()
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(_cli())
