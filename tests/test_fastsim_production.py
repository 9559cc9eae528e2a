"""Showers at scale: jobs of seeds and energies through saetta's executors, each shower
written once, a killed production resumed without writing any twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import saetta
from saetta.fastsim.binning import Binning
from saetta.fastsim.production import Energies, produce

SAETTA = str(Path(sys.executable).with_name("saetta"))
BINNING = Binning.regular(2, (0, 5, 10), 2)


class Toy:
    """A stand-in for a simulation: each voxel holds the energy times a seeded number."""

    def __call__(self, energies: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return (energies[:, None] * rng.uniform(0, 0.01, (len(energies), BINNING.voxels))).astype(
            np.float32
        )


def _read_all(folder: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    energies, showers, seeds = [], [], []
    for path in sorted(folder.glob("showers_*.h5")):
        with h5py.File(path) as f:
            energies.append(f["incident_energies"][:, 0])
            showers.append(f["showers"][:])
            seeds.append(int(f.attrs["seed"]))
    return np.concatenate(energies), np.concatenate(showers), seeds


@pytest.mark.parametrize(
    ("text", "low", "high", "values"),
    [("1-1000", 1, 1000, ()), ("10,100", 10, 100, (10.0, 100.0)), ("50", 50, 50, (50.0,))],
)
def test_energies_parse(text: str, low: float, high: float, values: tuple[float, ...]) -> None:
    energies = Energies.parse(text)
    assert (energies.low, energies.high, energies.values) == (low, high, values)
    drawn = energies.draw(1000, seed=3, offset=0)
    assert drawn.min() >= low * 1e3
    assert drawn.max() <= high * 1e3
    if not values:  # log-uniform: as many showers per decade
        decades = np.histogram(np.log10(drawn / 1e3), bins=3, range=(0, 3))[0]
        assert decades.min() > 280


@pytest.mark.parametrize("text", ["", "0-10", "10-1", "a-b", "1,-2"])
def test_bad_energies_are_refused(text: str) -> None:
    with pytest.raises(saetta.DatasetError, match="energies"):
        Energies.parse(text)


def test_production_writes_every_shower_once_on_any_executor(tmp_path: Path) -> None:
    energies = Energies.parse("10,20,30")
    local = produce(tmp_path / "a", Toy(), events=250, energies=energies, binning=BINNING,
                    events_per_file=60, seed=5, progress=False)  # fmt: skip
    spread = produce(tmp_path / "b", Toy(), events=250, energies=energies, binning=BINNING,
                     events_per_file=60, seed=5, executor="processes:2", progress=False)  # fmt: skip
    assert local.showers == spread.showers == 250
    assert len(local.shards) == 5  # 60, 60, 60, 60, 10
    a, b = _read_all(tmp_path / "a"), _read_all(tmp_path / "b")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # listed energies share the showers out: 84, 83, 83
    assert sorted(np.unique(a[0], return_counts=True)[1].tolist()) == [83, 83, 84]
    assert len(set(a[2])) == 5  # each job its own seed
    manifest = (tmp_path / "a" / "production.json").read_text()
    assert "showers_00004.h5" in manifest
    # the folder reads back as one sample with its binning
    from saetta.fastsim.showerfile import read_showers

    assert read_showers(tmp_path / "a").binning == BINNING
    # the same request again makes nothing; another request into the folder is refused
    again = produce(tmp_path / "a", Toy(), events=250, energies=energies, binning=BINNING,
                    events_per_file=60, seed=5, progress=False)  # fmt: skip
    assert again.showers == 250
    assert _read_all(tmp_path / "a")[2] == a[2]
    with pytest.raises(saetta.DatasetError, match="another request"):
        produce(tmp_path / "a", Toy(), events=250, energies=energies, binning=BINNING,
                events_per_file=60, seed=6, progress=False)  # fmt: skip


def test_simulate_showers_killed_then_rerun_writes_each_shower_once(tmp_path: Path) -> None:
    folder = tmp_path / "showers"
    args = [SAETTA, "simulate", "showers", str(folder), "--events", "600", "--energies", "3",
            "--events-per-file", "15", "--executor", "processes:2", "--no-progress"]  # fmt: skip
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while len(list(folder.glob("showers_*.h5"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("showers_*.h5")}
    assert 4 <= len(before) < 40, len(before)

    again = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "wrote 600 showers in 40 files" in again.stdout
    energies, showers, seeds = _read_all(folder)
    assert len(energies) == 600
    assert len(set(seeds)) == 40
    assert (showers >= 0).all()
    assert np.all(energies == 3e3)
    changed = [n for n, t in before.items() if (folder / n).stat().st_mtime_ns != t]
    assert len(changed) <= 2, changed  # at most the units caught between rename and record
    assert not list(folder.glob(".*partial*"))
    # a job's file is the detailed simulation of its seed, whatever else ran beside it
    from saetta.fastsim.calorimeter import DEFAULT
    from saetta.fastsim.shower_mc import simulate

    with h5py.File(folder / "showers_00007.h5") as f:
        seed, written = int(f.attrs["seed"]), f["showers"][:]
    direct = simulate(np.full(15, 3e3), particle="electron", seed=seed, calorimeter=DEFAULT)
    np.testing.assert_array_equal(written, direct.showers)
