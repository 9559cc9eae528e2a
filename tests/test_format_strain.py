"""GWOSC strain files as padded time windows: samples equal to plain h5py slices, own
spans that tile the file once, the tree spec, chunk-independent runs, and bad files
failing as one-line errors naming the file.

The files are written here with h5py in the GWOSC layout; every expectation comes from
the numpy arrays written, never from saetta reading them.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import fsspec
import h5py
import numpy as np
import pytest

import saetta
from saetta._typing import Jagged
from saetta.formats import open_reader
from saetta.formats.strain import describe, windows

RATE = 256
WINDOW, PAD = 8.0, 2.0
W, P = int(WINDOW * RATE), int(PAD * RATE)
N = 5 * W + 300  # the last window is short
GPS = 1_126_259_200


def write(
    path: Path,
    samples: np.ndarray,
    *,
    attrs: dict[str, Any] | None = None,
    chunks: bool = False,
    meta: bool = True,
) -> Path:
    """A GWOSC-layout file (contiguous, or gzip chunks of 1000 samples); ``attrs``
    replace the strain dataset's (a None value drops one)."""
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "strain/Strain",
            data=samples,
            chunks=(1000,) if chunks else None,
            compression="gzip" if chunks else None,
        )
        given = {"Xstart": GPS, "Xspacing": 1.0 / RATE, "Npoints": len(samples), "Xunits": "second"}
        for key, value in {**given, **(attrs or {})}.items():
            if value is not None:
                ds.attrs[key] = value
        if meta:
            f["meta/Detector"] = "L1"
            f["meta/GPSstart"] = GPS
        f.create_group("quality/simple")
    return path


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.random.default_rng(7).normal(size=N)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory, samples: np.ndarray) -> Path:
    return write(tmp_path_factory.mktemp("strain") / "L-L1_TEST-1126259200-45.hdf5", samples)


def spec() -> str:
    return windows(WINDOW, PAD)


def expected_window(samples: np.ndarray, i: int) -> tuple[np.ndarray, int, int]:
    """Window ``i``'s padded samples, padding before, and own length, by hand."""
    own_lo, own_hi = i * W, min((i + 1) * W, N)
    lo, hi = max(own_lo - P, 0), min(own_hi + P, N)
    return samples[lo:hi], own_lo - lo, own_hi - own_lo


# --- windows ------------------------------------------------------------------


def test_every_window_equals_an_h5py_slice(path: Path, samples: np.ndarray) -> None:
    reader = open_reader(str(path), spec(), format="strain")
    n = -(-N // W)
    assert reader.num_entries == n == 6
    assert list(reader.boundaries) == list(range(n + 1))
    with h5py.File(path, "r") as f:  # independently: the file's own samples
        stored = f["strain/Strain"][:]
    np.testing.assert_array_equal(stored, samples)
    for i in range(n):
        got = reader.read(["time", "before", "span", "nstrain", "strain_value"], i, i + 1)
        padded, before, span = expected_window(stored, i)
        assert isinstance(got["strain_value"], Jagged)
        np.testing.assert_array_equal(got["strain_value"].content, padded)
        np.testing.assert_array_equal(got["strain_value"].offsets, [0, len(padded)])
        assert got["before"].tolist() == [before]
        assert got["span"].tolist() == [span]
        assert got["nstrain"].tolist() == [len(padded)]
        assert got["time"].tolist() == [GPS + i * WINDOW]
        assert got["time"].dtype == np.float64
        for name in ("before", "span", "nstrain"):
            assert got[name].dtype == np.int64
    # Clipped at both edges: no padding before the first window, a short last one.
    first, last = (
        reader.read(["before", "span", "nstrain"], 0, 1),
        reader.read(["before", "span", "nstrain"], n - 1, n),
    )
    assert (first["before"][0], first["nstrain"][0]) == (0, W + P)
    assert (last["span"][0], last["nstrain"][0]) == (300, P + 300)
    reader.close()


def test_own_spans_tile_the_file_once(path: Path, samples: np.ndarray) -> None:
    reader = open_reader(str(path), spec(), format="strain")
    got = reader.read(["before", "span", "strain_value"], 0, reader.num_entries)
    values = got["strain_value"]
    own = [
        values.content[a + b : a + b + s]
        for a, b, s in zip(values.offsets[:-1], got["before"], got["span"], strict=True)
    ]
    np.testing.assert_array_equal(np.concatenate(own), samples)
    assert int(np.sum(got["span"])) == N
    reader.close()


def test_many_windows_in_one_read(path: Path, samples: np.ndarray) -> None:
    reader = open_reader(str(path), spec(), format="strain")
    calls: list[Any] = []

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getitem__(self, key: Any) -> Any:
            calls.append(key)
            return self.inner[key]

    reader._dataset = Counting(reader._dataset)  # type: ignore[attr-defined]
    got = reader.read(["strain_value", "before"], 1, 4)
    assert len(calls) == 1
    assert calls[0] == slice(W - P, 4 * W + P)
    pieces = [expected_window(samples, i)[0] for i in range(1, 4)]
    np.testing.assert_array_equal(got["strain_value"].content, np.concatenate(pieces))
    np.testing.assert_array_equal(np.diff(got["strain_value"].offsets), [len(p) for p in pieces])
    # The union was read once, padding included: 8 bytes per sample, contiguous.
    assert reader.bytes_read == (4 * W + P - (W - P)) * 8
    reader.read(["time", "span"], 0, 6)  # no samples needed
    assert len(calls) == 1
    assert reader.read(["strain_value"], 3, 3)["strain_value"].content.size == 0
    reader.close()


def test_header_and_describe(path: Path) -> None:
    reader = open_reader(str(path), spec(), format="strain")
    assert dict(reader.header) == {  # type: ignore[attr-defined]
        "rate": 256.0,
        "Xstart": float(GPS),
        "Xspacing": 1 / 256,
        "detector": "L1",
        "window": 8.0,
        "pad": 2.0,
        "duration": N / RATE,
    }
    reader.close()
    lines = str(describe(str(path), spec())).splitlines()
    assert lines[0] == f"{path}: GWOSC strain, L1, GPS 1126259200 + 41.171875 s at 256 Hz"
    assert lines[1].startswith("6 windows of 8 s, padded by 2 s (strain/Strain")
    assert any(line.split()[:2] == ["strain_value", "float64[]"] for line in lines)


def test_float32_and_big_endian_read_as_native_float64(tmp_path: Path, samples: np.ndarray) -> None:
    for dtype in (">f8", "<f4"):
        file = write(tmp_path / f"{dtype[1:]}.hdf5", samples.astype(dtype))
        reader = open_reader(str(file), spec(), format="strain")
        got = reader.read(["strain_value"], 1, 2)["strain_value"].content
        assert got.dtype == np.dtype("=f8")
        stored = samples.astype(dtype)
        np.testing.assert_array_equal(got, stored[W - P : 2 * W + P].astype(np.float64))
        reader.close()


def test_compressed_chunks(tmp_path: Path, samples: np.ndarray) -> None:
    file = write(tmp_path / "gzip.hdf5", samples, chunks=True)
    with h5py.File(file, "r") as f:
        on_disk = f["strain/Strain"].id.get_storage_size()
    reader = open_reader(str(file), spec(), format="strain")
    got = reader.read(["strain_value"], 4, 6)["strain_value"]
    np.testing.assert_array_equal(got.content[got.offsets[1] :], expected_window(samples, 5)[0])
    assert 0 < reader.bytes_read < on_disk
    reader.close()
    reader = open_reader(str(file), spec(), format="strain")
    reader.read(["strain_value"], 0, reader.num_entries)
    assert reader.bytes_read == on_disk  # the whole file's samples, as stored
    reader.close()


# --- the tree spec ------------------------------------------------------------


def test_windows_builds_the_spec() -> None:
    assert windows() == "strain/Strain?window=64&pad=16"
    assert windows(4.5, 0, "data/h") == "data/h?window=4.5&pad=0"
    assert windows(0.1) == "strain/Strain?window=0.1&pad=16"
    for bad in [{"window": 0}, {"pad": -1}, {"window": float("nan")}, {"dataset": "a?b"}]:
        with pytest.raises(saetta.DatasetError, match="bad strain windows"):
            windows(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("tree", ["strain/Strain", "Events", "", "strain/Strain?"])
def test_defaults(tree: str, tmp_path: Path) -> None:
    file = write(tmp_path / "long.hdf5", np.zeros(200 * RATE))
    reader = open_reader(str(file), tree, format="strain")
    assert (reader.header["window"], reader.header["pad"]) == (64.0, 16.0)  # type: ignore[attr-defined]
    assert reader.num_entries == 4  # 200 s: three 64 s windows and 8 s
    reader.close()


def test_spec_keys_in_any_order(path: Path) -> None:
    reader = open_reader(str(path), "strain/Strain?pad=2&window=8", format="strain")
    assert reader.num_entries == 6
    reader.close()


@pytest.mark.parametrize(
    ("tree", "why"),
    [
        ("strain/Strain?window=8&padding=2", "unknown key 'padding'"),
        ("strain/Strain?window=eight", "window='eight' is not a number"),
        ("strain/Strain?window=8&window=4", "'window' must be given once"),
        ("strain/Strain?window", "'window' must be given once"),
        ("strain/Strain?window=-8", "window must be a positive number"),
        ("strain/Strain?pad=inf", "pad must be zero or a positive number"),
    ],
)
def test_bad_spec_says_what_is_accepted(path: Path, tree: str, why: str) -> None:
    with pytest.raises(saetta.FormatError, match=re.escape(why)) as info:
        open_reader(str(path), tree, format="strain")
    message = str(info.value)
    assert "expected 'DATASET' or 'DATASET?window=SECONDS&pad=SECONDS'" in message
    assert str(path) in message
    assert "\n" not in message


def test_windows_must_be_whole_samples(path: Path) -> None:
    with pytest.raises(saetta.FormatError, match=r"window of 0\.001 s is 0\.256 samples at 256 Hz"):
        open_reader(str(path), windows(0.001, 0), format="strain")
    with pytest.raises(saetta.FormatError, match=r"pad of 0\.5001 s is .* whole number"):
        open_reader(str(path), windows(8, 0.5001), format="strain")
    reader = open_reader(str(path), windows(1 / 256, 0.5), format="strain")  # one sample
    assert reader.num_entries == N
    reader.close()


def test_missing_column_suggests_a_near_miss(path: Path) -> None:
    reader = open_reader(str(path), spec(), format="strain")
    with pytest.raises(saetta.MissingBranchError, match="did you mean 'strain_value'"):
        reader.read(["strain_valu"], 0, 1)
    reader.close()


# --- runs ---------------------------------------------------------------------


def _own_sums(events: Any) -> dict[str, Any]:
    """Per window (indexed by its GPS time): the sum of its own samples and their count."""
    header = events.attrs["header"]
    n = math.ceil(header["duration"] / header["window"])
    sums, counts, padded = np.zeros(n), np.zeros(n), np.zeros(n)
    for t, before, span, padded_values in zip(
        events.time, events.before, events.span, events.strain.value, strict=True
    ):
        i = round((t - header["Xstart"]) / header["window"])
        values = np.asarray(padded_values)
        sums[i] += values[before : before + span].sum()
        counts[i] += span
        padded[i] += len(values)
    return {"sums": sums, "counts": counts, "padded": padded}


def test_runs_do_not_depend_on_the_chunk_size(path: Path, samples: np.ndarray) -> None:
    dataset = saetta.Dataset.open(path, format="strain", tree=spec())
    assert dataset.num_entries == 6
    small = saetta.run(_own_sums, dataset, chunk_size=1, progress=False, run_dir=False)
    large = saetta.run(_own_sums, dataset, chunk_size=1000, progress=False, run_dir=False)
    assert (small.report.units_total, large.report.units_total) == (6, 1)
    padded = [len(expected_window(samples, i)[0]) for i in range(6)]
    assert small.report.bytes_read == sum(padded) * 8  # each unit reads its padding
    assert large.report.bytes_read == N * 8
    edges = [*range(0, N, W), N]
    by_hand = np.array([samples[a:b].sum() for a, b in itertools.pairwise(edges)])
    for result in (small, large):
        np.testing.assert_allclose(result["sums"], by_hand, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(result["counts"], np.diff(edges))
        np.testing.assert_array_equal(result["padded"], padded)


def test_remote_file_reads_like_the_local_one(path: Path, samples: np.ndarray) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/saetta-strain-test/strain.hdf5", path.read_bytes())
    try:
        reader = open_reader("memory://saetta-strain-test/strain.hdf5", spec(), format="strain")
        got = reader.read(["strain_value"], 2, 4)["strain_value"]
        np.testing.assert_array_equal(got.content[: got.offsets[1]], expected_window(samples, 2)[0])
        assert reader.header["detector"] == "L1"  # type: ignore[attr-defined]
        reader.close()
    finally:
        fs.rm("/saetta-strain-test", recursive=True)


# --- bad files ----------------------------------------------------------------


def test_a_good_file_opens(tmp_path: Path, samples: np.ndarray) -> None:
    """The positive control of the bad files below: the same writer, nothing broken."""
    reader = open_reader(str(write(tmp_path / "good.hdf5", samples)), spec(), format="strain")
    assert reader.num_entries == 6
    reader.close()
    # No meta group: the detector is unknown, the file still reads.
    reader = open_reader(str(write(tmp_path / "bare.hdf5", samples, meta=False)), format="strain")
    assert reader.header["detector"] == ""  # type: ignore[attr-defined]
    reader.close()


@pytest.mark.parametrize(
    ("attrs", "why"),
    [
        ({"Xspacing": None}, "attribute Xspacing of 'strain/Strain' is missing"),
        ({"Xstart": None}, "attribute Xstart of 'strain/Strain' is missing"),
        ({"Xspacing": 0.0}, "attribute Xspacing of 'strain/Strain' is 0.0, not a valid number"),
        ({"Xspacing": "1/256"}, "attribute Xspacing of 'strain/Strain' is '1/256'"),
        ({"Xstart": np.nan}, "attribute Xstart of 'strain/Strain' is nan"),
        ({"Npoints": N + 1}, f"holds {N:,} samples but Npoints says {N + 1}"),
    ],
)
def test_bad_attributes(
    tmp_path: Path, samples: np.ndarray, attrs: dict[str, Any], why: str
) -> None:
    bad = write(tmp_path / "bad.hdf5", samples, attrs=attrs)
    with pytest.raises(saetta.FormatError, match=re.escape(why)) as info:
        open_reader(str(bad), spec(), format="strain")
    assert str(info.value).startswith(f"{bad}: ")
    assert "\n" not in str(info.value)


def test_no_strain_dataset_lists_the_groups(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "table.h5", "w") as f:
        f["Events/x"] = np.zeros(10)
        f["meta/Detector"] = "H1"
    with pytest.raises(
        saetta.FormatError,
        match=r"table\.h5: no dataset 'strain/Strain', not a GWOSC strain file "
        r"\(groups: Events, meta\)",
    ):
        open_reader(str(tmp_path / "table.h5"), format="strain")
    with pytest.raises(saetta.FormatError, match=r"not a dataset at 'meta'"):
        open_reader(str(tmp_path / "table.h5"), windows(dataset="meta"), format="strain")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (np.zeros((N, 2)), f"is float64 of shape ({N}, 2), not a 1-d float time series"),
        (np.arange(N), f"is int64 of shape ({N},), not a 1-d float time series"),
    ],
)
def test_not_a_time_series(tmp_path: Path, data: np.ndarray, why: str) -> None:
    bad = write(tmp_path / "odd.hdf5", data)
    with pytest.raises(saetta.FormatError, match=re.escape(why)):
        open_reader(str(bad), spec(), format="strain")


@pytest.mark.parametrize("what", ["truncated", "not hdf5", "empty"])
def test_unreadable_file_is_a_one_line_format_error(what: str, tmp_path: Path, path: Path) -> None:
    data = path.read_bytes()
    content = {"truncated": data[: len(data) // 2], "not hdf5": b"PAR1" + bytes(200), "empty": b""}
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(content[what])
    with pytest.raises(
        saetta.FormatError, match=rf"^{re.escape(str(bad))} is not a readable HDF5 file \("
    ) as info:
        open_reader(str(bad), spec(), format="strain")
    assert "\n" not in str(info.value)
    with pytest.raises(saetta.SaettaError, match=re.escape(str(bad))):
        saetta.run(_own_sums, saetta.Dataset.open(bad, format="strain"), progress=False)


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(saetta.StorageError, match="file not found"):
        open_reader(str(tmp_path / "absent.hdf5"), format="strain")


def test_no_samples(tmp_path: Path) -> None:
    reader = open_reader(str(write(tmp_path / "empty.hdf5", np.zeros(0))), format="strain")
    assert reader.num_entries == 0
    assert list(reader.boundaries) == [0]
    got = reader.read(["strain_value", "time"], 0, 0)
    assert got["strain_value"].offsets.tolist() == [0]
    assert len(got["time"]) == 0
    reader.close()
