"""Stage: fast simulation (layer 7) — a detailed Monte Carlo of electromagnetic showers.

Every electron, positron and photon above the cut-offs is tracked in 3D through
a :class:`~saetta.fastsim.calorimeter.Calorimeter`, compiled with numba:

- photons: pair production (7/(9 X0) with a threshold shape; Bethe–Heitler
  complete-screening energy split), Compton scattering (Klein–Nishina),
  photo-absorption (per-material power-law fits), free flight sampled from the
  total attenuation;
- electrons and positrons: bremsstrahlung above ``Cuts.brems_mev`` sampled from
  the complete-screening Bethe–Heitler spectrum (4/3 − 4/3 y + y²)/k, the
  spectrum below it lost continuously; continuous ionisation (Bethe, Berger &
  Seltzer, with the density effect); Highland multiple scattering each step,
  with the correlated lateral displacement; positrons annihilate at rest into
  two back-to-back 511 keV photons.

Steps end at slab boundaries, so each deposit belongs to one material. Energy
deposited in active slabs fills the voxels of ``calorimeter.binning()``.
``docs/shower_physics.md`` lists every approximation and the measured figures.

Each shower draws from its own random stream, seeded from ``(seed, index)``:
the same energies and seed give the same showers however the batch is split
(pass ``first_index`` for a slice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from saetta.errors import DatasetError
from saetta.fastsim.binning import Binning
from saetta.fastsim.calorimeter import DEFAULT, ELECTRON_MASS_MEV, Calorimeter, Material
from saetta.kernels import jit

__all__ = ["Cuts", "SimulatedShowers", "simulate"]

_M = ELECTRON_MASS_MEV
_PHOTON, _ELECTRON, _POSITRON = 0, 1, 2
_KINDS = {"photon": _PHOTON, "electron": _ELECTRON}
# Table grid: 1 keV to 10 TeV, 50 points per decade, linear interpolation in ln E.
_LOGE0 = math.log(1e-3)
_PER_DECADE = 50
_N_GRID = 10 * _PER_DECADE + 1
_INV_DLOG = _PER_DECADE / math.log(10.0)
_PROFILE_BIN_X0 = 0.1
_RADIAL_BINS = 50  # of 0.1 effective Molière radii, and one beyond 5 R_M
_STACK = 1024
_MASK64 = 0xFFFFFFFFFFFFFFFF
_U11, _U17, _U19, _U45 = (np.uint64(k) for k in (11, 17, 19, 45))
_TWO_M53 = 2.0**-53


@dataclass(frozen=True)
class Cuts:
    """Production and tracking cut-offs, and the step limits (energies in MeV)."""

    electron_mev: float = 0.1  # e± kinetic energy below which they stop where they are
    photon_mev: float = 0.02  # photons below this are absorbed where they are
    brems_mev: float = 0.1  # bremsstrahlung photons below this: continuous loss
    range_rejection_mev: float = 2.0  # below this, an e± that cannot leave its slab stops
    theta_max: float = 0.3  # Highland θ0 aimed at per step (rad) ...
    range_fraction: float = 0.04  # ... but a step may be this much of the residual range
    theta_fine: float = 0.05  # the same within reach of a boundary
    range_fraction_fine: float = 0.0025
    loss_fraction: float = 0.2  # most of its kinetic energy an e± loses in one step
    world_radius_cm: float = 100.0  # particles farther from the axis leak

    def __post_init__(self) -> None:
        values = np.delete(self.as_array(), 3)
        if not (
            np.all(np.isfinite(values)) and np.all(values > 0) and self.range_rejection_mev >= 0
        ):
            msg = f"every cut and step limit must be positive (range rejection may be 0): {self}"
            raise DatasetError(msg)

    def as_array(self) -> np.ndarray:
        return np.array(
            [
                self.electron_mev,
                self.photon_mev,
                self.brems_mev,
                self.range_rejection_mev,
                self.theta_max,
                self.range_fraction,
                self.loss_fraction,
                self.world_radius_cm,
                self.theta_fine,
                self.range_fraction_fine,
            ]
        )


@dataclass(frozen=True)
class SimulatedShowers:
    """Showers and what the physics checks need, one row per incident particle.

    ``showers``: (N, voxels) float32, MeV in the active slabs per voxel of
    ``binning`` (deposits beyond the last radial edge are in no voxel);
    ``visible``: MeV in all active material; ``deposited``: MeV anywhere in the
    calorimeter; ``leaked``: MeV carried out (front, back, beyond the world
    radius; a positron counts T + 2 m_e); ``profile``: (N, bins) float32, MeV
    deposited anywhere per ``profile_bin_x0`` of depth (depth in X0 of the stack);
    ``radial``: (N, 51) float32, MeV deposited anywhere per 0.1 effective Molière
    radius from the axis, the last bin everything beyond 5 R_M.
    """

    energies: np.ndarray  # (N,) float64, incident (kinetic) energy, MeV
    particle: str
    calorimeter: Calorimeter
    binning: Binning
    showers: np.ndarray
    visible: np.ndarray
    deposited: np.ndarray
    leaked: np.ndarray
    profile: np.ndarray
    radial: np.ndarray
    profile_bin_x0: float = _PROFILE_BIN_X0

    @property
    def radial_edges_mm(self) -> np.ndarray:
        """The edges of ``radial``'s bins (mm), the last bin open-ended."""
        step = 0.1 * self.calorimeter.moliere_radius_mm
        return np.append(np.arange(_RADIAL_BINS + 1) * step, np.inf)

    @property
    def sampling_fraction(self) -> np.ndarray:
        """Visible over deposited energy, per shower."""
        out: np.ndarray = self.visible / self.deposited
        return out

    def t_max(self) -> float:
        """The depth (X0) of the mean profile's maximum, (a − 1)/b of the gamma
        distribution dE/dt ∝ t^(a−1) e^(−bt) fitted to it: ln(dE/dt) is linear in
        (1, ln t, t), fitted by least squares weighted by dE/dt over the bins above
        30 % of the peak (the peak's region: the tails do not follow a gamma
        distribution well)."""
        mean = self.profile.mean(axis=0, dtype=np.float64)
        t = (np.arange(len(mean)) + 0.5) * self.profile_bin_x0
        use = mean > 0.3 * mean.max()
        w = np.sqrt(mean[use])
        design = np.stack([np.ones(use.sum()), np.log(t[use]), -t[use]], axis=1)
        (_, a_minus_1, b), *_ = np.linalg.lstsq(design * w[:, None], np.log(mean[use]) * w)
        return float(a_minus_1 / b)

    def containment(self, moliere_radii: float = 1.0) -> np.ndarray:
        """The share of each shower's deposit within ``moliere_radii`` (a multiple of 0.1)."""
        n = round(10 * moliere_radii)
        out: np.ndarray = self.radial[:, :n].sum(axis=1, dtype=np.float64) / self.deposited
        return out


def simulate(
    energies_mev: np.ndarray | list[float] | float,
    *,
    particle: str = "electron",
    seed: int,
    calorimeter: Calorimeter = DEFAULT,
    cuts: Cuts | None = None,
    first_index: int = 0,
) -> SimulatedShowers:
    """Simulate one shower per incident energy (MeV; an electron's kinetic energy).

    Parameters
    ----------
    energies_mev
        Incident energies; particles enter at x = y = 0 along +z.
    particle
        ``"electron"`` or ``"photon"``.
    seed
        Shower ``i`` draws from a stream seeded by ``(seed, first_index + i)``.
    calorimeter
        The stack to shower in.
    cuts
        Cut-offs and step limits (default :class:`Cuts`).
    first_index
        The index of the first shower: a slice ``energies[k:]`` simulated with
        ``first_index=k`` gives the same showers as the whole batch does.
    """
    energies = np.atleast_1d(np.asarray(energies_mev, dtype=np.float64))
    if energies.ndim != 1:
        msg = f"give the incident energies as one list, not an array of shape {energies.shape}"
        raise DatasetError(msg)
    if not np.all(np.isfinite(energies)) or np.any(energies <= 0):
        msg = "incident energies must be finite and positive (MeV)"
        raise DatasetError(msg)
    kind = _KINDS.get(particle)
    if kind is None:
        msg = f"cannot shower particle {particle!r}: use 'electron' or 'photon'"
        raise DatasetError(msg)
    if first_index < 0:
        msg = f"first_index must be >= 0, not {first_index}"
        raise DatasetError(msg)
    cuts = cuts or Cuts()
    binning = calorimeter.binning(particle)
    n = len(energies)
    seeds = np.array(
        [
            np.random.SeedSequence([seed & _MASK64, first_index + i]).generate_state(
                4, dtype=np.uint64
            )
            for i in range(n)
        ],
        dtype=np.uint64,
    ).reshape(n, 4)
    geometry = _geometry(calorimeter)
    tables = _tables(calorimeter.absorber, calorimeter.active)
    n_profile = math.ceil(calorimeter.depth_x0 / _PROFILE_BIN_X0 - 1e-9)
    showers = np.zeros((n, binning.voxels), dtype=np.float32)
    profile = np.zeros((n, n_profile), dtype=np.float32)
    radial = np.zeros((n, _RADIAL_BINS + 1), dtype=np.float32)
    totals = np.zeros((n, 3))
    r_edges_cm = np.asarray(calorimeter.r_edges_mm, dtype=np.float64) / 10
    args: list[Any] = [energies, seeds, kind, *geometry, *tables, cuts.as_array()]
    args += [r_edges_cm, calorimeter.n_alpha, _PROFILE_BIN_X0]
    args += [0.01 * calorimeter.moliere_radius_mm, showers, profile, radial, totals]
    _run(*args)
    return SimulatedShowers(
        energies=energies,
        particle=particle,
        calorimeter=calorimeter,
        binning=binning,
        showers=showers,
        visible=totals[:, 1].copy(),
        deposited=totals[:, 0].copy(),
        leaked=totals[:, 2].copy(),
        profile=profile,
        radial=radial,
    )


def _geometry(calorimeter: Calorimeter) -> tuple[np.ndarray, ...]:
    """Slabs along z (cm): edges, material (0 absorber, 1 active), active flag,
    readout layer, depth (X0) at the slab's front, and the materials' X0."""
    edges, t0 = [0.0], [0.0]
    materials: list[int] = []
    readout: list[int] = []
    for layer in range(calorimeter.layers):
        for material, mm, x0_cm in (
            (0, calorimeter.absorber_mm, calorimeter.absorber.X0_cm),
            (1, calorimeter.active_mm, calorimeter.active.X0_cm),
        ):
            if mm == 0:
                continue  # a homogeneous calorimeter has no absorber slabs
            edges.append(edges[-1] + mm / 10)
            t0.append(t0[-1] + mm / 10 / x0_cm)
            materials.append(material)
            readout.append(layer // calorimeter.readout_group)
    mat = np.array(materials, dtype=np.int64)
    return (
        np.array(edges),
        mat,
        (mat == 1).astype(np.int64),
        np.array(readout, dtype=np.int64),
        np.array(t0[:-1]),
        np.array([calorimeter.absorber.X0_cm, calorimeter.active.X0_cm]),
    )


@lru_cache(maxsize=16)
def _tables(absorber: Material, active: Material) -> tuple[np.ndarray, ...]:
    """Per material (absorber, active) on the ln E grid: pair, Compton and photo
    attenuation (1/cm); e− and e+ collision stopping power (MeV/cm); e− CSDA range (cm)."""
    energy = np.exp(_LOGE0 + np.arange(_N_GRID) / _INV_DLOG)
    out: list[list[np.ndarray]] = [[] for _ in range(6)]
    for material in (absorber, active):
        s_e = material.collision_stopping_power(energy)
        # CSDA range from 0: the first bin as if the loss rose like 1/T below 1 keV
        inverse = 1 / s_e
        segments = 0.5 * (inverse[1:] + inverse[:-1]) * np.diff(energy)
        rng = np.concatenate(
            [[0.5 * energy[0] / s_e[0]], 0.5 * energy[0] / s_e[0] + np.cumsum(segments)]
        )
        columns = (
            material.pair_cm(energy),
            material.compton_cm(energy),
            material.photo_cm(energy),
            s_e,
            material.collision_stopping_power(energy, positron=True),
            rng,
        )
        for store, column in zip(out, columns, strict=True):
            store.append(column)
    return tuple(np.ascontiguousarray(np.stack(column)) for column in out)


# ---------------------------------------------------------------------------- kernels


@jit
def _uniform(rng: np.ndarray) -> float:
    """xoshiro256+ (Blackman & Vigna): a double in [0, 1) from the state ``rng``."""
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    result = s0 + s3
    t = s1 << _U17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << _U45) | (s3 >> _U19)
    rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3
    return float(result >> _U11) * _TWO_M53


@jit
def _normal2(rng: np.ndarray) -> tuple[float, float]:
    """Two independent standard normal numbers (Box–Muller)."""
    r = math.sqrt(-2.0 * math.log(1.0 - _uniform(rng)))
    phi = 2.0 * math.pi * _uniform(rng)
    return r * math.cos(phi), r * math.sin(phi)


@jit
def _grid(energy: float) -> tuple[int, float]:
    """The table bin of an energy and the fraction of the way to the next."""
    u = (math.log(energy) - _LOGE0) * _INV_DLOG
    if u <= 0.0:
        return 0, 0.0
    i = int(u)
    if i >= _N_GRID - 1:
        return _N_GRID - 2, 1.0
    return i, u - i


@jit
def _at(table: np.ndarray, mat: int, i: int, f: float) -> float:
    return float(table[mat, i] * (1.0 - f) + table[mat, i + 1] * f)


@jit
def _rotate(
    ux: float, uy: float, uz: float, dx: float, dy: float, dz: float
) -> tuple[float, float, float]:
    """The vector (dx, dy, dz) given in the frame whose z axis is the unit vector u."""
    up = ux * ux + uy * uy
    if up > 0.0:
        up = math.sqrt(up)
        return (
            (ux * uz * dx - uy * dy) / up + ux * dz,
            (uy * uz * dx + ux * dy) / up + uy * dz,
            -up * dx + uz * dz,
        )
    if uz < 0.0:
        return -dx, dy, -dz
    return dx, dy, dz


@jit
def _turn(
    rng: np.ndarray, ux: float, uy: float, uz: float, theta: float
) -> tuple[float, float, float]:
    """u turned by polar angle ``theta`` about a uniform azimuth, renormalised."""
    phi = 2.0 * math.pi * _uniform(rng)
    st = math.sin(theta)
    nx, ny, nz = _rotate(ux, uy, uz, st * math.cos(phi), st * math.sin(phi), math.cos(theta))
    norm = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx * norm, ny * norm, nz * norm


@jit
def _tsai(rng: np.ndarray) -> float:
    """Urban's form of Tsai's angular distribution: θ = u m_e / E."""
    a = 0.625 if _uniform(rng) < 0.25 else 1.875
    return -math.log((1.0 - _uniform(rng)) * (1.0 - _uniform(rng))) / a


@jit
def _push(
    stack: np.ndarray,
    n: int,
    kind: int,
    e: float,
    x: float,
    y: float,
    z: float,
    ux: float,
    uy: float,
    uz: float,
    slab: int,
) -> np.ndarray:
    if n >= stack.shape[0]:
        grown = np.empty((2 * stack.shape[0], 9))
        grown[:n] = stack[:n]
        stack = grown
    stack[n, 0] = kind
    stack[n, 1] = e
    stack[n, 2] = x
    stack[n, 3] = y
    stack[n, 4] = z
    stack[n, 5] = ux
    stack[n, 6] = uy
    stack[n, 7] = uz
    stack[n, 8] = slab
    return stack


@jit
def _deposit(
    e: float,
    x: float,
    y: float,
    z: float,
    slab: int,
    z_edges: np.ndarray,
    slab_active: np.ndarray,
    slab_readout: np.ndarray,
    slab_t0: np.ndarray,
    slab_mat: np.ndarray,
    mat_x0: np.ndarray,
    r_edges: np.ndarray,
    n_alpha: int,
    prof_bw: float,
    rad_bw: float,
    vox: np.ndarray,
    prof: np.ndarray,
    rad: np.ndarray,
    tot: np.ndarray,
) -> None:
    tot[0] += e
    r = math.sqrt(x * x + y * y)
    t = slab_t0[slab] + (z - z_edges[slab]) / mat_x0[slab_mat[slab]]
    it = int(t / prof_bw)
    prof[min(max(it, 0), prof.shape[0] - 1)] += e
    ir = int(r / rad_bw)
    rad[min(ir, rad.shape[0] - 1)] += e
    if slab_active[slab] == 0:
        return
    tot[1] += e
    n_r = r_edges.shape[0] - 1
    if r >= r_edges[n_r]:
        return
    ib = 0
    while r >= r_edges[ib + 1]:
        ib += 1
    ia = int((math.atan2(y, x) + math.pi) * n_alpha / (2.0 * math.pi))
    if ia >= n_alpha:
        ia = 0  # atan2 = π is the angle -π
    vox[slab_readout[slab] * n_r * n_alpha + ia * n_r + ib] += e


@jit
def _run(
    energies: np.ndarray,
    seeds: np.ndarray,
    incident: int,
    z_edges: np.ndarray,
    slab_mat: np.ndarray,
    slab_active: np.ndarray,
    slab_readout: np.ndarray,
    slab_t0: np.ndarray,
    mat_x0: np.ndarray,
    mu_pair: np.ndarray,
    mu_compton: np.ndarray,
    mu_photo: np.ndarray,
    s_electron: np.ndarray,
    s_positron: np.ndarray,
    csda: np.ndarray,
    cuts: np.ndarray,
    r_edges: np.ndarray,
    n_alpha: int,
    prof_bw: float,
    rad_bw: float,
    showers: np.ndarray,
    profile: np.ndarray,
    radial: np.ndarray,
    totals: np.ndarray,
) -> None:
    stack = np.empty((_STACK, 9))
    rng = np.empty(4, dtype=np.uint64)
    vox = np.zeros(showers.shape[1])
    prof = np.zeros(profile.shape[1])
    rad = np.zeros(radial.shape[1])
    for i in range(energies.shape[0]):
        rng[:] = seeds[i]
        vox[:] = 0.0
        prof[:] = 0.0
        rad[:] = 0.0
        tot = totals[i]
        stack = _push(stack, 0, incident, energies[i], 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0)
        stack = _shower(
            rng,
            stack,
            z_edges,
            slab_mat,
            slab_active,
            slab_readout,
            slab_t0,
            mat_x0,
            mu_pair,
            mu_compton,
            mu_photo,
            s_electron,
            s_positron,
            csda,
            cuts,
            r_edges,
            n_alpha,
            prof_bw,
            rad_bw,
            vox,
            prof,
            rad,
            tot,
        )
        for j in range(vox.shape[0]):
            showers[i, j] = vox[j]
        for j in range(prof.shape[0]):
            profile[i, j] = prof[j]
        for j in range(rad.shape[0]):
            radial[i, j] = rad[j]


@jit
def _shower(
    rng: np.ndarray,
    stack: np.ndarray,
    z_edges: np.ndarray,
    slab_mat: np.ndarray,
    slab_active: np.ndarray,
    slab_readout: np.ndarray,
    slab_t0: np.ndarray,
    mat_x0: np.ndarray,
    mu_pair: np.ndarray,
    mu_compton: np.ndarray,
    mu_photo: np.ndarray,
    s_electron: np.ndarray,
    s_positron: np.ndarray,
    csda: np.ndarray,
    cuts: np.ndarray,
    r_edges: np.ndarray,
    n_alpha: int,
    prof_bw: float,
    rad_bw: float,
    vox: np.ndarray,
    prof: np.ndarray,
    rad: np.ndarray,
    tot: np.ndarray,
) -> np.ndarray:
    """Track everything on the stack (one particle on it at the start) to its end."""
    e_cut, g_cut, k_cut, rr_cut = cuts[0], cuts[1], cuts[2], cuts[3]
    theta_max, f_range, f_loss = cuts[4], cuts[5], cuts[6]
    r_world2 = cuts[7] * cuts[7]
    theta_fine, f_fine = cuts[8], cuts[9]
    n_slab = slab_mat.shape[0]
    n = 1
    while n > 0:
        n -= 1
        kind = int(stack[n, 0])
        e = stack[n, 1]
        x, y, z = stack[n, 2], stack[n, 3], stack[n, 4]
        ux, uy, uz = stack[n, 5], stack[n, 6], stack[n, 7]
        slab = int(stack[n, 8])
        if kind == _PHOTON:
            while True:
                if e < g_cut:
                    _deposit(e, x, y, z, slab, z_edges, slab_active, slab_readout, slab_t0,
                             slab_mat, mat_x0, r_edges, n_alpha, prof_bw, rad_bw, vox, prof,
                             rad, tot)  # fmt: skip
                    break
                mat = slab_mat[slab]
                ig, fg = _grid(e)
                # the table's interpolation would leak a little pair production below threshold
                m_pair = _at(mu_pair, mat, ig, fg) if e > 2.0 * _M else 0.0
                m_compton = _at(mu_compton, mat, ig, fg)
                m_photo = _at(mu_photo, mat, ig, fg)
                mu = m_pair + m_compton + m_photo
                s = -math.log(1.0 - _uniform(rng)) / mu
                if uz > 0.0:
                    s_bound = (z_edges[slab + 1] - z) / uz
                elif uz < 0.0:
                    s_bound = (z_edges[slab] - z) / uz
                else:
                    s_bound = np.inf
                if s >= s_bound:
                    x += s_bound * ux
                    y += s_bound * uy
                    if uz > 0.0:
                        slab += 1
                        z = z_edges[slab]
                    else:
                        z = z_edges[slab]
                        slab -= 1
                    if slab < 0 or slab >= n_slab or x * x + y * y > r_world2:
                        tot[2] += e
                        break
                    continue
                x += s * ux
                y += s * uy
                z += s * uz
                if x * x + y * y > r_world2:
                    tot[2] += e
                    break
                pick = _uniform(rng) * mu
                if pick < m_photo:
                    # the photo-electron and the atom's relaxation stay where they are
                    _deposit(e, x, y, z, slab, z_edges, slab_active, slab_readout, slab_t0,
                             slab_mat, mat_x0, r_edges, n_alpha, prof_bw, rad_bw, vox, prof,
                             rad, tot)  # fmt: skip
                    break
                if pick < m_photo + m_compton:
                    eps, cost = _klein_nishina(rng, e / _M)
                    e_out = eps * e
                    px, py, pz = e * ux, e * uy, e * uz
                    ux, uy, uz = _turn(rng, ux, uy, uz, math.acos(cost))
                    px -= e_out * ux
                    py -= e_out * uy
                    pz -= e_out * uz
                    norm = math.sqrt(px * px + py * py + pz * pz)
                    if norm > 0.0:
                        stack = _push(stack, n, _ELECTRON, e - e_out, x, y, z, px / norm,
                                      py / norm, pz / norm, slab)  # fmt: skip
                        n += 1
                    e = e_out
                    continue
                eps = _pair_split(rng, e)
                phi = 2.0 * math.pi * _uniform(rng)
                u = _tsai(rng)
                for charge in range(2):
                    total = eps * e if charge == 0 else (1.0 - eps) * e
                    theta = u * _M / total
                    sign = 1.0 if charge == 0 else -1.0
                    st = math.sin(theta)
                    dx, dy, dz = _rotate(ux, uy, uz, sign * st * math.cos(phi),
                                         sign * st * math.sin(phi), math.cos(theta))  # fmt: skip
                    stack = _push(stack, n, _ELECTRON if charge == 0 else _POSITRON,
                                  total - _M, x, y, z, dx, dy, dz, slab)  # fmt: skip
                    n += 1
                break
            continue
        # electron or positron
        s_table = s_electron if kind == _ELECTRON else s_positron
        while True:
            mat = slab_mat[slab]
            z_lo = z_edges[slab]
            z_hi = z_edges[slab + 1]
            stop = e <= e_cut
            ig, fg = _grid(e)
            if not stop and e < rr_cut:
                stop = _at(csda, mat, ig, fg) < min(z - z_lo, z_hi - z)
            if stop:
                _deposit(e, x, y, z, slab, z_edges, slab_active, slab_readout, slab_t0,
                         slab_mat, mat_x0, r_edges, n_alpha, prof_bw, rad_bw, vox, prof,
                         rad, tot)  # fmt: skip
                if kind == _POSITRON:
                    cost = 2.0 * _uniform(rng) - 1.0
                    sint = math.sqrt(max(0.0, 1.0 - cost * cost))
                    phi = 2.0 * math.pi * _uniform(rng)
                    dx, dy = sint * math.cos(phi), sint * math.sin(phi)
                    stack = _push(stack, n, _PHOTON, _M, x, y, z, dx, dy, cost, slab)
                    stack = _push(stack, n + 1, _PHOTON, _M, x, y, z, -dx, -dy, -cost, slab)
                    n += 2
                break
            x0 = mat_x0[mat]
            etot = e + _M
            yc = k_cut / etot
            ym = e / etot
            if yc < ym:
                rate = (4.0 / 3.0 * math.log(ym / yc) - 4.0 / 3.0 * (ym - yc)
                        + 0.5 * (ym * ym - yc * yc)) / x0  # fmt: skip
                soft = yc * (4.0 / 3.0 - 2.0 / 3.0 * yc + yc * yc / 3.0) / x0
            else:
                rate = 0.0
                soft = ym * (4.0 / 3.0 - 2.0 / 3.0 * ym + ym * ym / 3.0) / x0
            dedx = _at(s_table, mat, ig, fg) + soft * etot
            p = math.sqrt(e * (e + 2.0 * _M))
            beta2 = (p / etot) ** 2
            pbeta = p * p / etot
            s_energy = e / dedx
            # Highland's θ0² grows linearly with the path, θ0² = s / lam; its log term
            # is taken at the path the particle still has to scatter over (not the
            # step), so that the steps' widths add in quadrature
            f_log = max(1.0 + 0.038 * math.log(min(s_energy, x0) / (x0 * beta2)), 0.1)
            lam = x0 * (pbeta / (13.6 * f_log)) ** 2
            s = min(max(theta_max**2 * lam, f_range * s_energy), f_loss * s_energy)
            safety = min(z - z_lo, z_hi - z)
            if s > safety:
                # a step that could reach a boundary is a fine one: where it crosses
                # decides which material the energy lands in
                fine = min(max(theta_fine**2 * lam, f_fine * s_energy), f_loss * s_energy)
                s = max(safety, fine)
            event = 0  # 0: step limit, 1: bremsstrahlung, 2: boundary
            if rate > 0.0:
                s_brems = -math.log(1.0 - _uniform(rng)) / rate
                if s_brems < s:
                    s = s_brems
                    event = 1
            # a true path s advances lam (1 - exp(-s / lam)) along the step's direction
            t = -lam * math.expm1(-s / lam)
            if uz > 0.0:
                t_bound = (z_hi - z) / uz
            elif uz < 0.0:
                t_bound = (z_lo - z) / uz
            else:
                t_bound = np.inf
            if t_bound <= t:
                t = t_bound
                s = min(s, -lam * math.log1p(-t / lam))
                event = 2
            # energy loss at the step's middle
            de = s * dedx
            e_mid = e - 0.5 * min(de, e)
            if e_mid > 0.0:
                ig, fg = _grid(e_mid)
                de = s * (_at(s_table, mat, ig, fg) + soft * (e_mid + _M))
            de = min(de, e)
            if de > 0.0:
                _deposit(de, x + 0.5 * t * ux, y + 0.5 * t * uy, z + 0.5 * t * uz, slab,
                         z_edges, slab_active, slab_readout, slab_t0, slab_mat, mat_x0,
                         r_edges, n_alpha, prof_bw, rad_bw, vox, prof, rad, tot)  # fmt: skip
            e -= de
            theta0 = math.sqrt(s / lam)
            z1x, z2x = _normal2(rng)
            z1y, z2y = _normal2(rng)
            if event == 2:
                x += t * ux
                y += t * uy
                if uz > 0.0:
                    slab += 1
                    z = z_edges[slab]
                else:
                    z = z_lo
                    slab -= 1
                if slab < 0 or slab >= n_slab:
                    tot[2] += e + (2.0 * _M if kind == _POSITRON else 0.0)
                    break
            else:
                lat = t * theta0
                ox, oy, oz = _rotate(ux, uy, uz, lat * (z1x / math.sqrt(12.0) + 0.5 * z2x),
                                     lat * (z1y / math.sqrt(12.0) + 0.5 * z2y), 0.0)  # fmt: skip
                x += t * ux + ox
                y += t * uy + oy
                z = min(max(z + t * uz + oz, z_lo), z_hi)
            if x * x + y * y > r_world2:
                tot[2] += e + (2.0 * _M if kind == _POSITRON else 0.0)
                break
            tx = theta0 * z2x
            ty = theta0 * z2y
            theta = math.sqrt(tx * tx + ty * ty)
            if theta > 0.0:
                st = math.sin(theta)
                ux, uy, uz = _rotate(ux, uy, uz, st * tx / theta, st * ty / theta, math.cos(theta))
                norm = 1.0 / math.sqrt(ux * ux + uy * uy + uz * uz)
                ux *= norm
                uy *= norm
                uz *= norm
            if event == 1 and e > k_cut:
                etot = e + _M
                k = _brems_photon(rng, k_cut / etot, e / etot) * etot
                theta = _tsai(rng) * _M / etot
                gx, gy, gz = _turn(rng, ux, uy, uz, theta)
                stack = _push(stack, n, _PHOTON, k, x, y, z, gx, gy, gz, slab)
                n += 1
                e -= k
    return stack


@jit
def _brems_photon(rng: np.ndarray, yc: float, ym: float) -> float:
    """y = k/E from (4/3 − 4/3 y + y²)/y on [yc, ym]: 1/y sampled, the rest rejected."""
    span = math.log(ym / yc)
    while True:
        y = yc * math.exp(span * _uniform(rng))
        if 4.0 / 3.0 * _uniform(rng) <= 4.0 / 3.0 - 4.0 / 3.0 * y + y * y:
            return y


@jit
def _pair_split(rng: np.ndarray, k: float) -> float:
    """The electron's share of k: 1 − 4/3 ε(1 − ε) on [m/k, 1 − m/k] (complete screening)."""
    lo = _M / k
    while True:
        eps = lo + (1.0 - 2.0 * lo) * _uniform(rng)
        if _uniform(rng) <= 1.0 - 4.0 / 3.0 * eps * (1.0 - eps):
            return eps


@jit
def _klein_nishina(rng: np.ndarray, kappa: float) -> tuple[float, float]:
    """(k'/k, cos θ) from the Klein–Nishina cross section (Butcher & Messel, as Geant4)."""
    eps0 = 1.0 / (1.0 + 2.0 * kappa)
    eps0sq = eps0 * eps0
    alpha1 = -math.log(eps0)
    alpha2 = 0.5 * (1.0 - eps0sq)
    while True:
        if alpha1 / (alpha1 + alpha2) > _uniform(rng):
            eps = math.exp(-alpha1 * _uniform(rng))
            epssq = eps * eps
        else:
            epssq = eps0sq + (1.0 - eps0sq) * _uniform(rng)
            eps = math.sqrt(epssq)
        onecost = (1.0 - eps) / (eps * kappa)
        sint2 = onecost * (2.0 - onecost)
        if 1.0 - eps * sint2 / (1.0 + epssq) >= _uniform(rng):
            return eps, max(1.0 - onecost, -1.0)
