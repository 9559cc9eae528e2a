"""Stage: fast simulation (layer 7) — a generator's showers judged against a reference.

``saetta fastsim evaluate reference.h5 generated.h5`` runs :func:`evaluate`: the
CaloChallenge's metrics (:mod:`~saetta.fastsim.metrics`) over the showers of both
files in their common incident-energy range, as many of each:

- the separation power of the histogram of every high-level feature, and of the
  spectrum of the non-empty voxels' energies;
- two classifier two-sample tests, one on the voxels and one on the high-level
  features (the AUC on held-out showers; 0.5 is perfect);
- with a second, independent reference sample, the same metrics for the two
  references: the *floor*, what a perfect generator would score with these many
  showers;
- the generation times the caller measured, shown as given.

The :class:`Evaluation` keeps the histograms and the average showers, not the
showers, so it is small, picklable, and draws its HTML report
(:meth:`Evaluation.write_html`) on its own. The targets it checks
(:attr:`Evaluation.TARGETS`): AUC ≤ 0.75 on the high-level features, ≤ 0.8 on the
voxels, and a mean separation power of the high-level features ≤ 0.05.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from saetta.errors import DatasetError, SaettaWarning
from saetta.fastsim.binning import Binning
from saetta.fastsim.metrics import (
    ClassifierResult,
    classifier_test,
    feature_edges,
    feature_inputs,
    high_level_features,
    separation_power,
    voxel_inputs,
)
from saetta.fastsim.showerfile import ShowerFile
from saetta.storage import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Evaluation", "FeatureHistogram", "evaluate"]

_KINDS = ("E_layer", "EC_x", "EC_y", "width_x", "width_y", "EC_r", "width_r", "sparsity")
_UNITS = {"E_layer": "E (MeV)", "sparsity": "fraction of empty voxels"}
_SPECTRUM_VALUES = 4_000_000  # voxel energies per sample in the spectrum: enough, and bounded
_DPI = 80


@dataclass(frozen=True, eq=False)  # arrays inside: equal only to itself
class FeatureHistogram:
    """One feature's histograms: the fraction of showers per bin of each sample."""

    name: str
    edges: np.ndarray
    reference: np.ndarray
    generated: np.ndarray
    second: np.ndarray | None
    separation: float

    @property
    def logarithmic(self) -> bool:
        """The edges rise by one factor (drawn on a logarithmic axis)."""
        ratios = self.edges[1:] / self.edges[:-1] if self.edges[0] > 0 else np.array([1.0])
        return bool(len(ratios) > 1 and np.allclose(ratios, ratios[-1]) and ratios[-1] != 1)


@dataclass(frozen=True, eq=False)  # arrays inside: equal only to itself
class Evaluation:
    """The CaloChallenge's metrics for generated showers against a reference.

    ``separation``: the separation power per high-level feature, and
    ``voxel_spectrum``; ``auc_features``, ``auc_voxels``: the classifiers' AUC (their
    details in ``classifier_features``, ``classifier_voxels``); ``floor``: the same for
    two reference samples, or None; ``timing``: as the caller gave it; ``n_showers``:
    per sample; ``energy_range``: the incident energies compared (MeV); ``labels``: the
    samples' names. What the report draws: ``histograms`` (one per feature) and
    ``mean_showers`` (the reference's and the generated average voxel energies, in the
    voxel order of ``binning``), empty when evaluated with ``plots=False``.

    :attr:`meets` says which :attr:`TARGETS` are met, :attr:`passed` whether all are;
    ``str()`` is a text table, ``to_dict()`` JSON, a notebook shows the tables, and
    :meth:`write_html` writes the report with its plots.
    """

    separation: dict[str, float]
    auc_features: float
    auc_voxels: float
    floor: Evaluation | None
    timing: dict[str, float]
    classifier_features: ClassifierResult
    classifier_voxels: ClassifierResult
    n_showers: int
    energy_range: tuple[float, float]
    labels: tuple[str, str] = ("reference", "generated")
    histograms: tuple[FeatureHistogram, ...] = ()
    mean_showers: tuple[np.ndarray, np.ndarray] | None = None
    binning: Binning | None = None

    #: The upper bounds the issue set: classifier AUCs and the mean separation power.
    TARGETS: ClassVar[Mapping[str, float]] = MappingProxyType(
        {"auc_features": 0.75, "auc_voxels": 0.8, "mean_separation": 0.05}
    )

    @property
    def mean_separation(self) -> float:
        """The mean separation power of the high-level features (not the spectrum)."""
        values = [v for k, v in self.separation.items() if k != "voxel_spectrum"]
        return float(np.mean(values))

    @property
    def meets(self) -> dict[str, bool]:
        """Each target: is it met?"""
        return {name: self._value(name) <= bound for name, bound in self.TARGETS.items()}

    @property
    def passed(self) -> bool:
        """Every target is met."""
        return all(self.meets.values())

    def _value(self, name: str) -> float:
        return float(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """The metrics as plain JSON values (no histograms)."""
        return {
            "labels": list(self.labels),
            "n_showers": self.n_showers,
            "energy_range_MeV": [float(e) for e in self.energy_range],
            "auc_features": self.auc_features,
            "auc_voxels": self.auc_voxels,
            "mean_separation": self.mean_separation,
            "separation": {k: float(v) for k, v in self.separation.items()},
            "classifier_features": self.classifier_features.to_dict(),
            "classifier_voxels": self.classifier_voxels.to_dict(),
            "targets": dict(self.TARGETS),
            "meets": self.meets,
            "passed": self.passed,
            "timing": {k: float(v) for k, v in self.timing.items()},
            "floor": None if self.floor is None else self.floor.to_dict(),
        }

    def __str__(self) -> str:
        reference, generated = self.labels
        low, high = (e / 1e3 for e in self.energy_range)
        lines = [
            f"{generated} vs {reference}: {self.n_showers:,} showers each, {low:g}-{high:g} GeV",
            f"{'':24}{'value':>8}{'floor':>8}  target   met",
        ]
        for name, label in (
            ("auc_features", "AUC high-level"),
            ("auc_voxels", "AUC voxels"),
            ("mean_separation", "mean separation"),
        ):
            floor = f"{self.floor._value(name):8.3f}" if self.floor else f"{'-':>8}"
            met = "yes" if self.meets[name] else "NO"
            lines.append(
                f"{label:24}{self._value(name):8.3f}{floor}  ≤ {self.TARGETS[name]:<5g}  {met}"
            )
        lines.append("separation power (by kind: the mean over layers, and the worst layer):")
        for kind, names in _grouped(self.separation):
            for label, chosen in (
                [(n, [n]) for n in names] if kind == "overview" else [(kind, names)]
            ):
                values = [self.separation[n] for n in chosen]
                worst = chosen[int(np.argmax(values))]
                low_mark = self.floor.separation.get(worst) if self.floor else None
                note = f" (floor {low_mark:.3f})" if low_mark is not None else ""
                where = f"  {worst} {max(values):.3f}" if len(chosen) > 1 else ""
                lines.append(f"  {label:22}{np.mean(values):8.3f}{where}{note}")
        if self.timing:
            lines.append("timing:")
            lines += [f"  {name:30}{value:12.4g}" for name, value in self.timing.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self._tables()

    def write_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the report, one self-contained HTML file (plots as inline PNG).

        It holds the targets and whether they are met, the classifiers, the timing,
        the separation power of every feature, the histogram of every feature
        (reference, generated and, dashed, the second reference), and the average
        shower of each sample, layer by layer.

        Parameters
        ----------
        path
            Where to write; missing folders are made.

        Returns
        -------
        Path
            ``path``.
        """
        body = [self._tables()]
        if self.histograms or self.mean_showers is not None:
            import logging

            # matplotlib's font fallback is fine; its notes about it are not news
            logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
            for title, figure in self._figures():
                body.append(
                    f"<h3>{html.escape(title)}</h3>\n"
                    f'<img alt="{html.escape(title)}" src="data:image/png;base64,{_png(figure)}">'
                )
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>saetta fastsim evaluation: {html.escape(self.labels[1])}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
            ".no{color:#b00;font-weight:bold}.yes{color:#070}img{max-width:100%}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )
        target = Path(path)
        with atomic_path(target) as temporary:
            temporary.write_text(page, encoding="utf-8")
        return target

    def _tables(self) -> str:
        reference, generated = (html.escape(label) for label in self.labels)
        low, high = (e / 1e3 for e in self.energy_range)
        rows = []
        for name, label in (
            ("auc_features", "classifier AUC, high-level features"),
            ("auc_voxels", "classifier AUC, voxels"),
            ("mean_separation", "mean separation power, high-level features"),
        ):
            floor = f"{self.floor._value(name):.3f}" if self.floor else "-"
            met = "yes" if self.meets[name] else "no"
            rows.append(
                f"<tr><th>{label}</th><td>{self._value(name):.3f}</td><td>{floor}</td>"
                f'<td>≤ {self.TARGETS[name]:g}</td><td class="{met}">{met}</td></tr>'
            )
        parts = [
            f"<h2>{generated} vs {reference}</h2>",
            (
                f"<p>{self.n_showers:,} showers of each, incident energies {low:g}-{high:g}"
                " GeV. The floor compares two independent reference samples.</p>"
            ),
            (
                "<table><tr><th>metric</th><th>value</th><th>floor</th><th>target</th>"
                "<th>met</th></tr>" + "".join(rows) + "</table>"
            ),
        ]
        classifier = [
            f"<tr><th>{kind}</th><td>{r.auc:.3f}</td><td>{r.accuracy:.3f}</td>"
            f"<td>{r.jsd:.3f}</td><td>{r.n_train:,}</td><td>{r.n_test:,}</td>"
            f"<td>{r.best_epoch}/{r.epochs}</td><td>{r.wall_s:.1f}</td></tr>"
            for kind, r in (
                ("high-level", self.classifier_features),
                ("voxels", self.classifier_voxels),
            )
        ]
        parts.append(
            "<h3>Classifiers</h3><table><tr><th></th><th>AUC</th><th>accuracy</th>"
            "<th>JSD</th><th>train</th><th>test</th><th>best epoch</th><th>s</th></tr>"
            + "".join(classifier)
            + "</table>"
        )
        if self.timing:
            timing = "".join(
                f"<tr><th>{html.escape(k)}</th><td>{v:.4g}</td></tr>"
                for k, v in self.timing.items()
            )
            parts.append(f"<h3>Timing</h3><table>{timing}</table>")
        floors = self.floor.separation if self.floor else {}
        lines = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td>"
            f"<td>{f'{floors[k]:.4f}' if k in floors else '-'}</td></tr>"
            for k, v in self.separation.items()
        )
        parts.append(
            "<h3>Separation power</h3><details><summary>every feature</summary><table>"
            f"<tr><th>feature</th><th>separation</th><th>floor</th></tr>{lines}</table></details>"
        )
        return "\n".join(parts)

    def _figures(self) -> list[tuple[str, Figure]]:
        figures: list[tuple[str, Figure]] = []
        by_name = {h.name: h for h in self.histograms}
        for kind, names in _grouped(by_name):
            figures.append((f"{kind} histograms", self._histogram_figure(kind, names, by_name)))
        if self.mean_showers is not None and self.binning is not None:
            figures.append(("average showers", self._shower_figure(self.binning)))
        return figures

    def _histogram_figure(
        self, kind: str, names: list[str], by_name: Mapping[str, FeatureHistogram]
    ) -> Figure:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator, NullLocator

        columns = min(len(names), 6)
        rows = math.ceil(len(names) / columns)
        width, height = 2.8 * columns, 2.3 * rows
        figure = Figure(figsize=(width, height))
        # fixed margins: a layout engine measures every tick label, seconds per figure
        figure.subplots_adjust(
            left=0.45 / width,
            right=1 - 0.1 / width,
            bottom=0.45 / height,
            top=1 - 0.3 / height,
            wspace=0.3,
            hspace=0.6,
        )
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, name in zip(axes, names, strict=False):
            h = by_name[name]
            ax.stairs(h.reference, h.edges, color="black", label=self.labels[0])
            ax.stairs(h.generated, h.edges, color="tab:red", label=self.labels[1])
            if h.second is not None:
                ax.stairs(h.second, h.edges, color="tab:blue", linestyle="--", label="reference 2")
            if h.logarithmic:
                ax.set_xscale("log")
                ax.xaxis.set_minor_locator(NullLocator())
            else:
                ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.yaxis.set_major_locator(MaxNLocator(4))
            title = name if kind == "overview" else f"layer {name.removeprefix(kind + '_')}"
            ax.set_title(f"{title}  S = {h.separation:.3f}", fontsize=9)
            ax.set_xlabel(_UNITS.get(kind, "mm" if kind[:2] in {"EC", "wi"} else name), fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0].legend(fontsize=7)
        for ax in axes[len(names) :]:
            ax.remove()
        return figure

    def _shower_figure(self, binning: Binning) -> Figure:
        from matplotlib.colors import LogNorm
        from matplotlib.figure import Figure

        assert self.mean_showers is not None
        layers = binning.relevant
        top = max(float(m.max()) for m in self.mean_showers)
        positive = [float(m[m > 0].min()) for m in self.mean_showers if np.any(m > 0)]
        norm = LogNorm(vmin=max(min(positive, default=1.0), top * 1e-5), vmax=max(top, 1e-12))
        columns = min(len(layers), 9)
        rows = math.ceil(len(layers) / columns)
        figure = Figure(figsize=(1.7 * columns + 1, 3.6 * rows))
        figure.subplots_adjust(left=0.02, right=0.86, bottom=0.03, top=0.94, wspace=0.1)
        for row, (label, mean) in enumerate(zip(self.labels, self.mean_showers, strict=True)):
            for i, layer in enumerate(layers):
                ax = figure.add_subplot(
                    2 * rows, columns, row * rows * columns + i + 1, projection="polar"
                )
                steps = max(1, math.ceil(64 / layer.n_alpha))
                grid = mean[binning.slices[layer.id]].reshape(layer.n_alpha, layer.n_r)
                mesh = ax.pcolormesh(
                    np.linspace(-math.pi, math.pi, layer.n_alpha * steps + 1),
                    np.asarray(layer.r_edges),
                    np.ma.masked_less_equal(np.repeat(grid, steps, axis=0).T, 0),
                    norm=norm,
                    shading="flat",
                )
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{label}: layer {layer.id}", fontsize=7)
        bar = figure.add_axes((0.9, 0.15, 0.015, 0.7))
        figure.colorbar(mesh, cax=bar, label="mean energy per voxel (MeV)")
        return figure


def evaluate(
    reference: ShowerFile,
    generated: ShowerFile,
    *,
    second_reference: ShowerFile | None = None,
    timing: Mapping[str, float] | None = None,
    seed: int = 0,
    classifier_epochs: int = 30,
    device: str = "cpu",
    labels: tuple[str, str] = ("reference", "generated"),
    plots: bool = True,
) -> Evaluation:
    """Judge generated showers against reference ones by the CaloChallenge's metrics.

    Both are cut to the incident energies they share, then to as many showers each
    (a random part of the larger). The separation powers use each feature's
    :func:`~saetta.fastsim.metrics.feature_edges`; the classifiers are
    :func:`~saetta.fastsim.metrics.classifier_test` on
    :func:`~saetta.fastsim.metrics.voxel_inputs` and
    :func:`~saetta.fastsim.metrics.feature_inputs`.

    Parameters
    ----------
    reference, generated
        The showers; their binnings must have the same layers.
    second_reference
        Another reference sample, independent of ``reference``: its metrics against
        ``reference`` become the floor, and its histograms are drawn dashed.
    timing
        Generation times to report (e.g. ``generator_ms_per_shower``), as given.
    seed
        Seeds the subsampling and the classifiers.
    classifier_epochs, device
        The classifiers' longest training, and where they train.
    labels
        The names of the reference and the generated sample in the report.
    plots
        Keep the histograms and the average showers, for :meth:`Evaluation.write_html`.

    Returns
    -------
    Evaluation

    Raises
    ------
    DatasetError
        Different binnings, disjoint incident energies, or showers that are not finite.
    """
    for other, name in ((generated, "generated"), (second_reference, "second reference")):
        if other is not None and other.binning.layers != reference.binning.layers:
            msg = (
                f"the {name} showers have another binning than the reference "
                f"({other.binning!r} vs {reference.binning!r})"
            )
            raise DatasetError(msg)
    rng = np.random.default_rng(seed)
    (ref_e, ref), (gen_e, gen), energy_range = _common(reference, generated, rng)
    f_ref = high_level_features(ref, ref_e, reference.binning)
    f_gen = high_level_features(gen, gen_e, reference.binning)
    f_second: dict[str, np.ndarray] | None = None
    floor = None
    if second_reference is not None:
        floor = evaluate(
            reference,
            second_reference,
            seed=seed,
            classifier_epochs=classifier_epochs,
            device=device,
            labels=(labels[0], "reference 2"),
            plots=False,
        )
        energies = second_reference.incident_energies
        inside = (energies >= energy_range[0]) & (energies <= energy_range[1])
        showers = second_reference.showers[inside]
        f_second = high_level_features(showers, energies[inside], reference.binning)
        f_second["voxel_spectrum"] = _spectrum(showers, rng)
    f_ref["voxel_spectrum"] = _spectrum(ref, rng)
    f_gen["voxel_spectrum"] = _spectrum(gen, rng)
    separation: dict[str, float] = {}
    histograms: list[FeatureHistogram] = []
    for name in f_ref:
        a, b = f_ref[name], f_gen[name]
        if len(a) == 0 or len(b) == 0:  # a sample without one non-empty voxel
            separation[name] = float(bool(len(a)) != bool(len(b)))
            continue
        edges = feature_edges(a, b)
        separation[name] = separation_power(a, b, edges)
        second = None
        if f_second is not None and len(f_second[name]):
            second = _fractions(f_second[name], edges)
        histograms.append(
            FeatureHistogram(
                name, edges, _fractions(a, edges), _fractions(b, edges), second, separation[name]
            )
        )
    del f_ref["voxel_spectrum"], f_gen["voxel_spectrum"]
    by_features = classifier_test(
        feature_inputs(f_ref, ref_e),
        feature_inputs(f_gen, gen_e),
        seed=seed,
        epochs=classifier_epochs,
        device=device,
    )
    by_voxels = classifier_test(
        voxel_inputs(ref, ref_e),
        voxel_inputs(gen, gen_e),
        seed=seed,
        epochs=classifier_epochs,
        device=device,
    )
    return Evaluation(
        separation=separation,
        auc_features=by_features.auc,
        auc_voxels=by_voxels.auc,
        floor=floor,
        timing={str(k): float(v) for k, v in (timing or {}).items()},
        classifier_features=by_features,
        classifier_voxels=by_voxels,
        n_showers=len(ref),
        energy_range=energy_range,
        labels=labels,
        histograms=tuple(histograms) if plots else (),
        mean_showers=(ref.mean(axis=0, dtype=np.float64), gen.mean(axis=0, dtype=np.float64))
        if plots
        else None,
        binning=reference.binning if plots else None,
    )


def _common(
    reference: ShowerFile, generated: ShowerFile, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], tuple[float, float]]:
    if len(reference) == 0 or len(generated) == 0:
        msg = "cannot evaluate an empty shower sample"
        raise DatasetError(msg)
    low = max(reference.incident_energies.min(), generated.incident_energies.min())
    high = min(reference.incident_energies.max(), generated.incident_energies.max())
    if low > high:
        msg = (
            f"the reference ({_range(reference)}) and generated ({_range(generated)}) "
            "incident energies do not overlap"
        )
        raise DatasetError(msg)
    kept = []
    for sample, name in ((reference, "reference"), (generated, "generated")):
        inside = (sample.incident_energies >= low) & (sample.incident_energies <= high)
        if np.count_nonzero(~inside) > 0.01 * len(sample):
            note = (
                f"{np.count_nonzero(~inside):,} of {len(sample):,} {name} showers lie outside "
                f"the incident energies both samples share ({low / 1e3:g}-{high / 1e3:g} GeV); "
                "they are left out"
            )
            warnings.warn(note, SaettaWarning, stacklevel=3)
        kept.append(np.flatnonzero(inside))
    n = min(len(k) for k in kept)
    out = []
    for sample, rows in zip((reference, generated), kept, strict=True):
        chosen = np.sort(rng.permutation(rows)[:n])
        out.append((sample.incident_energies[chosen], sample.showers[chosen]))
    return out[0], out[1], (float(low), float(high))


def _range(sample: ShowerFile) -> str:
    return f"{sample.incident_energies.min() / 1e3:g}-{sample.incident_energies.max() / 1e3:g} GeV"


def _spectrum(showers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = max(1, _SPECTRUM_VALUES // max(showers.shape[1], 1))
    if len(showers) > rows:
        showers = showers[np.sort(rng.permutation(len(showers))[:rows])]
    values = np.asarray(showers).reshape(-1)
    return values[values > 0].astype(np.float64)


def _fractions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / len(values)


def _grouped(names: Mapping[str, object]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for name in names:
        kind = next(
            (k for k in _KINDS if name.startswith(k + "_") and name[len(k) + 1 :].isdigit()),
            "overview",
        )
        groups.setdefault(kind, []).append(name)
    return [(kind, groups[kind]) for kind in ("overview", *_KINDS) if kind in groups]


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
