"""Stage: tooling (layer 9) — synthetic NanoAOD-like data for the demo and the tests.

:func:`generate_nanoaod` writes a seeded, deterministic file of CMS-NanoAOD-like
events, either as a ROOT ``TTree`` (through uproot) or as a Parquet file (through
pyarrow), with the same flat branch names in both: ``run``, ``MET_pt``, ``nJet``,
``Jet_pt``, ... Events are generated chunk by chunk, each chunk from its own
``numpy.random.default_rng([seed, chunk_index])``, so memory stays bounded by
``chunk_events`` however large the file.

The physics is a cartoon, but with the right shapes: falling jet and MET spectra,
Z→μμ (~10 %) and Z→ee (~5 %) decays with exact relativistic kinematics, soft
background leptons (some inside jets), so that selections, invariant masses and
jet–lepton cleaning all have something to find.

``genWeight`` is ±1 (5 % negative, as from an NLO generator) by default; with
``weights="lognormal"`` its magnitudes are log-normal instead (median 1, σ of the
log 1), with the same signs and every other branch unchanged, so that weighted
sums (the variances of a weighted histogram, weights times scale factors) depend
on the order they are added in, as they do in real samples.

One module, longer than most: the event model (each collection's generator)
and the two writers share the branch table, and a reader sees the whole
sample's definition in one place.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from saetta.storage import atomic_path

__all__ = ["generate_nanoaod"]

_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)

#: Per-event branches, in file order.
_SCALARS: dict[str, np.dtype[Any]] = {
    "run": np.dtype(np.uint32),
    "luminosityBlock": np.dtype(np.uint32),
    "event": np.dtype(np.uint64),
    "genWeight": _F32,
    "MET_pt": _F32,
    "MET_phi": _F32,
    "MET_sumEt": _F32,
    "PV_npvs": _I32,
}
_LEPTON_FIELDS = {
    "pt": _F32,
    "eta": _F32,
    "phi": _F32,
    "mass": _F32,
    "charge": _I32,
    "pfRelIso03_all": _F32,
}
#: Jagged collections (counter ``n<Name>``, branches ``<Name>_<field>``), in file order.
_COLLECTIONS: dict[str, dict[str, np.dtype[Any]]] = {
    "Jet": {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "btag": _F32, "jetId": _I32},
    "Muon": _LEPTON_FIELDS,
    "Electron": _LEPTON_FIELDS,
}

_MUON_MASS = 0.10566
_ELECTRON_MASS = 0.000511
_Z_MASS, _Z_WIDTH, _Z_RANGE = 91.19, 2.5, (50.0, 150.0)
_JET_ETA_MAX, _LEPTON_ETA_MAX = 4.7, 2.5
_EVENTS_PER_LUMI = 1000
# Largest float32 strictly below pi: keeps phi in [-pi, pi) after the cast to float32.
_PI32 = np.nextafter(np.float32(np.pi), np.float32(0))
_NEGATIVE_WEIGHTS = 0.05
_WEIGHT_SIGMA = 1.0  # of log|genWeight| with weights="lognormal"
_WEIGHTS = ("unit", "lognormal")

FloatArray = npt.NDArray[np.float64]
Collection = tuple[npt.NDArray[np.int64], dict[str, npt.NDArray[Any]]]  # counts, flat fields


class _Chunk(NamedTuple):
    """One chunk of events: flat per-event arrays and ``(counts, contents)`` collections."""

    scalars: dict[str, npt.NDArray[Any]]
    collections: dict[str, Collection]


# --------------------------------------------------------------------------- physics


def _phi32(phi: FloatArray) -> npt.NDArray[np.float32]:
    """Wrap angles into [-pi, pi) and cast to float32 without rounding onto +/-pi."""
    wrapped = np.mod(phi + np.pi, 2 * np.pi) - np.pi
    return np.clip(wrapped.astype(np.float32), -_PI32, _PI32)


def _charges(rng: np.random.Generator, size: int) -> npt.NDArray[np.int32]:
    return (2 * rng.integers(0, 2, size=size) - 1).astype(np.int32)


def _assemble(
    n: int, owner: npt.NDArray[np.int64], fields: dict[str, npt.NDArray[Any]]
) -> Collection:
    """Group objects by event index ``owner`` and sort them by pt, descending, within each."""
    order = np.lexsort((-fields["pt"], owner))
    counts = np.bincount(owner, minlength=n).astype(np.int64)
    return counts, {name: values[order] for name, values in fields.items()}


def _jets(rng: np.random.Generator, n: int) -> Collection:
    """Poisson(4.3) jets, power-law pT from 15 GeV, sorted by pT."""
    counts = rng.poisson(4.3, size=n)
    owner = np.repeat(np.arange(n), counts)
    m = owner.size
    pt = np.minimum(15.0 * (1.0 + rng.pareto(2.3, size=m)), 6000.0)
    eta = rng.normal(0.0, 2.0, size=m)
    outside = np.abs(eta) >= _JET_ETA_MAX
    eta[outside] = rng.uniform(-_JET_ETA_MAX, _JET_ETA_MAX, size=int(outside.sum()))
    is_b = rng.random(m) < 0.2
    btag = np.where(is_b, rng.beta(8.0, 1.2, size=m), rng.beta(1.0, 12.0, size=m))
    fields = {
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": _phi32(rng.uniform(-np.pi, np.pi, size=m)),
        "mass": (2.0 + pt * rng.gamma(5.0, 0.025, size=m)).astype(np.float32),
        "btag": btag.astype(np.float32),
        "jetId": rng.choice(np.array([6, 2, 0], np.int32), size=m, p=[0.9, 0.06, 0.04]),
    }
    return _assemble(n, owner, fields)


def _z_decays(
    rng: np.random.Generator, n_z: int, lepton_mass: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Decay ``n_z`` Z bosons into lepton pairs; returns (pt, eta, phi), shape ``(n_z, 2)``.

    The Z mass follows a Breit–Wigner truncated to ``_Z_RANGE``; the decay is isotropic
    in the Z rest frame and the leptons are boosted to the lab frame exactly.
    """
    half = _Z_WIDTH / 2
    lo, hi = (math.atan((edge - _Z_MASS) / half) for edge in _Z_RANGE)
    mass = _Z_MASS + half * np.tan(rng.uniform(lo, hi, size=n_z))
    z_pt = rng.gamma(1.5, 10.0, size=n_z)
    z_rap = rng.normal(0.0, 1.2, size=n_z)
    z_phi = rng.uniform(-np.pi, np.pi, size=n_z)
    m_t = np.hypot(mass, z_pt)
    energy = m_t * np.cosh(z_rap)
    beta = np.stack([z_pt * np.cos(z_phi), z_pt * np.sin(z_phi), m_t * np.sinh(z_rap)], -1)
    beta /= energy[:, None]
    gamma = energy / mass

    cos_t = rng.uniform(-1.0, 1.0, size=n_z)
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi_star = rng.uniform(-np.pi, np.pi, size=n_z)
    p_star = np.sqrt(mass**2 / 4 - lepton_mass**2)
    direction = np.stack([sin_t * np.cos(phi_star), sin_t * np.sin(phi_star), cos_t], -1)
    p_rest = np.stack([direction, -direction], 1) * p_star[:, None, None]  # (n_z, 2, 3)
    e_rest = (mass / 2)[:, None]

    b_dot_p = np.einsum("zk,zlk->zl", beta, p_rest)
    coeff = (gamma**2 / (gamma + 1))[:, None] * b_dot_p + gamma[:, None] * e_rest
    p_lab = p_rest + coeff[..., None] * beta[:, None, :]
    pt = np.hypot(p_lab[..., 0], p_lab[..., 1])
    eta = np.arcsinh(p_lab[..., 2] / pt)
    phi = np.arctan2(p_lab[..., 1], p_lab[..., 0])
    return pt, eta, phi


def _leptons(
    rng: np.random.Generator,
    n: int,
    is_z: npt.NDArray[np.bool_],
    jets: Collection,
    *,
    mass: float,
    pt_min: float,
    background_mean: float,
) -> Collection:
    """Z-decay leptons for the events in ``is_z`` plus Poisson background leptons."""
    z_events = np.flatnonzero(is_z)
    z_pt, z_eta, z_phi = _z_decays(rng, z_events.size, mass)
    z_charge = _charges(rng, z_events.size)[:, None] * np.array([1, -1], np.int32)
    z_iso = rng.exponential(0.02, size=z_pt.shape)

    counts = rng.poisson(background_mean, size=n)
    owner = np.repeat(np.arange(n), counts)
    m = owner.size
    pt = pt_min + rng.exponential(8.0, size=m)
    eta = rng.uniform(-_LEPTON_ETA_MAX, _LEPTON_ETA_MAX, size=m)
    phi = rng.uniform(-np.pi, np.pi, size=m)
    iso = rng.exponential(0.15, size=m)
    # About a third of background leptons sit inside a jet (ΔR ≲ 0.3) and are not isolated.
    jet_counts, jet = jets
    jet_offsets = np.concatenate([[0], np.cumsum(jet_counts)])
    near = (rng.random(m) < 0.35) & (jet_counts[owner] > 0)
    pick = jet_offsets[owner] + (rng.random(m) * jet_counts[owner]).astype(np.int64)
    pick = np.where(near, pick, 0)  # padded below, so index 0 is valid even with no jets
    near_eta = np.append(jet["eta"], 0.0)[pick] + rng.normal(0.0, 0.12, size=m)
    near_phi = np.append(jet["phi"], 0.0)[pick] + rng.normal(0.0, 0.12, size=m)
    near &= np.abs(near_eta) < _LEPTON_ETA_MAX
    eta = np.where(near, near_eta, eta)
    phi = np.where(near, near_phi, phi)
    iso = np.where(near, 0.2 + rng.exponential(0.5, size=m), iso)

    all_owner = np.concatenate([np.repeat(z_events, 2), owner])
    all_pt = np.concatenate([z_pt.ravel(), pt])
    all_eta = np.concatenate([z_eta.ravel(), eta])
    accepted = (np.abs(all_eta) < _LEPTON_ETA_MAX) & (all_pt > pt_min)
    fields = {
        "pt": all_pt.astype(np.float32),
        "eta": all_eta.astype(np.float32),
        "phi": _phi32(np.concatenate([z_phi.ravel(), phi])),
        "mass": np.full(all_pt.size, mass, np.float32),
        "charge": np.concatenate([z_charge.ravel(), _charges(rng, m)]),
        "pfRelIso03_all": np.concatenate([z_iso.ravel(), iso]).astype(np.float32),
    }
    return _assemble(n, all_owner[accepted], {k: v[accepted] for k, v in fields.items()})


def _gen_weights(
    rng: np.random.Generator, seed: int, index: int, n: int, weights: str
) -> npt.NDArray[np.float32]:
    """Signs from the chunk's ``rng``; log-normal magnitudes from a stream of their own,
    ``rng([seed, index, 1])``, so that they change nothing else in the chunk."""
    sign = np.where(rng.random(n) < _NEGATIVE_WEIGHTS, -1.0, 1.0)
    if weights == "lognormal":
        magnitude = np.random.default_rng([seed, index, 1]).lognormal(0.0, _WEIGHT_SIGMA, n)
        sign = sign * magnitude
    return sign.astype(np.float32)


def _generate_chunk(
    seed: int, index: int, first_event: int, n: int, weights: str = "unit"
) -> _Chunk:
    """Generate events ``first_event .. first_event + n - 1`` from ``rng([seed, index])``."""
    rng = np.random.default_rng([seed, index])
    number = np.arange(first_event, first_event + n, dtype=np.uint64)
    jets = _jets(rng, n)
    process = rng.random(n)
    muons = _leptons(rng, n, process < 0.10, jets, mass=_MUON_MASS, pt_min=3.0, background_mean=0.4)
    electrons = _leptons(
        rng,
        n,
        (process >= 0.10) & (process < 0.15),
        jets,
        mass=_ELECTRON_MASS,
        pt_min=5.0,
        background_mean=0.35,
    )
    npvs = rng.poisson(30.0, size=n)
    tail = rng.random(n) < 0.04
    met = np.where(tail, 40.0 + rng.exponential(120.0, size=n), rng.gamma(2.0, 14.0, size=n))
    jet_ht = np.bincount(np.repeat(np.arange(n), jets[0]), weights=jets[1]["pt"], minlength=n)
    scalars: dict[str, npt.NDArray[Any]] = {
        "run": np.ones(n, np.uint32),
        "luminosityBlock": (1 + number // _EVENTS_PER_LUMI).astype(np.uint32),
        "event": number + 1,
        "genWeight": _gen_weights(rng, seed, index, n, weights),
        "MET_pt": met.astype(np.float32),
        "MET_phi": _phi32(rng.uniform(-np.pi, np.pi, size=n)),
        "MET_sumEt": (jet_ht + 15.0 * npvs + rng.gamma(3.0, 60.0, size=n)).astype(np.float32),
        "PV_npvs": npvs.astype(np.int32),
    }
    return _Chunk(scalars, {"Jet": jets, "Muon": muons, "Electron": electrons})


def _chunks(events: int, seed: int, chunk_events: int, weights: str) -> Iterator[_Chunk]:
    for index, start in enumerate(range(0, events, chunk_events)):
        yield _generate_chunk(seed, index, start, min(chunk_events, events - start), weights)


# --------------------------------------------------------------------------- writers


def _root_compression(spec: str) -> Any:
    import uproot

    name, _, level = spec.lower().partition(":")
    codecs: dict[str, Callable[[int], Any]] = {
        "zlib": uproot.ZLIB,
        "lz4": uproot.LZ4,
        "zstd": uproot.ZSTD,
        "lzma": uproot.LZMA,
    }
    if name == "none" and not level:
        return None
    if name not in codecs or (level and not level.isdigit()):
        raise ValueError(
            f"unknown ROOT compression {spec!r}: expected 'zlib:N', 'lz4:N', 'zstd:N', "
            "'lzma:N' or 'none'"
        )
    return codecs[name](int(level) if level else 1)


def _awkward_collection(collection: Collection, fields: dict[str, np.dtype[Any]]) -> Any:
    import awkward as ak

    counts, contents = collection
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.asarray(contents[f], dtype=dt)) for f, dt in fields.items()],
        list(fields),
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _write_root(path: pathlib.Path, chunks: Iterator[_Chunk], compression: str, tree: str) -> None:
    import uproot

    codec = _root_compression(compression)
    types: dict[str, Any] = dict(_SCALARS)
    for name, fields in _COLLECTIONS.items():
        empty = (np.zeros(0, np.int64), {f: np.zeros(0, dt) for f, dt in fields.items()})
        types[name] = _awkward_collection(empty, fields).type.content
    with uproot.recreate(path, compression=codec) as file:
        ttree = file.mktree(tree, types, counter_name=lambda name: f"n{name}")
        for chunk in chunks:
            data: dict[str, Any] = dict(chunk.scalars)
            for name, fields in _COLLECTIONS.items():
                data[name] = _awkward_collection(chunk.collections[name], fields)
            ttree.extend(data)


def _parquet_compression(spec: str) -> tuple[str, int | None]:
    import pyarrow as pa

    if spec == "zlib:1":  # the ROOT-oriented default: use Parquet's best general codec
        return "zstd", None
    name, _, level = spec.lower().partition(":")
    name = {"zlib": "gzip"}.get(name, name)
    if name == "none" and not level:
        return "none", None
    try:
        available = pa.Codec.is_available(name) and (not level or level.isdigit())
    except ValueError:  # pyarrow's answer to a name it does not know
        available = False
    if not available:
        raise ValueError(f"unknown Parquet compression {spec!r}: expected e.g. 'zstd', 'snappy'")
    return name, int(level) if level else None


def _write_parquet(
    path: pathlib.Path, chunks: Iterator[_Chunk], compression: str, chunk_events: int
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    codec, level = _parquet_compression(compression)
    fields = [pa.field(n, pa.from_numpy_dtype(dt), nullable=False) for n, dt in _SCALARS.items()]
    list_types: dict[tuple[str, str], Any] = {}
    for name, members in _COLLECTIONS.items():
        fields.append(pa.field(f"n{name}", pa.int32(), nullable=False))
        for member, dt in members.items():
            item = pa.field("item", pa.from_numpy_dtype(dt), nullable=False)
            list_types[name, member] = pa.list_(item)
            fields.append(pa.field(f"{name}_{member}", list_types[name, member], nullable=False))
    schema = pa.schema(fields)
    with pq.ParquetWriter(path, schema, compression=codec, compression_level=level) as writer:
        written = False
        for chunk in chunks:
            columns = [pa.array(chunk.scalars[name]) for name in _SCALARS]
            for name, members in _COLLECTIONS.items():
                counts, contents = chunk.collections[name]
                offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
                columns.append(pa.array(counts.astype(np.int32)))
                for member in members:
                    values = pa.array(contents[member])
                    columns.append(
                        pa.ListArray.from_arrays(offsets, values, type=list_types[name, member])
                    )
            table = pa.Table.from_arrays(columns, schema=schema)
            writer.write_table(table, row_group_size=chunk_events)
            written = True
        if not written:  # one empty row group: some readers reject a file with none
            writer.write_table(schema.empty_table())


# --------------------------------------------------------------------------- public API


def generate_nanoaod(
    path: str | os.PathLike[str],
    events: int,
    *,
    seed: int = 1,
    format: Literal["root", "parquet"] | None = None,
    compression: str = "zlib:1",
    chunk_events: int = 50_000,
    tree: str = "Events",
    weights: Literal["unit", "lognormal"] = "unit",
) -> pathlib.Path:
    """Write a synthetic NanoAOD-like event file.

    Parameters
    ----------
    path
        Output file; its parent directories are created. The file is written to a
        temporary name next to it and renamed into place when complete.
    events
        Number of events (0 gives a valid file with the full schema and no entries).
    seed
        Random seed; chunk ``i`` is generated from ``numpy.random.default_rng([seed, i])``,
        so the same ``(events, seed, chunk_events)`` always gives identical content,
        in either format.
    format
        ``"root"`` (a ``TTree``) or ``"parquet"``; ``None`` infers it from the suffix
        (``.root`` or ``.parquet``).
    compression
        ROOT: ``"zlib:N"``, ``"lz4:N"``, ``"zstd:N"``, ``"lzma:N"`` or ``"none"``.
        Parquet: a pyarrow codec name, optionally ``"name:level"`` (``"zlib"`` means
        ``"gzip"``); the default ``"zlib:1"`` becomes ``"zstd"`` for Parquet.
    chunk_events
        Events generated at a time: one basket per branch (one ``extend``) in ROOT,
        one row group in Parquet. Peak memory scales with it, not with ``events``.
    tree
        Name of the ROOT tree (ignored for Parquet).
    weights
        ``genWeight``: ``"unit"``, ±1 (5 % negative); or ``"lognormal"``, the same signs
        times log-normal magnitudes (median 1, σ of the log 1), whose squares do not sum
        exactly, so a merge in another order gives other bits. Every other branch is the
        same either way.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        For a negative ``events``, a non-positive ``chunk_events``, an unknown format
        or suffix, an unknown compression, or unknown ``weights``.
    """
    out = pathlib.Path(path)
    if isinstance(events, bool) or not isinstance(events, int | np.integer) or events < 0:
        raise ValueError(f"events must be a non-negative integer, got {events!r}")
    if (
        isinstance(chunk_events, bool)
        or not isinstance(chunk_events, int | np.integer)
        or chunk_events < 1
    ):
        raise ValueError(f"chunk_events must be a positive integer, got {chunk_events!r}")
    fmt: str | None = format
    if fmt is None:
        fmt = {".root": "root", ".parquet": "parquet"}.get(out.suffix.lower())
        if fmt is None:
            raise ValueError(
                f"cannot infer the format of {str(out)!r} from its suffix: "
                "use .root or .parquet, or pass format="
            )
    if fmt not in ("root", "parquet"):
        raise ValueError(f"unknown format {fmt!r}: expected 'root' or 'parquet'")
    if weights not in _WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}: expected 'unit' or 'lognormal'")
    # Validate the codec before any work or file creation.
    (_root_compression if fmt == "root" else _parquet_compression)(compression)

    chunks = _chunks(int(events), seed, int(chunk_events), weights)
    with atomic_path(out) as tmp:
        if fmt == "root":
            _write_root(tmp, chunks, compression, tree)
        else:
            _write_parquet(tmp, chunks, compression, int(chunk_events))
    return out
