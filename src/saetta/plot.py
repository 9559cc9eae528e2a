"""Stage: output (layer 8) — pictures of results: one panel per histogram, CMS-style (mplhep).

Every histogram of a result is drawn, nested dicts included (titled by the
``"/"``-joined key path): one axis as a step plot with error bars, two as a colour
map with a colour bar, more than two projected onto the first two (the title says
so). Category axes get one bin per category, labelled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boost_histogram as bh
import numpy as np

from saetta.errors import SaettaError
from saetta.output.walk import flatten, is_category
from saetta.storage import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_histograms", "save_plots"]

_DPI = 120  # a 6.4 x 5 inch panel is 768 x 600 pixels


def plot_histograms(results: Mapping[str, Any], *, columns: int = 3) -> Figure:
    """Draw every histogram in ``results`` into one figure, one panel each.

    Parameters
    ----------
    results
        A :class:`~saetta.Result` or any mapping; nested mappings are walked, and
        values that are not histograms are skipped.
    columns
        Panels per row at most.

    Returns
    -------
    Figure
        The figure; each panel's title is the histogram's key path.

    Raises
    ------
    SaettaError
        ``results`` holds no histogram.
    """
    import logging

    import matplotlib.pyplot as plt
    import mplhep

    hists = [(k, v) for k, v in flatten(results) if isinstance(v, bh.Histogram)]
    if not hists:
        msg = "no histograms to plot in the result"
        raise SaettaError(msg)
    # mplhep's CMS style names fonts most machines lack; matplotlib's fallback is fine.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    columns = max(1, min(columns, len(hists)))
    rows = math.ceil(len(hists) / columns)
    with plt.style.context(mplhep.style.CMS):
        fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 5 * rows), squeeze=False)
        try:
            for ax, (key, h) in zip(axes.flat, hists, strict=False):
                _draw(ax, key, h)
            for ax in list(axes.flat)[len(hists) :]:
                ax.remove()
            fig.tight_layout()
        except BaseException:
            plt.close(fig)
            raise
    return fig


def save_plots(results: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw :func:`plot_histograms` into an image file (PNG, PDF, SVG, ... by suffix).

    Parameters
    ----------
    results
        As for :func:`plot_histograms`.
    path
        The image file; written under a temporary name and renamed into place.

    Returns
    -------
    Path
        The image file.

    Raises
    ------
    SaettaError
        No histogram in ``results``, an image format matplotlib cannot write, or a
        folder that cannot be written; nothing is written then.
    """
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    target = Path(path)
    kind = target.suffix.lower().removeprefix(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if kind not in formats:
        msg = (
            f"cannot draw into {target}: give one of {', '.join('.' + f for f in sorted(formats))}"
        )
        raise SaettaError(msg)
    fig = plot_histograms(results)
    try:
        with atomic_path(target) as temporary:
            fig.savefig(temporary, format=kind, dpi=_DPI)
    finally:
        plt.close(fig)
    return target


def _draw(ax: Axes, key: str, h: bh.Histogram[Any]) -> None:
    import mplhep

    title = key
    if h.ndim > 2:
        first, second = (_label(a, f"axis {i}") for i, a in enumerate(h.axes[:2]))
        title = f"{key} (projected onto {first}, {second})"
        h = h.project(0, 1)
    if h.kind == bh.Kind.MEAN:
        what = "mean"
    elif h.storage_type is bh.storage.Weight or h.variances() is None:
        what = "weighted events"  # a storage filled with weights
    else:
        what = "events"
    values = np.asarray(h.values(), dtype=np.float64)
    variances = h.variances()
    if values.size == 0:  # a growing category axis that never grew
        ax.text(0.5, 0.5, "no bins", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel(_label(h.axes[1], key) if h.ndim > 1 else what, fontsize=12)
    elif h.ndim == 1:
        if variances is not None:
            errors = np.sqrt(np.asarray(variances, dtype=np.float64))
        else:
            errors = np.sqrt(np.abs(values))
        edges = _edges(h.axes[0])
        mplhep.histplot(values, edges, ax=ax, histtype="fill", alpha=0.35)
        mplhep.histplot(values, edges, yerr=errors, ax=ax, histtype="step", color="black", lw=1)
        ax.set_ylabel(what, fontsize=12)
    else:
        artists = mplhep.hist2dplot(values, _edges(h.axes[0]), _edges(h.axes[1]), ax=ax)
        artists.cbar.set_label(what, fontsize=12)
        artists.cbar.ax.tick_params(labelsize=10)
        ax.set_ylabel(_label(h.axes[1], key), fontsize=12)
        _ticks(ax, "y", h.axes[1])
    ax.set_xlabel(_label(h.axes[0], key), fontsize=12)
    _ticks(ax, "x", h.axes[0])
    ax.set_title(title, fontsize=14)
    ax.tick_params(labelsize=10)


def _label(axis: Any, fallback: str) -> str:
    return str(getattr(axis, "label", None) or getattr(axis, "name", None) or fallback)


def _edges(axis: Any) -> np.ndarray:
    if is_category(axis):
        return np.arange(len(axis) + 1, dtype=np.float64)
    return np.asarray(axis.edges, dtype=np.float64)


def _ticks(ax: Axes, which: str, axis: Any) -> None:
    """Category names under their bins; a log scale for a log-binned axis."""
    if is_category(axis):
        from matplotlib.ticker import NullLocator

        names = [str(c) for c in axis]
        long = len(names) > 6 or max(map(len, names), default=0) > 6
        centers = np.arange(len(names)) + 0.5
        if which == "x":
            ax.set_xticks(
                centers, names, rotation=45 if long else 0, ha="right" if long else "center"
            )
            ax.xaxis.set_minor_locator(NullLocator())
        else:
            ax.set_yticks(centers, names)
            ax.yaxis.set_minor_locator(NullLocator())
    elif isinstance(axis, bh.axis.Regular) and axis.transform == bh.axis.transform.log:
        if which == "x":
            ax.set_xscale("log")
        else:
            ax.set_yscale("log")
