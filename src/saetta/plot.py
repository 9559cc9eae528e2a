"""Stage: output (layer 8) — pictures of results: one panel per histogram, CMS-style (mplhep)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boost_histogram as bh

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_histograms", "save_plots"]


def plot_histograms(results: Mapping[str, Any], *, columns: int = 3) -> Figure:
    """A grid of step plots, one per one-dimensional histogram in ``results``."""
    import logging

    import matplotlib.pyplot as plt
    import mplhep

    # mplhep's CMS style names fonts most machines lack; matplotlib's fallback is fine.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    hists = {k: v for k, v in results.items() if isinstance(v, bh.Histogram) and v.ndim == 1}
    rows = max(1, math.ceil(len(hists) / columns))
    with plt.style.context(mplhep.style.CMS):
        fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.5 * rows), squeeze=False)
        for ax, (name, h) in zip(axes.flat, hists.items(), strict=False):
            mplhep.histplot(h, ax=ax, histtype="fill", alpha=0.6, edgecolor="black")
            ax.set_title(name, fontsize=14)
            ax.set_xlabel(h.axes[0].label or name, fontsize=12)
            ax.set_ylabel("events", fontsize=12)
            ax.tick_params(labelsize=10)
        for ax in list(axes.flat)[len(hists) :]:
            ax.set_visible(False)
        fig.tight_layout()
    return fig


def save_plots(results: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw :func:`plot_histograms` into an image file (PNG, PDF, SVG by suffix)."""
    import matplotlib.pyplot as plt

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_histograms(results)
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target
