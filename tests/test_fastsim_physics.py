"""The shower Monte Carlo (saetta.fastsim.shower_mc) against textbook shower physics.

Samples are small (the whole file runs in well under a minute, numba's compilation
included); every tolerance says which statistical precision it stands on. Seeds are
fixed, so a result does not change between runs, only with the code.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from saetta.errors import DatasetError
from saetta.fastsim.calorimeter import CALORIMETERS, DEFAULT, TUNGSTEN, Calorimeter
from saetta.fastsim.shower_mc import Cuts, SimulatedShowers, _deposit, _geometry, simulate

HOMOGENEOUS = CALORIMETERS["homogeneous-w"]
# t_max = ln(E/E_c) + C: Rossi's approximation B (the constants many textbooks quote)
# and the PDG review's (fits to full Monte Carlo showers)
ROSSI = {"photon": -0.5, "electron": -1.0}
PDG = {"photon": 0.5, "electron": -0.5}
PROFILE_SAMPLES = {1000.0: 300, 10000.0: 80}  # MeV: showers
# The same total energy at each point: the sampling fraction's statistical error is
# then the same, 18 %/sqrt(1500 GeV) = 0.46 % per point
LINEARITY_SAMPLES = {1000.0: 1500, 10000.0: 150, 100000.0: 15}


@pytest.fixture(scope="module")
def profiles() -> dict[tuple[str, float], SimulatedShowers]:
    return {
        (particle, energy): simulate(
            np.full(n, energy), particle=particle, seed=101, calorimeter=HOMOGENEOUS
        )
        for particle in ("photon", "electron")
        for energy, n in PROFILE_SAMPLES.items()
    }


@pytest.fixture(scope="module")
def linearity() -> dict[float, SimulatedShowers]:
    return {
        energy: simulate(np.full(n, energy), particle="electron", seed=202)
        for energy, n in LINEARITY_SAMPLES.items()
    }


def test_t_max_follows_ln_e_over_ec(profiles: dict[tuple[str, float], SimulatedShowers]) -> None:
    ec = TUNGSTEN.critical_energy_MeV
    measured = {key: showers.t_max() for key, showers in profiles.items()}
    for (particle, energy), t_max in measured.items():
        log_y = math.log(energy / ec)
        # the shower-to-shower spread of t_max is ~1.2 X0: the means are good to
        # 0.07 X0 (1 GeV) and 0.15 X0 (10 GeV; a photon's first conversion point
        # adds 1.3 X0 of spread: 0.2 X0); the formula itself is approximate. This
        # Monte Carlo lands within 0.4 X0 of the PDG form (C = +0.5, -0.5); Rossi's
        # constants put photons 1 X0 too early (docs/shower_physics.md)
        assert abs(t_max - (log_y + PDG[particle])) < 0.6, (particle, energy, t_max)
        assert t_max > log_y + ROSSI[particle] - 0.6, (particle, energy, t_max)
    for energy in PROFILE_SAMPLES:
        # a photon travels 9/7 X0 before converting: its showers peak later (the
        # textbooks' constants differ by 0.5 and 1.0 X0)
        later = measured["photon", energy] - measured["electron", energy]
        assert 0.3 < later < 1.3, (energy, later)
    for particle in ("photon", "electron"):
        # one X0 deeper per e-fold of energy: 2.3 X0 from 1 to 10 GeV; the difference
        # is good to 0.2 X0 (electrons) and 0.25 X0 (photons): ± 0.7
        slope = measured[particle, 10000.0] - measured[particle, 1000.0]
        assert abs(slope - math.log(10)) < 0.7, (particle, slope)


def test_most_of_the_energy_lies_within_one_moliere_radius(
    profiles: dict[tuple[str, float], SimulatedShowers], linearity: dict[float, SimulatedShowers]
) -> None:
    for showers in [*profiles.values(), linearity[10000.0]]:
        inside = showers.containment(1.0)
        # textbooks say ~90 %; this Monte Carlo gives 85.5-86.5 % (the mean is good
        # to 0.3 %); 99 % is said to lie within 3.5 R_M: 98.5 % here
        assert 0.83 < inside.mean() < 0.95, inside.mean()
        assert showers.containment(3.5).mean() > 0.97
        assert showers.containment(0.5).mean() < inside.mean()


@pytest.mark.slow
def test_sampling_fraction_is_constant_from_1_to_100_gev(
    linearity: dict[float, SimulatedShowers],
) -> None:
    fractions = {e: s.sampling_fraction.mean() for e, s in linearity.items()}
    mean = np.mean(list(fractions.values()))
    for energy, fraction in fractions.items():
        # the requirement is 1 %; each point is good to 0.46 % (1 sigma), so 1.2 %
        # from the mean of the three holds it at the 2-sigma level of this sample (the
        # benchmark measures it 4x better, to 1000 GeV)
        assert abs(fraction / mean - 1) < 0.012, (energy, fraction, mean)
    # and the visible energy is a fixed ~1.8 % of the incident, e/mip ~ 0.73
    assert 0.6 < mean / DEFAULT.mip_sampling_fraction < 0.85


@pytest.mark.slow
def test_resolution_falls_like_one_over_sqrt_e(linearity: dict[float, SimulatedShowers]) -> None:
    resolution = {e: s.visible.std(ddof=1) / s.visible.mean() for e, s in linearity.items()}
    # a/sqrt(E) with a = 17-18 % for 1 X0 of tungsten per sample; sigma is known to
    # 1.8 % (1 GeV), 5.8 % (10 GeV), 19 % (100 GeV)
    assert 0.15 < resolution[1000.0] < 0.21
    ratio = resolution[1000.0] / resolution[10000.0]
    assert 0.85 * math.sqrt(10) < ratio < 1.15 * math.sqrt(10), ratio
    # from 10 to 100 GeV the constant term (and the leakage) start to count
    assert 1.8 < resolution[10000.0] / resolution[100000.0] < 1.3 * math.sqrt(10)


def test_same_seed_same_showers_and_slices_agree() -> None:
    energies = np.array([500.0, 2000.0, 800.0, 3000.0])
    first = simulate(energies, seed=7)
    again = simulate(energies, seed=7)
    np.testing.assert_array_equal(first.showers, again.showers)
    np.testing.assert_array_equal(first.deposited, again.deposited)
    tail = simulate(energies[2:], seed=7, first_index=2)
    np.testing.assert_array_equal(tail.showers, first.showers[2:])
    np.testing.assert_array_equal(tail.visible, first.visible[2:])
    other = simulate(energies, seed=8)
    assert not np.array_equal(other.showers, first.showers)
    assert np.all(other.visible != first.visible)


def test_energy_is_conserved_and_deposits_are_positive() -> None:
    for particle in ("electron", "photon"):
        energies = np.array([300.0, 5000.0, 50000.0])
        showers = simulate(energies, particle=particle, seed=3)
        total = showers.deposited + showers.leaked
        np.testing.assert_allclose(total, energies, rtol=1e-9)
        assert np.all(showers.leaked >= 0)
        assert np.all(showers.showers >= 0)
        assert np.all(showers.profile >= 0)
        assert np.all(showers.visible <= showers.deposited)
        # voxels hold the active deposits within the last radial edge (float32 sums)
        voxels = showers.showers.sum(axis=1, dtype=np.float64)
        assert np.all(voxels <= showers.visible * (1 + 1e-5))
        assert np.all(voxels > 0.9 * showers.visible)
        np.testing.assert_allclose(showers.profile.sum(axis=1), showers.deposited, rtol=1e-5)
        np.testing.assert_allclose(showers.radial.sum(axis=1), showers.deposited, rtol=1e-5)


def test_voxels_are_the_layers_slices_of_the_binning() -> None:
    # a homogeneous stack whose voxels reach the world radius holds every deposit:
    # each readout layer's voxels then carry exactly that layer's depth (2.5 X0, 25
    # profile bins) of the longitudinal profile
    wide = replace(HOMOGENEOUS, name="wide", r_edges_mm=(0, 5, 20, 1000.0 + 1e-6), n_alpha=4)
    showers = simulate(np.full(20, 2000.0), particle="electron", seed=5, calorimeter=wide)
    binning = wide.binning()
    np.testing.assert_allclose(showers.visible, showers.deposited)
    per_layer = showers.profile.reshape(20, len(binning.layers), -1).sum(axis=(0, 2))
    for layer in binning.layers:
        in_voxels = showers.showers[:, binning.slices[layer.id]].sum(dtype=np.float64)
        # a deposit on a layer boundary may round into either side: 0.1 % of a layer
        assert in_voxels == pytest.approx(per_layer[layer.id], rel=1e-3, abs=0.5)
    # the four angular bins share the energy evenly (20 showers: within 15 %)
    by_angle = showers.showers.reshape(20, len(binning.layers), 4, 3).sum(axis=(0, 1, 3))
    np.testing.assert_allclose(by_angle / by_angle.mean(), 1, atol=0.15)


def test_a_deposit_lands_in_the_voxel_the_binning_centres_name() -> None:
    geometry = _geometry(DEFAULT)
    z_edges, slab_mat, slab_active, slab_readout, slab_t0, mat_x0 = geometry
    binning = DEFAULT.binning()
    r_edges = np.asarray(DEFAULT.r_edges_mm) / 10
    n_r = len(r_edges) - 1
    rng = np.random.default_rng(1)
    for _ in range(200):
        slab = int(rng.choice(np.flatnonzero(slab_active)))
        r_mm = rng.uniform(0, 85)
        alpha = rng.uniform(-math.pi, math.pi)
        x, y = r_mm * math.cos(alpha) / 10, r_mm * math.sin(alpha) / 10
        z = rng.uniform(z_edges[slab], z_edges[slab + 1])
        vox = np.zeros(binning.voxels)
        prof, rad, tot = np.zeros(241), np.zeros(51), np.zeros(3)
        _deposit(1.0, x, y, z, slab, z_edges, slab_active, slab_readout, slab_t0, slab_mat,
                 mat_x0, r_edges, DEFAULT.n_alpha, 0.1, 0.1, vox, prof, rad, tot)  # fmt: skip
        assert tot[1] == 1.0
        layer = int(slab_readout[slab])
        assert layer == slab // 4  # absorber, active, absorber, active per readout layer
        if r_mm >= DEFAULT.r_edges_mm[-1]:
            assert vox.sum() == 0
            continue
        (index,) = np.flatnonzero(vox)
        where = binning.slices[layer]
        assert where.start <= index < where.stop
        r_c, alpha_c = binning.centres(layer)
        k = index - where.start
        half_alpha = math.pi / DEFAULT.n_alpha
        assert abs(math.remainder(alpha - alpha_c[k], 2 * math.pi)) <= half_alpha
        ib = k % n_r
        assert DEFAULT.r_edges_mm[ib] <= r_mm < DEFAULT.r_edges_mm[ib + 1]
        assert abs(r_c[k] - 0.5 * (DEFAULT.r_edges_mm[ib] + DEFAULT.r_edges_mm[ib + 1])) < 1e-9


def test_default_calorimeter_shapes() -> None:
    assert DEFAULT.binning().voxels == 432
    assert DEFAULT.binning("photon").pid == 22
    assert 24 < DEFAULT.depth_x0 < 25
    # 3.5 mm of tungsten is one X0: the effective R_M is near tungsten's
    assert 9.3 < DEFAULT.moliere_radius_mm < 11
    assert HOMOGENEOUS.homogeneous
    # R_M = 21.2 MeV X0 / E_c from the PDG's X0 and E_c: its R_M to 0.1 %
    assert HOMOGENEOUS.moliere_radius_mm == pytest.approx(10 * TUNGSTEN.moliere_radius_cm, rel=1e-3)


@pytest.mark.parametrize(
    ("energies", "particle"),
    [([-1.0], "electron"), ([0.0], "photon"), ([float("nan")], "electron"), ([10.0], "muon")],
)
def test_bad_input_is_a_dataset_error(energies: list[float], particle: str) -> None:
    with pytest.raises(DatasetError):
        simulate(energies, particle=particle, seed=1)


def test_bad_cuts_are_a_dataset_error() -> None:
    assert Cuts(range_rejection_mev=0).range_rejection_mev == 0
    with pytest.raises(DatasetError, match="positive"):
        Cuts(photon_mev=0)
    with pytest.raises(DatasetError, match="positive"):
        Cuts(range_rejection_mev=-1)


def test_bad_calorimeter_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="readout_group"):
        Calorimeter("odd", TUNGSTEN, 3.5, TUNGSTEN, 0.5, 5, 2, (0, 1), 1)
