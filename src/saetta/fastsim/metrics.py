"""Stage: fast simulation (layer 7) — the CaloChallenge's validation metrics for showers.

What the Fast Calorimeter Simulation Challenge 2022 (CaloChallenge, arXiv 2410.21611)
compares a generator's showers with a reference sample by:

- :func:`high_level_features`: per shower, the visible over the incident energy, and
  per layer the energy, the centre of energy and width in x, y (layers binned in
  angle) and r, and the sparsity (the fraction of empty voxels);
- :func:`separation_power` of two normalised histograms of one feature, over a common
  binning from :func:`feature_edges`: ½ Σ (p − q)² / (p + q), 0 for identical
  histograms, 1 for disjoint ones;
- :func:`classifier_test`: a two-sample test by a small network told to tell the
  samples apart; its AUC on held-out showers is 0.5 when it cannot, 1 when it always
  can. :func:`voxel_inputs` and :func:`feature_inputs` prepare what it sees.

torch is imported only by :func:`classifier_test`: the rest needs numpy and scipy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from saetta.errors import DatasetError
from saetta.fastsim.binning import Binning

__all__ = [
    "ClassifierResult",
    "classifier_test",
    "feature_edges",
    "feature_inputs",
    "high_level_features",
    "separation_power",
    "voxel_inputs",
]

#: Voxel and layer energies enter the classifiers as asinh(E / (SCALE · E_incident)).
ENERGY_SCALE = 1e-4


def high_level_features(
    showers: np.ndarray, incident_energies: np.ndarray, binning: Binning
) -> dict[str, np.ndarray]:
    """The CaloChallenge's high-level features of each shower.

    Parameters
    ----------
    showers
        (N, voxels) energies (MeV), in the voxel order of ``binning``.
    incident_energies
        (N,) or (N, 1) incident energies (MeV).
    binning
        The voxels' layers.

    Returns
    -------
    dict
        (N,) float64 arrays: ``E_ratio`` (the sum of the voxels over the incident
        energy) and, for each layer with voxels, ``E_layer_{id}``, ``EC_r_{id}``,
        ``width_r_{id}`` (over the voxels' radial centres), ``sparsity_{id}`` (the
        fraction of the layer's voxels without energy) and, for layers with more than
        one angular bin, ``EC_x_{id}``, ``EC_y_{id}``, ``width_x_{id}``,
        ``width_y_{id}`` (over the voxels' centres in x and y). A centre of energy is
        the energy-weighted mean position, a width the energy-weighted standard
        deviation; both are 0 in a layer without energy, as in the CaloChallenge.

    Raises
    ------
    DatasetError
        Shapes that do not fit each other or the binning, or values that are not finite.

    Examples
    --------
    >>> b = Binning.regular(1, (0.0, 1.0, 3.0), 1)
    >>> f = high_level_features(np.array([[1.0, 3.0]]), np.array([8.0]), b)
    >>> float(f["E_ratio"][0]), float(f["EC_r_0"][0]), float(f["sparsity_0"][0])
    (0.5, 1.625, 0.0)
    """
    data, energies = _checked(showers, incident_energies, binning)
    out: dict[str, np.ndarray] = {"E_ratio": _ratio(data.sum(axis=1, dtype=np.float64), energies)}
    for layer in binning.relevant:
        # one layer at a time in float64: a whole float64 copy of big showers is GBs
        block = data[:, binning.slices[layer.id]].astype(np.float64)
        total = block.sum(axis=1)
        out[f"E_layer_{layer.id}"] = total
        out[f"sparsity_{layer.id}"] = 1.0 - (block > 0).mean(axis=1)
        r, _ = binning.centres(layer.id)
        out[f"EC_r_{layer.id}"], out[f"width_r_{layer.id}"] = _moments(block, total, r)
        if layer.n_alpha > 1:
            x, y = binning.positions(layer.id)
            out[f"EC_x_{layer.id}"], out[f"width_x_{layer.id}"] = _moments(block, total, x)
            out[f"EC_y_{layer.id}"], out[f"width_y_{layer.id}"] = _moments(block, total, y)
    return out


def separation_power(reference: np.ndarray, other: np.ndarray, edges: np.ndarray) -> float:
    """The separation power of two samples of one feature, histogrammed alike.

    Each sample is histogrammed over ``edges`` and normalised to unit sum; values
    outside the edges count in the outermost bins, so no shower is lost. Then
    ``½ Σ (p − q)² / (p + q)`` over the bins that either fills.

    Parameters
    ----------
    reference, other
        The two samples (any shape; flattened).
    edges
        Rising bin edges, at least two.

    Returns
    -------
    float
        0 for identical histograms, 1 for disjoint ones.

    Raises
    ------
    DatasetError
        An empty sample, values that are not finite, or edges that do not rise.

    Examples
    --------
    >>> edges = np.array([0.0, 1.0, 2.0])
    >>> separation_power(np.array([0.5, 0.5]), np.array([1.5]), edges)
    1.0
    >>> separation_power(np.array([0.5, 1.5]), np.array([0.5, 0.5, 0.5, 1.5]), edges)
    0.0666...
    """
    p = _probabilities(reference, edges, "reference")
    q = _probabilities(other, edges, "other")
    total = p + q
    filled = total > 0
    return float(0.5 * np.sum((p[filled] - q[filled]) ** 2 / total[filled]))


def feature_edges(reference: np.ndarray, other: np.ndarray, bins: int = 30) -> np.ndarray:
    """A common binning for two samples of one feature.

    The range runs from the lower of the two samples' 0.1 % quantiles to the higher of
    their 99.9 % quantiles, so a single outlier does not stretch it and a sample far
    from the other is still covered; :func:`separation_power` counts what lies
    outside in the outermost bins. The bins are logarithmic when no value is negative
    and the positive values span more than a factor of 100 (energies), the first bin
    then reaching one step below the smallest positive value to hold the zeros;
    otherwise they are equal. A feature with one value gets bins around it.

    Parameters
    ----------
    reference, other
        The two samples (flattened).
    bins
        The number of bins.

    Returns
    -------
    numpy.ndarray
        ``bins + 1`` rising edges.

    Raises
    ------
    DatasetError
        An empty sample, values that are not finite, or ``bins < 1``.

    Examples
    --------
    >>> feature_edges(np.array([0.0, 1.0]), np.array([1.0, 2.0]), bins=2).round(2)
    array([0., 1., 2.])
    """
    if bins < 1:
        msg = f"a feature binning needs at least one bin, not {bins}"
        raise DatasetError(msg)
    a = _finite(reference, "reference")
    b = _finite(other, "other")
    lows = [float(np.quantile(s, 0.001)) for s in (a, b)]
    highs = [float(np.quantile(s, 0.999)) for s in (a, b)]
    low, high = min(lows), max(highs)
    if low >= 0 and (np.any(a > 0) or np.any(b > 0)):
        small = min(float(np.quantile(s[s > 0], 0.001)) for s in (a, b) if np.any(s > 0))
        if high > 100 * small:
            zeros = bins > 1 and (np.any(a <= 0) or np.any(b <= 0))
            step = (math.log(high) - math.log(small)) / (bins - 1 if zeros else bins)
            start = math.log(small) - (step if zeros else 0.0)
            return np.exp(np.linspace(start, math.log(high), bins + 1))
    if high <= low:
        half = 0.5 * max(abs(low), 1.0)
        low, high = low - half, low + half
    return np.linspace(low, high, bins + 1)


@dataclass(frozen=True)
class ClassifierResult:
    """How well a network told two samples apart, on showers it was not trained on.

    ``auc``: the area under its ROC curve (0.5: it could not, 1: always); ``accuracy``
    at a 0.5 threshold; ``jsd``: ``(ln 2 − BCE) / ln 2``, the CaloChallenge's estimate
    of the Jensen-Shannon divergence in bits (slightly below 0 for indistinguishable
    samples); ``n_train``, ``n_test``: showers per class; ``epochs``: trained, and
    ``best_epoch``: the one kept (lowest validation loss); ``wall_s``: the time it took.
    """

    auc: float
    n_train: int
    n_test: int
    accuracy: float
    jsd: float
    epochs: int
    best_epoch: int
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, for JSON."""
        return {
            "auc": self.auc,
            "accuracy": self.accuracy,
            "jsd": self.jsd,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "wall_s": self.wall_s,
        }


def classifier_test(
    a: np.ndarray,
    b: np.ndarray,
    *,
    seed: int = 0,
    epochs: int = 30,
    test_fraction: float = 0.3,
    validation_fraction: float = 0.2,
    hidden: tuple[int, ...] = (256, 256),
    dropout: float = 0.1,
    batch_size: int = 256,
    lr: float = 1e-3,
    patience: int = 5,
    device: str = "cpu",
) -> ClassifierResult:
    """A classifier two-sample test: can a network tell ``a`` from ``b``?

    Both samples are cut to the size of the smaller (a random part of the larger), so
    the classes weigh the same; each is split into test (``test_fraction``) and
    training showers, and a ``validation_fraction`` of the training showers is held
    back to stop early: training ends after ``epochs`` or when the validation loss
    has not improved for ``patience`` epochs, and the network of the best epoch is
    kept. Inputs are standardised by the training showers' mean and spread. The
    network is the CaloChallenge's kind: fully connected, LeakyReLU, dropout, binary
    cross-entropy, Adam. The AUC on the test showers is the Mann-Whitney U statistic
    over ``n_a · n_b``. Threads are the caller's to set (``torch.set_num_threads``).

    Parameters
    ----------
    a, b
        (N, features) inputs of the two samples, e.g. :func:`voxel_inputs` or
        :func:`feature_inputs`.
    seed
        Seeds the split, the initial weights, the batches and the dropout; the global
        torch random state is left as it was.
    epochs, test_fraction, validation_fraction, hidden, dropout, batch_size, lr, patience
        The training: hidden layer widths, dropout probability, Adam's learning rate.
    device
        Where the network trains, e.g. ``"cuda"``.

    Returns
    -------
    ClassifierResult

    Raises
    ------
    DatasetError
        Inputs that are not (N, features) alike, not finite, or too few to split.
    """
    import torch
    from scipy.stats import mannwhitneyu

    started = time.perf_counter()
    x_a, x_b = _two_samples(a, b)
    rng = np.random.default_rng(seed)
    n = min(len(x_a), len(x_b))
    n_test = round(n * test_fraction)
    n_val = round((n - n_test) * validation_fraction)
    n_train = n - n_test - n_val
    if min(n_test, n_val, n_train) < 1:
        msg = f"{n} showers per sample are too few to train, validate and test a classifier"
        raise DatasetError(msg)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for x in (x_a, x_b):
        chosen = x[rng.permutation(len(x))[:n]]
        parts["test"].append(chosen[:n_test])
        parts["val"].append(chosen[n_test : n_test + n_val])
        parts["train"].append(chosen[n_test + n_val :])
    training = np.concatenate(parts["train"])
    mean = training.mean(axis=0, dtype=np.float64).astype(np.float32)
    spread = training.std(axis=0, dtype=np.float64).astype(np.float32)
    spread[spread == 0] = 1.0
    del training

    def tensors(name: str) -> tuple[Any, Any]:
        x = (np.concatenate(parts[name]) - mean) / spread
        y = np.repeat(np.array([0.0, 1.0], dtype=np.float32), [len(p) for p in parts[name]])
        return (
            torch.from_numpy(x).to(device),
            torch.from_numpy(y).to(device),
        )

    train_x, train_y = tensors("train")
    val_x, val_y = tensors("val")
    test_x, test_y = tensors("test")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[Any] = []
        width = train_x.shape[1]
        for size in hidden:
            layers += [
                torch.nn.Linear(width, size),
                torch.nn.LeakyReLU(),
                torch.nn.Dropout(dropout),
            ]
            width = size
        net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        order = torch.Generator().manual_seed(seed)
        best = (math.inf, 0, {k: v.clone() for k, v in net.state_dict().items()})
        trained = 0
        for epoch in range(1, epochs + 1):
            net.train()
            shuffled = torch.randperm(len(train_x), generator=order).to(device)
            for start in range(0, len(shuffled), batch_size):
                batch = shuffled[start : start + batch_size]
                loss = loss_fn(net(train_x[batch]).squeeze(1), train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            trained = epoch
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(val_x).squeeze(1), val_y))
            if val_loss < best[0]:
                best = (val_loss, epoch, {k: v.clone() for k, v in net.state_dict().items()})
            elif epoch - best[1] >= patience:
                break
        net.load_state_dict(best[2])
        net.eval()
        with torch.no_grad():
            logits = net(test_x).squeeze(1)
            bce = float(loss_fn(logits, test_y))
            scores = torch.sigmoid(logits).cpu().numpy().astype(np.float64)
    labels = test_y.cpu().numpy()
    # U of the second sample's scores against the first's: P(score_b > score_a), ties ½
    u = mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    return ClassifierResult(
        auc=float(u) / (n_test * n_test),
        n_train=n_train,
        n_test=n_test,
        accuracy=float(np.mean((scores > 0.5) == (labels == 1))),
        jsd=(math.log(2.0) - bce) / math.log(2.0),
        epochs=trained,
        best_epoch=best[1],
        wall_s=time.perf_counter() - started,
    )


def voxel_inputs(showers: np.ndarray, incident_energies: np.ndarray) -> np.ndarray:
    """What the voxel classifier sees (float32): ln of the incident energy, then each voxel as
    ``asinh(E / (ENERGY_SCALE · E_incident))``.

    The ratio to the incident energy takes the shower's scale out, as the
    CaloChallenge's 100 · E / E_incident does; asinh then shrinks the few large
    voxels towards the many small ones (logarithmic above a 10⁻⁴ fraction, linear
    below, odd, so negative voxels stay visible rather than becoming NaN).

    Examples
    --------
    >>> voxel_inputs(np.array([[0.0, 1e-4]]), np.array([1.0])).round(3)
    array([[0.   , 0.   , 0.881]], dtype=float32)
    """
    data = np.asarray(showers, dtype=np.float32)
    energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
    scale = (1.0 / (ENERGY_SCALE * energies)).astype(np.float32)
    return np.concatenate([np.log(energies).astype(np.float32), np.arcsinh(data * scale)], axis=1)


def feature_inputs(features: Mapping[str, np.ndarray], incident_energies: np.ndarray) -> np.ndarray:
    """What the high-level classifier sees: ln of the incident energy, then every
    feature of :func:`high_level_features` in name order, the layer energies as
    ``asinh(E / (ENERGY_SCALE · E_incident))`` (as :func:`voxel_inputs`), the rest as
    they are (the classifier standardises them)."""
    energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
    columns = [np.log(energies)]
    for name in sorted(features):
        value = np.asarray(features[name], dtype=np.float64)
        if name.startswith("E_layer_"):
            value = np.arcsinh(value / (ENERGY_SCALE * energies))
        columns.append(value)
    return np.stack(columns, axis=1)


def _checked(
    showers: np.ndarray, incident_energies: np.ndarray, binning: Binning
) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(showers)
    energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
    if not np.issubdtype(data.dtype, np.number):
        msg = f"showers must hold numbers, not {data.dtype}"
        raise DatasetError(msg)
    if data.ndim != 2 or data.shape[1] != binning.voxels or len(data) != len(energies):
        msg = (
            f"showers must be (N, {binning.voxels}) with one incident energy each, "
            f"not {data.shape} for {len(energies)} energies"
        )
        raise DatasetError(msg)
    bad = int(np.count_nonzero(~np.isfinite(data).all(axis=1) | ~np.isfinite(energies)))
    if bad:
        msg = f"{bad:,} of {len(data):,} showers hold NaN or infinite energies"
        raise DatasetError(msg)
    if np.any(energies <= 0):
        msg = "incident energies must be positive"
        raise DatasetError(msg)
    return data, energies


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _moments(
    block: np.ndarray, total: np.ndarray, where: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    centre = _ratio(block @ where, total)
    second = _ratio(block @ (where * where), total)
    # little energy can leave E[x²] a rounding below E[x]²
    return centre, np.sqrt(np.clip(second - centre**2, 0.0, None))


def _finite(values: np.ndarray, name: str) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(flat) == 0:
        msg = f"the {name} sample is empty"
        raise DatasetError(msg)
    if not np.all(np.isfinite(flat)):
        msg = f"the {name} sample holds NaN or infinite values"
        raise DatasetError(msg)
    return flat


def _probabilities(values: np.ndarray, edges: np.ndarray, name: str) -> np.ndarray:
    bounds = np.asarray(edges, dtype=np.float64).reshape(-1)
    if len(bounds) < 2 or not np.all(np.diff(bounds) > 0) or not np.all(np.isfinite(bounds)):
        msg = "histogram edges must be at least two finite, rising values"
        raise DatasetError(msg)
    flat = np.clip(_finite(values, name), bounds[0], bounds[-1])
    counts, _ = np.histogram(flat, bins=bounds)
    return counts / len(flat)


def _two_samples(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # float32, what the network takes: voxel inputs can be large
    x_a = np.asarray(a, dtype=np.float32)
    x_b = np.asarray(b, dtype=np.float32)
    if x_a.ndim != 2 or x_b.ndim != 2 or x_a.shape[1] != x_b.shape[1]:
        msg = (
            f"the classifier needs two (N, features) samples alike, not {x_a.shape} and {x_b.shape}"
        )
        raise DatasetError(msg)
    if not (np.all(np.isfinite(x_a)) and np.all(np.isfinite(x_b))):
        msg = "the classifier's inputs hold NaN or infinite values"
        raise DatasetError(msg)
    return x_a, x_b
