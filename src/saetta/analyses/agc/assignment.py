"""Stage: analyses (layer 9) — the AGC's jet–parton assignment, by a trained classifier.

In a semileptonic ttbar event, four jets come from the decay: two from the
hadronically decaying W, the b of that top (hadronic b) and the b of the top
whose W gave the lepton (leptonic b). Of the first four selected jets, each of
the 12 assignments to (W jet, W jet, hadronic b, leptonic b) — the two W jets
unordered — is scored by a classifier trained on generator truth, and the best
one reconstructs the hadronic top.

Assignments, in this order (the order decides ties: the first best wins; a NaN
score never wins, and an event whose scores are all NaN takes the first): for
the hadronic b ``h`` in 0…3, for the leptonic b ``l`` in 0…3 with ``l != h``, the W
jets are the other two, lower index first.

Features of an assignment (16, float32 to the model, computed in double
precision; ΔR with Δφ wrapped into [-π, π]):

====  =========================================
0     ΔR(lepton, leptonic b)
1     ΔR(W jet 1, W jet 2)
2     ΔR(W jet 1, hadronic b)
3     ΔR(W jet 2, hadronic b)
4     mass of lepton + leptonic b
5     mass of the two W jets
6     mass of the two W jets + hadronic b
7     pT of the two W jets + hadronic b
8–11  pT of W jet 1, W jet 2, hadronic b, leptonic b
12–15 b-tag score of the same four jets
====  =========================================

The model (``assignment.onnx``, beside this module) is a scikit-learn pipeline
(standardisation, then a multilayer perceptron) exported to ONNX; its second
output column is the score. ``scripts/train_agc_assignment.py`` trains it on
the truth ``Jet_ttbarRole`` of generated ttbar events (see :mod:`saetta.pythia`),
from :func:`training_rows`: events selected as in the analysis (one lepton, four
jets, at least one b tag) whose first four jets carry the four roles; the right
assignment is labelled 1, the other eleven 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saetta.inference import predict
from saetta.kernels import delta_r, jit, mass_of, p4

if TYPE_CHECKING:
    from saetta.analyses.agc import Jets, Leptons

__all__ = ["ASSIGNMENTS", "MODEL", "Best", "best", "features", "training_rows", "truth"]

MODEL = Path(__file__).with_name("assignment.onnx")
N_FEATURES = 16


def _assignments() -> np.ndarray:
    rows = []
    for h in range(4):
        for lep in range(4):
            if lep != h:
                w1, w2 = (j for j in range(4) if j not in (h, lep))
                rows.append((w1, w2, h, lep))
    return np.array(rows, dtype=np.int64)


#: (12, 4): for each assignment, the index of W jet 1, W jet 2, hadronic b, leptonic b.
ASSIGNMENTS = _assignments()


@dataclass(frozen=True, slots=True)
class Best:
    """Per event: the best assignment's index, score and observables."""

    index: np.ndarray
    score: np.ndarray
    m_tophad: np.ndarray
    m_w: np.ndarray


def features(jets: Jets, lepton: Leptons) -> np.ndarray:
    """(events × 12, 16) float32 features of every assignment; events need four jets."""
    n = len(jets.offsets) - 1
    out = np.empty((n * len(ASSIGNMENTS), N_FEATURES), dtype=np.float32)
    _features(
        jets.offsets[:-1],
        jets.pt,
        jets.eta,
        jets.phi,
        jets.mass,
        jets.btag,
        lepton.pt,
        lepton.eta,
        lepton.phi,
        lepton.mass,
        ASSIGNMENTS,
        out,
    )
    return out


def best(jets: Jets, lepton: Leptons, model: str | Path = MODEL) -> Best:
    """Score every assignment of every event in one batch and keep each event's best."""
    n = len(jets.offsets) - 1
    if n == 0:
        empty = np.zeros(0)
        return Best(np.zeros(0, dtype=np.int64), empty, empty, empty)
    scores = predict(model, features(jets, lepton), output=1)[:, 1].reshape(n, len(ASSIGNMENTS))
    # NaN (from a NaN input) never wins; an event with no score at all takes assignment 0
    index = np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=1)
    return Best(
        index=index,
        score=scores[np.arange(n), index].astype(np.float64),
        m_tophad=_observable(jets, index, (0, 1, 2)),
        m_w=_observable(jets, index, (0, 1)),
    )


def _observable(jets: Jets, index: np.ndarray, roles: tuple[int, ...]) -> np.ndarray:
    """The mass of the jets given ``roles`` in each event's chosen assignment."""
    starts = jets.offsets[:-1]
    px = py = pz = e = np.zeros(len(index))
    for role in roles:
        j = starts + ASSIGNMENTS[index, role]
        pt = jets.pt[j].astype(np.float64)
        eta = jets.eta[j].astype(np.float64)
        phi = jets.phi[j].astype(np.float64)
        m = jets.mass[j].astype(np.float64)
        jx, jy, jz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        px, py, pz = px + jx, py + jy, pz + jz
        e = e + np.sqrt(jx * jx + jy * jy + jz * jz + m * m)
    m2 = e * e - px * px - py * py - pz * pz
    return np.where(m2 >= 0, np.sqrt(np.abs(m2)), -np.sqrt(np.abs(m2)))


def truth(roles: np.ndarray) -> np.ndarray:
    """Per event, the index of the right assignment given its first four jets' truth
    roles ((events, 4): 1 W jet, 2 hadronic b, 3 leptonic b, 0 unmatched), or -1."""
    wanted = np.array([1, 1, 2, 3])
    given = roles[:, ASSIGNMENTS]  # (events, 12, 4)
    right = (given == wanted).all(axis=2)
    found = right.any(axis=1)
    return np.where(found, np.argmax(right, axis=1), -1)


@jit
def _features(
    starts: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    mass: np.ndarray,
    btag: np.ndarray,
    l_pt: np.ndarray,
    l_eta: np.ndarray,
    l_phi: np.ndarray,
    l_mass: np.ndarray,
    assignments: np.ndarray,
    out: np.ndarray,
) -> None:
    n_assign = assignments.shape[0]
    for e in range(len(starts)):
        lx, ly, lz, le = p4(
            np.float64(l_pt[e]), np.float64(l_eta[e]), np.float64(l_phi[e]), np.float64(l_mass[e])
        )
        for a in range(n_assign):
            row = out[e * n_assign + a]
            w1 = starts[e] + assignments[a, 0]
            w2 = starts[e] + assignments[a, 1]
            bh = starts[e] + assignments[a, 2]
            bl = starts[e] + assignments[a, 3]
            ax, ay, az, ae = p4(
                np.float64(pt[w1]), np.float64(eta[w1]), np.float64(phi[w1]), np.float64(mass[w1])
            )
            bx, by, bz, be = p4(
                np.float64(pt[w2]), np.float64(eta[w2]), np.float64(phi[w2]), np.float64(mass[w2])
            )
            hx, hy, hz, he = p4(
                np.float64(pt[bh]), np.float64(eta[bh]), np.float64(phi[bh]), np.float64(mass[bh])
            )
            qx, qy, qz, qe = p4(
                np.float64(pt[bl]), np.float64(eta[bl]), np.float64(phi[bl]), np.float64(mass[bl])
            )
            row[0] = delta_r(
                np.float64(l_eta[e]), np.float64(l_phi[e]), np.float64(eta[bl]), np.float64(phi[bl])
            )
            row[1] = delta_r(
                np.float64(eta[w1]), np.float64(phi[w1]), np.float64(eta[w2]), np.float64(phi[w2])
            )
            row[2] = delta_r(
                np.float64(eta[w1]), np.float64(phi[w1]), np.float64(eta[bh]), np.float64(phi[bh])
            )
            row[3] = delta_r(
                np.float64(eta[w2]), np.float64(phi[w2]), np.float64(eta[bh]), np.float64(phi[bh])
            )
            row[4] = mass_of(lx + qx, ly + qy, lz + qz, le + qe)
            row[5] = mass_of(ax + bx, ay + by, az + bz, ae + be)
            tx, ty = ax + bx + hx, ay + by + hy
            row[6] = mass_of(tx, ty, az + bz + hz, ae + be + he)
            row[7] = np.sqrt(tx * tx + ty * ty)
            row[8] = pt[w1]
            row[9] = pt[w2]
            row[10] = pt[bh]
            row[11] = pt[bl]
            row[12] = btag[w1]
            row[13] = btag[w2]
            row[14] = btag[bh]
            row[15] = btag[bl]


def training_rows(events: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (rows of 12 per event), labels (1 for the right assignment) and each
    event's number, for the selected events of a unit whose truth is complete."""
    from saetta.analyses.agc import select_jets, select_lepton

    lepton = select_lepton(events)
    jets, roles = select_jets(events, extra="ttbarRole")
    assert roles is not None
    n_jets, n_b = jets.counts()
    picked = np.flatnonzero((lepton.count == 1) & (n_jets >= 4) & (n_b >= 1))
    sub = jets.take(picked)
    sub_roles = roles[jets.positions(picked)[1]]
    right = truth(sub_roles[sub.offsets[:-1, None] + np.arange(4)])
    keep = np.flatnonzero(right >= 0)
    sub, lep = sub.take(keep), lepton.take(picked[keep])
    labels = np.zeros((len(keep), len(ASSIGNMENTS)), dtype=np.int64)
    labels[np.arange(len(keep)), right[keep]] = 1
    numbers = np.asarray(events.event)[picked[keep]]
    return features(sub, lep), labels.ravel(), numbers
