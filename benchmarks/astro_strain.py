"""Matched filtering: saetta's search against PyCBC on the same bank, data and PSD.

Generated strain (:func:`saetta.astro.strain_sim.generate_strain`, chirps injected)
is searched with ``--templates`` templates of the default bank, in windows of 64 s
padded by 16 s:

1. ``saetta``: :class:`saetta.analyses.gw.Search` through :func:`saetta.run` on one
   core (``local``), then on ``processes:2``;
2. ``pycbc``: PyCBC 2.11.0 in its own environment (``tests/pycbc_peer.py``): per
   window the same Welch PSD, interpolation and inverse-spectrum truncation, then
   ``pycbc.filter.matched_filter`` per template (templates made once per frequency
   grid and not timed, as saetta caches its own).

Reported: template-seconds of strain filtered per second of wall time per core, the
ratio saetta / PyCBC (target >= 1), the 2-worker scaling (target >= 1.8x one), and
the largest relative difference between saetta's trigger SNRs and PyCBC's maximum
|SNR| over the bank at the same sample (the SNRs must agree to 1 %). The exit status
is 1 only when the SNRs disagree.

Usage::

    python benchmarks/astro_strain.py                        # 512 s, 278 templates
    python benchmarks/astro_strain.py --small                # the smoke test's size
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]

HERE = Path(__file__).resolve().parent

_PEER = """
import time
from pycbc.types import TimeSeries
from pycbc.psd import welch, interpolate, inverse_spectrum_truncation
from pycbc.filter import matched_filter
from pycbc.waveform import get_fd_waveform
rate = float(inputs["rate"])
masses = inputs["masses"]
grids, wall, peaks = {}, 0.0, []
for i in range(int(inputs["count"])):
    data = TimeSeries(inputs[f"x{i}"], delta_t=1.0 / rate)
    if len(data) not in grids:
        bank = []
        for m1, m2 in masses:
            hp, _ = get_fd_waveform(approximant="TaylorF2", mass1=m1, mass2=m2,
                                    delta_f=data.delta_f, f_lower=20.0)
            hp.resize(len(data) // 2 + 1)
            bank.append(hp)
        grids[len(data)] = bank
    started = time.perf_counter()
    psd = welch(data, seg_len=int(4 * rate), seg_stride=int(2 * rate))
    psd = interpolate(psd, data.delta_f)
    psd = inverse_spectrum_truncation(psd, int(4 * rate), low_frequency_cutoff=20.0,
                                      trunc_method="hann")
    best = np.zeros(len(data))
    for hp in grids[len(data)]:
        np.maximum(best, abs(matched_filter(hp, data, psd=psd, low_frequency_cutoff=20.0)).numpy(),
                   out=best)
    wall += time.perf_counter() - started
    at = inputs[f"at{i}"]
    peaks.append(np.array([best[max(j - 1, 0): j + 2].max() for j in at]))
outputs["wall"] = np.array(wall)
outputs["peaks"] = np.concatenate(peaks) if peaks else np.zeros(0)
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=int, default=512, help="Seconds of strain.")
    parser.add_argument("--rate", type=int, default=4096, help="Sampling rate, Hz.")
    parser.add_argument("--templates", type=int, default=0, help="Templates (0: the whole bank).")
    parser.add_argument("--small", action="store_true", help="128 s at 2048 Hz, 16 templates.")
    parser.add_argument("--json", default=None, help="Write the numbers here too.")
    args = parser.parse_args(argv)
    if args.small:
        args.duration, args.rate, args.templates = 128, 2048, 16
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import h5py

    sys.path.insert(0, str(HERE.parent / "tests"))
    from pycbc_peer import run_peer

    import saetta
    from saetta.analyses.gw import Search
    from saetta.astro.strain_sim import generate_strain
    from saetta.astro.waveforms import TemplateBank, default_bank
    from saetta.formats.strain import windows

    full = default_bank()
    step = max(len(full) // args.templates, 1) if args.templates else 1
    bank = TemplateBank(full.masses[::step][: args.templates or None])
    with tempfile.TemporaryDirectory(prefix="saetta-bench-gw-") as folder:
        made = generate_strain(
            folder, duration=args.duration, rate=args.rate, seed=3,
            injections=max(args.duration // 64, 1), snrs=(10.0, 30.0),
        )  # fmt: skip
        spec = windows(64.0, 16.0)
        dataset = saetta.Dataset.open([str(p) for p in made.paths], format="strain", tree=spec)
        search = Search(bank=bank, threshold=7.0)
        walls: dict[str, float] = {}
        results: dict[str, Any] = {}
        # One pool for the warm-up and the timed run, as a long search would keep its
        # workers: each worker builds the bank's templates once per frequency grid.
        with concurrent.futures.ProcessPoolExecutor(2) as pool:
            for name, executor in (("local", "local"), ("processes:2", pool)):
                saetta.run(search, dataset, executor=executor, chunk_size=1, run_dir=False)
                started = time.perf_counter()
                results[name] = saetta.run(
                    search, dataset, executor=executor, chunk_size=1, run_dir=False
                )
                walls[name] = time.perf_counter() - started
                log(f"saetta {name}: {walls[name]:.2f} s")
        triggers = results["local"]["triggers"]
        seconds = float(results["local"]["seconds"])

        inputs: dict[str, np.ndarray] = {
            "rate": np.array(float(args.rate)),
            "masses": np.asarray(bank.masses),
        }
        count = 0
        for path in made.paths:
            with h5py.File(path, "r") as f:
                strain = f["strain/Strain"]
                x, t_file = np.asarray(strain[...]), float(strain.attrs["Xstart"])
            own, pad = 64 * args.rate, 16 * args.rate
            for lo in range(0, len(x), own):
                a, b = max(lo - pad, 0), min(lo + own + pad, len(x))
                t0, t1 = t_file + lo / args.rate, t_file + min(lo + own, len(x)) / args.rate
                mine = triggers["time"][(triggers["time"] >= t0) & (triggers["time"] < t1)]
                inputs[f"x{count}"] = x[a:b]
                inputs[f"at{count}"] = np.rint((mine - t_file) * args.rate - a).astype(np.int64)
                count += 1
        inputs["count"] = np.array(count)
        peer = run_peer(_PEER, inputs)
        pycbc_wall = float(peer["wall"])
        log(f"pycbc: {pycbc_wall:.2f} s")

    filtered = len(bank) * seconds
    numbers = {
        "templates": len(bank),
        "strain_seconds": seconds,
        "triggers": len(triggers),
        "saetta_template_s_per_s_core": filtered / walls["local"],
        "saetta_2workers_template_s_per_s": filtered / walls["processes:2"],
        "pycbc_template_s_per_s_core": filtered / pycbc_wall,
        "ratio_saetta_over_pycbc": pycbc_wall / walls["local"],
        "scaling_2_workers": walls["local"] / walls["processes:2"],
        "snr_max_relative_difference": float(
            np.max(np.abs(triggers["snr"] / peer["peaks"] - 1)) if len(triggers) else 0.0
        ),
        "cores": os.cpu_count(),
    }
    print(json.dumps(numbers, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    return 0 if numbers["snr_max_relative_difference"] < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
