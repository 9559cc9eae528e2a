"""FITS binary tables as a dataset: columns as astropy reads them, runs that do not
depend on chunking or executor, remote reads with the cache tier, and damaged files
failing as one-line errors naming the file while the others complete.

Files are written here with astropy; every expectation comes from astropy reading the
file (or from the arrays written), row by row, never from saetta.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
from astropy.io import fits

import saetta
from saetta._typing import Jagged
from saetta.formats import describe, open_reader

N = 3_000


def _write(path: Path, n: int = N, seed: int = 3, name: str = "EVENTS") -> Path:
    rng = np.random.default_rng(seed)
    columns = [
        fits.Column(name="EVENT_ID", format="K", array=np.arange(n, dtype=np.int64) + 1),
        fits.Column(name="TIME", format="D", array=np.sort(rng.uniform(0, 1800, n))),
        fits.Column(name="RA", format="E", array=rng.uniform(80, 88, n).astype(np.float32)),
        fits.Column(name="DEC", format="E", array=rng.uniform(19, 25, n).astype(np.float32)),
        fits.Column(name="ENERGY", format="E", array=rng.pareto(1.6, n).astype(np.float32) + 0.1),
        fits.Column(
            name="PHA", format="I", bzero=32768, array=rng.integers(0, 65535, n).astype(np.uint16)
        ),
        fits.Column(name="QUAL", format="J", array=rng.integers(-50, 50, n).astype(np.int32)),
        fits.Column(name="FLAG", format="L", array=rng.random(n) < 0.3),
        fits.Column(name="CLS", format="B", array=rng.integers(0, 255, n).astype(np.uint8)),
        fits.Column(name="DIR_XY", format="2E", array=rng.normal(size=(n, 2)).astype(np.float32)),
        fits.Column(name="OBJECT", format="8A", array=np.array(["crab"] * n)),
    ]
    table = fits.BinTableHDU.from_columns(columns, name=name)
    # QUAL's stored integers are scaled on reading: value = 0.5 * stored + 10
    table.header.insert("TFORM7", ("TSCAL7", 0.5), after=True)
    table.header.insert("TSCAL7", ("TZERO7", 10.0), after=True)
    table.header["RA_PNT"] = (83.633, "pointing")
    table.header["DEC_PNT"] = 22.5145
    table.header["OBS_ID"] = 7
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("fits") / "obs.fits")


@pytest.fixture(scope="module")
def astropy_rows(events_file: Path) -> Any:
    """The table as astropy decodes it (scaling applied), the reference for every check."""
    with fits.open(events_file, memmap=False) as hdus:
        return hdus["EVENTS"].data.copy()


def _theta2(events: Any) -> dict[str, Any]:
    """A small analysis: θ² from the pointing (flat-sky), energy counts, a sum of PHA."""
    ra0, dec0 = events.attrs["header"]["RA_PNT"], events.attrs["header"]["DEC_PNT"]
    ra = np.asarray(events.RA, dtype=np.float64)
    dec = np.asarray(events.DEC, dtype=np.float64)
    theta2 = ((ra - ra0) * np.cos(np.radians(dec0))) ** 2 + (dec - dec0) ** 2
    h = hist.Hist(hist.axis.Regular(40, 0, 20, name="theta2"))
    h.fill(theta2)
    e = hist.Hist(hist.axis.Regular(20, -1, 2, name="log10e"))
    e.fill(np.log10(np.asarray(events.ENERGY)))
    return {"theta2": h, "energy": e, "pha": int(np.asarray(events.PHA).sum(dtype=np.int64))}


def _reference(rows: Any, header: dict[str, float]) -> dict[str, Any]:
    """The same quantities one row at a time in plain Python over astropy's rows."""
    import math

    theta2 = np.zeros(42)
    energy = np.zeros(22)
    pha = 0
    for row in rows:
        t2 = (float(row["RA"]) - header["RA_PNT"]) * math.cos(math.radians(header["DEC_PNT"]))
        t2 = t2**2 + (float(row["DEC"]) - header["DEC_PNT"]) ** 2
        theta2[0 if t2 < 0 else min(int(t2 / 0.5) + 1, 41)] += 1
        le = math.log10(float(row["ENERGY"]))
        energy[0 if le < -1 else min(int((le + 1) / 0.15) + 1, 21)] += 1
        pha += int(row["PHA"])
    return {"theta2": theta2, "energy": energy, "pha": pha}


def test_columns_and_values_equal_astropys(events_file: Path, astropy_rows: Any) -> None:
    reader = open_reader(str(events_file))
    assert reader.num_entries == N
    kinds = {name: (c.dtype, c.jagged) for name, c in reader.columns.items()}
    assert kinds == {
        "EVENT_ID": ("int64", False),
        "TIME": ("float64", False),
        "RA": ("float32", False),
        "DEC": ("float32", False),
        "ENERGY": ("float32", False),
        "PHA": ("uint16", False),
        "QUAL": ("float64", False),
        "FLAG": ("bool", False),
        "CLS": ("uint8", False),
        "nDIRXY": ("int32", False),
        "DIRXY_value": ("float32", True),
    }  # OBJECT (a string) is not a column
    got = reader.read(list(reader.columns), 1_234, 2_345)
    rows = astropy_rows[1_234:2_345]
    for name in ("EVENT_ID", "TIME", "RA", "DEC", "ENERGY", "PHA", "QUAL", "FLAG", "CLS"):
        expected = np.asarray(rows[name])
        assert got[name].dtype == expected.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], expected, err_msg=name)
    assert isinstance(got["DIRXY_value"], Jagged)
    np.testing.assert_array_equal(got["DIRXY_value"].content, np.asarray(rows["DIR_XY"]).ravel())
    np.testing.assert_array_equal(np.diff(got["DIRXY_value"].offsets), 2)
    np.testing.assert_array_equal(got["nDIRXY"], 2)
    assert reader.header["RA_PNT"] == 83.633
    assert reader.header["OBS_ID"] == 7
    assert "TTYPE1" not in reader.header
    assert "NAXIS2" not in reader.header
    reader.close()


def test_rows_are_read_once_for_columns_touched_one_by_one(events_file: Path) -> None:
    reader = open_reader(str(events_file))
    reader.read(["RA"], 0, 1_000)
    once = reader.bytes_read
    reader.read(["DEC"], 0, 1_000)
    assert reader.bytes_read == once == 1_000 * fits.getheader(events_file, 1)["NAXIS1"]
    reader.read(["DEC"], 1_000, 1_500)  # a positive control: other rows are read
    assert reader.bytes_read == once + 500 * fits.getheader(events_file, 1)["NAXIS1"]
    reader.close()


@pytest.mark.parametrize(
    ("executor", "chunk_size"), [("local", 3_000), ("local", 7), ("processes:2", 500)]
)
def test_run_equals_a_per_row_reference(
    events_file: Path, astropy_rows: Any, executor: str, chunk_size: int
) -> None:
    result = saetta.run(
        _theta2, [events_file], executor=executor, chunk_size=chunk_size, progress=False,
        run_dir=False,
    )  # fmt: skip
    expected = _reference(astropy_rows, {"RA_PNT": 83.633, "DEC_PNT": 22.5145})
    np.testing.assert_array_equal(result["theta2"].view(flow=True), expected["theta2"])
    np.testing.assert_array_equal(result["energy"].view(flow=True), expected["energy"])
    assert result["pha"] == expected["pha"]
    assert result.report.events_processed == N


def test_gzip_file_reads_the_same(tmp_path: Path, events_file: Path, astropy_rows: Any) -> None:
    packed = tmp_path / "obs.fits.gz"
    with gzip.open(packed, "wb") as out:
        out.write(events_file.read_bytes())
    reader = open_reader(str(packed))
    np.testing.assert_array_equal(
        reader.read(["TIME"], 10, 20)["TIME"], astropy_rows["TIME"][10:20]
    )
    reader.close()
    result = saetta.run(_theta2, [packed], chunk_size=100, progress=False, run_dir=False)
    assert len(result.report.units) > 1
    expected = _reference(astropy_rows, {"RA_PNT": 83.633, "DEC_PNT": 22.5145})
    np.testing.assert_array_equal(result["theta2"].view(flow=True), expected["theta2"])


def test_truncated_file_fails_its_units_only(tmp_path: Path, events_file: Path) -> None:
    good = shutil.copy(events_file, tmp_path / "a.fits")
    data = events_file.read_bytes()
    row_bytes = fits.getheader(events_file, 1)["NAXIS1"]
    with fits.open(events_file) as hdus:
        start = hdus.fileinfo(1)["datLoc"]
    broken = tmp_path / "b.fits"
    broken.write_bytes(data[: start + 2_000 * row_bytes + 5])  # rows 2000 onwards are lost
    result = saetta.run(
        _theta2, [good, broken], chunk_size=500, allow_partial=True, progress=False, run_dir=False
    )
    failures = result.report.failures
    assert {f.unit.path for f in failures} == {str(broken)}
    # exactly the units that reach past row 2000 failed, the others of the file did not
    broken_units = [u.unit for u in result.report.units if u.unit.path == str(broken)]
    lost = sorted((u.start, u.stop) for u in broken_units if u.stop > 2_000)
    assert sorted((f.unit.start, f.unit.stop) for f in failures) == lost
    assert lost
    assert all(f.error == "FormatError" for f in failures)
    message = failures[0].message
    assert "\n" not in message
    assert str(broken) in message
    assert "truncated" in message
    # the good file and the readable units of the broken one are all there
    assert result.report.events_processed == N + lost[0][0]
    assert result.report.events_missing == N - lost[0][0]
    # positive control: the same two files, the second whole, both complete
    shutil.copy(events_file, broken)
    whole = saetta.run(_theta2, [good, broken], chunk_size=500, progress=False, run_dir=False)
    assert whole.report.events_processed == 2 * N
    assert whole.report.complete


def test_empty_table(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.fits", n=0)
    reader = open_reader(str(path))
    assert reader.num_entries == 0
    assert list(reader.boundaries) == [0, 0]
    reader.close()
    result = saetta.run(
        _theta2, [path, _write(tmp_path / "one.fits", n=1)], progress=False, run_dir=False
    )
    assert result["theta2"].sum(flow=True) == 1


def test_hdu_by_name_and_default(tmp_path: Path, events_file: Path) -> None:
    other = _write(tmp_path / "named.fits", n=10, name="PHOTONS")
    assert open_reader(str(other)).num_entries == 10  # no EVENTS: the first table
    assert open_reader(str(other), "photons").num_entries == 10  # names are case-insensitive
    with pytest.raises(
        saetta.FormatError, match=r"no binary-table HDU 'GTI' in .*named\.fits; it has: PHOTONS"
    ):
        open_reader(str(other), "GTI")
    assert open_reader(str(events_file), "events").num_entries == N  # positive control


def test_missing_column_suggests_a_near_miss(events_file: Path) -> None:
    reader = open_reader(str(events_file))
    with pytest.raises(saetta.MissingBranchError, match="did you mean 'ENERGY'"):
        reader.read(["ENERGIE"], 0, 10)
    reader.close()


@pytest.mark.parametrize(
    ("content", "what"),
    [(b"", "empty"), (b"SIMPLE  =" + b"x" * 3000, "a broken header"), (b"\x00" * 5760, "zeros")],
)
def test_unreadable_file_is_a_one_line_format_error(
    tmp_path: Path, content: bytes, what: str
) -> None:
    bad = tmp_path / "bad.fits"
    bad.write_bytes(content)
    with pytest.raises(saetta.FormatError) as info:
        saetta.Dataset.open(bad)
    assert str(bad) in str(info.value), what
    assert "\n" not in str(info.value)


def test_a_header_that_lies_about_its_rows_is_named(tmp_path: Path, events_file: Path) -> None:
    data = bytearray(events_file.read_bytes())
    at = data.index(b"NAXIS1  =")
    row_bytes = fits.getheader(events_file, 1)["NAXIS1"]
    data[at : at + 30] = f"NAXIS1  = {row_bytes + 4:>20}".encode()
    bad = tmp_path / "lying.fits"
    bad.write_bytes(bytes(data))
    with pytest.raises(
        saetta.FormatError, match=rf"lying\.fits: its columns take {row_bytes} bytes"
    ):
        open_reader(str(bad))


def test_describe(events_file: Path) -> None:
    lines = str(describe(str(events_file))).splitlines()
    assert lines[0] == f"{events_file}: FITS, 1 binary table"
    assert lines[1] == f"HDU EVENTS: binary table, {N:,} rows"
    assert lines[2] == "  OBS_ID = 7, RA_PNT = 83.633, DEC_PNT = 22.5145"
    assert any(line.split() == ["ENERGY", "float32"] for line in lines)
    assert lines[-1] == "  not read: OBJECT (8A)"


def test_remote_file_with_the_cache_tier(
    https_server: Any, events_file: Path, astropy_rows: Any, tmp_path: Path
) -> None:
    shutil.copy(events_file, https_server.root / "remote.fits")
    https_server.sync()
    url = str(https_server.url("remote.fits"))
    options = {https_server.protocol: https_server.storage_options}
    cache = tmp_path / "cache"
    expected = _reference(astropy_rows, {"RA_PNT": 83.633, "DEC_PNT": 22.5145})
    for _ in range(2):
        dataset = saetta.Dataset.open(url, storage_options=options, cache=cache)
        before = https_server.bytes_served()
        result = saetta.run(_theta2, dataset, chunk_size=1_000, progress=False, run_dir=False)
        np.testing.assert_array_equal(result["theta2"].view(flow=True), expected["theta2"])
    assert https_server.bytes_served() == before  # the second pass read the cache only
