"""The shower Monte Carlo's speed and its physics against textbook behaviour.

Measured, in one process on one core (numba compiles first, untimed):

- events/s of electrons at 1, 10, 100 and 1000 GeV in the default Si–W ECAL;
- the sampling fraction (visible / deposited) and visible / incident at each energy;
- the resolution σ(visible)/⟨visible⟩, fitted with a/√E ⊕ b (E in GeV);
- t_max of the mean longitudinal profile (``SimulatedShowers.t_max``: a gamma
  distribution fitted to its peak) for photons and electrons in homogeneous tungsten,
  against ln(E/E_c) + C with Rossi's constants (C = −0.5 photons, −1.0 electrons)
  and those of the PDG review's fits (+0.5, −0.5);
- the share of the deposit inside one Molière radius (and 2, 3.5), in tungsten and
  in the Si–W stack (its effective R_M).

Usage::

    python benchmarks/shower_mc_physics.py              # about 5 CPU-minutes
    python benchmarks/shower_mc_physics.py --scale 0.2  # 5x fewer showers
    python benchmarks/shower_mc_physics.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from saetta.fastsim.calorimeter import CALORIMETERS, DEFAULT
from saetta.fastsim.shower_mc import simulate

# showers per energy: the same total energy (and so CPU time) at 1, 10, 100 GeV
LINEARITY = {1.0: 2000, 10.0: 300, 100.0: 60, 1000.0: 40}
PROFILE = {1.0: 400, 10.0: 80, 100.0: 16}
ROSSI = {"photon": -0.5, "electron": -1.0}
PDG = {"photon": 0.5, "electron": -0.5}


def resolution_fit(
    energies: np.ndarray, sigma: np.ndarray, error: np.ndarray
) -> tuple[float, float, float, float]:
    """a, b (and their errors) of σ/E = a/√E ⊕ b: σ² = a²/E + b² is linear in (a², b²)."""
    weight = 1 / (2 * sigma * error)  # 1 / the error of σ²
    design = np.stack([1 / energies, np.ones_like(energies)], axis=1) * weight[:, None]
    (a2, b2), *_ = np.linalg.lstsq(design, sigma**2 * weight)
    cov = np.linalg.inv(design.T @ design)
    a = math.sqrt(max(a2, 0.0))
    b = math.sqrt(max(b2, 0.0))
    da = math.sqrt(cov[0, 0]) / (2 * a) if a else math.inf
    db = math.sqrt(cov[1, 1]) / (2 * b) if b else math.sqrt(math.sqrt(cov[1, 1]))
    return a, b, da, db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every sample size")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()

    def n_of(n: int) -> int:
        return max(4, round(n * args.scale))

    simulate([100.0], seed=0)  # compile (or load numba's cache) outside the timing
    report: dict[str, Any] = {"calorimeter": DEFAULT.name}
    print(
        f"{DEFAULT.name}: {DEFAULT.layers} x ({DEFAULT.absorber_mm} mm {DEFAULT.absorber.name}"
        f" + {DEFAULT.active_mm} mm {DEFAULT.active.name}) = {DEFAULT.depth_x0:.1f} X0,"
        f" E_c(eff) {DEFAULT.critical_energy_mev:.2f} MeV, R_M(eff)"
        f" {DEFAULT.moliere_radius_mm:.2f} mm, mip sampling fraction"
        f" {DEFAULT.mip_sampling_fraction:.4f}"
    )
    print("single thread, on a shared 2-core machine: other jobs may slow it")
    print(
        f"{'E/GeV':>7} {'N':>5} {'events/s':>9} {'sampling fraction':>21} {'visible/E':>10}"
        f" {'leak':>7} {'sigma/E':>16} {'in R_M':>7}"
    )
    rows = []
    for gev, planned in LINEARITY.items():
        n = n_of(planned)
        start = time.perf_counter()
        showers = simulate(np.full(n, gev * 1e3), particle="electron", seed=args.seed)
        seconds = time.perf_counter() - start
        sf = showers.sampling_fraction
        visible = showers.visible
        sigma = visible.std(ddof=1) / visible.mean()
        row = {
            "GeV": gev,
            "showers": n,
            "events_per_s": n / seconds,
            "sampling_fraction": float(sf.mean()),
            "sampling_fraction_error": float(sf.std(ddof=1) / math.sqrt(n)),
            "visible_over_E": float(visible.mean() / (gev * 1e3)),
            "leaked": float(showers.leaked.mean() / (gev * 1e3)),
            "resolution": float(sigma),
            "resolution_error": float(sigma / math.sqrt(2 * (n - 1))),
            "containment_RM": float(showers.containment(1.0).mean()),
        }
        rows.append(row)
        print(
            f"{gev:7g} {n:5d} {row['events_per_s']:9.2f} {row['sampling_fraction']:.5f} ±"
            f" {row['sampling_fraction_error']:.5f} {row['visible_over_E']:10.5f}"
            f" {row['leaked']:7.4f} {sigma:.4f} ± {row['resolution_error']:.4f}"
            f" {row['containment_RM']:7.3f}"
        )
    report["electrons"] = rows
    sfs = np.array([r["sampling_fraction"] for r in rows])
    spread = float(sfs.max() / sfs.min() - 1)
    print(f"sampling fraction: largest / smallest - 1 = {100 * spread:.2f} %")
    e = np.array([r["GeV"] for r in rows])
    a, b, da, db = resolution_fit(
        e,
        np.array([r["resolution"] for r in rows]),
        np.array([r["resolution_error"] for r in rows]),
    )
    print(
        f"resolution: a = {100 * a:.2f} ± {100 * da:.2f} %·√GeV, b = {100 * b:.2f} ± {100 * db:.2f} %"
    )
    report["sampling_fraction_spread"] = spread
    report["resolution_fit"] = {"a": a, "a_error": da, "b": b, "b_error": db}

    homogeneous = CALORIMETERS["homogeneous-w"]
    ec = homogeneous.active.critical_energy_MeV
    print(
        f"\nt_max in {homogeneous.name} (E_c = {ec} MeV, R_M = {homogeneous.moliere_radius_mm:.2f}"
        " mm), a gamma distribution fitted to the mean profile's peak"
    )
    profiles = []
    for particle in ("photon", "electron"):
        for gev, planned in PROFILE.items():
            n = n_of(planned)
            showers = simulate(
                np.full(n, gev * 1e3), particle=particle, seed=args.seed, calorimeter=homogeneous
            )
            measured = showers.t_max()
            log_y = math.log(gev * 1e3 / ec)
            row = {
                "particle": particle,
                "GeV": gev,
                "showers": n,
                "t_max": measured,
                "C_measured": measured - log_y,
                "rossi": log_y + ROSSI[particle],
                "pdg": log_y + PDG[particle],
                "containment": [float(showers.containment(r).mean()) for r in (1.0, 2.0, 3.5)],
            }
            profiles.append(row)
            print(
                f"  {particle:8} {gev:5g} GeV ({n:3d}): t_max {measured:5.2f} X0; ln(E/E_c) + C:"
                f" Rossi {row['rossi']:5.2f}, PDG {row['pdg']:5.2f}; C measured"
                f" {row['C_measured']:+.2f}; inside 1, 2, 3.5 R_M:"
                f" {', '.join(f'{c:.3f}' for c in row['containment'])}"
            )
    report["profiles"] = profiles
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
