"""The CaloChallenge metrics and the evaluation report: the metrics themselves are tested.

Showers come from a toy written here (a gamma-shaped longitudinal profile, an
exponential radial falloff, gamma-distributed voxel fluctuations, a readout
threshold), independent of saetta's simulation; features are checked against plain
loops that share no code with the module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from saetta.errors import DatasetError, SaettaWarning
from saetta.fastsim.binning import Binning, Layer
from saetta.fastsim.evaluation import Evaluation, evaluate
from saetta.fastsim.metrics import (
    classifier_test,
    feature_edges,
    high_level_features,
    separation_power,
)
from saetta.fastsim.showerfile import ShowerFile

pytest.importorskip("torch")

RINGS = (0.0, 2.0, 5.0, 10.0, 20.0, 40.0)
# a layer without angular bins, one without voxels, four binned in angle
BINNING = Binning(
    "electron",
    11,
    (
        Layer(0, (0.0, 5.0, 20.0), 1),
        Layer(1, (0.0,), 1),
        *(Layer(i, RINGS, 4) for i in range(2, 6)),
    ),
)


def _toy(n: int, seed: int, *, shift: float = 0.0, scale: float = 1.0) -> ShowerFile:
    rng = np.random.default_rng(seed)
    energies = np.exp(rng.uniform(math.log(1e3), math.log(1e4), n))
    rows = np.zeros((n, BINNING.voxels))
    start = 0
    depth = np.arange(len(BINNING.relevant)) + 0.5
    t_max = 1.0 + 0.5 * np.log(energies / 1e3) + shift
    profile = depth[None, :] ** t_max[:, None] * np.exp(-depth[None, :])
    profile /= profile.sum(axis=1, keepdims=True)
    visible = scale * 0.8 * energies * rng.normal(1.0, 0.03, n)
    for i, layer in enumerate(BINNING.relevant):
        edges = np.asarray(layer.r_edges)
        radial = np.exp(-edges[:-1] / 4.0) - np.exp(-edges[1:] / 4.0)
        radial /= radial.sum()
        mean = (visible * profile[:, i])[:, None] * np.tile(radial, layer.n_alpha) / layer.n_alpha
        rows[:, start : start + layer.voxels] = rng.gamma(4.0, mean / 4.0)
        start += layer.voxels
    rows[rows < 0.5] = 0.0  # the readout threshold, MeV
    return ShowerFile(energies, rows, BINNING)


@pytest.fixture(scope="module")
def same() -> Evaluation:
    return evaluate(_toy(3000, 1), _toy(3000, 2), second_reference=_toy(3000, 3), seed=1)


@pytest.fixture(scope="module")
def different() -> Evaluation:
    return evaluate(_toy(3000, 1), _toy(3000, 4, shift=2.0), seed=1)


def _plain_features(shower: list[float], incident: float) -> dict[str, float]:
    out = {"E_ratio": sum(shower) / incident}
    start = 0
    for layer in BINNING.layers:
        n_r = len(layer.r_edges) - 1
        if n_r < 1:
            continue
        count = n_r * layer.n_alpha
        cells = shower[start : start + count]
        start += count
        total = sum(cells)
        out[f"E_layer_{layer.id}"] = total
        out[f"sparsity_{layer.id}"] = sum(1 for e in cells if e == 0) / count
        coordinates: dict[str, list[float]] = {"r": [], "x": [], "y": []}
        for k in range(layer.n_alpha):
            angle = -math.pi + (k + 0.5) * 2 * math.pi / layer.n_alpha
            for j in range(n_r):
                radius = (layer.r_edges[j] + layer.r_edges[j + 1]) / 2
                coordinates["r"].append(radius)
                coordinates["x"].append(radius * math.cos(angle))
                coordinates["y"].append(radius * math.sin(angle))
        for axis, where in coordinates.items():
            if axis != "r" and layer.n_alpha == 1:
                continue
            if total == 0:
                centre = width = 0.0
            else:
                centre = sum(e * p for e, p in zip(cells, where, strict=True)) / total
                spread = sum(e * (p - centre) ** 2 for e, p in zip(cells, where, strict=True))
                width = math.sqrt(spread / total)
            out[f"EC_{axis}_{layer.id}"] = centre
            out[f"width_{axis}_{layer.id}"] = width
    return out


def test_features_match_plain_loops() -> None:
    rng = np.random.default_rng(7)
    showers = rng.exponential(3.0, (2, BINNING.voxels)) * (rng.random((2, BINNING.voxels)) > 0.4)
    showers[1, 2:22] = 0.0  # layer 2 of the second shower is empty
    incident = np.array([500.0, 300.0])
    features = high_level_features(showers, incident, BINNING)
    for row in range(2):
        expected = _plain_features(showers[row].tolist(), float(incident[row]))
        assert set(features) == set(expected)
        for name, value in expected.items():
            assert features[name][row] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert "EC_x_0" not in features
    assert "E_layer_1" not in features


def test_an_empty_layer_has_centres_and_widths_zero() -> None:
    showers = np.zeros((1, BINNING.voxels))
    showers[0, 0] = 5.0  # energy in layer 0 only
    features = high_level_features(showers, np.array([10.0]), BINNING)
    for name in ("EC_x_3", "EC_y_3", "width_x_3", "width_y_3", "EC_r_3", "width_r_3"):
        assert features[name][0] == 0.0
    assert features["sparsity_3"][0] == 1.0
    assert all(np.all(np.isfinite(v)) for v in features.values())


def test_non_finite_or_misshapen_showers_are_refused() -> None:
    showers = np.ones((3, BINNING.voxels))
    showers[1, 4] = np.nan
    with pytest.raises(DatasetError, match="1 of 3 showers hold NaN"):
        high_level_features(showers, np.ones(3), BINNING)
    with pytest.raises(DatasetError, match="showers must be"):
        high_level_features(np.ones((3, 5)), np.ones(3), BINNING)
    with pytest.raises(DatasetError, match="NaN"):
        separation_power(np.array([np.nan]), np.array([1.0]), np.array([0.0, 2.0]))


def test_separation_power_of_hand_made_histograms() -> None:
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    a = np.array([0.5, 1.5, 1.5, 2.5])
    assert separation_power(a, a[::-1].copy(), edges) == 0.0
    assert separation_power(np.array([0.5, 0.2]), np.array([2.5]), edges) == pytest.approx(1.0)
    # p = (1/2, 1/2, 0), q = (1/4, 1/4, 1/2): ½ (1/16 / (3/4) · 2 + 1/4 / (1/2)) = 1/3
    b = np.array([0.5, 1.5, 2.5, 2.6])
    assert separation_power(np.array([0.1, 1.1]), b, edges) == pytest.approx(1 / 3)
    # values beyond the edges count in the outermost bins
    assert separation_power(np.array([-5.0]), np.array([0.5]), edges) == 0.0
    with pytest.raises(DatasetError, match="rising"):
        separation_power(a, a, np.array([1.0, 0.0]))


def test_feature_edges_cover_both_samples() -> None:
    rng = np.random.default_rng(3)
    energies = np.concatenate([np.zeros(50), rng.lognormal(3.0, 2.0, 1000)])
    edges = feature_edges(energies, energies * 3, bins=20)
    assert len(edges) == 21
    assert np.all(np.diff(edges) > 0)
    ratios = edges[1:] / edges[:-1]
    assert np.allclose(ratios, ratios[0])  # logarithmic, the zeros in the first bin
    assert edges[1] <= np.quantile(energies[energies > 0], 0.01)
    linear = feature_edges(np.array([-1.0, 0.0, 1.0]), np.array([3.0]), bins=4)
    assert np.allclose(np.diff(linear), np.diff(linear)[0])
    assert linear[0] <= -0.99
    assert linear[-1] >= 2.99
    constant = feature_edges(np.zeros(5), np.zeros(3))
    assert np.all(np.diff(constant) > 0)
    assert separation_power(np.zeros(5), np.zeros(3), constant) == 0.0


def test_same_distribution_is_indistinguishable(same: Evaluation) -> None:
    assert 0.4 <= same.auc_features <= 0.6
    assert 0.4 <= same.auc_voxels <= 0.6
    assert same.mean_separation < 0.02
    assert max(same.separation.values()) < 0.05
    assert same.passed
    assert same.floor is not None
    assert 0.4 <= same.floor.auc_voxels <= 0.6
    assert same.floor.floor is None
    assert 2950 < same.n_showers <= 3000  # the common energy range trims the extremes
    assert same.classifier_voxels.n_test == round(0.3 * same.n_showers)


def test_different_distributions_are_told_apart(different: Evaluation) -> None:
    assert different.auc_features > 0.95
    assert different.auc_voxels > 0.95
    assert different.mean_separation > 0.05
    assert different.separation["E_layer_0"] > 0.5
    assert different.meets == {"auc_features": False, "auc_voxels": False, "mean_separation": False}
    assert different.floor is None


def test_an_energy_scale_is_seen_by_both_classifiers() -> None:
    reference, generated = _toy(1500, 5), _toy(1500, 6, scale=1.3)
    result = evaluate(reference, generated, plots=False, classifier_epochs=15)
    assert result.separation["E_ratio"] > 0.5
    assert result.auc_features > 0.95
    assert result.auc_voxels > 0.95
    assert result.histograms == ()


def test_classifier_is_seeded_and_balances_the_classes() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 4)), rng.normal(0.3, 1.0, size=(900, 4))
    first = classifier_test(a, b, seed=3, epochs=5)
    second = classifier_test(a, b, seed=3, epochs=5)
    assert first.auc == second.auc
    assert first.n_test == 180
    assert first.n_train + first.n_test < 600
    assert 0.6 < first.auc < 0.9  # a shift of 0.3 sigma in each of four inputs
    with pytest.raises(DatasetError, match="too few"):
        classifier_test(a[:2], b[:2])


def test_report_text_json_and_html(same: Evaluation, tmp_path: Path) -> None:
    text = str(same)
    for part in ("AUC voxels", "E_layer", "floor", "sparsity"):
        assert part in text
    data = json.loads(json.dumps(same.to_dict()))
    assert data["floor"]["floor"] is None
    assert set(data["meets"]) == {"auc_features", "auc_voxels", "mean_separation"}
    assert "voxel_spectrum" in data["separation"]
    page = same.write_html(tmp_path / "report" / "evaluation.html").read_text(encoding="utf-8")
    assert page.count("<img") >= len({"E_layer", "EC_x", "width_r", "sparsity"})
    for name in ("E_ratio", "E_layer_0", "EC_x_2", "width_y_5", "EC_r_3", "sparsity_4"):
        assert name in page
    assert "E_layer_1" not in page
    assert "<table" in same._repr_html_()


def test_binning_and_energy_mismatches() -> None:
    other = Binning.regular(2, (0.0, 1.0), 1)
    stranger = ShowerFile(np.ones(10), np.ones((10, 2)), other)
    with pytest.raises(DatasetError, match="another binning"):
        evaluate(_toy(50, 1), stranger)
    high = _toy(50, 2)
    high = ShowerFile(high.incident_energies * 100, high.showers, BINNING)
    with pytest.raises(DatasetError, match="do not overlap"):
        evaluate(_toy(50, 1), high)
    reference = _toy(60, 1)
    shifted = ShowerFile(reference.incident_energies * 1.5, reference.showers, BINNING)
    with pytest.warns(SaettaWarning, match="left out"):
        result = evaluate(reference, shifted, plots=False, classifier_epochs=1)
    assert result.n_showers < 60
