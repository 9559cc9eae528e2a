"""Stage: fast simulation (layer 7) — materials and sampling calorimeters for the shower MC.

A :class:`Material` carries its PDG constants (radiation length, critical
energy, Molière radius, mean excitation energy, Sternheimer density-effect
parameters) and the fits the shower Monte Carlo (:mod:`~saetta.fastsim.shower_mc`)
needs for photo-absorption; its methods give the photon attenuation
coefficients and the electron stopping power as numpy functions of energy,
from which the Monte Carlo builds its tables. ``docs/shower_physics.md`` says
where every number comes from.

A :class:`Calorimeter` is a stack of ``layers`` physical sampling layers, each
an absorber slab then an active slab (normal to z, laterally unbounded), read
out in groups of ``readout_group`` layers into ``r_edges_mm`` × ``n_alpha``
voxels (:class:`~saetta.fastsim.binning.Binning`). A zero absorber thickness
makes a homogeneous calorimeter of the active material.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from saetta.errors import DatasetError
from saetta.fastsim.binning import Binning

__all__ = [
    "CALORIMETERS",
    "DEFAULT",
    "LEAD",
    "SCINTILLATOR",
    "SILICON",
    "TUNGSTEN",
    "Calorimeter",
    "Material",
]

ELECTRON_MASS_MEV = 0.51099895
#: Rossi's scale energy, sqrt(4π/α) m_e c², of R_M = E_s X0 / E_c.
SCALE_ENERGY_MEV = 21.2052
_AVOGADRO = 6.02214076e23
_RE_CM = 2.8179403262e-13  # classical electron radius
_BETHE_K_HALF = 0.1535375  # 2π N_A r_e² m_e c², MeV cm²/mol
_LN10 = math.log(10.0)


@dataclass(frozen=True)
class Material:
    """A calorimeter material: PDG constants and the photo-absorption fit.

    ``Z`` and ``A`` are effective values for a compound (their ratio is the
    compound's Z/A, which sets its electron density). Photo-absorption is
    ``photo_cm2_g × (E / photo_ref_mev)^(-photo_index)`` above the K edge and
    ``photo_below_cm2_g × (E / 50 keV)^(-photo_below_index)`` below it.
    """

    name: str
    Z: float
    A: float
    density_g_cm3: float
    X0_cm: float
    critical_energy_MeV: float
    moliere_radius_cm: float
    mean_excitation_eV: float
    # Sternheimer density-effect parameters (-C, x0, x1, a, k, delta0), PDG tables
    sternheimer: tuple[float, float, float, float, float, float]
    photo_cm2_g: float
    photo_index: float
    photo_ref_mev: float = 0.1
    k_edge_mev: float = 0.0
    photo_below_cm2_g: float = 0.0
    photo_below_index: float = 0.0

    @property
    def minimum_ionisation_mev_cm(self) -> float:
        """The minimum of the electron collision stopping power (MeV/cm)."""
        return float(self.collision_stopping_power(np.geomspace(0.1, 1e4, 801)).min())

    @property
    def electron_density_cm3(self) -> float:
        return self.density_g_cm3 * _AVOGADRO * self.Z / self.A

    def pair_cm(self, energy_mev: np.ndarray) -> np.ndarray:
        """Pair-production attenuation (1/cm): 7/(9 X0) times the shape of Urban's
        parametrisation of the Storm–Israel / Hubbell cross sections (Geant4's
        G4BetheHeitlerModel), normalised to 1 at 100 GeV and held there above."""
        k = np.asarray(energy_mev, dtype=np.float64)
        shape = _urban_pair(k, self.Z) / _urban_pair(np.array([1e5]), self.Z)[0]
        shape = np.where(k >= 1e5, 1.0, shape)
        return 7.0 / (9.0 * self.X0_cm) * shape

    def compton_cm(self, energy_mev: np.ndarray) -> np.ndarray:
        """Klein–Nishina total cross section per free electron × electron density (1/cm)."""
        kappa = np.asarray(energy_mev, dtype=np.float64) / ELECTRON_MASS_MEV
        l2k = np.log1p(2 * kappa)
        sigma = (
            2
            * math.pi
            * _RE_CM**2
            * (
                (1 + kappa) / kappa**2 * (2 * (1 + kappa) / (1 + 2 * kappa) - l2k / kappa)
                + l2k / (2 * kappa)
                - (1 + 3 * kappa) / (1 + 2 * kappa) ** 2
            )
        )
        return sigma * self.electron_density_cm3

    def photo_cm(self, energy_mev: np.ndarray) -> np.ndarray:
        """Photo-absorption (1/cm): the power-law fits, a K edge for W and Pb."""
        e = np.asarray(energy_mev, dtype=np.float64)
        mass: np.ndarray = self.photo_cm2_g * (e / self.photo_ref_mev) ** (-self.photo_index)
        if self.k_edge_mev > 0:
            below = self.photo_below_cm2_g * (e / 0.05) ** (-self.photo_below_index)
            mass = np.where(e >= self.k_edge_mev, mass, below)
        return mass * self.density_g_cm3

    def collision_stopping_power(
        self, kinetic_mev: np.ndarray, *, positron: bool = False
    ) -> np.ndarray:
        """Mean collision energy loss (MeV/cm) of electrons or positrons: the Bethe
        formula as Berger & Seltzer (ICRU 37) write it, with Sternheimer's density effect."""
        t = np.asarray(kinetic_mev, dtype=np.float64)
        tau = t / ELECTRON_MASS_MEV
        gamma = tau + 1
        beta2 = 1 - 1 / gamma**2
        if positron:
            y = 1 / (tau + 2)
            f = 2 * math.log(2) - beta2 / 12 * (23 + 14 * y + 10 * y**2 + 4 * y**3)
        else:
            f = 1 - beta2 + (tau**2 / 8 - (2 * tau + 1) * math.log(2)) / gamma**2
        i_ratio = self.mean_excitation_eV * 1e-6 / ELECTRON_MASS_MEV
        log_term = np.log(tau**2 * (tau + 2) / (2 * i_ratio**2))
        s = _BETHE_K_HALF * self.Z / self.A / beta2 * (log_term + f - self._density_effect(t))
        out: np.ndarray = np.maximum(s, 0.0) * self.density_g_cm3
        return out

    def _density_effect(self, kinetic_mev: np.ndarray) -> np.ndarray:
        c_bar, x0, x1, a, k, delta0 = self.sternheimer
        p = np.sqrt(kinetic_mev * (kinetic_mev + 2 * ELECTRON_MASS_MEV))
        x = np.log10(p / ELECTRON_MASS_MEV)
        high = 2 * _LN10 * x - c_bar
        middle = high + a * np.clip(x1 - x, 0, None) ** k
        low = delta0 * 10 ** (2 * (x - x0))
        return np.where(x >= x1, high, np.where(x >= x0, middle, low))


def _urban_pair(k: np.ndarray, z: float) -> np.ndarray:
    """L. Urban's fit to the pair cross section per atom (μb), 1.5 MeV–100 GeV, with
    Geant4's (E − 2m)² threshold shape below 1.5 MeV."""
    a = (8.7842e2, -1.9625e3, 1.2949e3, -2.0028e2, 1.2575e1, -2.8333e-1)
    b = (-1.0342e1, 1.7692e1, -8.2381, 1.3063, -9.0815e-2, 2.3586e-3)
    c = (-4.5263e2, 1.1161e3, -8.6749e2, 2.1773e2, -2.0467e1, 6.5372e-1)
    limit = 1.5
    ke = np.clip(k, limit, 1e5)
    x = np.log(ke / ELECTRON_MASS_MEV)
    f1 = sum(ai * x**i for i, ai in enumerate(a))
    f2 = sum(bi * x**i for i, bi in enumerate(b))
    f3 = sum(ci * x**i for i, ci in enumerate(c))
    sigma = (z + 1) * (f1 * z + f2 * z * z + f3)
    threshold = np.clip((k - 2 * ELECTRON_MASS_MEV) / (limit - 2 * ELECTRON_MASS_MEV), 0, 1)
    sigma = np.where(k < limit, sigma * threshold**2, sigma)
    return np.where(k <= 2 * ELECTRON_MASS_MEV, 0.0, np.maximum(sigma, 0.0))


# PDG "Atomic and nuclear properties of materials"; photo-absorption fitted to the
# Elam/NIST photoelectric tables (20 keV–600 keV, within 7 %).
TUNGSTEN = Material(
    "tungsten", 74, 183.84, 19.3, 0.3504, 7.97, 0.9327, 727.0,
    (5.4059, 0.2167, 3.4960, 0.15509, 2.8447, 0.14),
    photo_cm2_g=4.078, photo_index=2.642, k_edge_mev=0.069525,
    photo_below_cm2_g=5.278, photo_below_index=2.731,
)  # fmt: skip
LEAD = Material(
    "lead", 82, 207.2, 11.35, 0.5612, 7.43, 1.602, 823.0,
    (6.2018, 0.3776, 3.8073, 0.09359, 3.1608, 0.14),
    photo_cm2_g=5.141, photo_index=2.580, k_edge_mev=0.0880045,
    photo_below_cm2_g=7.230, photo_below_index=2.697,
)  # fmt: skip
SILICON = Material(
    "silicon", 14, 28.0855, 2.329, 9.370, 40.19, 4.944, 173.0,
    (4.4355, 0.2015, 2.8716, 0.14921, 3.2546, 0.14),
    photo_cm2_g=0.02511, photo_index=3.180,
)  # fmt: skip
#: Polystyrene (C8H8), PDG's plastic scintillator: Z, A per atom (Z/A = 0.5377).
SCINTILLATOR = Material(
    "scintillator", 3.5, 6.5096, 1.060, 41.31, 93.11, 9.410, 68.7,
    (3.2999, 0.1647, 2.5031, 0.16454, 3.2224, 0.0),
    photo_cm2_g=0.000973, photo_index=3.305,
)  # fmt: skip


@dataclass(frozen=True)
class Calorimeter:
    """A sampling calorimeter: ``layers`` × (absorber slab, active slab) along z.

    Energies deposited in the active slabs of each group of ``readout_group``
    layers fill one readout layer of ``len(r_edges_mm) - 1`` radial ×
    ``n_alpha`` angular voxels. The slabs are laterally unbounded.
    """

    name: str
    absorber: Material
    absorber_mm: float
    active: Material
    active_mm: float
    layers: int
    readout_group: int
    r_edges_mm: tuple[float, ...]
    n_alpha: int

    def __post_init__(self) -> None:
        if self.absorber_mm < 0 or self.active_mm <= 0:
            msg = (
                f"calorimeter {self.name!r}: give active_mm > 0 and absorber_mm >= 0, "
                f"not {self.active_mm} and {self.absorber_mm}"
            )
            raise DatasetError(msg)
        if self.layers < 1 or self.readout_group < 1 or self.layers % self.readout_group:
            msg = (
                f"calorimeter {self.name!r}: layers ({self.layers}) must be a positive "
                f"multiple of readout_group ({self.readout_group})"
            )
            raise DatasetError(msg)

    def binning(self, particle: str = "electron") -> Binning:
        """The voxels of this calorimeter's showers, as the CaloChallenge describes them."""
        pid = {"electron": 11, "photon": 22}.get(particle)
        if pid is None:
            msg = f"no binning for particle {particle!r}: use 'electron' or 'photon'"
            raise DatasetError(msg)
        return Binning.regular(
            self.layers // self.readout_group,
            self.r_edges_mm,
            self.n_alpha,
            particle=particle,
            pid=pid,
        )

    @property
    def homogeneous(self) -> bool:
        return self.absorber_mm == 0

    @property
    def layer_mm(self) -> float:
        return self.absorber_mm + self.active_mm

    @property
    def depth_mm(self) -> float:
        return self.layers * self.layer_mm

    @property
    def layer_x0(self) -> float:
        """One sampling layer's thickness in radiation lengths."""
        return self.absorber_mm / (10 * self.absorber.X0_cm) + self.active_mm / (
            10 * self.active.X0_cm
        )

    @property
    def depth_x0(self) -> float:
        return self.layers * self.layer_x0

    @property
    def x0_mm(self) -> float:
        """The effective radiation length of the stack (mm of stack per X0)."""
        return self.layer_mm / self.layer_x0

    @property
    def critical_energy_mev(self) -> float:
        """The effective critical energy: ionisation loss per X0 of the stack, each
        material's E_c/X0 weighted by its share of the thickness (PDG's mixture rule)."""
        return self.x0_mm * self._ec_over_x0_per_mm

    @property
    def moliere_radius_mm(self) -> float:
        """The effective Molière radius, 1/R_M = Σ f_j E_cj / (E_s X0_j) (PDG's mixture rule)."""
        return SCALE_ENERGY_MEV / self._ec_over_x0_per_mm

    @property
    def _ec_over_x0_per_mm(self) -> float:
        f_abs = self.absorber_mm / self.layer_mm
        return f_abs * self.absorber.critical_energy_MeV / (10 * self.absorber.X0_cm) + (
            1 - f_abs
        ) * self.active.critical_energy_MeV / (10 * self.active.X0_cm)

    @property
    def mip_sampling_fraction(self) -> float:
        """The active share of a minimum-ionising electron's collision loss per layer."""
        active = self.active_mm * self.active.minimum_ionisation_mev_cm
        absorber = self.absorber_mm * self.absorber.minimum_ionisation_mev_cm
        return active / (active + absorber)


#: A Si–W ECAL: 24 × (3.5 mm W + 0.5 mm Si) = 24.1 X0, read out in 12 layers × 9 × 4.
DEFAULT = Calorimeter(
    "si-w",
    absorber=TUNGSTEN,
    absorber_mm=3.5,
    active=SILICON,
    active_mm=0.5,
    layers=24,
    readout_group=2,
    r_edges_mm=(0, 2, 4.5, 7, 10, 14, 20, 30, 45, 80),
    n_alpha=4,
)

#: A block of tungsten read out whole (30 X0): the textbook profile and Molière checks.
HOMOGENEOUS_TUNGSTEN = Calorimeter(
    "homogeneous-w",
    absorber=TUNGSTEN,
    absorber_mm=0.0,
    active=TUNGSTEN,
    active_mm=1.25 * 3.504,
    layers=24,
    readout_group=2,
    r_edges_mm=(0, 2, 4.5, 7, 10, 14, 20, 30, 45, 80),
    n_alpha=4,
)

#: A lead/scintillator sampling calorimeter: 48 × (2.8 mm Pb + 4 mm scintillator) = 24.4 X0.
LEAD_SCINTILLATOR = Calorimeter(
    "pb-scint",
    absorber=LEAD,
    absorber_mm=2.8,
    active=SCINTILLATOR,
    active_mm=4.0,
    layers=48,
    readout_group=4,
    r_edges_mm=(0, 5, 10, 16, 23, 32, 45, 65, 100, 180),
    n_alpha=4,
)

CALORIMETERS: MappingProxyType[str, Calorimeter] = MappingProxyType(
    {c.name: c for c in (DEFAULT, HOMOGENEOUS_TUNGSTEN, LEAD_SCINTILLATOR)}
)
