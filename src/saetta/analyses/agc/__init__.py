"""Stage: analyses (layer 9) — the Analysis Grand Challenge ttbar measurement.

The IRIS-HEP Analysis Grand Challenge (AGC) CMS open-data ttbar analysis, as
its reference implementations define it (iris-hep/analysis-grand-challenge,
``analyses/cms-open-data-ttbar``), run per sample over :class:`saetta.Samples`.
It reads NanoAOD branch names only, so it runs on the CMS open-data AGC files as
on the samples ``saetta generate agc`` writes.

Objects (every cut in double precision on the file's values):

- **electrons**: ``Electron_pt > 30``, ``|Electron_eta| < 2.1``,
  ``Electron_cutBased == 4`` (tight), ``Electron_sip3d < 4``;
- **muons**: ``Muon_pt > 30``, ``|Muon_eta| < 2.1``, ``Muon_tightId``,
  ``Muon_sip3d < 4``, ``Muon_pfRelIso04_all < 0.15``;
- **jets**: ``pT > 30`` (the varied pT, below), ``|Jet_eta| < 2.4``, tight lepton
  veto (``Jet_jetId & 4``), in file order (NanoAOD's: decreasing nominal pT);
- a jet is **b-tagged** when ``Jet_btagCSVV2 >= 0.5``.

Events: exactly one lepton (electron or muon), at least four jets, at least one
b-tagged jet. Regions and observables (11 bins from 110 to 550 GeV, ROOT's
``TH1::Fill`` rule: see :mod:`saetta.kernels`; NaN and +inf to the overflow):

- ``4j1b``: exactly one b-tagged jet; **HT**, the scalar sum of the selected jets'
  pT, summed in file order;
- ``4j2b``: two or more b-tagged jets; **m_bjj**, the mass of the three-jet
  combination (i < j < k, at least one of the three b-tagged) whose vector sum
  has the largest pT (the first such on ties; NaN pT is never the largest; an
  event left without one fills nothing); four-vectors from (pT, eta, phi, mass)
  in double precision, masses of space-like sums negative, as ROOT's ``M()``; an
  event whose m_bjj is NaN (from a NaN input) fills nothing.

Event weight: the sample's normalisation (``xsec × luminosity / generated``, see
:mod:`saetta.samples`) times ``genWeight``; data weigh 1. Cross-sections and the
luminosity (3378 pb^-1) are the AGC's (see :mod:`saetta.pythia`).

Variations, all in the one pass (:mod:`saetta.systematics`), filled for nominal
simulated samples; alternative samples (``variation_of``) and data fill
``nominal`` only:

- ``pt_scale_up``: every jet's pT × 1.03 in double precision (its mass, eta and
  phi unchanged), the selection run again;
- ``pt_res_up``: every jet's pT × (1 + 0.05 z), z from
  :func:`saetta.systematics.event_normal` with the stream ``"Jet.pt resolution"``,
  the jet's index counted over all the event's jets; the selection run again;
- ``btag_var_{i}_up`` / ``_down`` for i = 0 … 3: the weight × (1 ± 0.075 · pT_i / 50),
  pT_i the nominal pT of the event's i-th selected jet;
- ``scale_var_up`` / ``_down``: the weight × (1 ± 0.025) for W+jets (samples whose
  name starts with ``wjets``), × 1 for the others.

Jet–parton assignment (``4j2b``, nominal jets; :mod:`.assignment`): each of the
12 assignments of the first four selected jets to (W jet, W jet, hadronic-top b,
leptonic-top b) gets 16 features and a score from a small classifier, evaluated
with ONNX Runtime; the best-scoring assignment (first on ties) gives three more
histograms, nominal and every weight variation (no object variations: unlike the
AGC's pipeline, the model runs once per event, on the nominal jets):
``4j2b_ml_m_tophad`` (mass of the W jets and the hadronic b, 25 bins 50–550 GeV),
``4j2b_ml_m_w`` (mass of the two W jets, 25 bins 0–250 GeV) and ``4j2b_ml_score``
(the best score, 21 bins 0–1.05, so that a score of exactly 1 is in range). The
lepton's four-vector is the file's (pT, eta, phi, mass).

The result, per sample: ``{region: {variation: hist.Hist}}``, each histogram one
``Regular`` axis with ``Weight`` storage (sums of weights and of their squares).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import awkward as ak
import hist
import numpy as np

from saetta.kernels import fill, jit, mass_of, p4
from saetta.samples import Sample, event_weights, sample_of
from saetta.systematics import object_variants, scale, smear, weight_variants

__all__ = [
    "BINNING",
    "B_TAG",
    "LUMINOSITY_PB",
    "OBJECT_VARIATIONS",
    "REGIONS",
    "analysis",
    "variations_of",
]

LUMINOSITY_PB = 3378.0
B_TAG = 0.5

#: histogram name -> (bins, lo, hi, axis label)
BINNING: dict[str, tuple[int, float, float, str]] = {
    "4j1b": (11, 110.0, 550.0, r"$H_T$ [GeV]"),
    "4j2b": (11, 110.0, 550.0, r"$m_{bjj}$ [GeV]"),
    "4j2b_ml_m_tophad": (25, 50.0, 550.0, r"$m_{t,had}$ (best assignment) [GeV]"),
    "4j2b_ml_m_w": (25, 0.0, 250.0, r"$m_{W}$ (best assignment) [GeV]"),
    "4j2b_ml_score": (21, 0.0, 1.05, "best assignment score"),
}
REGIONS = ("4j1b", "4j2b")

OBJECT_VARIATIONS: dict[str, Callable[[Any], Any] | None] = {
    "nominal": None,
    "pt_scale_up": scale("Jet", "pt", 1.03),
    "pt_res_up": smear("Jet", "pt", 0.05, name="Jet.pt resolution"),
}


@dataclass(frozen=True, slots=True)
class _Selected:
    """One object variation's selected events of a region, for the weight variations."""

    jet_pt: np.ndarray  # (events, 4): the first four selected jets' pT
    wjets: bool


def _btag_factor(i: int, sign: float) -> Callable[[_Selected], Any]:
    def factor(selected: _Selected) -> Any:
        return 1.0 + sign * 0.075 * selected.jet_pt[:, i] / 50.0

    return factor


def _wjets_factor(value: float) -> Callable[[_Selected], Any]:
    def factor(selected: _Selected) -> Any:
        return value if selected.wjets else 1.0

    return factor


def _weight_variations() -> dict[str, Callable[[_Selected], Any]]:
    out = {
        f"btag_var_{i}_{name}": _btag_factor(i, sign)
        for i in range(4)
        for name, sign in (("up", 1.0), ("down", -1.0))
    }
    out["scale_var_up"] = _wjets_factor(1.025)
    out["scale_var_down"] = _wjets_factor(0.975)
    return out


WEIGHT_VARIATIONS = _weight_variations()


def variations_of(sample: Sample | None) -> tuple[str, ...]:
    """The variations a sample's histograms have: all for a nominal simulated sample
    (and outside a samples run), ``nominal`` alone for alternative samples and data."""
    if sample is not None and (sample.role == "data" or not sample.is_nominal):
        return ("nominal",)
    return (*OBJECT_VARIATIONS, *WEIGHT_VARIATIONS)


def analysis(events: ak.Array) -> dict[str, Any]:
    """The AGC histograms of one unit's events (see the module docstring)."""
    from saetta.analyses.agc import assignment

    sample = sample_of(events)
    names = variations_of(sample)
    full = len(names) > 1
    wjets = sample is not None and sample.name.startswith("wjets")
    counts = _Counts(names)
    weights = event_weights(events)
    lepton = select_lepton(events)
    objects = OBJECT_VARIATIONS if full else {"nominal": None}
    for name, varied in object_variants(events, objects):
        jets = _jets(varied)
        n_jets, n_b = jets.counts()
        selected = (lepton.count == 1) & (n_jets >= 4) & (n_b >= 1)
        for region, in_region in (("4j1b", selected & (n_b == 1)), ("4j2b", selected & (n_b >= 2))):
            picked = np.flatnonzero(in_region)
            sub = jets.take(picked)
            observable = _ht(sub) if region == "4j1b" else _trijet_mass(sub)
            weight_vars = WEIGHT_VARIATIONS if (full and name == "nominal") else {}
            context = _Selected(sub.first_four_pt(), wjets)
            fills = list(weight_variants(weights[picked], context, weight_vars, prefix=name))
            for variation, w in fills:
                ok = ~np.isnan(observable)
                counts.fill(region, variation, observable[ok], w[ok])
            if region == "4j2b" and name == "nominal":
                best = assignment.best(sub, lepton.take(picked))
                for variation, w in fills:
                    counts.fill("4j2b_ml_m_tophad", variation, best.m_tophad, w)
                    counts.fill("4j2b_ml_m_w", variation, best.m_w, w)
                    counts.fill("4j2b_ml_score", variation, best.score, w)
    return counts.histograms()


class _Counts:
    """Sums of weights and of their squares per histogram and variation, with flow bins."""

    def __init__(self, variations: tuple[str, ...]) -> None:
        # the ML observables come from the nominal jets: no object variations of them
        varied = set(OBJECT_VARIATIONS) - {"nominal"}
        self.sums = {
            (h, v): (np.zeros(b + 2), np.zeros(b + 2))
            for h, (b, _, _, _) in BINNING.items()
            for v in variations
            if h in REGIONS or v not in varied
        }

    def fill(self, name: str, variation: str, values: np.ndarray, weights: np.ndarray) -> None:
        _, lo, hi, _ = BINNING[name]
        sumw, sumw2 = self.sums[name, variation]
        fill(sumw, values, lo, hi, weights, sumw2)

    def histograms(self) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for (name, variation), (sumw, sumw2) in self.sums.items():
            bins, lo, hi, label = BINNING[name]
            h: Any = hist.Hist(
                hist.axis.Regular(bins, lo, hi, name="x", label=label),
                storage=hist.storage.Weight(),
                name=f"{name}/{variation}",
            )
            view = h.view(flow=True)
            view["value"] = sumw
            view["variance"] = sumw2
            out.setdefault(name, {})[variation] = h
        return out


@dataclass(frozen=True, slots=True)
class Leptons:
    """The leptons passing the selection: how many each event has, and, for events with
    exactly one, its (pt, eta, phi, mass) (NaN elsewhere)."""

    count: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray

    def take(self, index: np.ndarray) -> Leptons:
        return Leptons(*(a[index] for a in (self.count, self.pt, self.eta, self.phi, self.mass)))


def select_lepton(events: ak.Array) -> Leptons:
    # fields by name: through vector's Momentum4D properties (e.pt) each costs ~15x more
    e, m = events.Electron, events.Muon
    e_off, e_pt = _jagged(e["pt"])
    e_ok = (
        (_double(e_pt) > 30.0)
        & (np.abs(_double(_content(e["eta"]))) < 2.1)
        & (_content(e["cutBased"]) == 4)
        & (_double(_content(e["sip3d"])) < 4.0)
    )
    m_off, m_pt = _jagged(m["pt"])
    m_ok = (
        (_double(m_pt) > 30.0)
        & (np.abs(_double(_content(m["eta"]))) < 2.1)
        & _content(m["tightId"]).astype(bool)
        & (_double(_content(m["sip3d"])) < 4.0)
        & (_double(_content(m["pfRelIso04_all"])) < 0.15)
    )
    n = len(e_off) - 1
    count = _segment_count(e_ok, e_off) + _segment_count(m_ok, m_off)
    out = [np.full(n, np.nan) for _ in range(4)]
    for offsets, ok, collection in ((e_off, e_ok, e), (m_off, m_ok, m)):
        index = np.flatnonzero(ok)
        owner = np.searchsorted(offsets, index, side="right") - 1
        keep = count[owner] == 1
        for target, field in zip(out, ("pt", "eta", "phi", "mass"), strict=True):
            target[owner[keep]] = _content(collection[field])[index[keep]]
    return Leptons(count, *out)


@dataclass(frozen=True, slots=True)
class Jets:
    """The selected jets of some events, flat in file order, with their offsets."""

    offsets: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    btag: np.ndarray

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        n_b = _segment_count(_double(self.btag) >= B_TAG, self.offsets)
        return np.diff(self.offsets), n_b

    def take(self, index: np.ndarray) -> Jets:
        """The jets of the events at ``index``."""
        offsets, flat = self.positions(index)
        return Jets(
            offsets, *(a[flat] for a in (self.pt, self.eta, self.phi, self.mass, self.btag))
        )

    def positions(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The offsets of the events at ``index``, and where their jets are in the flat arrays."""
        starts, stops = self.offsets[index], self.offsets[index + 1]
        counts = stops - starts
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets, np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])

    def first_four_pt(self) -> np.ndarray:
        index = self.offsets[:-1, None] + np.arange(4)
        safe = np.minimum(index, max(len(self.pt) - 1, 0))
        four = self.pt[safe] if len(self.pt) else np.zeros(index.shape)
        return np.where(index < self.offsets[1:, None], four, np.nan).astype(np.float64)


def _jets(events: ak.Array) -> Jets:
    return select_jets(events)[0]


def select_jets(events: ak.Array, extra: str | None = None) -> tuple[Jets, np.ndarray | None]:
    """The selected jets of every event, and their ``Jet_<extra>`` values (training truth)."""
    jets = events.Jet
    offsets, pt = _jagged(jets["pt"])
    eta = _content(jets["eta"])
    ok = (_double(pt) > 30.0) & (np.abs(_double(eta)) < 2.4) & ((_content(jets["jetId"]) & 4) != 0)
    counts = _segment_count(ok, offsets)
    selected = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=selected[1:])
    chosen = Jets(
        selected,
        pt[ok],
        eta[ok],
        _content(jets["phi"])[ok],
        _content(jets["mass"])[ok],
        _content(jets["btagCSVV2"])[ok],
    )
    return chosen, (_content(jets[extra])[ok] if extra else None)


def _ht(jets: Jets) -> np.ndarray:
    out = np.empty(len(jets.offsets) - 1)
    _sum_pt(jets.offsets, jets.pt, out)
    return out


def _trijet_mass(jets: Jets) -> np.ndarray:
    out = np.empty(len(jets.offsets) - 1)
    _best_trijet(jets.offsets, jets.pt, jets.eta, jets.phi, jets.mass, jets.btag, B_TAG, out)
    return out


@jit
def _sum_pt(offsets: np.ndarray, pt: np.ndarray, out: np.ndarray) -> None:
    for e in range(len(out)):
        total = 0.0
        for i in range(offsets[e], offsets[e + 1]):
            total += np.float64(pt[i])
        out[e] = total


@jit
def _best_trijet(
    offsets: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    mass: np.ndarray,
    btag: np.ndarray,
    threshold: float,
    out: np.ndarray,
) -> None:
    for e in range(len(out)):
        best_pt = -1.0
        best_mass = math.nan
        lo, hi = offsets[e], offsets[e + 1]
        for i in range(lo, hi):
            ax, ay, az, ae = p4(
                np.float64(pt[i]), np.float64(eta[i]), np.float64(phi[i]), np.float64(mass[i])
            )
            for j in range(i + 1, hi):
                bx, by, bz, be = p4(
                    np.float64(pt[j]), np.float64(eta[j]), np.float64(phi[j]), np.float64(mass[j])
                )
                for k in range(j + 1, hi):
                    if not (btag[i] >= threshold or btag[j] >= threshold or btag[k] >= threshold):
                        continue
                    cx, cy, cz, ce = p4(
                        np.float64(pt[k]),
                        np.float64(eta[k]),
                        np.float64(phi[k]),
                        np.float64(mass[k]),
                    )
                    px, py = ax + bx + cx, ay + by + cy
                    sum_pt = math.sqrt(px * px + py * py)
                    if sum_pt > best_pt:
                        best_pt = sum_pt
                        best_mass = mass_of(px, py, az + bz + cz, ae + be + ce)
        out[e] = best_mass


def _jagged(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """A jagged column's offsets (from 0) and its content, exactly the events' values."""
    layout = ak.to_layout(array)
    offsets = np.asarray(layout.offsets.data)
    content = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
    return offsets - offsets[0], content


def _content(array: ak.Array) -> np.ndarray:
    return _jagged(array)[1]


def _double(values: np.ndarray) -> np.ndarray:
    # float32(2.1) < 2.1 in double precision, not in float32: the cuts are in double
    return values.astype(np.float64, copy=False)


def _segment_count(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    before = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=before[1:])
    counts: np.ndarray = np.diff(before[offsets])
    return counts
