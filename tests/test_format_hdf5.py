"""HDF5 files as a dataset: the column rule, reads equal to what was written, runs,
and damaged or strange files failing as one-line errors naming the file.

The files are written here with h5py; every expectation comes from the numpy arrays
written, never from saetta reading them.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import h5py
import hist
import numpy as np
import pytest

import saetta
from saetta import ml
from saetta._typing import Jagged
from saetta.formats import describe, open_reader

N = 1_000
K = 6


def _arrays(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=n),
        "e": rng.uniform(1, 100, size=(n, 1)),
        "ids": np.arange(n, dtype=np.int64) * 3,
        "showers": rng.exponential(size=(n, K)).astype(np.float32),
        "hit": rng.random(n) < 0.3,
    }


def write(path: Path, arrays: dict[str, np.ndarray], *, chunks: bool, group: str = "/") -> Path:
    """A table of ``arrays`` in ``group`` (chunked and compressed, or contiguous), and
    beside them datasets that are not columns."""
    with h5py.File(path, "w") as f:
        where = f.require_group(group)
        for name, data in arrays.items():
            if chunks:
                rows = {"showers": 200}.get(name, 128)
                shape = (min(rows, max(len(data), 1)), *data.shape[1:])
                where.create_dataset(
                    name,
                    data=data,
                    chunks=shape,
                    maxshape=(None, *data.shape[1:]),
                    compression="gzip",
                )
            else:
                where.create_dataset(name, data=data)
        n = len(next(iter(arrays.values())))
        where.create_dataset("names", data=np.array([b"event"] * n))
        where.create_dataset("lists", (n,), dtype=h5py.vlen_dtype(np.int32))
        where.create_dataset("cube", data=np.zeros((n, 2, 2)))
        where.create_dataset("pair", data=np.zeros(n, dtype=[("a", "f8"), ("b", "i4")]))
        where.create_dataset("calibration", data=np.arange(5.0))
        where.create_group("extra").create_dataset("y", data=np.zeros(n))
        where["alias"] = h5py.SoftLink(f"{where.name.rstrip('/')}/x")
        where["elsewhere"] = h5py.ExternalLink("other.h5", "/x")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hdf5")


@pytest.fixture(scope="module")
def written(folder: Path) -> dict[str, np.ndarray]:
    return _arrays(N, seed=1)


@pytest.fixture(scope="module")
def chunked(folder: Path, written: dict[str, np.ndarray]) -> Path:
    return write(folder / "chunked.h5", written, chunks=True)


@pytest.fixture(scope="module")
def contiguous(folder: Path, written: dict[str, np.ndarray]) -> Path:
    return write(folder / "contiguous.hdf5", written, chunks=False)


@pytest.fixture(params=["chunked", "contiguous"])
def path(request: pytest.FixtureRequest) -> Path:
    result: Path = request.getfixturevalue(request.param)
    return result


# --- the column rule ----------------------------------------------------------


def test_columns_follow_the_rule(path: Path) -> None:
    reader = open_reader(str(path))
    found = {name: (c.dtype, c.jagged) for name, c in reader.columns.items()}
    assert found == {
        "x": ("float64", False),
        "e": ("float64", False),  # (N, 1): flat
        "ids": ("int64", False),
        "hit": ("bool", False),
        "nshowers": ("int32", False),  # (N, k): a counter and a jagged column
        "showers_value": ("float32", True),
    }
    assert reader.num_entries == N
    reader.close()


def test_reads_equal_what_was_written(chunked: Path, written: dict[str, np.ndarray]) -> None:
    reader = open_reader(str(chunked))
    names = ["x", "e", "ids", "hit", "nshowers", "showers_value"]
    for start, stop in [(0, 128), (128, 256), (200, 400), (100, 301), (999, 1000), (0, N)]:
        got = reader.read(names, start, stop)
        np.testing.assert_array_equal(got["x"], written["x"][start:stop])
        np.testing.assert_array_equal(got["e"], written["e"][start:stop, 0])
        np.testing.assert_array_equal(got["ids"], written["ids"][start:stop])
        np.testing.assert_array_equal(got["hit"], written["hit"][start:stop])
        assert got["e"].shape == (stop - start,)
        assert got["nshowers"].dtype == np.int32
        np.testing.assert_array_equal(got["nshowers"], np.full(stop - start, K))
        values = got["showers_value"]
        assert isinstance(values, Jagged)
        assert values.offsets.dtype == np.int64
        np.testing.assert_array_equal(values.offsets, np.arange(stop - start + 1) * K)
        np.testing.assert_array_equal(values.content, written["showers"][start:stop].ravel())
    assert reader.read([], 0, 10) == {}
    reader.close()


def test_underscored_and_clashing_matrices(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["my_showers"] = np.ones((10, 3))
        f["hits"] = np.ones((10, 4))
        f["nhits"] = np.ones(10)  # a real column: the matrix "hits" would clash with it
    reader = open_reader(str(tmp_path / "m.h5"))
    assert sorted(reader.columns) == ["myshowers_value", "nhits", "nmyshowers"]
    np.testing.assert_array_equal(
        reader.read(["myshowers_value"], 2, 4)["myshowers_value"][0], [0, 3, 6]
    )


def test_big_endian_numbers_come_back_native(tmp_path: Path) -> None:
    data = np.arange(50, dtype=">f8")
    with h5py.File(tmp_path / "be.h5", "w") as f:
        f["v"] = data
    got = open_reader(str(tmp_path / "be.h5")).read(["v"], 10, 20)["v"]
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, np.arange(10.0, 20.0))


def test_n_is_the_length_most_datasets_share(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f["a"] = np.zeros(30)
        f["b"] = np.zeros((30, 2))
        f["big"] = np.zeros(5_000)  # one dataset of another length: not a column
    reader = open_reader(str(tmp_path / "n.h5"))
    assert reader.num_entries == 30
    assert sorted(reader.columns) == ["a", "b_value", "nb"]


# --- boundaries and bytes -----------------------------------------------------


def test_boundaries_are_the_largest_datasets_chunks(chunked: Path, contiguous: Path) -> None:
    # showers (24 bytes an entry) is the largest; it is chunked by 200 entries
    assert list(open_reader(str(chunked)).boundaries) == [0, 200, 400, 600, 800, 1000]
    assert list(open_reader(str(contiguous)).boundaries) == [0, 1000]


def test_contiguous_boundaries_every_64k(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "long.h5", "w") as f:
        f["v"] = np.zeros(150_000, dtype=np.uint8)
    assert list(open_reader(str(tmp_path / "long.h5")).boundaries) == [0, 65_536, 131_072, 150_000]


def test_tiny_chunks_are_thinned(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "tiny.h5", "w") as f:
        f.create_dataset("v", data=np.zeros(25_000, dtype=np.uint8), chunks=(1,))
    edges = list(open_reader(str(tmp_path / "tiny.h5")).boundaries)
    assert len(edges) <= 10_001
    assert edges[0] == 0
    assert edges[-1] == 25_000
    assert edges[1] == 3


def test_bytes_read_count_compressed_chunks(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "z.h5", "w") as f:
        f.create_dataset("z", data=np.zeros((1_000, 100)), chunks=(100, 100), compression="gzip")
        f.create_dataset("raw", data=np.ones(1_000))
        stored = f["z"].id.get_storage_size()
    assert stored < 1_000 * 100 * 8 // 20
    reader = open_reader(str(tmp_path / "z.h5"))
    reader.read(["nz"], 0, 1_000)
    assert reader.bytes_read == 0  # the counter reads nothing
    reader.read(["z_value", "nz"], 150, 250)  # chunks 100-200 and 200-300
    assert reader.bytes_read == pytest.approx(stored * 2 / 10, abs=1)
    before = reader.bytes_read
    reader.read(["raw"], 0, 500)
    assert reader.bytes_read - before == 500 * 8


# --- runs ---------------------------------------------------------------------


def _analysis(events: Any) -> dict[str, Any]:
    h = hist.Hist.new.Reg(20, 0, 5, name="v").Double()
    h.fill(v=np.asarray(events.showers.value).ravel())
    return {
        "h": h,
        "ids": int(np.sum(events.ids)),
        "x": float(np.sum(events.x)),
        "e": float(np.sum(events.e[events.hit])),
        "counted": int(np.sum(events.nshowers)),
        "lengths": int(np.sum(np.asarray([len(s) for s in events.showers[:3]]))),
    }


def _expected(*tables: dict[str, np.ndarray]) -> dict[str, Any]:
    values = np.concatenate([t["showers"].ravel() for t in tables])
    return {
        "h": np.histogram(values, bins=20, range=(0, 5))[0],
        "ids": int(sum(t["ids"].sum() for t in tables)),
        "x": float(sum(t["x"].sum() for t in tables)),
        "e": float(sum(t["e"][t["hit"], 0].sum() for t in tables)),
        "counted": K * sum(len(t["x"]) for t in tables),
    }


def _check(result: saetta.Result, expected: dict[str, Any]) -> None:
    np.testing.assert_array_equal(result["h"].values(), expected["h"])
    assert result["ids"] == expected["ids"]
    assert result["counted"] == expected["counted"]
    assert result["x"] == pytest.approx(expected["x"], rel=1e-12, abs=1e-9)
    assert result["e"] == pytest.approx(expected["e"], rel=1e-12)


@pytest.mark.parametrize("chunk_size", [150, 10_000])
def test_run_equals_numpy(
    chunk_size: int, chunked: Path, contiguous: Path, written: dict[str, np.ndarray]
) -> None:
    result = saetta.run(
        _analysis, [chunked, contiguous], chunk_size=chunk_size, progress=False, run_dir=False
    )
    assert result.report.events_processed == result.report.events_total == 2 * N
    assert result.report.bytes_read > 0
    _check(result, _expected(written, written))


def test_run_in_processes(chunked: Path, written: dict[str, np.ndarray]) -> None:
    result = saetta.run(
        _analysis, [chunked], chunk_size=250, executor="processes:2", progress=False, run_dir=False
    )
    assert result.report.units_total == 5
    _check(result, _expected(written))


def test_ml_loader_pads_a_matrix(chunked: Path, written: dict[str, np.ndarray]) -> None:
    loader = ml.Loader(
        [chunked], ["showers_value", "x"], pad={"showers": K}, batch_size=N, shuffle=False
    )
    (batch,) = list(loader.epoch(0, tensors=False))
    assert batch["showers"].shape == (N, K, 1)
    np.testing.assert_array_equal(batch["showers"][:, :, 0], written["showers"])
    assert batch["showers_mask"].all()


# --- the tree: a group, or the root -------------------------------------------


def test_default_tree_falls_back_to_root(chunked: Path) -> None:
    assert saetta.Dataset.open(chunked).num_entries == N  # tree="Events", no such group


def test_explicit_group(tmp_path: Path, written: dict[str, np.ndarray]) -> None:
    path = write(tmp_path / "grouped.h5", written, chunks=True, group="Events")
    with h5py.File(path, "a") as f:
        f["decoy"] = np.zeros(3)  # the root has only this: not what Events reads
        f.create_group("sim/jets")["pt"] = np.arange(40.0)
    assert open_reader(str(path)).num_entries == N
    reader = open_reader(str(path), tree="sim/jets")
    np.testing.assert_array_equal(reader.read(["pt"], 5, 8)["pt"], [5.0, 6.0, 7.0])
    assert open_reader(str(path), tree="/").num_entries == 3
    result = saetta.run(_analysis, saetta.Dataset.open(path, tree="Events"), progress=False)
    _check(result, _expected(written))


def test_missing_group_lists_the_groups(tmp_path: Path, written: dict[str, np.ndarray]) -> None:
    path = write(tmp_path / "g.h5", written, chunks=False, group="Events")
    with pytest.raises(
        saetta.FormatError, match=r"no group 'Evnets' in .*g\.h5; it has: /, Events$"
    ):
        open_reader(str(path), tree="Evnets")
    with pytest.raises(
        saetta.FormatError, match=r"'Events/x' in .*g\.h5 is a Dataset, not a group"
    ):
        open_reader(str(path), tree="Events/x")


# --- bad input ----------------------------------------------------------------


def test_no_columns_says_what_the_file_holds(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f["names"] = np.array([b"a", b"b"])
        f["cube"] = np.zeros((4, 2, 2))
        f.create_group("deeper")
        f["kind"] = np.dtype("f8")  # a named datatype, not a dataset
    with pytest.raises(saetta.FormatError) as info:
        open_reader(str(tmp_path / "odd.h5"))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "odd.h5") in message
    assert "no table columns in group '/'" in message
    assert "cube (float64, shape (4, 2, 2))" in message
    assert "deeper/ (group)" in message
    assert "names (type |S1)" in message
    assert "kind (Datatype)" in message


def test_empty_hdf5_file(tmp_path: Path) -> None:
    h5py.File(tmp_path / "nothing.h5", "w").close()
    with pytest.raises(
        saetta.FormatError, match=r"nothing\.h5 has no table columns .* holds: nothing"
    ):
        open_reader(str(tmp_path / "nothing.h5"))


@pytest.mark.parametrize("what", ["empty", "garbage", "truncated", "not hdf5"])
def test_unreadable_file_is_a_one_line_format_error(
    what: str, tmp_path: Path, chunked: Path
) -> None:
    bad = tmp_path / "bad.h5"
    data = chunked.read_bytes()
    content = {
        "empty": b"",
        "garbage": np.random.default_rng(0).bytes(4_096),
        "truncated": data[: len(data) // 2],
        "not hdf5": b"PAR1" + bytes(200),
    }[what]
    bad.write_bytes(content)
    with pytest.raises(
        saetta.FormatError, match=rf"^{re.escape(str(bad))} is not a readable HDF5 file \("
    ) as info:
        open_reader(str(bad))
    assert "\n" not in str(info.value)
    with pytest.raises(saetta.SaettaError, match=re.escape(str(bad))):
        saetta.run(_analysis, [chunked, bad], progress=False, run_dir=False)


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(saetta.StorageError, match="file not found"):
        open_reader(str(tmp_path / "absent.h5"))


def test_damaged_chunk_fails_its_unit_only(
    tmp_path: Path, chunked: Path, written: dict[str, np.ndarray]
) -> None:
    bad = tmp_path / "damaged.h5"
    data = bytearray(chunked.read_bytes())
    with h5py.File(chunked, "r") as f:
        info = f["showers"].id.get_chunk_info(2)  # entries 400-600
    data[info.byte_offset : info.byte_offset + info.size] = b"\xff" * info.size
    bad.write_bytes(bytes(data))

    reader = open_reader(str(bad))  # the metadata is intact
    with pytest.raises(
        saetta.FormatError,
        match=rf"cannot read showers_value \[450:460\] of {re.escape(str(bad))} \(",
    ):
        reader.read(["showers_value"], 450, 460)
    reader.read(["showers_value"], 0, 400)

    result = saetta.run(
        _analysis, [chunked, bad], chunk_size=200, progress=False, run_dir=False, allow_partial=True
    )
    (failure,) = result.report.failures
    assert failure.unit.path == str(bad)
    assert (failure.unit.start, failure.unit.stop) == (400, 600)
    assert failure.error == "FormatError"
    assert result.report.events_processed == 2 * N - 200
    kept = np.r_[0:400, 600:N]
    _check(result, _expected(written, {k: v[kept] for k, v in written.items()}))

    with pytest.raises(saetta.UnitError, match=r"damaged\.h5\[400:600\].*FormatError"):
        saetta.run(_analysis, [chunked, bad], chunk_size=200, progress=False, run_dir=False)


def test_missing_column_suggests_a_near_miss(chunked: Path) -> None:
    reader = open_reader(str(chunked))
    with pytest.raises(
        saetta.MissingBranchError,
        match=r"'showers_valeu' not in Events of .*chunked\.h5; did you mean 'showers_value'",
    ):
        reader.read(["showers_valeu"], 0, 10)


def test_no_entries(tmp_path: Path, chunked: Path, written: dict[str, np.ndarray]) -> None:
    empty = write(tmp_path / "empty.h5", _arrays(0, seed=2), chunks=True)
    reader = open_reader(str(empty))
    assert reader.num_entries == 0
    assert list(reader.boundaries) == [0]
    assert reader.columns["showers_value"].jagged
    result = saetta.run(_analysis, [empty, chunked], progress=False, run_dir=False)
    assert result.report.events_total == N
    _check(result, _expected(written))


# --- remote files and inspect -------------------------------------------------


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP range requests (206), as fsspec's HTTP reader needs."""

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        if wanted:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            lo, hi = int(first), min(int(last or len(data) - 1), len(data) - 1)
            body = data[lo : hi + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.body = body
        return None

    def do_GET(self) -> None:
        self.send_head()
        if self.command == "GET" and hasattr(self, "body"):
            self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    def handler(*args: Any) -> _RangeHandler:
        return _RangeHandler(*args, directory=str(tmp_path))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_remote_file_over_http(
    http_folder: tuple[Path, str], chunked: Path, written: dict[str, np.ndarray]
) -> None:
    root, url = http_folder
    (root / "remote.h5").write_bytes(chunked.read_bytes())
    reader = open_reader(f"{url}/remote.h5")
    got = reader.read(["showers_value", "e"], 300, 500)
    np.testing.assert_array_equal(got["showers_value"].content, written["showers"][300:500].ravel())
    np.testing.assert_array_equal(got["e"], written["e"][300:500, 0])
    reader.close()
    result = saetta.run(_analysis, [f"{url}/remote.h5"], chunk_size=400, progress=False)
    _check(result, _expected(written))
    (root / "junk.h5").write_bytes(b"junk" * 100)
    with pytest.raises(
        saetta.FormatError, match=r"^http://127\.0\.0\.1:\d+/junk\.h5 is not a readable HDF5"
    ):
        open_reader(f"{url}/junk.h5")


def test_remote_file_object(chunked: Path, written: dict[str, np.ndarray]) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/saetta-test/table.h5", chunked.read_bytes())
    try:
        reader = open_reader("memory://saetta-test/table.h5")
        np.testing.assert_array_equal(reader.read(["x"], 10, 20)["x"], written["x"][10:20])
        reader.close()
    finally:
        fs.rm("/saetta-test", recursive=True)


def test_describe(chunked: Path) -> None:
    text = str(describe(str(chunked)))
    lines = text.splitlines()
    assert lines[0] == f"{chunked}: HDF5, 1,000 entries in group '/' (chunks of 200 entries)"
    assert lines[1] == "compression: gzip"
    assert any(line.split()[:2] == ["showers_value", "float32[]"] for line in lines)
    assert any(line.split() == ["nshowers", "int32"] for line in lines)
