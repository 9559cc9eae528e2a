from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import adl_reference

from saetta.datagen import generate_nanoaod


@pytest.fixture(scope="session", autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Run directories, history and caches of the tests stay out of the user's home."""
    home = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "XDG_DATA_HOME")}
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 NanoAOD-like events in 4 baskets."""
    return generate_nanoaod(
        tmp_path_factory.mktemp("data") / "sample.root", 20_000, seed=7, chunk_events=5_000
    )


@pytest.fixture(scope="session")
def sample_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same events as ``sample_root``, as Parquet (row groups of 5,000)."""
    return generate_nanoaod(
        tmp_path_factory.mktemp("data") / "sample.parquet", 20_000, seed=7, chunk_events=5_000
    )


@pytest.fixture(scope="session")
def sample_rntuple(sample_root: Path) -> Path:
    """The same events as ``sample_root``, as an RNTuple (uproot writes one from a dict)."""
    import uproot

    arrays = uproot.open(sample_root)["Events"].arrays()
    path = sample_root.with_name("sample_rntuple.root")
    with uproot.recreate(path) as f:
        f["Events"] = {name: arrays[name] for name in arrays.fields}
    return path


@pytest.fixture(scope="session")
def reference(sample_root: Path) -> dict[str, np.ndarray]:
    """The nine ADL histograms of the sample, from the per-event Python reference."""
    return adl_reference.reference_histograms(sample_root)


@pytest.fixture(scope="session")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small files with different seeds and sizes (one of them empty)."""
    folder = tmp_path_factory.mktemp("small")
    return [
        generate_nanoaod(folder / "a.root", 400, seed=1, chunk_events=150),
        generate_nanoaod(folder / "b.root", 0, seed=2),
        generate_nanoaod(folder / "c.root", 257, seed=3, chunk_events=100),
    ]


@pytest.fixture(scope="session")
def weighted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The events of ``sample_root`` with log-normal ``genWeight`` magnitudes (not +-1):
    weighted sums then depend on the order of addition, so a merge order shows."""
    return generate_nanoaod(
        tmp_path_factory.mktemp("data") / "weighted.root",
        20_000,
        seed=7,
        chunk_events=5_000,
        weights="lognormal",
    )


@pytest.fixture(scope="session")
def weighted_small_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """``small_files`` with log-normal ``genWeight`` magnitudes."""
    folder = tmp_path_factory.mktemp("weighted_small")
    return [
        generate_nanoaod(folder / "a.root", 400, seed=1, chunk_events=150, weights="lognormal"),
        generate_nanoaod(folder / "b.root", 0, seed=2, weights="lognormal"),
        generate_nanoaod(folder / "c.root", 257, seed=3, chunk_events=100, weights="lognormal"),
    ]


def flow_values(result: object, name: str) -> np.ndarray:
    return np.asarray(result[name].view(flow=True))  # type: ignore[index]


from batch_services import htcondor_env, slurm_cluster_env  # noqa: F401 - fixtures
from storage_services import https_server, s3_server, xrootd_server  # noqa: F401 - fixtures
