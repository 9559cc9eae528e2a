"""What every peer of the ADL benchmark agrees on: queries, histograms, branches, output.

Standard library only: this module is imported by peers running in other
virtual environments (ROOT's, coffea's) as well as by ``benchmarks/adl.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

NBINS = 100

#: histogram name -> (lo, hi); 100 regular bins each, ROOT TH1 fill rules.
HISTOGRAMS: dict[str, tuple[float, float]] = {
    "q1_met": (0.0, 200.0),
    "q2_jet_pt": (15.0, 60.0),
    "q3_jet_pt": (15.0, 60.0),
    "q4_met": (0.0, 200.0),
    "q5_met": (0.0, 200.0),
    "q6_trijet_pt": (0.0, 250.0),
    "q6_trijet_btag": (0.0, 1.0),
    "q7_sum_pt": (15.0, 200.0),
    "q8_mt": (0.0, 200.0),
}

QUERY_NAMES: tuple[str, ...] = ("q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8")

#: query -> the histograms it fills
QUERY_HISTOGRAMS: dict[str, tuple[str, ...]] = {
    q: tuple(h for h in HISTOGRAMS if h.startswith(q + "_")) for q in QUERY_NAMES
}

_JET4 = ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
_MU5 = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"]
_EL5 = ["Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge"]

#: query -> the branches it needs, counters (nJet, ...) included: what ``rootreadspeed`` reads.
BRANCHES: dict[str, list[str]] = {
    "q1": ["MET_pt"],
    "q2": ["nJet", "Jet_pt"],
    "q3": ["nJet", "Jet_pt", "Jet_eta"],
    "q4": ["MET_pt", "nJet", "Jet_pt"],
    "q5": ["MET_pt", "nMuon", *_MU5],
    "q6": ["nJet", *_JET4, "Jet_btag"],
    "q7": [
        "nJet",
        "Jet_pt",
        "Jet_eta",
        "Jet_phi",
        "nMuon",
        "Muon_pt",
        "Muon_eta",
        "Muon_phi",
        "nElectron",
        "Electron_pt",
        "Electron_eta",
        "Electron_phi",
    ],
    "q8": ["MET_pt", "MET_phi", "nMuon", *_MU5, "nElectron", *_EL5],
}

#: stdout line prefix of a peer's JSON answer (libraries may print on stdout too)
MARKER = "ADLBENCH-JSON "


def parse_queries(text: str) -> list[str]:
    queries = [q.strip() for q in text.split(",") if q.strip()]
    unknown = [q for q in queries if q not in QUERY_NAMES]
    if unknown:
        msg = f"unknown queries {unknown}; known: {', '.join(QUERY_NAMES)}"
        raise SystemExit(msg)
    return queries


def time_best(
    run_once: Callable[[], tuple[int, dict[str, list[float]]]], repeat: int
) -> dict[str, Any]:
    """Run ``run_once`` ``repeat`` times: best and all wall times, events and histograms.

    ``run_once`` returns ``(events, {histogram: 102 bin values})``. Histograms
    from every repetition must be identical; a difference is recorded, not hidden.
    """
    seconds: list[float] = []
    events = 0
    hists: dict[str, list[float]] = {}
    unstable: list[str] = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        events, these = run_once()
        seconds.append(time.perf_counter() - started)
        if hists and these != hists:
            unstable.extend(sorted(h for h in these if these[h] != hists.get(h)))
        hists = these
    out: dict[str, Any] = {
        "seconds": min(seconds),
        "all_seconds": seconds,
        "events": events,
        "hists": hists,
    }
    if unstable:
        out["unstable_between_repeats"] = sorted(set(unstable))
    return out


def emit(payload: dict[str, Any]) -> None:
    """Print the answer as one marked JSON line on stdout."""
    sys.stdout.flush()
    os.write(1, (MARKER + json.dumps(payload) + "\n").encode())


def parse_output(stdout: str) -> dict[str, Any]:
    """The last marked JSON line of a peer's stdout."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            answer: dict[str, Any] = json.loads(line[len(MARKER) :])
            return answer
    msg = "no result line in the peer's output"
    raise ValueError(msg)
