"""An independent, per-event reference for saetta's AGC ttbar analysis.

Written from the module docstrings alone (``saetta.analyses.agc``, its ``assignment``
module, ``saetta.systematics``, ``saetta.kernels`` and ``saetta.samples``), never from
the product's code: plain Python loops over events, lists from the files, Python floats
(float64) converted exactly from the file's float32 values, ``math`` for the
functions, Python ints for the counter-based random numbers, and per-bin sums filled
by ROOT's ``TH1::Fill`` rule one value at a time.  The only things taken from the
product are constants (the binning table) and the path of the ONNX model, which is
evaluated here with ONNX Runtime directly.

Where the docstrings leave a choice open, the choice made here is written next to it
(``Reading:``), so a disagreement with the product can be traced to a sentence.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- constants
# From the docstring of saetta.analyses.agc (written out here, checked against the
# product's table by the tests).
LUMINOSITY_PB = 3378.0
B_TAG = 0.5
SCALE = 1.03
RESOLUTION = 0.05
RESOLUTION_STREAM = "Jet.pt resolution"
OBJECT_VARIATIONS = ("nominal", "pt_scale_up", "pt_res_up")
WEIGHT_VARIATIONS = tuple(
    [f"btag_var_{i}_{d}" for i in range(4) for d in ("up", "down")]
    + ["scale_var_up", "scale_var_down"]
)
ALL_VARIATIONS = OBJECT_VARIATIONS + WEIGHT_VARIATIONS
ML_HISTOGRAMS = ("4j2b_ml_m_tophad", "4j2b_ml_m_w", "4j2b_ml_score")

BRANCHES = [
    "run", "luminosityBlock", "event", "genWeight",
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
    "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass",
    "Electron_cutBased", "Electron_sip3d",
    "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_tightId", "Muon_sip3d",
    "Muon_pfRelIso04_all",
]  # fmt: skip

MASK64 = 0xFFFFFFFFFFFFFFFF


# ----------------------------------------------------------------------------- input
def read_events(path: str | Path) -> dict[str, list[Any]]:
    """The branches as Python lists (of lists for collections), float32 -> float exactly."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=BRANCHES)
        return {name: table.column(name).to_pylist() for name in BRANCHES}
    import uproot

    with uproot.open(path) as f:
        arrays = f["Events"].arrays(BRANCHES, library="ak")
        return {name: arrays[name].tolist() for name in BRANCHES}


# ------------------------------------------------------------------ random numbers
def _mix(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def stream_of(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


def normal(stream: int, run: int, lumi: int, event: int, j: int) -> float:
    """The standard normal of object ``j`` of the event (saetta.systematics' generator)."""
    key = _mix(_mix(_mix(_mix(stream) ^ run) ^ lumi) ^ event)
    h1 = _mix((key + 2 * j) & MASK64)
    h2 = _mix((key + 2 * j + 1) & MASK64)
    u1 = (h1 >> 11) / 2.0**53
    u2 = (h2 >> 11) / 2.0**53
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


# ------------------------------------------------------------------------ kinematics
def four_vector(pt: float, eta: float, phi: float, m: float) -> tuple[float, float, float, float]:
    px = pt * math.cos(phi)
    py = pt * math.sin(phi)
    pz = pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m)


def vector_sum(*vs: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    px = py = pz = e = 0.0
    for v in vs:  # in the order given
        px += v[0]
        py += v[1]
        pz += v[2]
        e += v[3]
    return px, py, pz, e


def mass(v: tuple[float, float, float, float]) -> float:
    """ROOT's PxPyPzE4D::M(): negative for space-like (M2 < 0)."""
    px, py, pz, e = v
    m2 = e * e - px * px - py * py - pz * pz
    return math.sqrt(m2) if m2 >= 0 else -math.sqrt(-m2)


def transverse(v: tuple[float, float, float, float]) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1])


def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    # Reading: "Δφ wrapped into [-π, π]" -- one shift by 2π (inputs are within [-π, π],
    # so their difference is within [-2π, 2π]).
    dphi = phi1 - phi2
    if dphi > math.pi:
        dphi -= 2.0 * math.pi
    elif dphi < -math.pi:
        dphi += 2.0 * math.pi
    deta = eta1 - eta2
    return math.sqrt(deta * deta + dphi * dphi)


# -------------------------------------------------------------------------- filling
def find_bin(x: float, nbins: int, lo: float, hi: float) -> int:
    """ROOT's TH1::Fill: 0 underflow, nbins + 1 overflow (x >= hi and NaN)."""
    if math.isnan(x):
        return nbins + 1
    if x < lo:
        return 0
    if x >= hi:
        return nbins + 1
    return 1 + int(nbins * (x - lo) / (hi - lo))


@dataclass
class Hist1D:
    nbins: int
    lo: float
    hi: float
    values: list[float] = field(default_factory=list)
    variances: list[float] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.values = [0.0] * (self.nbins + 2)
        self.variances = [0.0] * (self.nbins + 2)
        self.entries = [0] * (self.nbins + 2)

    def fill(self, x: float, w: float) -> None:
        b = find_bin(x, self.nbins, self.lo, self.hi)
        self.values[b] += w
        self.variances[b] += w * w
        self.entries[b] += 1


# ------------------------------------------------------------------------- analysis
ASSIGNMENTS: list[tuple[int, int, int, int]] = []  # (W1, W2, hadronic b, leptonic b)
for _h in range(4):
    for _l in range(4):
        if _l != _h:
            _w = [k for k in range(4) if k not in (_h, _l)]
            ASSIGNMENTS.append((_w[0], _w[1], _h, _l))


def lepton_of(ev: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """(pt, eta, phi, mass) of the one selected lepton, or None if not exactly one."""
    found = []
    for pt, eta, phi, m, cut, sip in zip(
        ev["Electron_pt"], ev["Electron_eta"], ev["Electron_phi"], ev["Electron_mass"],
        ev["Electron_cutBased"], ev["Electron_sip3d"], strict=True,
    ):  # fmt: skip
        if pt > 30 and abs(eta) < 2.1 and cut == 4 and sip < 4:
            found.append((pt, eta, phi, m))
    for pt, eta, phi, m, tight, sip, iso in zip(
        ev["Muon_pt"], ev["Muon_eta"], ev["Muon_phi"], ev["Muon_mass"], ev["Muon_tightId"],
        ev["Muon_sip3d"], ev["Muon_pfRelIso04_all"], strict=True,
    ):  # fmt: skip
        if pt > 30 and abs(eta) < 2.1 and tight and sip < 4 and iso < 0.15:
            found.append((pt, eta, phi, m))
    return found[0] if len(found) == 1 else None


def varied_pt(ev: dict[str, Any], variation: str, stream: int) -> list[float]:
    pts = ev["Jet_pt"]
    if variation == "nominal":
        return list(pts)
    if variation == "pt_scale_up":
        # Reading: "every jet's pT × 1.03", "every cut in double precision on the file's
        # values": the file's value (as a double) times the double 1.03.
        return [pt * SCALE for pt in pts]
    # pt_res_up: pT × (1 + 0.05 z), z of the jet's index over all the event's jets.
    return [
        pt * (1.0 + RESOLUTION * normal(stream, ev["run"], ev["luminosityBlock"], ev["event"], j))
        for j, pt in enumerate(pts)
    ]


def select_jets(ev: dict[str, Any], pts: list[float]) -> list[int]:
    return [
        j
        for j, (pt, eta, jet_id) in enumerate(zip(pts, ev["Jet_eta"], ev["Jet_jetId"], strict=True))
        if pt > 30 and abs(eta) < 2.4 and (jet_id & 4)
    ]


def m_bjj(ev: dict[str, Any], pts: list[float], jets: list[int]) -> float | None:
    """The trijet mass, or None when the event fills nothing."""
    vectors = [
        four_vector(pts[j], ev["Jet_eta"][j], ev["Jet_phi"][j], ev["Jet_mass"][j]) for j in jets
    ]
    tagged = [ev["Jet_btagCSVV2"][j] >= B_TAG for j in jets]
    best_pt = None
    best_mass = None
    n = len(jets)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                if not (tagged[i] or tagged[j] or tagged[k]):
                    continue
                total = vector_sum(vectors[i], vectors[j], vectors[k])
                pt = transverse(total)
                if math.isnan(pt):  # NaN pT is never the largest
                    continue
                if best_pt is None or pt > best_pt:  # first on ties
                    best_pt = pt
                    best_mass = mass(total)
    if best_mass is None or math.isnan(best_mass):  # none, or NaN mass: fill nothing
        return None
    return best_mass


def assignment_features(
    ev: dict[str, Any], lepton: tuple[float, float, float, float], jets: list[int]
) -> list[list[float]]:
    """The 12 x 16 features (doubles) of the first four selected (nominal) jets."""
    first = jets[:4]
    pt = [ev["Jet_pt"][j] for j in first]
    eta = [ev["Jet_eta"][j] for j in first]
    phi = [ev["Jet_phi"][j] for j in first]
    btag = [ev["Jet_btagCSVV2"][j] for j in first]
    vec = [four_vector(pt[a], eta[a], phi[a], ev["Jet_mass"][j]) for a, j in enumerate(first)]
    lpt, leta, lphi, lm = lepton
    lvec = four_vector(lpt, leta, lphi, lm)
    rows = []
    for w1, w2, h, lb in ASSIGNMENTS:
        whad = vector_sum(vec[w1], vec[w2])
        top = vector_sum(vec[w1], vec[w2], vec[h])
        rows.append(
            [
                delta_r(leta, lphi, eta[lb], phi[lb]),
                delta_r(eta[w1], phi[w1], eta[w2], phi[w2]),
                delta_r(eta[w1], phi[w1], eta[h], phi[h]),
                delta_r(eta[w2], phi[w2], eta[h], phi[h]),
                mass(vector_sum(lvec, vec[lb])),
                mass(whad),
                mass(top),
                transverse(top),
                pt[w1], pt[w2], pt[h], pt[lb],
                btag[w1], btag[w2], btag[h], btag[lb],
            ]
        )  # fmt: skip
    return rows


def scores_of(features: np.ndarray, model: str | Path) -> list[float]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    if len(features) == 0:
        return []
    name = session.get_inputs()[0].name
    probabilities = session.run(None, {name: features})[1]
    return np.asarray(probabilities)[:, 1].tolist()


def first_max(values: list[float]) -> int:
    # Reading: "the best-scoring assignment (first on ties)": strict '>' from the first.
    # The docstring does not say what a NaN score does; here a NaN never beats a number
    # (and a NaN first is beaten by any number).  Events where it matters are counted
    # in Reference.nan_scores.
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best] or (math.isnan(values[best]) and not math.isnan(values[i])):
            best = i
    return best


@dataclass
class Reference:
    hists: dict[str, dict[str, Hist1D]]
    # diagnostics, to show the inputs exercise the edges
    n_events: int = 0
    jets_at_30: int = 0  # selected-candidate jets (|eta|, id pass) with pT exactly 30
    jets_just_below_30: int = 0
    selected_btag_at_cut: int = 0  # selected jets, in selected events, btag exactly 0.5
    nan_jet_pt: int = 0
    nan_muon_iso: int = 0
    inf_jet_mass_in_4j2b: int = 0
    nan_scores: int = 0  # 4j2b events with a NaN among their 12 scores
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # variation -> region -> n
    selected: list[int] = field(default_factory=list)  # indices of events in a region (any)
    best_counts: list[int] = field(default_factory=lambda: [0] * 12)  # best assignment index


def reference_histograms(
    path: str | Path,
    *,
    binning: dict[str, tuple[Any, ...]],
    model: str | Path,
    norm: float | None,
    wjets: bool = False,
    nominal_only: bool = False,
) -> Reference:
    """All histograms of one sample's file.

    ``norm`` is ``xsec × luminosity / generated`` (None for data, which weigh 1);
    ``nominal_only`` for alternative samples and data.
    """
    cols = read_events(path)
    n = len(cols["event"])
    variations = ("nominal",) if nominal_only else ALL_VARIATIONS
    # Reading: the ML observables have "nominal and every weight variation" only.
    jet_varied = {"pt_scale_up", "pt_res_up"}
    hists = {
        name: {
            v: Hist1D(int(spec[0]), float(spec[1]), float(spec[2]))
            for v in variations
            if not (name.startswith("4j2b_ml") and v in jet_varied)
        }
        for name, spec in binning.items()
    }
    ref = Reference(hists=hists, n_events=n)
    ref.events = {v: {"4j1b": 0, "4j2b": 0} for v in OBJECT_VARIATIONS}
    stream = stream_of(RESOLUTION_STREAM)
    objects = ("nominal",) if nominal_only else OBJECT_VARIATIONS
    ml_rows: list[list[float]] = []
    ml_events: list[tuple[list[float], float, float]] = []  # (weights, m_tophad, m_w)

    for i in range(n):
        ev = {name: cols[name][i] for name in BRANCHES}
        ref.nan_jet_pt += sum(math.isnan(pt) for pt in ev["Jet_pt"])
        ref.nan_muon_iso += sum(math.isnan(x) for x in ev["Muon_pfRelIso04_all"])
        weight = 1.0 if norm is None else norm * ev["genWeight"]
        lepton = lepton_of(ev)
        if lepton is None:
            continue
        for ovar in objects:
            pts = varied_pt(ev, ovar, stream)
            if ovar == "nominal":
                for pt, eta, jid in zip(ev["Jet_pt"], ev["Jet_eta"], ev["Jet_jetId"], strict=True):
                    if abs(eta) < 2.4 and jid & 4:
                        ref.jets_at_30 += pt == 30.0
                        ref.jets_just_below_30 += 29.99 < pt < 30.0
            jets = select_jets(ev, pts)
            if len(jets) < 4:
                continue
            n_b = sum(ev["Jet_btagCSVV2"][j] >= B_TAG for j in jets)
            if n_b == 0:
                continue
            region = "4j1b" if n_b == 1 else "4j2b"
            ref.events[ovar][region] += 1
            if not ref.selected or ref.selected[-1] != i:
                ref.selected.append(i)
            if region == "4j1b":
                ht = 0.0
                for j in jets:  # file order
                    ht += pts[j]
                value: float | None = ht
            else:
                value = m_bjj(ev, pts, jets)
            # the weights this selection fills with
            if ovar == "nominal":
                ref.selected_btag_at_cut += sum(ev["Jet_btagCSVV2"][j] == B_TAG for j in jets)
                fills = {"nominal": weight}
                if not nominal_only:
                    for k in range(4):
                        pt_k = ev["Jet_pt"][jets[k]]
                        fills[f"btag_var_{k}_up"] = weight * (1 + 0.075 * pt_k / 50)
                        fills[f"btag_var_{k}_down"] = weight * (1 - 0.075 * pt_k / 50)
                    if wjets:
                        fills["scale_var_up"] = weight * (1 + 0.025)
                        fills["scale_var_down"] = weight * (1 - 0.025)
                    else:
                        fills["scale_var_up"] = weight * 1
                        fills["scale_var_down"] = weight * 1
            else:
                fills = {ovar: weight}
            if value is not None:
                for vname, w in fills.items():
                    hists[region][vname].fill(value, w)
            # Reading: the assignment runs on 4j2b events of the *nominal* jets only
            # ("4j2b, nominal jets"; "nominal and every weight variation").
            if region == "4j2b" and ovar == "nominal":
                ml_rows.extend(assignment_features(ev, lepton, jets))
                first = jets[:4]
                vec = [
                    four_vector(
                        ev["Jet_pt"][j], ev["Jet_eta"][j], ev["Jet_phi"][j], ev["Jet_mass"][j]
                    )
                    for j in first
                ]
                ref.inf_jet_mass_in_4j2b += any(math.isinf(ev["Jet_mass"][j]) for j in first)
                ml_events.append((fills, vec))  # type: ignore[arg-type]

    features = np.array(ml_rows, dtype=np.float32).reshape(-1, 16)
    scores = scores_of(features, model)
    for e, (fills, vec) in enumerate(ml_events):
        s = scores[12 * e : 12 * e + 12]
        ref.nan_scores += any(math.isnan(x) for x in s)
        best = first_max(s)
        ref.best_counts[best] += 1
        w1, w2, h, _ = ASSIGNMENTS[best]
        m_top = mass(vector_sum(vec[w1], vec[w2], vec[h]))
        m_w = mass(vector_sum(vec[w1], vec[w2]))
        for vname, w in fills.items():
            hists["4j2b_ml_m_tophad"][vname].fill(m_top, w)
            hists["4j2b_ml_m_w"][vname].fill(m_w, w)
            hists["4j2b_ml_score"][vname].fill(s[best], w)
    return ref
