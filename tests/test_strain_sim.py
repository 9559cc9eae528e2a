"""Simulated strain: the same seed gives the same samples, the noise has the aLIGO PSD,
an injection has the optimal SNR asked for, the table lists what was injected, and the
files carry GWOSC's layout.

Expectations are computed here from the samples written (numpy's FFT, scipy's Welch),
with the PSD, :func:`saetta.astro.psd.aligo_psd`, as the definition of the noise.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.signal
from click.testing import CliRunner

import saetta
from saetta.astro.psd import aligo_psd
from saetta.astro.strain_sim import generate_strain
from saetta.astro.waveforms import chirp_times, taylorf2
from saetta.cli.strain import strain as strain_command
from saetta.formats.strain import windows

GPS = 1_000_000_000
RATE = 2048
DURATION = 256


def samples(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        data: np.ndarray = f["strain/Strain"][:]
    return data


def optimal_snr(x: np.ndarray, rate: float, f_lower: float = 20.0) -> float:
    """``sqrt(4 df sum |h(f)|^2 / S(f))`` over ``[f_lower, Nyquist)``, from the samples."""
    htilde = np.fft.rfft(x) / rate
    df = rate / len(x)
    f = np.arange(len(htilde)) * df
    band = (f >= f_lower) & (f < rate / 2)
    return math.sqrt(4 * df * np.sum(np.abs(htilde[band]) ** 2 / aligo_psd(f[band])))


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("noise")
    return generate_strain(folder, duration=DURATION, rate=RATE, injections=0, seed=5).paths[0]


def test_same_seed_same_samples(tmp_path: Path, noise: Path) -> None:
    again = generate_strain(tmp_path / "a", duration=DURATION, rate=RATE, injections=0, seed=5)
    assert samples(again.paths[0]).tobytes() == samples(noise).tobytes()
    other = generate_strain(tmp_path / "b", duration=DURATION, rate=RATE, injections=0, seed=6)
    assert not np.array_equal(samples(other.paths[0]), samples(noise))
    # File i's samples come from (seed, i): asking for more files leaves file 0 alone.
    two = generate_strain(
        tmp_path / "c", duration=DURATION, rate=RATE, files=2, injections=0, seed=5
    )
    assert samples(two.paths[0]).tobytes() == samples(noise).tobytes()
    assert not np.array_equal(samples(two.paths[1]), samples(noise))


def test_noise_follows_the_aligo_psd(noise: Path) -> None:
    x = samples(noise)
    f, measured = scipy.signal.welch(x, fs=RATE, nperseg=4 * RATE)
    band = (f >= 20) & (f <= 1000)
    ratio = measured[band] / aligo_psd(f[band])
    # ~127 half-overlapping Hann segments: each bin's estimate scatters by ~12 %, their
    # mean over the 3,921 bins by well under 1 %.
    assert abs(np.mean(ratio) - 1) < 0.02
    assert np.all(np.abs(ratio - 1) < 0.6)
    for lo in range(20, 1000, 100):  # no band of 100 Hz is off
        piece = ratio[(f[band] >= lo) & (f[band] < lo + 100)]
        assert abs(np.mean(piece) - 1) < 0.05, lo
    # Below f_min (10 Hz) there is no noise at all.
    assert np.max(measured[(f > 0) & (f < 8)] / aligo_psd(f[(f > 0) & (f < 8)])) < 1e-6


def test_injection_has_the_optimal_snr_asked_for(tmp_path: Path) -> None:
    tc = GPS + 100.37
    chirp = {"time": tc, "mass1": 25.0, "mass2": 12.0, "snr": 17.5}
    out = generate_strain(tmp_path, duration=DURATION, rate=RATE, injections=[chirp], noise=False)
    x = samples(out.paths[0])
    assert optimal_snr(x, RATE) == pytest.approx(17.5, rel=1e-9)
    # Placed at its time: matched against the same chirp coalescing at t = 0, the
    # correlation peaks at the coalescence sample.
    f = np.arange(len(x) // 2 + 1) * RATE / len(x)
    template = taylorf2(25.0, 12.0, f, 20.0)
    weight = np.zeros(len(f))
    weight[1:] = 1 / aligo_psd(f[1:])
    correlation = np.fft.irfft(np.fft.rfft(x) * np.conj(template) * weight, len(x))
    assert abs(int(np.argmax(correlation)) - (tc - GPS) * RATE) <= 1
    # Its energy lies within the chirp's length before the coalescence (the sharp
    # edges of TaylorF2's band at 20 Hz and at the ISCO ring on, with ~0.2 % of it).
    length = sum(chirp_times(25.0, 12.0, 20.0))
    t = np.arange(len(x)) / RATE + GPS
    inside = (t > tc - length - 1) & (t < tc + 1)
    assert np.sum(x[~inside] ** 2) < 0.01 * np.sum(x**2)
    assert np.sum(x[t < tc] ** 2) > 0.9 * np.sum(x**2)
    (row,) = pq.read_table(out.injections).to_pylist()
    assert row["time"] == tc
    # SNR scales as 1/distance: the same chirp at the table's distance, by hand.
    at_distance = taylorf2(25.0, 12.0, f, 20.0, distance=row["distance"])
    assert optimal_snr(np.fft.irfft(at_distance * RATE, len(x)), RATE) == pytest.approx(
        17.5, rel=1e-9
    )


def test_the_table_lists_what_was_injected(tmp_path: Path) -> None:
    out = generate_strain(tmp_path, duration=DURATION, rate=RATE, files=2, injections=3, seed=2)
    table = pq.read_table(out.injections)
    assert table.column_names == ["time", "mass1", "mass2", "snr", "distance", "file"]
    rows = table.to_pylist()
    assert len(rows) == 6 == len(out.chirps)
    names = [p.name for p in out.paths]
    assert [r["file"] for r in rows] == [names[0]] * 3 + [names[1]] * 3
    for row, chirp in zip(rows, out.chirps, strict=True):
        assert 10 <= row["mass2"] <= row["mass1"] <= 30
        assert 8 <= row["snr"] <= 40
        start = GPS + DURATION * names.index(row["file"])
        length = sum(chirp_times(row["mass1"], row["mass2"], 20.0))
        assert start + length < row["time"] < start + DURATION - 8
        assert row["distance"] > 0
        assert (row["time"], row["snr"]) == (chirp.time, chirp.snr)
    times = [r["time"] for r in rows]
    assert times == sorted(times)
    # Chirps never overlap: each starts after the one before coalesced.
    for earlier, later in itertools.pairwise(rows):
        assert (
            later["time"] - sum(chirp_times(later["mass1"], later["mass2"], 20.0))
            > (earlier["time"])
        )


def test_gwosc_layout(tmp_path: Path) -> None:
    out = generate_strain(tmp_path, duration=64, rate=1024, detector="L1", injections=1, seed=3)
    (path,) = out.paths
    assert path.name == "L-L1_SAETTA-1000000000-64.hdf5"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, "injections.parquet"]
    with h5py.File(path, "r") as f:
        ds = f["strain/Strain"]
        assert (ds.shape, ds.dtype) == ((64 * 1024,), np.float64)
        assert ds.attrs["Xstart"] == GPS
        assert ds.attrs["Xspacing"] == 1 / 1024
        assert ds.attrs["Npoints"] == 64 * 1024
        assert ds.attrs["Xunits"] == "second"
        meta = f["meta"]
        assert meta["GPSstart"][()] == GPS
        assert meta["Duration"][()] == 64
        assert meta["Detector"][()] == b"L1"
        assert meta["Observatory"][()] == b"L"
        assert meta["Type"][()] == b"StrainTimeSeries"
        assert b"saetta" in meta["Description"][()]
        np.testing.assert_array_equal(f["quality/simple/DQmask"][:], np.ones(64))


def test_bad_requests_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(saetta.DatasetError, match="3 chirps do not fit in 32 s files"):
        generate_strain(tmp_path, duration=32, rate=256, injections=3)
    chirp = {"time": GPS + 2.0, "mass1": 10.0, "mass2": 10.0, "snr": 10.0}
    with pytest.raises(saetta.DatasetError, match="does not lie wholly inside one file"):
        generate_strain(tmp_path, duration=32, rate=256, injections=[chirp])
    with pytest.raises(saetta.DatasetError, match="lacks mass1, mass2, snr"):
        generate_strain(tmp_path, duration=32, rate=256, injections=[{"time": GPS + 20.0}])
    assert not list(tmp_path.iterdir())
    # The positive control: the same chirp later in the file, and one chirp per file.
    chirp = {"time": GPS + 20.0, "mass1": 10.0, "mass2": 10.0, "snr": 10.0}
    assert len(generate_strain(tmp_path, duration=32, rate=256, injections=[chirp]).chirps) == 1
    assert len(generate_strain(tmp_path, duration=64, rate=256, injections=1).chirps) == 1


def test_a_chirp_at_a_window_boundary_is_in_one_own_span(tmp_path: Path) -> None:
    chirp = {"time": GPS + 64.0, "mass1": 30.0, "mass2": 30.0, "snr": 20.0}
    out = generate_strain(tmp_path, duration=128, rate=RATE, injections=[chirp], noise=False)
    x = samples(out.paths[0])
    dataset = saetta.Dataset.open(out.paths[0], format="strain", tree=windows(32, 8))

    def energies(events):  # type: ignore[no-untyped-def]
        own, padded = np.zeros(4), np.zeros(4)
        for t, before, span, values in zip(
            events.time, events.before, events.span, events.strain.value, strict=True
        ):
            i = round((t - GPS) / 32)
            v = np.asarray(values)
            own[i] = np.sum(v[before : before + span] ** 2)
            padded[i] = np.sum(v**2)
        return {"own": own, "padded": padded}

    result = saetta.run(energies, dataset, chunk_size=1, progress=False, run_dir=False)
    total = np.sum(x**2)
    np.testing.assert_allclose(result["own"].sum(), total, rtol=1e-12)
    # The chirp ends in window 1 (its ringing after the ISCO spills a few per cent into
    # window 2); window 2 sees the chirp whole only with its padding.
    assert result["own"][1] > 0.9 * total
    assert result["own"][2] < 0.1 * total
    assert result["padded"][2] > 0.99 * total


def test_command(tmp_path: Path) -> None:
    folder = tmp_path / "gw"
    result = CliRunner().invoke(
        strain_command,
        [str(folder), "--duration", "64", "--rate", "512", "--files", "2", "--injections", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 strain files of 64 s at 512 Hz" in result.output
    assert "with 2 chirps listed in" in result.output
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "H-H1_SAETTA-1000000000-64.hdf5",
        "H-H1_SAETTA-1000000064-64.hdf5",
        "injections.parquet",
    ]
    assert pq.read_table(folder / "injections.parquet").num_rows == 2
