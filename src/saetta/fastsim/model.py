"""Stage: fast simulation (layer 7) — the learned generator: showers from a conditional flow.

:class:`ShowerGenerator` is a conditional generative model of calorimeter showers
(rows of voxel energies, MeV, cut by a :class:`~saetta.fastsim.binning.Binning`)
given the incident energy. It needs the ``ml`` extra (PyTorch).

Kinds (:data:`KINDS`)
---------------------
``"caloflow"`` (the default)
    Two normalizing flows, as in CaloFlow (Krause and Shih, arXiv 2106.05285).
    Flow I learns the layer energies given the incident energy, coded as
    ``u₀ = log(E_vis / E_inc)`` and ``uᵢ = logit(Eᵢ / Σ_{j≥i} Eⱼ)``, so the
    visible energy is one coordinate and every decoded layer energy is positive.
    Flow II learns the shape within each layer: the log fraction of the layer's
    energy in each voxel, given the incident energy and flow I's coordinates.
    Sampled voxels are renormalised to flow I's layer energies, so the layer
    energies and ``E_vis / E_inc`` are flow I's alone.
``"flow"``
    One flow over ``log(E_voxel / E_inc)`` of every voxel, given the incident
    energy: simpler, and the comparison that shows what the two stages buy.

Both flows are stacks of affine coupling transforms (RealNVP, Dinh et al.,
arXiv 1605.08803) with a fixed random permutation before each, written out
here rather than taken from ``zuko``: a coupling transform costs one network
pass both ways, so sampling is as cheap as training, and a plain affine
transform keeps the per-voxel arithmetic to a few tensor operations. Spline
couplings (``zuko.flows.NSF``) are more expressive per transform, but on one CPU
core they sample 432 voxels some 10-50× slower, beyond the speed target of
tens of µs per shower.

Exact zeros
-----------
Deposits below ``threshold`` (MeV; by default the 0.1 % quantile of the deposits
in the sample given to :meth:`ShowerGenerator.prepare`) count as empty. In training, an empty
voxel is given a log-uniform energy in ``[threshold·e⁻¹, threshold)``, a
compact cluster just under the smallest real deposit (dequantisation); in
sampling, voxels that come out under the threshold are set to exactly zero.
Deposits are exponentials of the flow's output times positive layer energies,
so they are never negative.

Preprocessing statistics (the threshold, per-feature means and widths) are
computed once by :meth:`ShowerGenerator.prepare` and kept as buffers in the
``state_dict``: a model rebuilds from ``(config, state_dict)`` alone
(:func:`save_model`, :func:`load_model`).

Training recipe (:func:`fit`)
-----------------------------
Adam, learning rate 1e-3 with a one-cycle schedule (warm-up, then cosine decay),
gradient norm clipped at 10, batch 128, 60 epochs. See :data:`RECIPE` for the numbers that
were measured with it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from saetta.errors import DatasetError, FormatError
from saetta.fastsim.binning import Binning

__all__ = ["KINDS", "RECIPE", "ShowerGenerator", "fit", "load_model", "save_model"]

KINDS: tuple[str, ...] = ("caloflow", "flow")

#: The local training recipe (see the module docstring). Measured with the default
#: caloflow model (857k parameters) on 1,225 detailed-simulation showers, 1-1000 GeV:
#: 60-70 s on one of two shared cores; sampling 85-110 µs per shower on one core at
#: batch 10k (the detailed simulation: about 370 ms for 100 GeV); on 500 held-out
#: showers, AUC voxels 0.76, AUC high-level 0.99, mean separation power 0.083.
RECIPE: dict[str, Any] = {"epochs": 60, "batch_size": 128, "lr": 1e-3}

_DEFAULTS: dict[str, Any] = {
    "transforms": 8,  # coupling transforms of the voxel flow
    "hidden": 128,  # width of their networks
    "depth": 2,  # hidden layers per network
    "layer_transforms": 8,  # flow I (caloflow only)
    "layer_hidden": 64,
    "threshold": None,  # MeV; None: the 0.1 % quantile of the prepare() sample's deposits
    "noise": 0.02,  # width of the jitter on flow II's log fractions, against their sum rule
    "clamp": 2.5,  # the largest log scale a coupling transform applies
    "seed": 0,  # the coupling permutations
}
_THRESHOLD_QUANTILE = 1e-3  # of the deposits: those under it count as empty
# Empty voxels are spread log-uniformly over [threshold·e^-WIDTH, threshold) in training,
# touching the smallest deposits: a gap below the threshold (3 nats tried, the cut in its
# middle) made the marginals bimodal and every metric worse on the detailed simulation.
_ZERO_WIDTH = 1.0


class _Coupling(nn.Module):
    """``y_b = x_b · exp(s(x_a, c)) + t(x_a, c)``, ``y_a = x_a``."""

    def __init__(self, features: int, context: int, hidden: int, depth: int, clamp: float) -> None:
        super().__init__()
        self.na = features // 2
        self.nb = features - self.na
        self.clamp = clamp
        # the context enters the first layer through its own weights, so that sampling
        # computes its share once for every chunk instead of concatenating it each time
        self.first = nn.Linear(self.na, hidden)
        self.context = nn.Linear(context, hidden, bias=False)
        layers: list[nn.Module] = [nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        last = nn.Linear(hidden, 2 * self.nb)
        # the flow starts as the identity, so the first steps see standardised data
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.rest = nn.Sequential(*layers, last)

    def _params(self, xa: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        h = self.rest(self.first(xa) + self.context(c))
        s, t = h[:, : self.nb], h[:, self.nb :]
        # a soft clamp of the log scale; softsign is several times cheaper than tanh
        return s / (1 + s.abs() / self.clamp), t

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = x[:, : self.na], x[:, self.na :]
        s, t = self._params(xa, c)
        return torch.cat([xa, xb * torch.exp(s) + t], dim=1), s.sum(dim=1)

    def inverse(self, y: Tensor, c: Tensor) -> Tensor:
        ya, yb = y[:, : self.na], y[:, self.na :]
        s, t = self._params(ya, c)
        return torch.cat([ya, (yb - t).mul_(torch.exp(s.neg_()))], dim=1)


class _Flow(nn.Module):
    """Affine couplings with a fixed random permutation before each, on a standard normal."""

    perms: Tensor
    inverse_perms: Tensor

    def __init__(
        self,
        features: int,
        context: int,
        transforms: int,
        hidden: int,
        depth: int,
        clamp: float,
        seed: int,
    ) -> None:
        super().__init__()
        self.features = features
        rng = torch.Generator().manual_seed(seed)
        self.couplings = nn.ModuleList(
            _Coupling(features, context, hidden, depth, clamp) for _ in range(transforms)
        )
        perms = torch.stack([torch.randperm(features, generator=rng) for _ in range(transforms)])
        self.register_buffer("perms", perms)
        self.register_buffer("inverse_perms", torch.argsort(perms, dim=1))

    def log_prob(self, x: Tensor, c: Tensor) -> Tensor:
        ladj = x.new_zeros(len(x))
        for perm, coupling in zip(self.perms, self.couplings, strict=True):
            x, step = coupling(x.index_select(1, perm), c)
            ladj = ladj + step
        return ladj - 0.5 * (x * x).sum(dim=1) - 0.5 * self.features * math.log(2 * math.pi)

    def sample(self, c: Tensor, generator: torch.Generator | None) -> Tensor:
        z = torch.randn(len(c), self.features, generator=generator, dtype=c.dtype)
        for inverse, coupling in zip(
            reversed(self.inverse_perms), reversed(self.couplings), strict=True
        ):
            z = cast(_Coupling, coupling).inverse(z, c).index_select(1, inverse)
        return z


class ShowerGenerator(nn.Module):
    """A conditional generative model of showers given the incident energy.

    Parameters
    ----------
    binning
        The voxels of the showers.
    kind
        One of :data:`KINDS`.
    **hyper
        ``transforms``, ``hidden``, ``depth`` (the voxel flow), ``layer_transforms``,
        ``layer_hidden`` (flow I), ``threshold`` (MeV, or None: from :meth:`prepare`),
        ``noise``, ``clamp``, ``seed``; see ``_DEFAULTS``.

    Call :meth:`prepare` once on a training sample before training (:func:`fit` does),
    then minimise :meth:`loss`. Under DistributedDataParallel call the wrapper itself,
    ``ddp(showers, energies)``: :meth:`forward` is the loss, one forward pass.
    """

    prepared: Tensor
    threshold: Tensor
    le_mean: Tensor
    le_std: Tensor
    u_mean: Tensor
    u_std: Tensor
    g_mean: Tensor
    g_std: Tensor
    layer_matrix: Tensor
    voxel_layer: Tensor

    def __init__(self, binning: Binning, *, kind: str = KINDS[0], **hyper: Any) -> None:
        super().__init__()
        if kind not in KINDS:
            msg = f"unknown generator kind {kind!r}: choose one of {', '.join(KINDS)}"
            raise DatasetError(msg)
        unknown = sorted(set(hyper) - set(_DEFAULTS))
        if unknown:
            msg = (
                f"unknown generator setting(s) {', '.join(unknown)}: "
                f"the settings are {', '.join(_DEFAULTS)}"
            )
            raise DatasetError(msg)
        h = {**_DEFAULTS, **hyper}
        self.binning = binning
        self.kind = kind
        self.hyper = h
        self.config: dict[str, Any] = {"kind": kind, **h, "binning": binning.to_xml()}
        voxels = binning.voxels
        n_layers = len(binning.relevant)
        self.voxels = voxels
        self.n_layers = n_layers

        voxel_layer = torch.empty(voxels, dtype=torch.long)
        for i, layer in enumerate(binning.relevant):
            voxel_layer[binning.slices[layer.id]] = i
        self.register_buffer("voxel_layer", voxel_layer, persistent=False)
        self.register_buffer(
            "layer_matrix",
            nn.functional.one_hot(voxel_layer, n_layers).to(torch.float32),
            persistent=False,
        )

        self.register_buffer("prepared", torch.tensor(False))
        given = h["threshold"]
        self.register_buffer("threshold", torch.tensor(float(given) if given else 0.0))
        self.register_buffer("le_mean", torch.tensor(0.0))
        self.register_buffer("le_std", torch.tensor(1.0))
        self.register_buffer("u_mean", torch.zeros(n_layers))
        self.register_buffer("u_std", torch.ones(n_layers))
        self.register_buffer("g_mean", torch.zeros(voxels))
        self.register_buffer("g_std", torch.ones(voxels))

        depth, clamp = int(h["depth"]), float(h["clamp"])
        if kind == "caloflow":
            self.layer_flow: _Flow | None = _Flow(
                n_layers,
                1,
                int(h["layer_transforms"]),
                int(h["layer_hidden"]),
                depth=depth,
                clamp=clamp,
                seed=int(h["seed"]) + 1,
            )
            context = 1 + n_layers
        else:
            self.layer_flow = None
            context = 1
        self.voxel_flow = _Flow(
            voxels,
            context,
            int(h["transforms"]),
            int(h["hidden"]),
            depth=depth,
            clamp=clamp,
            seed=int(h["seed"]),
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ShowerGenerator:
        """Rebuild an (untrained) model from its :attr:`config`."""
        settings = dict(config)
        try:
            binning = Binning.from_xml(str(settings.pop("binning")))
            kind = str(settings.pop("kind"))
        except KeyError as exc:
            msg = f"a generator config needs 'kind' and 'binning', and lacks {exc.args[0]!r}"
            raise DatasetError(msg) from exc
        return cls(binning, kind=kind, **settings)

    # --- preprocessing -------------------------------------------------------------

    def _check(self, showers: Tensor | None, energies: Tensor) -> None:
        if energies.ndim != 1:
            msg = f"incident energies must be a vector (B,), not of shape {tuple(energies.shape)}"
            raise DatasetError(msg)
        if not bool(torch.all(torch.isfinite(energies) & (energies > 0))):
            msg = "incident energies must be positive and finite (MeV)"
            raise DatasetError(msg)
        if showers is None:
            return
        if showers.ndim != 2 or showers.shape[1] != self.voxels or len(showers) != len(energies):
            msg = (
                f"showers must be (B, {self.voxels}) for {len(energies)} energies, "
                f"not {tuple(showers.shape)}"
            )
            raise DatasetError(msg)
        if not bool(torch.all(torch.isfinite(showers) & (showers >= 0))):
            msg = "showers must hold finite, non-negative voxel energies (MeV)"
            raise DatasetError(msg)

    def _features(
        self, showers: Tensor, energies: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """log(E_inc), flow I's coordinates (caloflow) and the voxels' log energies."""
        showers = showers.to(torch.float32)
        log_e = torch.log(energies.to(torch.float32))
        threshold = self.threshold
        spread = torch.rand(showers.shape, generator=generator) * _ZERO_WIDTH
        log_voxel = torch.where(
            showers >= threshold,
            torch.log(showers.clamp_min(threshold)),
            torch.log(threshold) - spread,
        )
        if self.layer_flow is None:
            return log_e, None, log_voxel - log_e[:, None]
        layer = torch.exp(log_voxel) @ self.layer_matrix  # (B, layers), > 0 after dequantisation
        remaining = torch.flip(torch.cumsum(torch.flip(layer, [1]), 1), [1])  # Σ_{j≥i}
        u = torch.cat(
            [
                (torch.log(remaining[:, 0]) - log_e)[:, None],
                torch.log(layer[:, :-1]) - torch.log(remaining[:, 1:]),
            ],
            dim=1,
        )
        # the log fraction of its layer's energy in each voxel: the shape, whatever the scale
        return log_e, u, log_voxel - torch.log(layer)[:, self.voxel_layer]

    @torch.no_grad()
    def prepare(self, showers: Tensor, energies: Tensor) -> None:
        """Set the threshold (unless given) and the standardisation from a sample.

        Parameters
        ----------
        showers
            (N, voxels) MeV: a training sample, or a few thousand showers of it.
        energies
            (N,) incident energies, MeV.
        """
        self._check(showers, energies)
        if not self.hyper["threshold"]:
            positive = showers[showers > 0]
            if positive.numel() == 0:
                msg = "the sample given to prepare() has no deposits at all"
                raise DatasetError(msg)
            # a low quantile rather than the minimum: a stray tiny deposit would open a
            # gap between the empty voxels' cluster and the rest
            self.threshold.fill_(float(np.quantile(positive.numpy(), _THRESHOLD_QUANTILE)))
        log_e, u, g = self._features(showers, energies, torch.Generator().manual_seed(0))
        self.le_mean.fill_(float(log_e.mean()))
        self.le_std.fill_(float(log_e.std().clamp_min(1e-3)) if len(log_e) > 1 else 1.0)
        if u is not None:
            self.u_mean.copy_(u.mean(0))
            self.u_std.copy_(u.std(0).clamp_min(1e-3))
        self.g_mean.copy_(g.mean(0))
        self.g_std.copy_(g.std(0).clamp_min(1e-3))
        self.prepared.fill_(True)

    def _require_prepared(self) -> None:
        if not bool(self.prepared):
            msg = "call prepare(showers, energies) on a training sample before training or sampling"
            raise DatasetError(msg)

    # --- training --------------------------------------------------------------------

    def forward(self, showers: Tensor, energies: Tensor) -> Tensor:
        """The loss: negative log-likelihood per feature (nats), the batch mean."""
        self._require_prepared()
        self._check(showers, energies)
        log_e, u, g = self._features(showers, energies)
        c = ((log_e - self.le_mean) / self.le_std)[:, None]
        if self.training and self.layer_flow is not None:
            # the log fractions of a layer obey a sum rule given flow I's coordinates;
            # a little jitter keeps their likelihood from running off along it
            g = g + float(self.hyper["noise"]) * torch.randn_like(g)
        g = (g - self.g_mean) / self.g_std
        if self.layer_flow is None or u is None:
            return -self.voxel_flow.log_prob(g, c).mean() / self.voxels
        u = (u - self.u_mean) / self.u_std
        log_p = self.layer_flow.log_prob(u, c) + self.voxel_flow.log_prob(g, torch.cat([c, u], 1))
        return -log_p.mean() / (self.voxels + self.n_layers)

    def loss(self, showers: Tensor, energies: Tensor) -> Tensor:
        """The training loss (see :meth:`forward`): one forward pass of the module.

        Parameters
        ----------
        showers
            (B, voxels) float32, MeV.
        energies
            (B,) incident energies, MeV.
        """
        result: Tensor = self(showers, energies)
        return result

    # --- sampling --------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, energies: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Showers for the given incident energies.

        Parameters
        ----------
        energies
            (B,) incident energies, MeV.
        generator
            The random numbers (a seeded one gives the same showers again).

        Returns
        -------
        Tensor
            (B, voxels) float32 MeV, every deposit ≥ 0; those under the threshold are 0.
        """
        self._require_prepared()
        self._check(None, energies)
        log_e = torch.log(energies.to(torch.float32))
        c = ((log_e - self.le_mean) / self.le_std)[:, None]
        if self.layer_flow is None:
            g = self.voxel_flow.sample(c, generator) * self.g_std + self.g_mean
            voxels = torch.exp((g + log_e[:, None]).clamp(max=80.0))
        else:
            u_std = self.layer_flow.sample(c, generator)
            u = u_std * self.u_std + self.u_mean
            log_total = log_e + u[:, 0]
            inner = nn.functional.logsigmoid(u[:, 1:])
            before = torch.cumsum(nn.functional.logsigmoid(-u[:, 1:]), 1)  # what is left after
            nothing = torch.zeros_like(log_total)[:, None]
            log_layer = torch.cat([inner, nothing], 1) + torch.cat([nothing, before], 1)
            g = self.voxel_flow.sample(torch.cat([c, u_std], 1), generator)
            share = torch.exp((g * self.g_std + self.g_mean).clamp(-80.0, 30.0))
            # renormalised: the layer energies are flow I's
            share = share / (share @ self.layer_matrix)[:, self.voxel_layer]
            voxels = share * torch.exp(log_layer + log_total[:, None])[:, self.voxel_layer]
        return torch.where(voxels >= self.threshold, voxels, torch.zeros_like(voxels))


def fit(
    model: ShowerGenerator,
    showers: Tensor,
    energies: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` locally: Adam with a one-cycle learning rate, on shuffled batches.

    Calls :meth:`ShowerGenerator.prepare` on the data first unless the model is prepared.

    Parameters
    ----------
    model
        The generator.
    showers, energies
        (N, voxels) and (N,), MeV.
    epochs, batch_size, lr
        Passes over the data, showers per step, peak learning rate.
    seed
        The shuffling and the dequantisation noise.
    log
        Called after each epoch with the epoch and its mean loss.

    Returns
    -------
    list of float
        The loss of every step.
    """
    torch.manual_seed(seed)
    showers = showers.to(torch.float32)
    energies = energies.to(torch.float32)
    if not bool(model.prepared):
        model.prepare(showers, energies)
    n = len(energies)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.1
    )
    order = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    for epoch in range(epochs):
        permutation = torch.randperm(n, generator=order)
        first = len(losses)
        for start in range(0, n, batch_size):
            index = permutation[start : start + batch_size]
            loss = model(showers[index], energies[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        if log is not None:
            log(epoch, float(np.mean(losses[first:])))
    model.eval()
    return losses


def save_model(model: ShowerGenerator, path: str | os.PathLike[str]) -> None:
    """Write the model (config and weights) to one file, read back by :func:`load_model`."""
    target = os.fspath(path)
    partial = f"{target}.partial-{os.getpid()}"
    try:  # renamed into place: a generator file that exists is complete
        torch.save({"config": dict(model.config), "state_dict": model.state_dict()}, partial)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def load_model(path: str | os.PathLike[str]) -> ShowerGenerator:
    """Read a model written by :func:`save_model`; nothing in the file is executed."""
    where = os.fspath(path)
    try:
        saved = torch.load(where, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        msg = f"cannot read a shower generator from {where}: {exc}".splitlines()[0]
        raise FormatError(msg, path=where) from exc
    if not isinstance(saved, dict) or "config" not in saved or "state_dict" not in saved:
        msg = f"{where} is not a saved shower generator (it lacks config or state_dict)"
        raise FormatError(msg, path=where)
    model = ShowerGenerator.from_config(saved["config"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model


def _time_sampling(model: ShowerGenerator, energy_mev: float, batch: int) -> float:
    """Seconds per shower to sample ``batch`` showers of one energy (for the benchmark)."""
    energies = torch.full((batch,), energy_mev)
    model.sample(energies[:16])
    start = time.perf_counter()
    model.sample(energies)
    return (time.perf_counter() - start) / batch
