"""The ADL queries in ROOT RDataFrame (run with the Python of ``benchmarks/.venv-root``).

Each query is a jitted RDataFrame graph: string ``Filter``/``Define`` expressions
and, for the combinatorial queries, plain C++ functions declared once with
``gInterpreter.Declare`` (inline functions in a namespace, no globals). Kinematics
in double precision from the file's float32, as saetta defines them; floating-point
contraction into FMA is switched off so results agree bit for bit.

The time of one run is the wall time of the event loop *minus* RDataFrame's
just-in-time compilation phase (read from RDataFrame's own log), so that, like
saetta's numba compilation, one-time compilation is excluded; the JIT seconds are
reported beside it.

Run: ``python benchmarks/peers/rdf.py --file F.root --threads 1 --queries q1,q5``;
prints one JSON line (see ``adlspec.emit``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from typing import Any

from adlspec import HISTOGRAMS, NBINS, emit, parse_queries

CPP = r"""
#pragma clang fp contract(off)
#include <cmath>
#include <algorithm>
#include <limits>
#include "ROOT/RVec.hxx"

namespace adlbench {
using RVecF = ROOT::RVec<float>;
using RVecI = ROOT::RVec<int>;

struct P4 { double px, py, pz, e; };

inline P4 p4(float pt_, float eta_, float phi_, float m_) {
  const double pt = pt_, eta = eta_, phi = phi_, m = m_;
  const double px = pt * std::cos(phi);
  const double py = pt * std::sin(phi);
  const double pz = pt * std::sinh(eta);
  return {px, py, pz, std::sqrt(px * px + py * py + pz * pz + m * m)};
}

inline double mass_of(double px, double py, double pz, double e) {
  const double m2 = e * e - px * px - py * py - pz * pz;
  return m2 >= 0 ? std::sqrt(m2) : -std::sqrt(-m2);
}

inline double delta_r(double eta1, double phi1, double eta2, double phi2) {
  double dphi = phi1 - phi2;
  if (dphi > M_PI) dphi -= 2 * M_PI;
  else if (dphi < -M_PI) dphi += 2 * M_PI;
  const double deta = eta1 - eta2;
  return std::sqrt(deta * deta + dphi * dphi);
}

// q5: an opposite-charge pair with 60 < m < 120
inline bool q5_has_pair(const RVecF &pt, const RVecF &eta, const RVecF &phi, const RVecF &mass,
                        const RVecI &charge) {
  const std::size_t n = pt.size();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j)
      if (charge[i] * charge[j] < 0) {
        const P4 a = p4(pt[i], eta[i], phi[i], mass[i]);
        const P4 b = p4(pt[j], eta[j], phi[j], mass[j]);
        const double m = mass_of(a.px + b.px, a.py + b.py, a.pz + b.pz, a.e + b.e);
        if (60.0 < m && m < 120.0) return true;
      }
  return false;
}

// q6: {pT, max btag} of the trijet of mass closest to 172.5 (first on ties); needs n >= 3
inline ROOT::RVec<double> q6_trijet(const RVecF &pt, const RVecF &eta, const RVecF &phi,
                                    const RVecF &mass, const RVecF &btag) {
  const std::size_t n = pt.size();
  ROOT::RVec<double> px(n), py(n), pz(n), en(n);
  for (std::size_t a = 0; a < n; ++a) {
    const P4 v = p4(pt[a], eta[a], phi[a], mass[a]);
    px[a] = v.px; py[a] = v.py; pz[a] = v.pz; en[a] = v.e;
  }
  double best = std::numeric_limits<double>::infinity();
  std::size_t bi = 0, bj = 0, bk = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) {
      const double sx = px[i] + px[j], sy = py[i] + py[j], sz = pz[i] + pz[j], se = en[i] + en[j];
      for (std::size_t k = j + 1; k < n; ++k) {
        const double diff = std::abs(mass_of(sx + px[k], sy + py[k], sz + pz[k], se + en[k]) - 172.5);
        if (diff < best) { best = diff; bi = i; bj = j; bk = k; }
      }
    }
  const double tx = px[bi] + px[bj] + px[bk];
  const double ty = py[bi] + py[bj] + py[bk];
  const float top = std::max(std::max(btag[bi], btag[bj]), btag[bk]);
  return {std::sqrt(tx * tx + ty * ty), double(top)};
}

// q7: scalar sum of pT of jets (pT > 30) not within dR < 0.4 of a lepton (pT > 10); -1 if none
inline double q7_sum_pt(const RVecF &jpt, const RVecF &jeta, const RVecF &jphi,
                        const RVecF &mpt, const RVecF &meta, const RVecF &mphi,
                        const RVecF &ept, const RVecF &eeta, const RVecF &ephi) {
  double total = 0.0;
  int counted = 0;
  for (std::size_t j = 0; j < jpt.size(); ++j) {
    if (!(jpt[j] > 30.0)) continue;
    bool clean = true;
    for (std::size_t m = 0; clean && m < mpt.size(); ++m)
      if (mpt[m] > 10.0 && delta_r(jeta[j], jphi[j], meta[m], mphi[m]) < 0.4) clean = false;
    for (std::size_t m = 0; clean && m < ept.size(); ++m)
      if (ept[m] > 10.0 && delta_r(jeta[j], jphi[j], eeta[m], ephi[m]) < 0.4) clean = false;
    if (clean) { total += double(jpt[j]); ++counted; }
  }
  return counted > 0 ? total : -1.0;
}

// q8: mT of MET and the leading lepton outside the SFOS pair closest to 91.2; -1 if none
inline double q8_mt(float met, float met_phi,
                    const RVecF &mpt, const RVecF &meta, const RVecF &mphi, const RVecF &mmass,
                    const RVecI &mq,
                    const RVecF &ept, const RVecF &eeta, const RVecF &ephi, const RVecF &emass,
                    const RVecI &eq) {
  const std::size_t nmu = mpt.size(), n = nmu + ept.size();
  if (n < 3) return -1.0;
  ROOT::RVec<double> pt(n), phi(n);
  ROOT::RVec<P4> v(n);
  ROOT::RVec<int> q(n), muon(n);
  for (std::size_t a = 0; a < n; ++a) {
    const bool mu = a < nmu;
    const std::size_t j = mu ? a : a - nmu;
    pt[a] = mu ? mpt[j] : ept[j];
    phi[a] = mu ? mphi[j] : ephi[j];
    q[a] = mu ? mq[j] : eq[j];
    muon[a] = mu;
    v[a] = mu ? p4(mpt[j], meta[j], mphi[j], mmass[j]) : p4(ept[j], eeta[j], ephi[j], emass[j]);
  }
  double best = std::numeric_limits<double>::infinity();
  long bi = -1, bj = -1;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j)
      if (muon[i] == muon[j] && q[i] * q[j] < 0) {
        const double diff = std::abs(mass_of(v[i].px + v[j].px, v[i].py + v[j].py,
                                             v[i].pz + v[j].pz, v[i].e + v[j].e) - 91.2);
        if (diff < best) { best = diff; bi = i; bj = j; }
      }
  if (bi < 0) return -1.0;
  long lead = -1;
  for (long a = 0; a < long(n); ++a)
    if (a != bi && a != bj && (lead < 0 || pt[a] > pt[lead])) lead = a;
  const double mt2 = 2.0 * pt[lead] * double(met) * (1.0 - std::cos(phi[lead] - double(met_phi)));
  return std::sqrt(mt2);
}
}  // namespace adlbench
"""

MU = "Muon_pt, Muon_eta, Muon_phi, Muon_mass"
EL = "Electron_pt, Electron_eta, Electron_phi, Electron_mass"
JETS = "Jet_pt, Jet_eta, Jet_phi, Jet_mass"
CLEAN = ", ".join(f"{c}_{f}" for c in ("Jet", "Muon", "Electron") for f in ("pt", "eta", "phi"))

#: query -> (its graph: ("Filter", expression) / ("Define", column, expression) in order,
#:           the histograms it fills: (histogram, column))
GRAPHS: dict[str, tuple[list[tuple[str, ...]], list[tuple[str, str]]]] = {
    "q1": ([], [("q1_met", "MET_pt")]),
    "q2": ([], [("q2_jet_pt", "Jet_pt")]),
    "q3": (
        [("Define", "central_pt", "Jet_pt[abs(Jet_eta) < 1]")],
        [("q3_jet_pt", "central_pt")],
    ),
    "q4": ([("Filter", "Sum(Jet_pt > 40) >= 2")], [("q4_met", "MET_pt")]),
    "q5": (
        [("Filter", "nMuon >= 2"), ("Filter", f"adlbench::q5_has_pair({MU}, Muon_charge)")],
        [("q5_met", "MET_pt")],
    ),
    "q6": (
        [
            ("Filter", "nJet >= 3"),
            ("Define", "trijet", f"adlbench::q6_trijet({JETS}, Jet_btag)"),
            ("Define", "trijet_pt", "trijet[0]"),
            ("Define", "trijet_btag", "trijet[1]"),
        ],
        [("q6_trijet_pt", "trijet_pt"), ("q6_trijet_btag", "trijet_btag")],
    ),
    "q7": (
        [
            (
                "Define",
                "sum_pt",
                f"adlbench::q7_sum_pt({CLEAN})",
            ),
            ("Filter", "sum_pt >= 0"),
        ],
        [("q7_sum_pt", "sum_pt")],
    ),
    "q8": (
        [
            ("Filter", "nMuon + nElectron >= 3"),
            (
                "Define",
                "mt",
                f"adlbench::q8_mt(MET_pt, MET_phi, {MU}, Muon_charge, {EL}, Electron_charge)",
            ),
            ("Filter", "mt >= 0"),
        ],
        [("q8_mt", "mt")],
    ),
}


def book(ROOT: Any, df: Any, query: str) -> dict[str, Any]:
    """Book the query's histograms on ``df``: {name: RResultPtr<TH1D>}."""
    steps, hists = GRAPHS[query]
    node = df
    for kind, *what in steps:
        node = node.Filter(*what) if kind == "Filter" else node.Define(*what)
    booked = {}
    for name, column in hists:
        lo, hi = HISTOGRAMS[name]
        booked[name] = node.Histo1D(ROOT.RDF.TH1DModel(name, name, NBINS, lo, hi), column)
    return booked


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture what C++ writes to file descriptor 2 (RDataFrame's log) into a list of lines."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


JIT = re.compile(r"Just-in-time compilation phase completed in ([0-9.eE+-]+) seconds")
LOOP = re.compile(r"Finished event loop number \d+ \(([0-9.eE+-]+)s CPU, ([0-9.eE+-]+)s elapsed\)")


def run_query(ROOT: Any, path: str, query: str) -> dict[str, Any]:
    """One event loop; histograms, and its wall / JIT / event-loop seconds."""
    df = ROOT.RDataFrame("Events", path)
    hists = book(ROOT, df, query)
    with captured_stderr() as log:
        ROOT.gErrorIgnoreLevel  # noqa: B018 - keep ROOT initialised before the clock
        started = time.perf_counter()
        first = next(iter(hists.values()))
        first.GetValue()  # runs the event loop once for all booked histograms
        wall = time.perf_counter() - started
    text = "\n".join(log)
    jit = sum(float(m) for m in JIT.findall(text))
    loops = LOOP.findall(text)
    values = {
        name: [float(h.GetValue().GetBinContent(i)) for i in range(NBINS + 2)]
        for name, h in hists.items()
    }
    return {
        "wall": wall,
        "jit": jit,
        "event_loop": float(loops[-1][1]) if loops else None,
        "seconds": wall - jit,
        "hists": values,
        "log_ok": bool(loops),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--queries", default="q1,q2,q3,q4,q5,q6,q7,q8")
    parser.add_argument("--threads", type=int, default=1, help="1: single thread; N > 1: IMT(N)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", help="a small file of the same schema, run once untimed")
    args = parser.parse_args()
    queries = parse_queries(args.queries)

    warnings.simplefilter("ignore")  # the wheel's "alpha stage" notice
    import ROOT

    ROOT.gROOT.SetBatch(True)
    if args.threads > 1:
        ROOT.EnableImplicitMT(args.threads)
    declared = time.perf_counter()
    if not ROOT.gInterpreter.Declare(CPP):
        raise SystemExit("gInterpreter.Declare of the ADL helper functions failed")
    declare_seconds = time.perf_counter() - declared
    verbosity = ROOT.RLogScopedVerbosity(  # noqa: F841 - lives as long as main()
        ROOT.Detail.RDF.RDFLogChannel(), ROOT.ROOT.ELogLevel.kInfo
    )
    with ROOT.TFile.Open(args.file) as f:
        entries = int(f.Get("Events").GetEntries())

    results: dict[str, Any] = {}
    for query in queries:
        if args.warmup:
            run_query(ROOT, args.warmup, query)
        runs = [run_query(ROOT, args.file, query) for _ in range(max(1, args.repeat))]
        best = min(runs, key=lambda r: r["seconds"])
        unstable = sorted(
            {h for r in runs for h in r["hists"] if r["hists"][h] != best["hists"][h]}
        )
        results[query] = {
            "seconds": best["seconds"],
            "all_seconds": [r["seconds"] for r in runs],
            "wall_seconds": best["wall"],
            "jit_seconds": best["jit"],
            "event_loop_seconds": best["event_loop"],
            "events": entries,
            "hists": best["hists"],
        }
        if not best["log_ok"]:
            results[query]["note"] = "RDataFrame log not parsed: JIT time not subtracted"
        if unstable:
            results[query]["unstable_between_repeats"] = unstable
    emit(
        {
            "system": "rdf" if args.threads <= 1 else f"rdf-mt{args.threads}",
            "threads": args.threads,
            "implicit_mt": bool(ROOT.IsImplicitMTEnabled()),
            "root_version": str(ROOT.gROOT.GetVersion()),
            "declare_seconds": declare_seconds,
            "queries": results,
        }
    )


if __name__ == "__main__":
    main()
