"""Fast simulation: the detailed shower simulation against the learned generator.

One run, one machine, in this order:

1. ``detailed``: :func:`saetta.fastsim.shower_mc.simulate` (one process, numba, one
   core) at 1, 10, 100 and 1000 GeV: showers/s per core (compilation excluded: one
   shower of each energy first), and the sampling fraction;
2. ``samples``: the training sample and two independent reference samples,
   log-uniform over ``--energies``, made by :func:`saetta.fastsim.production.produce`
   on ``--executor`` (the same jobs as ``saetta simulate showers``; a folder that
   holds them already is reused, as the command would);
3. ``training``: :func:`saetta.fastsim.model.fit` of the default generator with the
   recipe of :data:`saetta.fastsim.model.RECIPE` (in this process, torch on every core);
4. ``generation``: the trained generator, batched (``--batch`` showers), one torch
   thread, at the same energies: µs per shower per core, and the speed-up over the
   detailed simulation, energy by energy;
5. ``fidelity``: :func:`saetta.fastsim.evaluation.evaluate` of showers generated at the
   first reference sample's incident energies against it, with the second reference
   sample as the floor; the HTML report is written beside the JSON.

The targets (speed-up at 100 GeV >= 1000x per core; AUC <= 0.75 on the high-level
features and <= 0.8 on the voxels; mean separation power <= 0.05) are printed as met
or not met, with the measured values. The exit status is 1 when a correctness check
fails (a shower with a negative deposit, a sample of the wrong size), never for a target.

Usage::

    python benchmarks/fastsim.py                                  # about 25 min on 2 cores
    python benchmarks/fastsim.py --train 2000 --reference 500 --epochs 2 --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

HERE = pathlib.Path(__file__).resolve().parent
ENERGIES_GEV = (1.0, 10.0, 100.0, 1000.0)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=8_000, help="Training showers.")
    parser.add_argument(
        "--reference", type=int, default=2_000, help="Showers per reference sample."
    )
    parser.add_argument("--energies", default="1-100", help="GeV, log-uniform (LOW-HIGH).")
    parser.add_argument("--epochs", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--speed-showers", type=int, default=None,
                        help="Detailed showers timed per energy [default: 200, 50, 10, 2].")  # fmt: skip
    parser.add_argument("--batch", type=int, default=10_000, help="Generator batch size.")
    parser.add_argument("--executor", default="processes:2")
    parser.add_argument("--data-dir", default=str(HERE / "data" / "fastsim"))
    parser.add_argument("--json", default=None, help="Write the report here.")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def detailed_speed(counts: Sequence[int]) -> list[dict[str, float]]:
    import numpy as np

    from saetta.fastsim.calorimeter import DEFAULT
    from saetta.fastsim.shower_mc import simulate

    rows = []
    for energy, n in zip(ENERGIES_GEV, counts, strict=True):
        simulate(np.array([energy * 1e3]), particle="electron", seed=0, calorimeter=DEFAULT)
        start = time.perf_counter()
        made = simulate(np.full(n, energy * 1e3), particle="electron", seed=7, calorimeter=DEFAULT)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "energy_gev": energy,
                "showers": n,
                "ms_per_shower": 1e3 * seconds / n,
                "sampling_fraction": float(np.mean(made.visible) / (energy * 1e3)),
                "negative_voxels": int((made.showers < 0).sum()),
            }
        )
        log(f"  {energy:6g} GeV: {rows[-1]['ms_per_shower']:9.2f} ms/shower ({n} showers)")
    return rows


def samples(args: argparse.Namespace) -> dict[str, Any]:
    from saetta.fastsim.production import Detailed, Energies, produce

    maker = Detailed("electron")
    out: dict[str, Any] = {}
    for name, n, seed in (
        ("train", args.train, args.seed),
        ("reference", args.reference, args.seed + 1000),
        ("second_reference", args.reference, args.seed + 2000),
    ):
        started = time.perf_counter()
        made = produce(
            pathlib.Path(args.data_dir) / f"{name}-{n}-{args.energies}-{seed}",
            maker, events=n, energies=Energies.parse(args.energies), binning=maker.binning,
            events_per_file=max(50, min(1000, n // 8)), seed=seed, executor=args.executor,
            progress=False, attrs={"generator": "saetta simulate showers", "calorimeter": "si-w"},
        )  # fmt: skip
        out[name] = {
            "folder": str(made.folder),
            "showers": made.showers,
            "seconds_this_call": time.perf_counter() - started,
            "seconds_when_made": made.seconds,
        }
        log(
            f"  {name}: {made.showers:,} showers in {made.folder} ({out[name]['seconds_this_call']:.1f} s)"
        )
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import numpy as np
    import torch

    from saetta.fastsim import model as models
    from saetta.fastsim.evaluation import evaluate
    from saetta.fastsim.showerfile import ShowerFile, read_showers

    checks: dict[str, bool] = {}
    load = os.getloadavg()[0]
    log(f"{os.cpu_count()} cores, load average {load:.1f}; torch {torch.__version__}")
    log("1. detailed simulation, one core ...")
    counts = [int(args.speed_showers)] * 4 if args.speed_showers else [200, 50, 10, 2]
    detailed = detailed_speed(counts)
    checks["detailed: no negative deposit"] = all(r["negative_voxels"] == 0 for r in detailed)

    log("2. samples (saetta.fastsim.production, as saetta simulate showers) ...")
    made = samples(args)
    train = read_showers(made["train"]["folder"])
    reference = read_showers(made["reference"]["folder"])
    second = read_showers(made["second_reference"]["folder"])
    checks["samples: sizes"] = (len(train), len(reference), len(second)) == (
        args.train,
        args.reference,
        args.reference,
    )

    log("3. training (saetta.fastsim.model.fit, in this process) ...")
    recipe = dict(models.RECIPE)
    epochs = args.epochs or int(recipe["epochs"])
    torch.manual_seed(args.seed)
    generator = models.ShowerGenerator(train.binning)
    started = time.perf_counter()
    losses = models.fit(
        generator, torch.from_numpy(train.showers), torch.from_numpy(train.incident_energies),
        epochs=epochs, batch_size=int(recipe["batch_size"]), lr=float(recipe["lr"]), seed=args.seed,
        log=lambda e, loss: log(f"  epoch {e}: loss {loss:.4f}"),
    )  # fmt: skip
    training = {
        "seconds": time.perf_counter() - started,
        "epochs": epochs,
        "showers": len(train),
        "first_loss": float(np.mean(losses[: max(1, min(20, len(losses) // 4))])),
        "last_loss": float(np.mean(losses[-max(1, min(20, len(losses) // 4)) :])),
        "torch_threads": torch.get_num_threads(),
    }
    checks["training: loss fell"] = training["last_loss"] < training["first_loss"]

    log("4. generation, batched, one torch thread ...")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    speed = []
    for row in detailed:
        energy = row["energy_gev"] * 1e3
        generator.sample(torch.full((64,), energy))
        start = time.perf_counter()
        sampled = generator.sample(torch.full((args.batch,), energy))
        per = (time.perf_counter() - start) / args.batch
        speed.append(
            {
                "energy_gev": row["energy_gev"],
                "us_per_shower": per * 1e6,
                "speed_up": row["ms_per_shower"] * 1e-3 / per,
                "negative_voxels": int((sampled < 0).sum()),
            }
        )
        log(
            f"  {row['energy_gev']:6g} GeV: {per * 1e6:8.1f} us/shower, {speed[-1]['speed_up']:,.0f}x"
        )
    checks["generator: no negative deposit"] = all(r["negative_voxels"] == 0 for r in speed)

    log("5. fidelity (saetta.fastsim.evaluation.evaluate) ...")
    generated_at = time.perf_counter()
    gen = torch.cat([
        generator.sample(torch.from_numpy(reference.incident_energies[i : i + args.batch]).float(),
                         torch.Generator().manual_seed(args.seed + i))
        for i in range(0, len(reference), args.batch)
    ]).numpy()  # fmt: skip
    generation_s = time.perf_counter() - generated_at
    torch.set_num_threads(threads)
    generated = ShowerFile(reference.incident_energies, gen, reference.binning)
    per_core = {r["energy_gev"]: r for r in speed}
    result = evaluate(
        reference, generated, second_reference=second, seed=args.seed,
        timing={
            "generator_us_per_shower_100GeV": per_core[100.0]["us_per_shower"],
            "simulation_ms_per_shower_100GeV": detailed[2]["ms_per_shower"],
            "speed_up_100GeV": per_core[100.0]["speed_up"],
            "generator_us_per_shower_reference_energies": 1e6 * generation_s / len(reference),
        },
    )  # fmt: skip
    print(result)
    targets = {
        "speed-up at 100 GeV >= 1000x per core": per_core[100.0]["speed_up"] >= 1000,
        **result.meets,
    }
    report = {
        "benchmark": "fastsim",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": load,
        },
        "detailed": detailed,
        "samples": made,
        "training": training,
        "generation": speed,
        "fidelity": result.to_dict(),
        "targets": targets,
        "checks": checks,
        "ok": all(checks.values()),
    }
    print("\ntargets:")
    for name, met in targets.items():
        print(f"  {'met    ' if met else 'NOT met'}  {name}")
    print("checks:", "all passed" if report["ok"] else [k for k, v in checks.items() if not v])
    if args.json:
        path = pathlib.Path(args.json)
        path.write_text(json.dumps(report, indent=1) + "\n")
        result.write_html(path.with_suffix(".html"))
        log(f"wrote {path} and {path.with_suffix('.html')}")
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
