"""Tests for saetta.datagen: the synthetic NanoAOD-like event generator."""

from __future__ import annotations

import math
import pathlib

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot

from saetta.datagen import generate_nanoaod

EVENTS = 20_000
CHUNK = 7_000  # deliberately not a divisor of EVENTS: exercises a short last chunk

_JET = {"pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32"}
_LEPTON = {**_JET, "charge": "int32", "pfRelIso03_all": "float32"}
EXPECTED: dict[str, str] = {
    "run": "uint32",
    "luminosityBlock": "uint32",
    "event": "uint64",
    "genWeight": "float32",
    "MET_pt": "float32",
    "MET_phi": "float32",
    "MET_sumEt": "float32",
    "PV_npvs": "int32",
    "nJet": "int32",
    **{f"Jet_{f}": dt for f, dt in {**_JET, "btag": "float32", "jetId": "int32"}.items()},
    "nMuon": "int32",
    **{f"Muon_{f}": dt for f, dt in _LEPTON.items()},
    "nElectron": "int32",
    **{f"Electron_{f}": dt for f, dt in _LEPTON.items()},
}
COLLECTIONS = ("Jet", "Muon", "Electron")


def is_jagged(name: str) -> bool:
    return name.split("_", maxsplit=1)[0] in COLLECTIONS


def read_root(path: pathlib.Path) -> ak.Array:
    with uproot.open(path) as file:
        return file["Events"].arrays(library="ak")


def collection(events: ak.Array, name: str) -> ak.Array:
    fields = [f.removeprefix(f"{name}_") for f in events.fields if f.startswith(f"{name}_")]
    return ak.zip({f: events[f"{name}_{f}"] for f in fields})


def os_pair_masses(leptons: ak.Array) -> ak.Array:
    """Invariant masses (massless approximation) of opposite-sign pairs, per event."""
    a, b = ak.unzip(ak.combinations(leptons, 2))
    m2 = 2 * a.pt * b.pt * (np.cosh(a.eta - b.eta) - np.cos(a.phi - b.phi))
    return np.sqrt(m2[a.charge != b.charge])


@pytest.fixture(scope="module")
def root_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("gen") / "events.root"
    return generate_nanoaod(path, EVENTS, seed=7, chunk_events=CHUNK)


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("gen") / "events.parquet"
    return generate_nanoaod(path, EVENTS, seed=7, chunk_events=CHUNK)


@pytest.fixture(scope="module")
def events(root_file: pathlib.Path) -> ak.Array:
    return read_root(root_file)


# --------------------------------------------------------------------------- schema


def test_root_branches_and_dtypes(root_file: pathlib.Path) -> None:
    with uproot.open(root_file) as file:
        assert file.classnames() == {"Events;1": "TTree"}
        tree = file["Events"]
        assert tree.keys() == list(EXPECTED)
        assert tree.num_entries == EVENTS
        for name, dtype in EXPECTED.items():
            interp = tree[name].interpretation
            assert isinstance(interp, uproot.AsJagged) == is_jagged(name), name
            inner = interp.content if is_jagged(name) else interp
            assert inner.to_dtype == np.dtype(dtype), name
        # One basket per chunk (one extend() per chunk).
        assert tree["Jet_pt"].num_baskets == math.ceil(EVENTS / CHUNK)


def test_parquet_columns_and_types(parquet_file: pathlib.Path) -> None:
    meta = pq.ParquetFile(parquet_file).metadata
    schema = pq.read_schema(parquet_file)
    assert schema.names == list(EXPECTED)
    for name, dtype in EXPECTED.items():
        arrow = schema.field(name).type
        if is_jagged(name):
            assert pa.types.is_list(arrow), name
            arrow = arrow.value_type
        assert arrow == pa.from_numpy_dtype(np.dtype(dtype)), name
    assert meta.num_rows == EVENTS
    assert meta.num_row_groups == math.ceil(EVENTS / CHUNK)
    assert meta.row_group(0).num_rows == CHUNK


def test_awkward_types_of_both_formats(events: ak.Array, parquet_file: pathlib.Path) -> None:
    for array in (events, ak.from_parquet(parquet_file)):
        assert array.fields == list(EXPECTED)
        for name, dtype in EXPECTED.items():
            expected = f"var * {dtype}" if is_jagged(name) else dtype
            assert str(array[name].type.content) == expected, name


def test_unknown_tree_name_is_honoured(tmp_path: pathlib.Path) -> None:
    path = generate_nanoaod(tmp_path / "x.root", 10, tree="Physics")
    with uproot.open(path) as file:
        assert file.keys(cycle=False) == ["Physics"]
        assert file["Physics"].num_entries == 10


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_content_different_seed_different(
    tmp_path: pathlib.Path, events: ak.Array
) -> None:
    again = read_root(generate_nanoaod(tmp_path / "a.root", EVENTS, seed=7, chunk_events=CHUNK))
    other = read_root(generate_nanoaod(tmp_path / "b.root", EVENTS, seed=8, chunk_events=CHUNK))
    assert all(ak.array_equal(events[f], again[f], dtype_exact=True) for f in EXPECTED)
    for name in ("Jet_pt", "Muon_pt", "MET_pt", "genWeight", "nJet"):
        assert not ak.array_equal(events[name], other[name]), name
    # Event numbering does not depend on the seed.
    assert ak.array_equal(events.event, other.event)


def test_root_and_parquet_hold_identical_values(
    events: ak.Array, parquet_file: pathlib.Path
) -> None:
    table = ak.from_parquet(parquet_file)
    for name in EXPECTED:
        assert ak.array_equal(events[name], table[name], dtype_exact=True), name


def test_lognormal_weights_are_not_unit_and_reproducible(
    tmp_path: pathlib.Path, events: ak.Array
) -> None:
    def weighted(name: str, seed: int = 7) -> ak.Array:
        path = generate_nanoaod(
            tmp_path / name, EVENTS, seed=seed, chunk_events=CHUNK, weights="lognormal"
        )
        return read_root(path) if name.endswith(".root") else ak.from_parquet(path)

    first = weighted("a.root")
    w = ak.to_numpy(first.genWeight)
    assert w.dtype == np.float32
    # Not +-1: all but a handful differ from 1 in magnitude, and nearly all are distinct.
    assert np.mean(np.abs(w) == 1.0) < 0.001
    assert len(np.unique(w)) > 0.99 * EVENTS
    log = np.log(np.abs(w).astype(np.float64))
    assert abs(np.median(log)) < 0.05
    assert 0.95 < np.std(log) < 1.05
    # The signs are those of the default file, and nothing else changes.
    assert np.array_equal(np.sign(w), ak.to_numpy(events.genWeight))
    for name in EXPECTED:
        if name != "genWeight":
            assert ak.array_equal(first[name], events[name], dtype_exact=True), name
    # Reproducible by seed, in either format; another seed gives other weights.
    for again in (weighted("b.root"), weighted("b.parquet")):
        assert np.array_equal(ak.to_numpy(again.genWeight), w)
    assert not np.array_equal(ak.to_numpy(weighted("c.root", seed=8).genWeight), w)
    # What the option is for: their squares sum to other bits in another order.
    squares = (w.astype(np.float64) ** 2).tolist()
    assert sum(squares) != sum(reversed(squares))
    assert sum(squares) == pytest.approx(sum(reversed(squares)), rel=1e-12)


@pytest.mark.parametrize("suffix", [".root", ".parquet"])
def test_zero_events_gives_full_schema(tmp_path: pathlib.Path, suffix: str) -> None:
    path = generate_nanoaod(tmp_path / f"empty{suffix}", 0)
    array = read_root(path) if suffix == ".root" else ak.from_parquet(path)
    assert len(array) == 0
    if suffix == ".parquet":
        assert pq.ParquetFile(path).metadata.num_rows == 0
    assert array.fields == list(EXPECTED)
    assert str(array.Jet_pt.type.content) == "var * float32"
    assert str(array.event.type.content) == "uint64"


# --------------------------------------------------------------------------- content


def test_event_numbers_unique_and_increasing_across_chunks(events: ak.Array) -> None:
    number = ak.to_numpy(events.event)
    assert number[0] >= 1
    assert np.all(np.diff(number) > 0)
    assert np.all(ak.to_numpy(events.run) >= 1)
    assert np.all(np.diff(ak.to_numpy(events.luminosityBlock).astype(np.int64)) >= 0)


def test_collections_sorted_by_pt_and_counters_match(events: ak.Array) -> None:
    for name in COLLECTIONS:
        pt = events[f"{name}_pt"]
        assert ak.all(pt[:, :-1] >= pt[:, 1:]), name
        assert ak.array_equal(ak.num(pt), events[f"n{name}"], dtype_exact=False), name


def test_ranges_and_constants(events: ak.Array) -> None:
    jets, muons, electrons = (collection(events, n) for n in COLLECTIONS)
    assert ak.all(jets.pt >= 15)
    assert ak.all(abs(jets.eta) < 4.7)
    assert ak.all((jets.btag >= 0) & (jets.btag <= 1))
    assert ak.all((jets.mass > 0) & (jets.mass < jets.pt))
    for leptons, mass in ((muons, 0.10566), (electrons, 0.000511)):
        assert ak.all(abs(leptons.eta) < 2.5)
        assert ak.all(leptons.mass == np.float32(mass))
        assert ak.all(abs(leptons.charge) == 1)
        assert ak.all(leptons.pfRelIso03_all >= 0)
    for phi in (jets.phi, muons.phi, electrons.phi, events.MET_phi):
        flat = ak.to_numpy(ak.ravel(phi)).astype(np.float64)
        assert np.all((flat >= -np.pi) & (flat < np.pi))
    weights = ak.to_numpy(events.genWeight)
    assert set(np.unique(weights)) == {-1.0, 1.0}
    assert 0.02 < np.mean(weights < 0) < 0.10
    assert 20 < np.mean(ak.to_numpy(events.PV_npvs)) < 40


def test_met_spectrum_falls_with_a_tail(events: ak.Array) -> None:
    met = ak.to_numpy(events.MET_pt)
    assert np.all(met >= 0)
    assert np.mean(met < 200) > 0.95
    assert np.mean(met > 200) > 0.002
    counts, _ = np.histogram(met, bins=[50, 100, 150, 200, 300])
    assert np.all(np.diff(counts) < 0)


def test_jet_multiplicity_fractions(events: ak.Array) -> None:
    n = ak.to_numpy(events.nJet)
    assert 0.002 < np.mean(n == 0) < 0.10
    assert np.mean(n >= 3) > 0.5
    assert 3.5 < np.mean(n) < 5.5


def test_z_to_mumu_peak(events: ak.Array) -> None:
    masses = os_pair_masses(collection(events, "Muon"))
    flat = ak.to_numpy(ak.flatten(masses))
    assert flat.size > 0.05 * EVENTS
    assert np.mean((flat > 81) & (flat < 101)) >= 0.3
    in_window = ak.any((masses > 60) & (masses < 120), axis=1)
    assert 0.04 < np.mean(in_window) < 0.12
    ee = ak.any((os_pair_masses(collection(events, "Electron")) > 60), axis=1)
    assert 0.02 < np.mean(ee) < 0.08


def test_multilepton_and_lepton_free_events(events: ak.Array) -> None:
    muons, electrons = collection(events, "Muon"), collection(events, "Electron")
    n_leptons = ak.to_numpy(events.nMuon + events.nElectron)

    def has_sfos(leptons: ak.Array) -> ak.Array:
        return ak.any(leptons.charge > 0, axis=1) & ak.any(leptons.charge < 0, axis=1)

    sfos = ak.to_numpy(has_sfos(muons) | has_sfos(electrons))
    assert np.mean((n_leptons >= 3) & sfos) >= 0.01
    assert np.mean(n_leptons == 0) > 0.1


def test_some_leptons_sit_inside_jets(events: ak.Array) -> None:
    jets = collection(events, "Jet")
    for name in ("Muon", "Electron"):
        lep, jet = ak.unzip(ak.cartesian([collection(events, name), jets], nested=True))
        dphi = (lep.phi - jet.phi + np.pi) % (2 * np.pi) - np.pi
        close = ak.any(np.hypot(lep.eta - jet.eta, dphi) < 0.4, axis=2)
        fraction = ak.mean(ak.flatten(close))
        assert 0.05 < fraction < 0.6, name


# --------------------------------------------------------------------------- options


def test_lz4_compression_reads_back_and_compresses(tmp_path: pathlib.Path) -> None:
    path = generate_nanoaod(tmp_path / "lz4.root", 3_000, compression="lz4:1")
    plain = generate_nanoaod(tmp_path / "none.root", 3_000, compression="none")
    with uproot.open(path) as file, uproot.open(plain) as reference:
        tree, ref = file["Events"], reference["Events"]
        assert tree.num_entries == 3_000
        for name in ("run", "Jet_jetId", "Muon_mass"):  # (random float mantissas barely compress)
            assert tree[name].compressed_bytes < tree[name].uncompressed_bytes, name
            assert ref[name].compressed_bytes == ref[name].uncompressed_bytes, name
        got, expected = tree.arrays(library="ak"), ref.arrays(library="ak")
        assert all(ak.array_equal(got[f], expected[f]) for f in EXPECTED)
    assert path.stat().st_size < plain.stat().st_size


@pytest.mark.parametrize("spec", ["zstd:3", "lzma:1", "zlib:6"])
def test_other_root_codecs(tmp_path: pathlib.Path, spec: str) -> None:
    path = generate_nanoaod(tmp_path / "c.root", 500, compression=spec)
    with uproot.open(path) as file:
        assert file["Events"].num_entries == 500


@pytest.mark.parametrize(("spec", "codec"), [("zlib:1", "ZSTD"), ("snappy", "SNAPPY")])
def test_parquet_compression(tmp_path: pathlib.Path, spec: str, codec: str) -> None:
    path = generate_nanoaod(tmp_path / "c.parquet", 500, compression=spec)
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert column.compression == codec


def test_explicit_format_overrides_suffix(tmp_path: pathlib.Path) -> None:
    path = generate_nanoaod(tmp_path / "data.bin", 100, format="parquet")
    assert pq.ParquetFile(path).metadata.num_rows == 100
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "x.txt"},
        {"format": "hdf5"},
        {"compression": "brotli:1"},
        {"compression": "zlib:x"},
        {"path": "x.parquet", "compression": "lzma:1"},
        {"events": -1},
        {"chunk_events": 0},
        {"weights": "gaussian"},
    ],
)
def test_invalid_arguments(tmp_path: pathlib.Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"events": 10, **kwargs}
    path = tmp_path / str(args.pop("path", "x.root"))
    with pytest.raises(ValueError):  # noqa: PT011
        generate_nanoaod(path, **args)  # type: ignore[arg-type]
    assert not path.exists()
