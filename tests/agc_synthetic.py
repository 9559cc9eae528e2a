"""Small NanoAOD files with the AGC's branches, random, with values put exactly on the
analysis' cuts, NaN, infinities and empty collections, to run through the product and
the reference alike (written with numpy and uproot/pyarrow only)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot


def agc_events(n: int, seed: int) -> dict[str, np.ndarray | ak.Array]:
    """The branches of ``n`` events: about a third pass the AGC selection."""
    rng = np.random.default_rng(seed)

    def jagged(counts: np.ndarray, values: np.ndarray) -> ak.Array:
        return ak.unflatten(values, counts)

    def pick(size: int, p: float = 0.08) -> np.ndarray:
        """Where to put special values."""
        return rng.random(size) < p

    n_jet = rng.choice([0, 1, 3, 4, 4, 5, 5, 6, 7, 9], size=n)
    nj = int(n_jet.sum())
    jet_pt = rng.exponential(40.0, nj) + 20.0
    edge = pick(nj)
    jet_pt[edge] = rng.choice([30.0, np.nextafter(np.float32(30), np.float32(0)), 31.0], edge.sum())
    jet_pt[rng.random(nj) < 0.01] = np.nan
    jet_eta = rng.uniform(-3.0, 3.0, nj)
    edge = pick(nj)
    jet_eta[edge] = rng.choice([2.4, -2.4, 2.3999], edge.sum())
    jet_btag = rng.beta(1.0, 2.0, nj)
    tagged = pick(nj, p=0.3)
    jet_btag[tagged] = rng.uniform(0.5, 1.0, tagged.sum())
    jet_btag[pick(nj, p=0.1)] = 0.5
    jet_id = rng.choice([6, 6, 6, 6, 2, 7], size=nj)
    jet_mass = rng.uniform(2.0, 20.0, nj)
    jet_mass[rng.random(nj) < 0.005] = np.inf

    n_el = rng.choice([0, 0, 1, 1, 2], size=n)
    ne = int(n_el.sum())
    el_pt = rng.exponential(30.0, ne) + 15.0
    edge = pick(ne)
    el_pt[edge] = 30.0
    el_eta = rng.uniform(-2.5, 2.5, ne)
    edge = pick(ne)
    el_eta[edge] = 2.1
    el_cut = rng.choice([4, 4, 4, 3, 1], size=ne)
    el_sip = rng.exponential(2.0, ne)
    el_sip[pick(ne)] = 4.0

    n_mu = rng.choice([0, 0, 1, 1, 2], size=n)
    nm = int(n_mu.sum())
    mu_pt = rng.exponential(30.0, nm) + 15.0
    mu_pt[pick(nm)] = 30.0
    mu_eta = rng.uniform(-2.5, 2.5, nm)
    mu_eta[pick(nm)] = -2.1
    mu_tight = rng.random(nm) < 0.85
    mu_sip = rng.exponential(2.0, nm)
    mu_sip[pick(nm)] = 4.0
    mu_iso = rng.exponential(0.08, nm)
    mu_iso[pick(nm)] = 0.15
    mu_iso[rng.random(nm) < 0.01] = np.nan

    f32 = np.float32
    return {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.full(n, seed, dtype=np.uint32),
        "event": np.arange(1, n + 1, dtype=np.uint64),
        "genWeight": rng.choice([1.0, 1.0, 1.0, -1.0, 0.5], size=n).astype(f32),
        "Jet_pt": jagged(n_jet, jet_pt.astype(f32)),
        "Jet_eta": jagged(n_jet, jet_eta.astype(f32)),
        "Jet_phi": jagged(n_jet, rng.uniform(-np.pi, np.pi, nj).astype(f32)),
        "Jet_mass": jagged(n_jet, jet_mass.astype(f32)),
        "Jet_btagCSVV2": jagged(n_jet, np.clip(jet_btag, 0, 1).astype(f32)),
        "Jet_jetId": jagged(n_jet, jet_id.astype(np.int32)),
        "Electron_pt": jagged(n_el, el_pt.astype(f32)),
        "Electron_eta": jagged(n_el, el_eta.astype(f32)),
        "Electron_phi": jagged(n_el, rng.uniform(-np.pi, np.pi, ne).astype(f32)),
        "Electron_mass": jagged(n_el, np.full(ne, 0.000511, dtype=f32)),
        "Electron_charge": jagged(n_el, rng.choice([-1, 1], ne).astype(np.int32)),
        "Electron_cutBased": jagged(n_el, el_cut.astype(np.int32)),
        "Electron_sip3d": jagged(n_el, el_sip.astype(f32)),
        "Muon_pt": jagged(n_mu, mu_pt.astype(f32)),
        "Muon_eta": jagged(n_mu, mu_eta.astype(f32)),
        "Muon_phi": jagged(n_mu, rng.uniform(-np.pi, np.pi, nm).astype(f32)),
        "Muon_mass": jagged(n_mu, np.full(nm, 0.10566, dtype=f32)),
        "Muon_charge": jagged(n_mu, rng.choice([-1, 1], nm).astype(np.int32)),
        "Muon_tightId": jagged(n_mu, mu_tight),
        "Muon_sip3d": jagged(n_mu, mu_sip.astype(f32)),
        "Muon_pfRelIso04_all": jagged(n_mu, mu_iso.astype(f32)),
        "MET_pt": rng.exponential(40.0, n).astype(f32),
        "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(f32),
    }


def write_root(path: Path, branches: dict[str, np.ndarray | ak.Array]) -> Path:
    """A NanoAOD-layout TTree ``Events``: counters ``nJet`` etc., as CMS writes them."""
    groups: dict[str, dict[str, ak.Array]] = {}
    flat: dict[str, np.ndarray] = {}
    for name, values in branches.items():
        prefix, _, field = name.partition("_")
        if isinstance(values, ak.Array) and field:
            groups.setdefault(prefix, {})[field] = values
        else:
            flat[name] = values  # type: ignore[assignment]
    data: dict[str, object] = dict(flat)
    for prefix, fields in groups.items():
        data[prefix] = ak.zip(fields)
    with uproot.recreate(path) as f:
        types = {
            k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()
        }
        tree = f.mktree(
            "Events",
            types,
            counter_name=lambda name: f"n{name}",
            field_name=lambda o, f: f"{o}_{f}",
        )
        tree.extend(data)
    return path


def write_parquet(path: Path, branches: dict[str, np.ndarray | ak.Array]) -> Path:
    """The same branches as flat Parquet columns, jagged ones as lists, with counters."""
    columns: dict[str, object] = {}
    for name, values in branches.items():
        prefix, _, field = name.partition("_")
        if isinstance(values, ak.Array) and field and f"n{prefix}" not in columns:
            columns[f"n{prefix}"] = np.asarray(ak.num(values), dtype=np.int32)
        columns[name] = values
    ak.to_parquet(ak.zip(columns, depth_limit=1), path)
    return path
