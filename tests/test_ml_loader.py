"""saetta.ml.Loader against an independent reference.

The reference shares no code with :mod:`saetta.ml`: it reads the files with uproot (ROOT)
and pyarrow (Parquet) directly, builds every event's features with plain Python loops,
and assigns the train/validation split with its own SplitMix64 (pure Python integers)
from the specification in :mod:`saetta.ml.features` and :mod:`saetta.systematics`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from saetta import ml
from saetta.datagen import generate_nanoaod
from saetta.errors import DatasetError, SaettaError, SaettaWarning

# ---------------------------------------------------------------------------------------
# The reference: split assignment
# ---------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """SplitMix64's finaliser, modulo 2^64."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def stream_of(name: str) -> int:
    """The first 8 bytes, little-endian, of sha256 of ``name`` (UTF-8)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def reference_split(basename: str, entries: int, fractions: Mapping[str, float]) -> list[str]:
    """The split name of each entry ``0 .. entries-1`` of a file called ``basename``."""
    names = list(fractions)
    cuts: list[float] = []
    total = 0.0
    for fraction in list(fractions.values())[:-1]:
        total += fraction
        cuts.append(total)
    stream = stream_of(basename)
    out = []
    for entry in range(entries):
        key = splitmix64(splitmix64(entry) ^ stream)
        u = (key >> 11) * 2.0**-53
        out.append(names[sum(1 for cut in cuts if cut <= u)])
    return out


# ---------------------------------------------------------------------------------------
# The reference: reading the files, per-event features
# ---------------------------------------------------------------------------------------

BRANCHES = ("nJet", "Jet_pt", "Jet_eta", "Jet_btag", "MET_pt", "PV_npvs", "genWeight")


def read_columns(path: Path, branches: Sequence[str] = BRANCHES) -> dict[str, list[Any]]:
    """Each branch as a list of per-event Python values (numbers, or lists of numbers)."""
    if path.suffix == ".root":
        with uproot.open(path) as file:
            arrays = file["Events"].arrays(list(branches), library="np")
        out: dict[str, list[Any]] = {}
        for name in branches:
            array = arrays[name]
            if array.dtype == object:
                out[name] = [np.asarray(x).tolist() for x in array]
            else:
                out[name] = array.tolist()
        return out
    table = pq.read_table(path, columns=list(branches))
    return {name: table.column(name).to_pylist() for name in branches}


def entries_of(path: Path) -> int:
    if path.suffix == ".root":
        with uproot.open(path) as file:
            return int(file["Events"].num_entries)
    return int(pq.ParquetFile(path).metadata.num_rows)


def reference_plain(
    cols: Mapping[str, list[Any]], length: int, pad_value: float
) -> dict[str, np.ndarray]:
    """features ["Jet_pt", "Jet_eta", "Jet_btag", "MET_pt"], pad={"Jet": length},
    target="PV_npvs", one event at a time."""
    n = len(cols["MET_pt"])
    flat = np.zeros((n, 1), dtype=np.float64)
    jet = np.full((n, length, 3), pad_value, dtype=np.float64)
    mask = np.zeros((n, length), dtype=bool)
    target = np.zeros(n, dtype=np.int64)
    for e in range(n):
        flat[e, 0] = cols["MET_pt"][e]
        target[e] = cols["PV_npvs"][e]
        pts, etas, btags = cols["Jet_pt"][e], cols["Jet_eta"][e], cols["Jet_btag"][e]
        assert len(pts) == cols["nJet"][e]
        for j in range(min(length, len(pts))):
            jet[e, j, 0] = pts[j]
            jet[e, j, 1] = etas[j]
            jet[e, j, 2] = btags[j]
            mask[e, j] = True
    return {"flat": flat, "Jet": jet, "Jet_mask": mask, "target": target}


def derive(events: Any) -> dict[str, Any]:
    """A per-object and a per-event derived feature (module level, so it pickles)."""
    return {"Jet_ptrel": events.Jet.pt / events.MET.pt, "HT": ak.sum(events.Jet.pt, axis=1)}


def reference_derived(
    cols: Mapping[str, list[Any]], length: int, pad_value: float
) -> dict[str, np.ndarray]:
    """features ["Jet_pt", "Jet_ptrel", "HT", "MET_pt"] with ``derive``, pad={"Jet": length},
    target="PV_npvs", weight="genWeight": HT sums all jets, not only the first ``length``."""
    n = len(cols["MET_pt"])
    flat = np.zeros((n, 2), dtype=np.float64)
    jet = np.full((n, length, 2), pad_value, dtype=np.float64)
    mask = np.zeros((n, length), dtype=bool)
    weight = np.zeros(n, dtype=np.float64)
    for e in range(n):
        met = cols["MET_pt"][e]
        pts = cols["Jet_pt"][e]
        ht = 0.0
        for pt in pts:
            ht += pt
        flat[e, 0] = ht
        flat[e, 1] = met
        weight[e] = cols["genWeight"][e]
        for j in range(min(length, len(pts))):
            jet[e, j, 0] = pts[j]
            jet[e, j, 1] = pts[j] / met
            mask[e, j] = True
    return {"flat": flat, "Jet": jet, "Jet_mask": mask, "weight": weight}


# ---------------------------------------------------------------------------------------
# Collecting the loader's batches
# ---------------------------------------------------------------------------------------


def as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x.cpu().numpy())


def numpy_batches(batches: Iterable[Mapping[str, Any]]) -> list[dict[str, np.ndarray]]:
    return [{key: as_numpy(value) for key, value in batch.items()} for batch in batches]


def concat(batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    assert batches, "no batches"
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def identities(
    loader: ml.Loader, batches: Sequence[Mapping[str, np.ndarray]]
) -> list[tuple[str, int]]:
    """(file basename, entry) of every event of ``batches``, in order."""
    names = [Path(f).name for f in loader.files]
    out: list[tuple[str, int]] = []
    for batch in batches:
        assert len(batch["file"]) == len(batch["entry"])
        out.extend(
            (names[int(f)], int(e)) for f, e in zip(batch["file"], batch["entry"], strict=True)
        )
    return out


def batch_len(batch: Mapping[str, np.ndarray]) -> int:
    return len(batch["entry"])


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

FRACTIONS = {"train": 0.75, "val": 0.25}


@pytest.fixture(scope="module")
def sample_columns(sample_root: Path, sample_parquet: Path) -> dict[str, dict[str, list[Any]]]:
    return {"root": read_columns(sample_root), "parquet": read_columns(sample_parquet)}


@pytest.fixture(scope="module")
def split_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small files (100 events in all: chunk_size=1 makes one unit per event)."""
    folder = tmp_path_factory.mktemp("ml_split")
    return [
        generate_nanoaod(folder / "alpha.root", 60, seed=11, chunk_events=25),
        generate_nanoaod(folder / "beta.root", 40, seed=12, chunk_events=15),
    ]


@pytest.fixture(scope="module")
def split_reference(split_files: list[Path]) -> dict[tuple[str, int], str]:
    """(basename, entry) -> split name, for every event of ``split_files``."""
    out = {}
    for path in split_files:
        for entry, name in enumerate(reference_split(path.name, entries_of(path), FRACTIONS)):
            out[path.name, entry] = name
    return out


@pytest.fixture(scope="module")
def split_met(split_files: list[Path]) -> dict[tuple[str, int], float]:
    """(basename, entry) -> MET_pt, to check that an identity labels its own event."""
    out = {}
    for path in split_files:
        for entry, met in enumerate(read_columns(path, ["MET_pt"])["MET_pt"]):
            out[path.name, entry] = met
    return out


@pytest.fixture(scope="module")
def shuffle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_nanoaod(
        tmp_path_factory.mktemp("ml_shuffle") / "shuffle.root", 400, seed=5, chunk_events=150
    )


# ---------------------------------------------------------------------------------------
# 1. Features against the per-event reference
# ---------------------------------------------------------------------------------------


def test_reference_split_is_sane() -> None:
    """The reference itself: SplitMix64's known value, and roughly the fractions."""
    # SplitMix64 seeded with 0: the first output is mix(0) = 0xE220A8397B1DCDAF.
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    names = reference_split("some.root", 4000, FRACTIONS)
    counts = Counter(names)
    assert set(counts) == {"train", "val"}
    assert abs(counts["val"] / 4000 - 0.25) < 0.03


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_data_has_the_edge_cases(fmt: str, sample_columns: dict[str, dict[str, list[Any]]]) -> None:
    njet = sample_columns[fmt]["nJet"]
    assert any(n == 0 for n in njet), "no event without jets"
    assert any(n > 6 for n in njet), "no event with more than 6 jets"
    assert any(n == 6 for n in njet)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_padded_and_flat_features(
    fmt: str,
    shuffle: bool,
    request: pytest.FixtureRequest,
    sample_columns: dict[str, dict[str, list[Any]]],
) -> None:
    path: Path = request.getfixturevalue(f"sample_{fmt}")
    cols = sample_columns[fmt]
    n = len(cols["MET_pt"])
    loader = ml.Loader(
        path,
        ["Jet_pt", "Jet_eta", "Jet_btag", "MET_pt"],
        pad={"Jet": 6},
        target="PV_npvs",
        shuffle=shuffle,
        seed=3,
        batch_size=1000,
        chunk_size=3000,
        shuffle_buffer=4000,
    )
    assert [Path(f).name for f in loader.files] == [path.name]
    assert loader.num_events("train") == n
    batches = numpy_batches(loader.epoch(0, tensors=False))
    got = concat(batches)
    assert set(got) == {"flat", "Jet", "Jet_mask", "target", "file", "entry"}
    assert got["flat"].dtype == np.float32
    assert got["Jet"].dtype == np.float32
    assert got["Jet_mask"].dtype == np.bool_
    assert got["target"].dtype == np.int32  # PV_npvs keeps its own type
    assert got["flat"].shape == (n, 1)
    assert got["Jet"].shape == (n, 6, 3)
    assert got["Jet_mask"].shape == (n, 6)
    assert (got["file"] == 0).all()

    entries = got["entry"]
    assert np.array_equal(np.sort(entries), np.arange(n))  # every event exactly once
    if shuffle:
        assert not np.array_equal(entries, np.arange(n))
    else:
        assert np.array_equal(entries, np.arange(n))

    expected = reference_plain(cols, 6, 0.0)
    order = np.argsort(entries)
    for key in ("flat", "Jet", "Jet_mask", "target"):
        np.testing.assert_array_equal(got[key][order], expected[key], err_msg=key)
    # the edge cases, explicitly
    njet = np.asarray(cols["nJet"])
    no_jets = np.flatnonzero(njet == 0)
    many = np.flatnonzero(njet > 6)
    by_entry = {key: got[key][order] for key in got}
    assert not by_entry["Jet_mask"][no_jets].any()
    assert (by_entry["Jet"][no_jets] == 0.0).all()
    assert by_entry["Jet_mask"][many].all()
    first = many[0]
    np.testing.assert_array_equal(
        by_entry["Jet"][first, :, 0], np.asarray(cols["Jet_pt"][first][:6], dtype=np.float32)
    )


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_derived_features_and_pad_value(
    fmt: str, request: pytest.FixtureRequest, sample_columns: dict[str, dict[str, list[Any]]]
) -> None:
    path: Path = request.getfixturevalue(f"sample_{fmt}")
    cols = sample_columns[fmt]
    n = len(cols["MET_pt"])
    pad_value = -7.5
    loader = ml.Loader(
        path,
        ["Jet_pt", "Jet_ptrel", "HT", "MET_pt"],
        pad={"Jet": 4},
        derive=derive,
        target="PV_npvs",
        weight="genWeight",
        shuffle=True,
        seed=1,
        batch_size=2048,
        chunk_size=4000,
        pad_value=pad_value,
    )
    got = concat(numpy_batches(loader.epoch(2, tensors=False)))
    assert got["Jet"].shape == (n, 4, 2)
    assert got["flat"].shape == (n, 2)
    assert got["weight"].dtype == np.float32  # genWeight keeps its own type
    order = np.argsort(got["entry"])
    assert np.array_equal(got["entry"][order], np.arange(n))
    expected = reference_derived(cols, 4, pad_value)
    mask = got["Jet_mask"][order]
    np.testing.assert_array_equal(mask, expected["Jet_mask"])
    jet = got["Jet"][order]
    # padding is exactly pad_value; objects match
    assert (jet[~mask] == np.float32(pad_value)).all()
    assert (~mask).any()
    np.testing.assert_array_equal(jet[..., 0], expected["Jet"][..., 0].astype(np.float32))
    np.testing.assert_allclose(jet[..., 1], expected["Jet"][..., 1], rtol=1e-6)
    np.testing.assert_allclose(got["flat"][order][:, 0], expected["flat"][:, 0], rtol=1e-5)
    np.testing.assert_array_equal(
        got["flat"][order][:, 1], expected["flat"][:, 1].astype(np.float32)
    )
    np.testing.assert_array_equal(got["weight"][order], expected["weight"].astype(np.float32))
    np.testing.assert_array_equal(got["target"][order], np.asarray(cols["PV_npvs"]))


# ---------------------------------------------------------------------------------------
# 2. Exactly once per epoch, no leakage between splits
# ---------------------------------------------------------------------------------------

EXACTLY_ONCE_CASES = [
    # in-process: the full product of world size and chunk size
    *[(0, world, chunk) for world in (1, 2) for chunk in (1, 7, 1000)],
    # loader processes (each epoch starts a DataLoader): one unit per event on one rank,
    # small units on two ranks, and two ranks with one unit each (a worker with nothing)
    (2, 1, 1),
    (2, 2, 7),
    (2, 2, 1000),
]


@pytest.mark.parametrize(("workers", "world_size", "chunk_size"), EXACTLY_ONCE_CASES)
def test_exactly_once_and_no_leakage(
    workers: int,
    world_size: int,
    chunk_size: int,
    split_files: list[Path],
    split_reference: dict[tuple[str, int], str],
    split_met: dict[tuple[str, int], float],
) -> None:
    """Every event of a split is delivered exactly once over the ranks, in its reference
    split, whatever the chunk size, rank count and worker count. The workers=2 cases are
    (world 1, chunk 1), (world 2, chunk 7), (world 2, chunk 1000): the full product with
    loader processes would take too long."""
    if workers:
        pytest.importorskip("torch")
    batch_size = 8
    loader = ml.Loader(
        split_files,
        ["MET_pt"],
        split=FRACTIONS,
        chunk_size=chunk_size,
        batch_size=batch_size,
        shuffle=True,
        seed=5,
        shuffle_buffer=20,
        workers=workers,
    )
    seen: dict[str, list[tuple[str, int]]] = {}
    for split in ("train", "val"):
        seen[split] = []
        for rank in range(world_size):
            epoch = loader.epoch(0, split, rank=rank, world_size=world_size, tensors=bool(workers))
            batches = numpy_batches(epoch)
            assert len(epoch) == len(batches)
            assert loader.num_batches(split, 0, rank, world_size) == len(batches)
            sizes = [batch_len(b) for b in batches]
            assert all(0 < s <= batch_size for s in sizes)
            if workers == 0:
                # full batches first; on one rank only the last may be short (several
                # ranks are given tails cut into more, shorter, batches)
                assert sizes == sorted(sizes, reverse=True)
                if world_size == 1:
                    assert all(s == batch_size for s in sizes[:-1])
            ids = identities(loader, batches)
            seen[split].extend(ids)
            mets = np.concatenate([b["flat"][:, 0] for b in batches])
            expected_met = np.asarray([split_met[i] for i in ids], dtype=np.float32)
            np.testing.assert_array_equal(mets, expected_met)  # the identity is the event's
        expected = [key for key, name in split_reference.items() if name == split]
        assert len(seen[split]) == len(set(seen[split])), "an event delivered twice"
        assert Counter(seen[split]) == Counter(expected)
        assert loader.num_events(split) == len(expected)
    assert not set(seen["train"]) & set(seen["val"])
    assert set(seen["train"]) | set(seen["val"]) == set(split_reference)
    assert loader.failures == []


def test_split_codes_match_the_reference(split_files: list[Path]) -> None:
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    split = ml.Split.of(fractions)
    for path in split_files:
        n = entries_of(path)
        names = reference_split(path.name, n, fractions)
        expected = np.asarray([list(fractions).index(name) for name in names])
        codes = np.asarray(ml.split_codes(str(path), 0, n, split))
        np.testing.assert_array_equal(codes, expected)
        np.testing.assert_array_equal(
            np.asarray(ml.split_codes(str(path), 13, 37, split)), expected[13:37]
        )


def test_unit_counts_match_the_reference(
    split_files: list[Path], split_reference: dict[tuple[str, int], str]
) -> None:
    loader = ml.Loader(split_files, ["MET_pt"], split=FRACTIONS, chunk_size=7, batch_size=8)
    counts = np.asarray(loader.unit_counts())
    assert counts.shape[1] == 2
    expected = Counter(split_reference.values())
    assert counts[:, 0].sum() == expected["train"]
    assert counts[:, 1].sum() == expected["val"]
    assert (counts.sum(axis=1) <= 7).all()


def test_split_depends_on_the_file_name_not_its_folder(
    split_files: list[Path], tmp_path: Path, split_reference: dict[tuple[str, int], str]
) -> None:
    """A copy of a file in another folder is split the same way; a renamed copy is not."""
    source = split_files[0]
    copy = tmp_path / "elsewhere" / source.name
    copy.parent.mkdir()
    shutil.copy(source, copy)
    renamed = tmp_path / "renamed.root"
    shutil.copy(source, renamed)

    def val_entries(path: Path) -> set[int]:
        loader = ml.Loader(path, ["MET_pt"], split=FRACTIONS, chunk_size=1000, batch_size=64)
        return {
            e for _, e in identities(loader, numpy_batches(loader.epoch(0, "val", tensors=False)))
        }

    expected = {e for (name, e), s in split_reference.items() if name == source.name and s == "val"}
    assert val_entries(copy) == expected
    n = entries_of(source)
    renamed_expected = {
        e for e, s in enumerate(reference_split(renamed.name, n, FRACTIONS)) if s == "val"
    }
    assert renamed_expected != expected  # (the reference's own check that names matter)
    assert val_entries(renamed) == renamed_expected


# ---------------------------------------------------------------------------------------
# 3. Shuffling
# ---------------------------------------------------------------------------------------


def shuffled_loader(path: Path | Sequence[Path], seed: int, shuffle: bool = True) -> ml.Loader:
    return ml.Loader(
        path,
        ["Jet_pt", "MET_pt"],
        pad={"Jet": 3},
        chunk_size=20,
        batch_size=32,
        shuffle_buffer=100,
        seed=seed,
        shuffle=shuffle,
    )


def order_of(loader: ml.Loader, epoch: int) -> list[tuple[str, int]]:
    return identities(loader, numpy_batches(loader.epoch(epoch, tensors=False)))


def test_shuffle_is_reproducible_and_varies(shuffle_file: Path) -> None:
    first = order_of(shuffled_loader(shuffle_file, seed=1), 0)
    again = order_of(shuffled_loader(shuffle_file, seed=1), 0)  # a fresh Loader
    assert first == again
    same_loader = shuffled_loader(shuffle_file, seed=1)
    assert order_of(same_loader, 0) == order_of(same_loader, 0) == first
    other_epoch = order_of(shuffled_loader(shuffle_file, seed=1), 1)
    other_seed = order_of(shuffled_loader(shuffle_file, seed=2), 0)
    assert other_epoch != first
    assert other_seed != first
    everything = sorted((shuffle_file.name, e) for e in range(400))
    for order in (first, other_epoch, other_seed):
        assert sorted(order) == everything


def test_shuffle_false_gives_file_order(shuffle_file: Path, split_files: list[Path]) -> None:
    loader = shuffled_loader(shuffle_file, seed=1, shuffle=False)
    order = order_of(loader, 0)
    assert order == [(shuffle_file.name, e) for e in range(400)]
    assert order_of(loader, 1) == order
    # two files: the first file's entries in order, then the second's
    two = shuffled_loader(split_files, seed=1, shuffle=False)
    batches = numpy_batches(two.epoch(0, tensors=False))
    files = np.concatenate([b["file"] for b in batches])
    entries = np.concatenate([b["entry"] for b in batches])
    expected_files: list[int] = []
    expected_entries: list[int] = []
    for index, name in enumerate(two.files):
        n = entries_of(Path(name))
        expected_files += [index] * n
        expected_entries += list(range(n))
    np.testing.assert_array_equal(files, expected_files)
    np.testing.assert_array_equal(entries, expected_entries)


def test_shuffle_mixes_units_and_batches_are_full(shuffle_file: Path) -> None:
    """With units of at most 20 contiguous entries and a buffer of 100 events, the first
    batch spans more than one unit; all batches but the last are full."""
    loader = shuffled_loader(shuffle_file, seed=4)
    batches = numpy_batches(loader.epoch(0, tensors=False))
    first = batches[0]["entry"]
    assert len(first) == 32
    assert first.max() - first.min() + 1 > 20  # cannot be one unit
    assert not np.array_equal(first, np.sort(first))
    sizes = [batch_len(b) for b in batches]
    assert all(s == 32 for s in sizes[:-1])
    assert 0 < sizes[-1] <= 32
    assert sum(sizes) == 400
    assert len(batches) == len(loader.epoch(0)) == -(-400 // 32)


# ---------------------------------------------------------------------------------------
# 4. Resuming
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rank", "world_size"), [(0, 1), (1, 2)])
def test_start_resumes(shuffle_file: Path, rank: int, world_size: int) -> None:
    loader = shuffled_loader(shuffle_file, seed=9)
    full = numpy_batches(loader.epoch(3, rank=rank, world_size=world_size, tensors=False))
    assert len(full) > 4
    for start in (0, 1, 4, len(full) - 1, len(full)):
        epoch = loader.epoch(3, rank=rank, world_size=world_size, start=start, tensors=False)
        part = numpy_batches(epoch)
        assert len(part) == len(full) - start == len(epoch)
        for a, b in zip(part, full[start:], strict=True):
            assert set(a) == set(b)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_tensors(shuffle_file: Path) -> None:
    torch = pytest.importorskip("torch")
    loader = shuffled_loader(shuffle_file, seed=9)
    tensors = list(loader.epoch(0))
    arrays = numpy_batches(loader.epoch(0, tensors=False))
    assert len(tensors) == len(arrays)
    for t, a in zip(tensors, arrays, strict=True):
        assert set(t) == set(a)
        for key in a:
            assert isinstance(t[key], torch.Tensor)
            np.testing.assert_array_equal(t[key].numpy(), a[key], err_msg=key)
    assert tensors[0]["Jet_mask"].dtype == torch.bool
    assert tensors[0]["Jet"].dtype == torch.float32


# ---------------------------------------------------------------------------------------
# 5. Bad input
# ---------------------------------------------------------------------------------------


def test_misspelt_branch(shuffle_file: Path) -> None:
    with pytest.raises(DatasetError, match="Jet_ptt") as info:
        ml.Loader(shuffle_file, ["Jet_ptt", "MET_pt"], pad={"Jet": 4})
    assert "'Jet_pt'" in str(info.value)


def test_jagged_feature_without_pad(shuffle_file: Path) -> None:
    with pytest.raises(DatasetError, match="Jet_pt"):
        ml.Loader(shuffle_file, ["Jet_pt", "MET_pt"])
    ml.Loader(shuffle_file, ["Jet_pt", "MET_pt"], pad={"Jet": 4})  # the positive control


@pytest.mark.parametrize("role", ["target", "weight"])
def test_a_jagged_target_or_weight_is_refused_up_front(shuffle_file: Path, role: str) -> None:
    with pytest.raises(DatasetError, match=f"{role} 'Jet_pt' holds a list per event"):
        ml.Loader(shuffle_file, ["MET_pt"], **{role: "Jet_pt"})
    ml.Loader(shuffle_file, ["MET_pt"], **{role: "PV_npvs"})  # the positive control


def test_a_negative_start_is_refused(shuffle_file: Path) -> None:
    loader = ml.Loader(shuffle_file, ["MET_pt"], batch_size=64)
    with pytest.raises(DatasetError, match="start must be a batch number"):
        loader.epoch(0, start=-1)
    assert len(loader.epoch(0, start=1)) == loader.num_batches() - 1


@pytest.mark.parametrize("fractions", [{"train": 0.8, "val": 0.3}, {"train": 0.5, "val": 0.4}])
def test_split_fractions_must_sum_to_one(shuffle_file: Path, fractions: dict[str, float]) -> None:
    with pytest.raises(DatasetError):
        ml.Loader(shuffle_file, ["MET_pt"], split=fractions)


def test_split_fractions_summing_to_one_in_floating_point(shuffle_file: Path) -> None:
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}  # 0.9999999999999999 in floats
    loader = ml.Loader(shuffle_file, ["MET_pt"], split=fractions)
    assert sum(loader.num_events(name) for name in fractions) == 400


def make_pair(folder: Path, fmt: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = generate_nanoaod(folder / f"good.{fmt}", 300, seed=3, chunk_events=100)
    bad = generate_nanoaod(folder / f"bad.{fmt}", 200, seed=4, chunk_events=100)
    return good, bad


def met_spans(path: Path, first_entry: int) -> list[tuple[int, int]]:
    """(offset, length) of the bytes that hold MET_pt from ``first_entry`` on: the
    baskets (ROOT) or the column chunks (Parquet) that start there or later."""
    if path.suffix == ".root":
        with uproot.open(path) as file:
            branch = file["Events"]["MET_pt"]
            seek = branch.member("fBasketSeek")
            nbytes = branch.member("fBasketBytes")
            starts = branch.member("fBasketEntry")
            return [
                (int(seek[i]), int(nbytes[i]))
                for i in range(branch.num_baskets)
                if starts[i] >= first_entry
            ]
    metadata = pq.ParquetFile(path).metadata
    spans = []
    row = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if row >= first_entry:
            for c in range(group.num_columns):
                column = group.column(c)
                if column.path_in_schema == "MET_pt":
                    offsets = [column.data_page_offset]
                    if column.dictionary_page_offset is not None:
                        offsets.append(column.dictionary_page_offset)
                    spans.append((min(offsets), column.total_compressed_size))
        row += group.num_rows
    return spans


def corrupt(path: Path, how: str) -> None:
    if how == "truncate":
        with path.open("r+b") as f:
            f.truncate(os.path.getsize(path) // 3)
        return
    spans = met_spans(path, 100)  # the events from entry 100 on
    assert spans
    with path.open("r+b") as f:
        for offset, length in spans:
            f.seek(offset)
            f.write(b"\xa5" * length)


def delivered(loader: ml.Loader) -> list[tuple[str, int]]:
    return identities(loader, numpy_batches(loader.epoch(0, tensors=False)))


@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_uncorrupted_pair_is_delivered_without_warning(tmp_path: Path, fmt: str) -> None:
    good, bad = make_pair(tmp_path, fmt)
    loader = ml.Loader([good, bad], ["MET_pt"], batch_size=50, chunk_size=50, shuffle=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = delivered(loader)
    assert caught == []
    assert Counter(ids) == Counter(
        [(good.name, e) for e in range(300)] + [(bad.name, e) for e in range(200)]
    )
    assert loader.failures == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["truncate", "overwrite"])
@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_file_corrupted_after_opening(tmp_path: Path, fmt: str, how: str) -> None:
    """The bad file's metadata is read fine when the Loader is made; then its data is
    truncated, or the MET_pt bytes of entries 100-199 are overwritten. Every event of the
    good file, and every event of the bad one outside a failed unit, comes exactly once;
    each failed unit is named in a warning and in ``failures``."""
    good, bad = make_pair(tmp_path, fmt)
    loader = ml.Loader([good, bad], ["MET_pt"], batch_size=50, chunk_size=50, shuffle=True)
    corrupt(bad, how)
    with pytest.warns(SaettaWarning) as record:
        ids = delivered(loader)
    messages = [str(w.message) for w in record]
    assert all(issubclass(w.category, SaettaWarning) for w in record)
    assert messages
    assert all(str(bad) in m for m in messages)
    assert not any(str(good) in m for m in messages)

    assert len(ids) == len(set(ids)), "an event delivered twice"
    assert {e for name, e in ids if name == good.name} == set(range(300))
    failures = loader.failures
    assert failures
    assert len(messages) >= len(failures)
    failed: list[int] = []
    for failure in failures:
        assert Path(failure.unit.path).name == bad.name
        assert 0 <= failure.unit.start < failure.unit.stop <= 200
        failed.extend(range(failure.unit.start, failure.unit.stop))
        if how == "overwrite":  # only a unit that needs the garbage fails
            assert failure.unit.stop > 100
    assert len(failed) == len(set(failed))
    from_bad = [e for name, e in ids if name == bad.name]
    assert not set(from_bad) & set(failed)
    assert set(from_bad) | set(failed) == set(range(200))  # everything accounted for
    if how == "overwrite":
        assert set(range(100)) - set(failed) <= set(from_bad)
        assert from_bad  # the bad file's readable units still came
    else:
        assert from_bad == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["root", "parquet"])
def test_file_corrupted_before_opening(tmp_path: Path, fmt: str) -> None:
    """A truncated copy given to the Loader: either the Loader refuses it, naming it
    (Parquet: its footer is gone), or it opens (ROOT: the tree's header is early in the
    file) and the epoch leaves the file out with a warning, delivering the good one."""
    good, _ = make_pair(tmp_path, fmt)
    truncated = tmp_path / f"truncated.{fmt}"
    shutil.copy(good, truncated)
    corrupt(truncated, "truncate")
    refused: SaettaError | None = None
    try:
        loader = ml.Loader(
            [good, truncated], ["MET_pt"], batch_size=50, chunk_size=50, shuffle=False
        )
    except SaettaError as error:
        refused = error
    if refused is not None:
        assert str(truncated) in str(refused)
        return
    with pytest.warns(SaettaWarning) as record:
        ids = delivered(loader)
    assert all(str(truncated) in str(w.message) for w in record)
    assert len(ids) == len(set(ids))
    assert {e for name, e in ids if name == good.name} == set(range(300))
    assert all(Path(f.unit.path).name == truncated.name for f in loader.failures)
    assert loader.failures
