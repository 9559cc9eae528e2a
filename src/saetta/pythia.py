"""Stage: generation (layer 9) — Pythia 8 events for the AGC ttbar analysis, as NanoAOD.

:func:`generate_file` runs Pythia 8 (the ``pythia8mc`` wheel) for one sample of the
IRIS-HEP Analysis Grand Challenge (AGC) ttbar analysis and writes the events as a
CMS-NanoAOD-like ROOT file: one ``TTree`` ``Events`` with the branch names the AGC
analysis reads. :data:`SAMPLES` holds the samples, :class:`SampleCard` their
definitions, :class:`GeneratedFile` what one call wrote. The detector is a simple,
documented parametrisation applied to Pythia's final-state particles; every number
below is the one the code uses.

Generation
----------
pp collisions at ``Beams:eCM = 13000.`` (13 TeV) with Pythia's defaults otherwise: the
Monash 2013 tune, NNPDF2.3 QCD+QED LO PDFs, the simple showers (ISR, FSR), multiparton
interactions, colour reconnection, string hadronisation and hadron decays. Each file
comes from ``Random:setSeed = on``, ``Random:seed = seed`` (1 to 900,000,000), printing
off (``Print:quiet = on``, ``Print:errors = off``, ``Next:number* = 0``). The cross
section that Pythia estimates, ``info.sigmaGen()`` (in mb), is returned in pb
(1 mb = 1e9 pb) as ``sigma_gen_pb``; normalisation uses the AGC's ``xsec_pb``.

Samples (``SAMPLES``; switches beyond the common ones above):

``ttbar`` (signal, 396.87 + 332.97 pb)
    ``Top:gg2ttbar = on``, ``Top:qqbar2ttbar = on``; top and W decays inclusive.
``ttbar_ME_var``
    ttbar with ``PDF:pSet = 8`` (CTEQ6L1) instead of NNPDF2.3, standing in for another
    matrix-element generator.
``ttbar_PS_var``
    ttbar with ``TimeShower:alphaSvalue = 0.120`` (Monash: 0.1365), a softer final-state
    shower standing in for another shower generator. Pythia's other shower, Vincia
    (``PartonShowers:model = 2``), was measured at about 15 times slower for ttbar
    (4 against 60 events/s on one core, with its QED on or off), past the 2x allowed.
``ttbar_scaleup`` / ``ttbar_scaledown``
    ttbar with ``SigmaProcess:renormMultFac``, ``SigmaProcess:factorMultFac``,
    ``TimeShower:renormMultFac`` and ``SpaceShower:renormMultFac`` all 2.0 / 0.5.
``single_top_s_chan`` (2.0268 + 1.2676 pb)
    ``Top:ffbar2tqbar(s:W) = on`` (f fbar' -> t q'' by s-channel W) with the top's W
    decaying to leptons only (``24:onMode = off``, ``24:onIfAny = 11 13 15``), as in the
    AGC's ``leptonDecays`` sample whose cross section this is.
``single_top_t_chan`` ((36.993 + 22.175) / 0.252 pb)
    ``Top:qq2tq(t:W) = on`` (q q' -> t q'' by t-channel W); decays inclusive.
``single_top_tW`` (37.936 + 37.906 pb)
    Pythia 8 has no g b -> W t process (its ``Top:`` group is gg/qqbar -> ttbar,
    t- and s-channel single top, ffbar -> ttbar by gamma*/Z and the photon-induced
    ones; ``WeakBosonAndParton:qg2Wq`` excludes the top as partner). The closest
    documented process is ``HiggsBSM:bg2H+-t`` (b g -> H+ tbar and its conjugate,
    with ``Higgs:useBSM = on``), used with the charged Higgs made into a W look-alike:
    ``37:m0 = 80.377``, ``37:mWidth = 2.085``, ``37:doForceWidth = on`` and the W's
    branching ratios (``37:oneChannel``/``addChannel``, ``meMode`` 100 so that they
    hold: e nu, mu nu, tau nu 0.1086 each, u dbar and c sbar 0.3371 each). The final
    state is that of tW (t -> W b plus a W); the H+-'s decay is isotropic (spin 0),
    so the W's spin correlations are missing, and ``sigma_gen_pb`` is the H+ t one,
    meaningless here.
``wjets`` (61457 * 0.252 pb)
    ``WeakBosonAndParton:qqbar2Wg = on``, ``WeakBosonAndParton:qg2Wq = on`` with
    ``24:onMode = off``, ``24:onIfAny = 11 13 15`` (W -> e, mu, tau + nu) and
    ``PhaseSpace:pTHatMin = 40.``: the AGC selection needs four jets above 30 GeV,
    which the W + 1 parton matrix element reaches only through the shower: 3.2 per
    mille of the events have four such jets with 40 GeV (5,000 events), 1 per mille
    with 10 GeV (3,000 events). The AGC cross section is kept; the sample stands in
    for the W + jets tail that the selection reaches, not for inclusive W production.

Branches
--------
Per event: ``run`` (uint32, 1), ``luminosityBlock`` (uint32, ``block``), ``event``
(uint64, 1 to ``events``), ``genWeight`` (float32, Pythia's event weight, 1 for these
unweighted samples), ``MET_pt``, ``MET_phi`` (float32). Collections, each with its
counter ``n<Name>`` (int32) and ``<Name>_<field>`` branches, sorted by decreasing pT:
``Jet`` (``pt``, ``eta``, ``phi``, ``mass``, ``btagCSVV2`` float32; ``jetId``,
``hadronFlavour``, ``ttbarRole`` int32), ``Electron`` (``pt``, ``eta``, ``phi``, ``mass``,
``sip3d``, ``pfRelIso03_all`` float32; ``charge``, ``cutBased`` int32) and ``Muon``
(``pt``, ``eta``, ``phi``, ``mass``, ``sip3d``, ``pfRelIso04_all`` float32; ``charge``
int32; ``tightId`` bool).

Physics objects
---------------
*Visible particles* are Pythia's final-state particles (status > 0) except neutrinos.

*Leptons.* Final-state electrons and muons, prompt or not, with pT > 10 GeV and
|eta| < 2.5. Isolation (``pfRelIso03_all`` for electrons, ``pfRelIso04_all`` for
muons): the scalar pT sum of the visible particles within dR < 0.3 (electrons) or
0.4 (muons) of the lepton, itself excluded, over the lepton's pT. A lepton is prompt
when, past its own copies (radiation, recoil), its parent is a W, Z, Higgs or the
tW stand-in's H+-, or a tau whose parent is one of those; otherwise (hadron
decays) it is not. ``sip3d`` is drawn as |N(0, 1.5)| for prompt and |N(0, 8)| for
other leptons (about 99 % and 38 % below 4). ``Electron_cutBased`` is 4 (tight) when
the isolation is below 0.1, else 1 (veto); ``Muon_tightId`` is true inside the muon
chambers' tight acceptance |eta| < 2.4. The pT is smeared by a factor N(1, 0.02)
for electrons and N(1, 0.01) for muons after the isolation is computed, and the
pT > 10 GeV cut applied again; ``mass`` is the PDG mass. ``charge`` is the lepton's.

*Jets.* Anti-kT (R = 0.4, E-scheme, rapidity-phi distance) with Pythia's ``SlowJet``
through its built-in fjcore, from the visible particles with |eta| < 4.7 less the
isolated leptons (electrons with isolation < 0.1, muons with < 0.15, among the
leptons stored). Jets above 15 GeV are then smeared, pT and mass alike, by a factor
N(1, 0.1), and kept with pT > 20 GeV and |eta| < 4.7. ``jetId`` is 6 (tight and
tight-lepton-veto) for every jet. ``hadronFlavour`` is 5 when a b hadron (or a b
quark entering hadronisation, status 71-79) lies within dR < 0.4 of the jet axis,
else 4 for a c hadron (or quark), else 0.

*b tagging.* ``btagCSVV2`` is drawn per hadron flavour: Beta(2.4, 1.5) for b jets,
Beta(1.5, 3.6) for c jets, Beta(1, 6) for light jets, so that a cut at 0.5 keeps
69.5 %, 15.1 % and 1.6 % of them (the distributions' exact tail fractions; measured
in 2,000 ttbar events: 69.3 %, 15.6 % and 1.6 %).

*Missing transverse momentum.* Minus the vector sum of the visible particles'
transverse momenta with |eta| < 4.7, each component then smeared by a Gaussian of
sigma = 0.5 * sqrt(sum pT / GeV) GeV, the scalar sum over the same particles.

*Truth for the jet-parton assignment* (``Jet_ttbarRole``, ttbar samples only; 0 in
all others). The partons are the top decay products as produced: the quarks from
the W of a top (first copies, before showering) and the down-type quark from the
top itself. A top is hadronic when its W decays to quarks, leptonic when to
leptons. Jets are matched greedily, nearest pair first, within dR < 0.4, each jet
and each parton used at most once; a matched jet gets 1 (a quark from a hadronic
W), 2 (the b of a hadronic top) or 3 (the b of a leptonic top), any other jet 0.

Randomness
----------
Pythia draws from its own generator (``Random:seed``); the detector's draws (smearing,
b-tag scores, ``sip3d``) come from ``numpy.random.default_rng([seed, block])`` in
event order, so the same ``(sample, events, seed, block)`` gives identical files.

Pythia and fjcore print from C++ (fjcore its banner, once per process), past
``sys.stdout``: :func:`generate_file` points the process's file descriptor 1 at
``/dev/null`` while it runs. Run concurrent files in separate processes, not threads.

One module, longer than most: the analysis documentation refers to the definitions
above, and they live next to the code that implements them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from saetta.datagen import _F32, _I32, _assemble, _awkward_collection, _phi32, _root_compression
from saetta.storage import atomic_path

__all__ = ["SAMPLES", "GeneratedFile", "SampleCard", "generate_file"]


@dataclass(frozen=True, slots=True)
class SampleCard:
    """One AGC sample: its Pythia switches, cross section and place in the analysis.

    Attributes
    ----------
    name
        The AGC's sample name.
    settings
        Pythia ``readString`` lines (processes, decays, variations) beyond the common
        ones (beams, seed, printing).
    xsec_pb
        The AGC's cross section in pb, used for normalisation.
    role
        ``"signal"`` (all ttbar samples) or ``"background"``.
    variation_of
        ``"ttbar"`` for the four ttbar variations, else ``None``.
    variation
        ``"ME_var"``, ``"PS_var"``, ``"scaleup"``, ``"scaledown"``, else ``None``.
    """

    name: str
    settings: tuple[str, ...]
    xsec_pb: float
    role: str
    variation_of: str | None = None
    variation: str | None = None


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """What :func:`generate_file` wrote.

    Attributes
    ----------
    path
        The file written.
    sample
        The sample's name.
    events
        Number of events in the file.
    sum_weights
        Sum of ``genWeight`` over the file.
    sigma_gen_pb
        Pythia's estimate of the generated cross section, in pb.
    seconds
        Wall-clock time of the call.
    """

    path: Path
    sample: str
    events: int
    sum_weights: float
    sigma_gen_pb: float
    seconds: float


_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")
_TTBAR_XSEC = 396.87 + 332.97
_LEPTONIC_W = ("24:onMode = off", "24:onIfAny = 11 13 15")


def _scales(factor: float) -> tuple[str, ...]:
    return tuple(
        f"{name}:{knob} = {factor}"
        for name, knob in (
            ("SigmaProcess", "renormMultFac"),
            ("SigmaProcess", "factorMultFac"),
            ("TimeShower", "renormMultFac"),
            ("SpaceShower", "renormMultFac"),
        )
    )


#: b g -> H+ tbar with the H+- made a W look-alike: Pythia has no g b -> W t.
_TW_STAND_IN = (
    "Higgs:useBSM = on",
    "HiggsBSM:bg2H+-t = on",
    "37:m0 = 80.377",
    "37:mWidth = 2.085",
    "37:doForceWidth = on",
    "37:oneChannel = 1 0.1086 100 -11 12",
    "37:addChannel = 1 0.1086 100 -13 14",
    "37:addChannel = 1 0.1086 100 -15 16",
    "37:addChannel = 1 0.3371 100 2 -1",
    "37:addChannel = 1 0.3371 100 4 -3",
)

SAMPLES: dict[str, SampleCard] = {
    card.name: card
    for card in (
        SampleCard("ttbar", _TTBAR, _TTBAR_XSEC, "signal"),
        SampleCard(
            "ttbar_ME_var", (*_TTBAR, "PDF:pSet = 8"), _TTBAR_XSEC, "signal", "ttbar", "ME_var"
        ),
        SampleCard(
            "ttbar_PS_var",
            (*_TTBAR, "TimeShower:alphaSvalue = 0.120"),
            _TTBAR_XSEC,
            "signal",
            "ttbar",
            "PS_var",
        ),
        SampleCard(
            "ttbar_scaleup", (*_TTBAR, *_scales(2.0)), _TTBAR_XSEC, "signal", "ttbar", "scaleup"
        ),
        SampleCard(
            "ttbar_scaledown",
            (*_TTBAR, *_scales(0.5)),
            _TTBAR_XSEC,
            "signal",
            "ttbar",
            "scaledown",
        ),
        SampleCard(
            "single_top_s_chan",
            ("Top:ffbar2tqbar(s:W) = on", *_LEPTONIC_W),
            2.0268 + 1.2676,
            "background",
        ),
        SampleCard(
            "single_top_t_chan", ("Top:qq2tq(t:W) = on",), (36.993 + 22.175) / 0.252, "background"
        ),
        SampleCard("single_top_tW", _TW_STAND_IN, 37.936 + 37.906, "background"),
        SampleCard(
            "wjets",
            (
                "WeakBosonAndParton:qqbar2Wg = on",
                "WeakBosonAndParton:qg2Wq = on",
                *_LEPTONIC_W,
                "PhaseSpace:pTHatMin = 40.",
            ),
            61457 * 0.252,
            "background",
        ),
    )
}

_COMMON = (
    "Beams:eCM = 13000.",
    "Random:setSeed = on",
    "Print:quiet = on",
    "Print:errors = off",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Next:numberShowLHA = 0",
)
SEED_MAX = 900_000_000  # Pythia's largest seed
_BLOCK_MAX = 2**32 - 1
_MB_TO_PB = 1e9

_SCALARS: dict[str, np.dtype[Any]] = {
    "run": np.dtype(np.uint32),
    "luminosityBlock": np.dtype(np.uint32),
    "event": np.dtype(np.uint64),
    "genWeight": _F32,
    "MET_pt": _F32,
    "MET_phi": _F32,
}
_KINEMATICS = {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32}
_COLLECTIONS: dict[str, dict[str, np.dtype[Any]]] = {
    "Jet": {
        **_KINEMATICS,
        "btagCSVV2": _F32,
        "jetId": _I32,
        "hadronFlavour": _I32,
        "ttbarRole": _I32,
    },
    "Electron": {
        **_KINEMATICS,
        "charge": _I32,
        "cutBased": _I32,
        "sip3d": _F32,
        "pfRelIso03_all": _F32,
    },
    "Muon": {
        **_KINEMATICS,
        "charge": _I32,
        "tightId": np.dtype(np.bool_),
        "sip3d": _F32,
        "pfRelIso04_all": _F32,
    },
}

_BATCH_EVENTS = 100  # per nextBatch call: bounds the memory of the particle arrays
_BASKET_EVENTS = 10_000  # per TTree.extend: saetta's work units follow baskets
_MAX_COPIES = 500

_ETA_MAX = 4.7
_LEPTON_PT_MIN, _LEPTON_ETA_MAX = 10.0, 2.5
_CONE = {11: 0.3, 13: 0.4}
_ISOLATED = {11: 0.1, 13: 0.15}
_LEPTON_SMEAR = {11: 0.02, 13: 0.01}
_LEPTON_MASS = {11: 0.000511, 13: 0.10566}
_MUON_TIGHT_ETA = 2.4
_PROMPT_PARENTS = (23, 24, 25, 37)
_SIP3D_SIGMA = (1.5, 8.0)  # prompt, from hadron decays

_JET_R, _JET_PT_CLUSTER, _JET_PT_MIN = 0.4, 15.0, 20.0
_JET_SMEAR = 0.1
_JET_ID = 6
_MATCH_DR = 0.4
_BTAG_BETA = {5: (2.4, 1.5), 4: (1.5, 3.6), 0: (1.0, 6.0)}
_MET_STOCHASTIC = 0.5  # GeV^(1/2)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Collection = tuple[IntArray, dict[str, npt.NDArray[Any]]]


class _Block(NamedTuple):
    """Events ready to write: per-event arrays and ``(counts, contents)`` collections."""

    scalars: dict[str, npt.NDArray[Any]]
    collections: dict[str, Collection]


class _Particles(NamedTuple):
    """The particles of a batch of events, flat, event after event."""

    n_events: int
    owner: IntArray  # event index
    absid: IntArray
    pid: IntArray
    status: IntArray
    mother: IntArray  # mother1, as an index into these arrays
    px: FloatArray
    py: FloatArray
    pt: FloatArray
    pz: FloatArray
    e: FloatArray
    eta: FloatArray
    phi: FloatArray


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null: Pythia and FastJet's banner write there
    from C++, past ``sys.stdout``."""
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    if sys.stdout is not None:
        sys.stdout.flush()
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).fflush(None)  # C++'s cout writes through C's buffered stdout
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _eta(pt: FloatArray, pz: FloatArray) -> FloatArray:
    """Pseudorapidity; finite (about +-44) along the beam."""
    return np.arcsinh(pz / np.maximum(pt, 1e-15))


def _dr2(eta1: FloatArray, phi1: FloatArray, eta2: FloatArray, phi2: FloatArray) -> FloatArray:
    dphi = np.mod(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi
    return (eta1 - eta2) ** 2 + dphi**2


def _pairs(owner_a: IntArray, owner_b: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Every pair ``(i, j)`` of an ``a`` and a ``b`` of the same event; ``owner_b`` sorted."""
    counts_b = np.bincount(owner_b, minlength=n)
    starts_b = np.cumsum(counts_b) - counts_b
    reps = counts_b[owner_a]
    first = np.cumsum(reps) - reps
    ia = np.repeat(np.arange(owner_a.size), reps)
    ib = np.repeat(starts_b[owner_a] - first, reps) + np.arange(int(reps.sum()))
    return ia, ib


def _first_copy(index: IntArray, parts: _Particles) -> IntArray:
    """Walk up through a particle's own copies (radiation, recoil) to the first one."""
    index = index.copy()
    for _ in range(_MAX_COPIES):
        up = parts.mother[index]
        same = (parts.absid[up] == parts.absid[index]) & (up != index)
        if not same.any():
            break
        index[same] = up[same]
    return index


def _particles(batch: Any) -> _Particles:
    import awkward as ak

    prt = batch["prt"]
    counts = np.asarray(ak.num(prt, axis=1), dtype=np.int64)
    flat = ak.flatten(prt, axis=1)
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    pid = np.asarray(flat["id"], dtype=np.int64)
    p = flat["p"]
    px, py, pz, e = (np.asarray(p[c], dtype=np.float64) for c in ("px", "py", "pz", "e"))
    pt = np.hypot(px, py)
    return _Particles(
        n_events=int(counts.size),
        owner=owner,
        absid=np.abs(pid),
        pid=pid,
        status=np.asarray(flat["status"], dtype=np.int64),
        mother=starts[owner] + np.asarray(flat["mother1"], dtype=np.int64),
        px=px,
        py=py,
        pt=pt,
        pz=pz,
        e=e,
        eta=_eta(pt, pz),
        phi=np.arctan2(py, px),
    )


# --------------------------------------------------------------------------- physics


def _leptons(
    parts: _Particles, visible: IntArray, rng: np.random.Generator
) -> tuple[dict[str, Collection], IntArray]:
    """Electrons and muons, and the particle indices of the isolated ones."""
    final = parts.status > 0
    candidate = np.flatnonzero(
        final
        & ((parts.absid == 11) | (parts.absid == 13))
        & (parts.pt > _LEPTON_PT_MIN)
        & (np.abs(parts.eta) < _LEPTON_ETA_MAX)
    )
    flavour = parts.absid[candidate]
    cone = np.where(flavour == 11, _CONE[11], _CONE[13])
    il, iv = _pairs(parts.owner[candidate], parts.owner[visible], parts.n_events)
    lep, vis = candidate[il], visible[iv]
    near = (vis != lep) & (
        _dr2(parts.eta[lep], parts.phi[lep], parts.eta[vis], parts.phi[vis]) < cone[il] ** 2
    )
    cone_pt = np.bincount(il, weights=np.where(near, parts.pt[vis], 0.0), minlength=candidate.size)
    iso = cone_pt / parts.pt[candidate]

    parent = parts.mother[_first_copy(candidate, parts)]
    from_tau = parts.absid[parent] == 15
    parent[from_tau] = parts.mother[_first_copy(parent[from_tau], parts)]
    prompt = np.isin(parts.absid[parent], _PROMPT_PARENTS)

    isolated = np.where(flavour == 11, iso < _ISOLATED[11], iso < _ISOLATED[13])
    stored = np.zeros(candidate.size, bool)
    collections: dict[str, Collection] = {}
    for name, code, iso_name in (
        ("Electron", 11, "pfRelIso03_all"),
        ("Muon", 13, "pfRelIso04_all"),
    ):
        mine = flavour == code
        pt = parts.pt[candidate[mine]] * rng.normal(1.0, _LEPTON_SMEAR[code], int(mine.sum()))
        sip3d = np.abs(rng.normal(0.0, 1.0, pt.size)) * np.where(
            prompt[mine], _SIP3D_SIGMA[0], _SIP3D_SIGMA[1]
        )
        kept = pt > _LEPTON_PT_MIN  # the cut again, after the smearing
        mine[mine] = kept
        pt, sip3d = pt[kept], sip3d[kept]
        index = candidate[mine]
        size = index.size
        eta = parts.eta[index]
        fields: dict[str, npt.NDArray[Any]] = {
            "pt": pt.astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": _phi32(parts.phi[index]),
            "mass": np.full(size, _LEPTON_MASS[code], np.float32),
            "charge": (-np.sign(parts.pid[index])).astype(np.int32),
            "sip3d": sip3d.astype(np.float32),
            iso_name: iso[mine].astype(np.float32),
        }
        if code == 11:
            fields["cutBased"] = np.where(iso[mine] < _ISOLATED[11], 4, 1).astype(np.int32)
        else:
            fields["tightId"] = np.abs(eta) < _MUON_TIGHT_ETA
        collections[name] = _assemble(parts.n_events, parts.owner[index], fields)
        stored |= mine
    return collections, candidate[isolated & stored]


class _JetFinder:
    """Anti-kT with Pythia's ``SlowJet`` (fjcore inside), fed from flat particle arrays."""

    def __init__(self, pythia8: Any, particle_data: Any) -> None:
        self._slowjet = pythia8.SlowJet(
            -1, _JET_R, _JET_PT_CLUSTER, _ETA_MAX, 1, 2, None, True
        )  # power -1: anti-kT; select 1: all final (the inputs are chosen here); massSet 2
        self._event = pythia8.Event()
        self._event.init("", particle_data)

    def __call__(self, parts: _Particles, inputs: IntArray) -> tuple[IntArray, FloatArray]:
        """Jets of every event: owners and ``(n, 4)`` four-momenta, px, py, pz, e."""
        event, slowjet = self._event, self._slowjet
        append = event.append
        bounds = np.searchsorted(parts.owner[inputs], np.arange(parts.n_events + 1))
        columns = [c[inputs].tolist() for c in (parts.px, parts.py, parts.pz, parts.e)]
        owners: list[int] = []
        momenta: list[float] = []
        for k in range(parts.n_events):
            event.reset()
            lo, hi = bounds[k], bounds[k + 1]
            # The 12-argument overload: pybind finds it second, the short ones ~4x slower.
            for x, y, z, en in zip(*(c[lo:hi] for c in columns), strict=True):
                append(211, 91, 0, 0, 0, 0, 0, 0, x, y, z, en)
            slowjet.analyze(event)
            for i in range(slowjet.sizeJet()):
                p = slowjet.p(i)
                momenta += (p.px(), p.py(), p.pz(), p.e())
                owners.append(k)
        return np.array(owners, np.int64), np.array(momenta, np.float64).reshape(-1, 4)


def _heavy_flavour(parts: _Particles) -> IntArray:
    """Per particle: 5 for b hadrons and b quarks entering hadronisation, 4 for c, else 0."""
    a = parts.absid
    q1, q2, q3 = (a // 1000) % 10, (a // 100) % 10, (a // 10) % 10
    hadron = (a > 100) & (a < 100_000) & (q3 != 0)  # q3 == 0: a diquark
    string = (np.abs(parts.status) >= 71) & (np.abs(parts.status) <= 79)
    b = (hadron & ((q1 == 5) | (q2 == 5))) | ((a == 5) & string)
    c = (hadron & ((q1 == 4) | (q2 == 4))) | ((a == 4) & string)
    return np.where(b, 5, np.where(c, 4, 0))


def _ttbar_partons(parts: _Particles) -> tuple[IntArray, IntArray]:
    """The top decay products to match jets to: particle indices and their roles 1-3."""
    a, mother = parts.absid, parts.mother
    from_w = a[mother] == 24
    w_quark = np.flatnonzero(from_w & (a >= 1) & (a <= 5))
    w_lepton = np.flatnonzero(from_w & (a >= 11) & (a <= 16))
    top_of_quark = mother[_first_copy(mother[w_quark], parts)]
    top_of_lepton = mother[_first_copy(mother[w_lepton], parts)]
    w_quark = w_quark[a[top_of_quark] == 6]
    hadronic = top_of_quark[a[top_of_quark] == 6]
    leptonic = top_of_lepton[a[top_of_lepton] == 6]
    b = np.flatnonzero((a[mother] == 6) & ((a == 1) | (a == 3) | (a == 5)))
    b_role = np.where(np.isin(mother[b], hadronic), 2, np.where(np.isin(mother[b], leptonic), 3, 0))
    index = np.concatenate([w_quark, b[b_role > 0]])
    role = np.concatenate([np.ones(w_quark.size, np.int64), b_role[b_role > 0]])
    order = np.argsort(index, kind="stable")  # back into event order
    return index[order], role[order]


def _match(
    jet_owner: IntArray,
    jet_eta: FloatArray,
    jet_phi: FloatArray,
    parts: _Particles,
    partons: IntArray,
    roles: IntArray,
) -> IntArray:
    """Greedy one-to-one jet-parton matching, nearest pair first, within dR < 0.4."""
    result = np.zeros(jet_owner.size, np.int64)
    ij, ip = _pairs(jet_owner, parts.owner[partons], parts.n_events)
    dr2 = _dr2(jet_eta[ij], jet_phi[ij], parts.eta[partons[ip]], parts.phi[partons[ip]])
    close = dr2 < _MATCH_DR**2
    ij, ip, dr2 = ij[close], ip[close], dr2[close]
    order = np.argsort(dr2, kind="stable")
    used_jets: set[int] = set()
    used_partons: set[int] = set()
    for j, p in zip(ij[order].tolist(), ip[order].tolist(), strict=True):
        if j not in used_jets and p not in used_partons:
            used_jets.add(j)
            used_partons.add(p)
            result[j] = roles[p]
    return result


def _jets(
    parts: _Particles,
    inputs: IntArray,
    finder: _JetFinder,
    rng: np.random.Generator,
    ttbar: bool,
) -> Collection:
    owner, p4 = finder(parts, inputs)
    px, py, pz, e = p4.T
    pt_raw = np.hypot(px, py)
    eta = _eta(pt_raw, pz)
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    scale = rng.normal(1.0, _JET_SMEAR, owner.size)
    keep = (pt_raw * scale > _JET_PT_MIN) & (np.abs(eta) < _ETA_MAX)
    owner, eta, phi = owner[keep], eta[keep], phi[keep]
    pt, mass = (pt_raw * scale)[keep], (mass * scale)[keep]

    flavour_of = _heavy_flavour(parts)
    heavy = np.flatnonzero(flavour_of > 0)
    ij, ih = _pairs(owner, parts.owner[heavy], parts.n_events)
    near = _dr2(eta[ij], phi[ij], parts.eta[heavy[ih]], parts.phi[heavy[ih]]) < _JET_R**2
    flavour = np.zeros(owner.size, np.int64)
    np.maximum.at(flavour, ij[near], flavour_of[heavy[ih[near]]])

    btag = np.zeros(owner.size)
    for code, (alpha, beta) in _BTAG_BETA.items():
        mine = flavour == code
        btag[mine] = rng.beta(alpha, beta, int(mine.sum()))

    if ttbar:
        partons, roles = _ttbar_partons(parts)
        role = _match(owner, eta, phi, parts, partons, roles)
    else:
        role = np.zeros(owner.size, np.int64)
    fields: dict[str, npt.NDArray[Any]] = {
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": _phi32(phi),
        "mass": mass.astype(np.float32),
        "btagCSVV2": btag.astype(np.float32),
        "jetId": np.full(owner.size, _JET_ID, np.int32),
        "hadronFlavour": flavour.astype(np.int32),
        "ttbarRole": role.astype(np.int32),
    }
    return _assemble(parts.n_events, owner, fields)


def _block(
    batch: Any,
    first_event: int,
    block: int,
    finder: _JetFinder,
    rng: np.random.Generator,
    ttbar: bool,
) -> _Block:
    """Reconstruct one batch of Pythia events into the file's branches."""
    import awkward as ak

    parts = _particles(batch)
    n = parts.n_events
    final = parts.status > 0
    neutrino = (parts.absid == 12) | (parts.absid == 14) | (parts.absid == 16)
    visible = np.flatnonzero(final & ~neutrino)
    leptons, isolated = _leptons(parts, visible, rng)
    in_acceptance = visible[np.abs(parts.eta[visible]) < _ETA_MAX]
    jets = _jets(parts, np.setdiff1d(in_acceptance, isolated), finder, rng, ttbar)

    owner = parts.owner[in_acceptance]
    sum_x, sum_y, sum_pt = (
        np.bincount(owner, weights=c[in_acceptance], minlength=n).astype(np.float64)
        for c in (parts.px, parts.py, parts.pt)
    )
    sigma = _MET_STOCHASTIC * np.sqrt(sum_pt)
    met_x = rng.normal(0.0, 1.0, n) * sigma - sum_x
    met_y = rng.normal(0.0, 1.0, n) * sigma - sum_y

    weights = ak.fill_none(ak.firsts(batch["info"]["weights"], axis=1), 1.0)
    scalars: dict[str, npt.NDArray[Any]] = {
        "run": np.ones(n, np.uint32),
        "luminosityBlock": np.full(n, block, np.uint32),
        "event": np.arange(first_event + 1, first_event + n + 1, dtype=np.uint64),
        "genWeight": np.asarray(weights, dtype=np.float32),
        "MET_pt": np.hypot(met_x, met_y).astype(np.float32),
        "MET_phi": _phi32(np.arctan2(met_y, met_x)),
    }
    return _Block(scalars, {"Jet": jets, **leptons})


# --------------------------------------------------------------------------- writing


def _merge(blocks: list[_Block]) -> dict[str, Any]:
    """One ``TTree.extend`` argument from consecutive blocks."""
    data: dict[str, Any] = {
        name: np.concatenate([b.scalars[name] for b in blocks]) for name in _SCALARS
    }
    for name, fields in _COLLECTIONS.items():
        counts = np.concatenate([b.collections[name][0] for b in blocks])
        contents = {f: np.concatenate([b.collections[name][1][f] for b in blocks]) for f in fields}
        data[name] = _awkward_collection((counts, contents), fields)
    return data


def _tree_types() -> dict[str, Any]:
    types: dict[str, Any] = dict(_SCALARS)
    for name, fields in _COLLECTIONS.items():
        empty = (np.zeros(0, np.int64), {f: np.zeros(0, dt) for f, dt in fields.items()})
        types[name] = _awkward_collection(empty, fields).type.content
    return types


def _pythia(pythia8: Any, card: SampleCard, seed: int) -> Any:
    pythia = pythia8.Pythia("", False)
    for line in (*_COMMON, f"Random:seed = {seed}", *card.settings):
        if not pythia.readString(line, False):
            msg = f"Pythia rejected the setting {line!r} of sample {card.name!r}"
            raise RuntimeError(msg)
    if not pythia.init():
        msg = f"Pythia failed to initialise sample {card.name!r}"
        raise RuntimeError(msg)
    return pythia


# --------------------------------------------------------------------------- public API


def generate_file(
    path: str | os.PathLike[str],
    sample: str,
    events: int,
    seed: int,
    *,
    block: int = 0,
    compression: str = "zlib:1",
) -> GeneratedFile:
    """Generate one sample's events with Pythia 8 and write them as a NanoAOD-like file.

    The event content and the physics behind each branch are described in the
    module's documentation (:mod:`saetta.pythia`).

    Parameters
    ----------
    path
        Output ROOT file; its parent directories are created. It is written to a
        temporary name in the same folder and renamed into place when complete.
    sample
        A key of :data:`SAMPLES`.
    events
        Number of events, at least 1.
    seed
        Pythia's ``Random:seed``, 1 to 900,000,000; with ``block`` it also seeds the
        detector's smearing, so the same arguments give identical file contents.
    block
        The ``luminosityBlock`` of every event (0 to 2**32 - 1).
    compression
        ``"zlib:N"``, ``"lz4:N"``, ``"zstd:N"``, ``"lzma:N"`` or ``"none"``.

    Returns
    -------
    GeneratedFile
        The path, the sample, the number of events, the sum of ``genWeight``, Pythia's
        cross-section estimate in pb and the seconds taken.

    Raises
    ------
    ValueError
        For an unknown sample, a non-positive ``events``, a ``seed`` or ``block`` out
        of range, or an unknown compression; no file is written then.
    ImportError
        Without the ``pythia8mc`` package.
    RuntimeError
        When Pythia rejects a setting or fails to initialise.
    """
    start = time.perf_counter()
    if sample not in SAMPLES:
        msg = f"unknown sample {sample!r}; available: {', '.join(SAMPLES)}"
        raise ValueError(msg)
    for name, value, low, high in (
        ("events", events, 1, None),
        ("seed", seed, 1, SEED_MAX),
        ("block", block, 0, _BLOCK_MAX),
    ):
        integer = isinstance(value, int | np.integer) and not isinstance(value, bool)
        if not integer or value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high:,}"
            msg = f"{name} must be an integer {allowed}, got {value!r}"
            raise ValueError(msg)
    codec = _root_compression(compression)
    try:
        import pythia8mc as pythia8
    except ImportError as exc:
        msg = "generating events needs Pythia 8: pip install pythia8mc"
        raise ImportError(msg) from exc
    import uproot

    card = SAMPLES[sample]
    out = Path(path)
    events, seed, block = int(events), int(seed), int(block)
    rng = np.random.default_rng([seed, block])
    sum_weights = 0.0
    with atomic_path(out) as tmp, _stdout_silenced():
        pythia = _pythia(pythia8, card, seed)
        finder = _JetFinder(pythia8, pythia.particleData)
        with uproot.recreate(tmp, compression=codec) as file:
            tree = file.mktree("Events", _tree_types(), counter_name=lambda name: f"n{name}")
            pending: list[_Block] = []
            for first in range(0, events, _BATCH_EVENTS):
                batch = pythia.nextBatch(min(_BATCH_EVENTS, events - first))
                pending.append(_block(batch, first, block, finder, rng, card.role == "signal"))
                done = first + _BATCH_EVENTS >= events
                if done or sum(b.scalars["run"].size for b in pending) >= _BASKET_EVENTS:
                    data = _merge(pending)
                    sum_weights += float(np.sum(data["genWeight"], dtype=np.float64))
                    tree.extend(data)
                    pending = []
        sigma_gen_pb = float(pythia.infoPython().sigmaGen()) * _MB_TO_PB
    return GeneratedFile(
        path=out,
        sample=sample,
        events=events,
        sum_weights=sum_weights,
        sigma_gen_pb=sigma_gen_pb,
        seconds=time.perf_counter() - start,
    )
