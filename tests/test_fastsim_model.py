"""The learned shower generator: a tiny model trained for a few steps on a toy sample."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from saetta.errors import DatasetError
from saetta.fastsim.binning import Binning
from saetta.fastsim.model import (
    KINDS,
    ShowerGenerator,
    fit,
    load_model,
    save_model,
)

BINNING = Binning.regular(4, (0.0, 2.0, 5.0, 10.0, 30.0), 3)
TINY = {"transforms": 2, "hidden": 16, "depth": 1, "layer_transforms": 2, "layer_hidden": 8}


def toy_showers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gamma longitudinal profile, exponential radial falloff, gamma noise, empty outer voxels."""
    rng = np.random.default_rng(seed)
    energies = np.exp(rng.uniform(np.log(1e3), np.log(1e5), n))
    n_layers, n_r, n_alpha = 4, 4, 3
    t_max = np.log(energies / 7.4) / 3 + rng.normal(0, 0.3, n)
    depth = np.arange(n_layers) + 0.5
    profile = depth[None] ** t_max[:, None] * np.exp(-depth[None])
    profile /= profile.sum(1, keepdims=True)
    radial = np.exp(-np.arange(n_r) / 0.8)
    radial /= radial.sum()
    mean = (0.05 * energies)[:, None, None, None] * profile[:, :, None, None] / n_alpha
    mean = mean * radial[None, None, None, :] * np.ones((1, 1, n_alpha, 1))
    voxels = rng.gamma(2.0, mean / 2.0)
    voxels[rng.random(voxels.shape) < np.exp(-mean / 2.0)] = 0.0
    return energies, voxels.reshape(n, -1).astype(np.float32)


@pytest.fixture(scope="module")
def trained() -> tuple[ShowerGenerator, list[float], np.ndarray, np.ndarray]:
    energies, showers = toy_showers(600, seed=1)
    torch.manual_seed(0)
    model = ShowerGenerator(BINNING, **TINY)
    losses = fit(
        model,
        torch.from_numpy(showers),
        torch.from_numpy(energies),
        epochs=8,
        batch_size=100,
        lr=3e-3,
        seed=0,
    )
    return model, losses, energies, showers


def test_loss_decreases(
    trained: tuple[ShowerGenerator, list[float], np.ndarray, np.ndarray],
) -> None:
    _, losses, _, _ = trained
    assert len(losses) == 48
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1


def test_samples_shape_scale_and_sign(
    trained: tuple[ShowerGenerator, list[float], np.ndarray, np.ndarray],
) -> None:
    model, _, energies, showers = trained
    incident = torch.full((400,), 1e4)
    sample = model.sample(incident, torch.Generator().manual_seed(3))
    assert sample.shape == (400, BINNING.voxels)
    assert sample.dtype == torch.float32
    assert bool(torch.isfinite(sample).all())
    assert bool((sample >= 0).all())
    assert bool((sample == 0).any())  # empty voxels come back exactly empty
    want = float(np.mean(showers.sum(1) / energies))
    got = float((sample.sum(1) / incident).mean())
    assert got == pytest.approx(want, rel=0.2)


def test_save_load_same_samples(
    trained: tuple[ShowerGenerator, list[float], np.ndarray, np.ndarray], tmp_path: object
) -> None:
    model, _, _, _ = trained
    path = f"{tmp_path}/generator.pt"
    save_model(model, path)
    again = load_model(path)
    energies = torch.tensor([2e3, 5e4, 9e4])
    a = model.sample(energies, torch.Generator().manual_seed(7))
    b = again.sample(energies, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_from_config_rebuilds(
    trained: tuple[ShowerGenerator, list[float], np.ndarray, np.ndarray],
) -> None:
    model, _, _, _ = trained
    rebuilt = ShowerGenerator.from_config(model.config)
    assert rebuilt.config == model.config
    assert rebuilt.binning == BINNING
    rebuilt.load_state_dict(model.state_dict())
    energies = torch.tensor([3e3, 3e4])
    assert torch.equal(
        rebuilt.eval().sample(energies, torch.Generator().manual_seed(1)),
        model.sample(energies, torch.Generator().manual_seed(1)),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_trains_a_step(kind: str) -> None:
    energies, showers = toy_showers(64, seed=2)
    model = ShowerGenerator(BINNING, kind=kind, **TINY)
    losses = fit(
        model,
        torch.from_numpy(showers),
        torch.from_numpy(energies),
        epochs=1,
        batch_size=32,
        lr=1e-3,
        seed=0,
    )
    assert len(losses) == 2
    assert np.isfinite(losses).all()
    assert model.sample(torch.tensor([1e4])).shape == (1, BINNING.voxels)


def test_bad_inputs_are_dataset_errors() -> None:
    energies, showers = toy_showers(16, seed=3)
    model = ShowerGenerator(BINNING, **TINY)
    model.prepare(torch.from_numpy(showers), torch.from_numpy(energies))
    with pytest.raises(DatasetError, match="showers must be"):
        model.loss(torch.from_numpy(showers[:, :-1]), torch.from_numpy(energies))
    with pytest.raises(DatasetError, match="positive"):
        model.loss(torch.from_numpy(showers), -torch.from_numpy(energies))
    with pytest.raises(DatasetError, match="non-negative"):
        model.loss(-torch.from_numpy(showers) - 1, torch.from_numpy(energies))
    with pytest.raises(DatasetError, match="positive"):
        model.sample(torch.tensor([1e3, -5.0]))
    with pytest.raises(DatasetError, match="kind"):
        ShowerGenerator(BINNING, kind="diffusion")
    with pytest.raises(DatasetError, match="setting"):
        ShowerGenerator(BINNING, widht=3)
    with pytest.raises(DatasetError, match="prepare"):
        ShowerGenerator(BINNING, **TINY).sample(torch.tensor([1e3]))
