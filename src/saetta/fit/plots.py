"""Stage: fit (layer 8) — the fit's figures, drawn by cabinetry as PNG files:
:func:`plot_pulls`, the pulls of the nuisance parameters, and :func:`plot_prefit_postfit`,
each region's stacked Monte Carlo with the data before and after the fit; cabinetry's
matplotlib style and INFO logging kept to the call.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saetta.errors import SaettaError
from saetta.fit.minimize import FitResult
from saetta.fit.model import _model, _numpy_minuit, _workspace
from saetta.storage import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_OBSERVABLES = {"4j1b": "$H_T$ [GeV]", "4j2b": "$m_{bjj}$ [GeV]"}
_DPI = 120


@contextlib.contextmanager
def _drawing() -> Iterator[None]:
    """cabinetry drawing: its style and its INFO logging confined to the block."""
    import matplotlib as mpl

    log = logging.getLogger("cabinetry")
    level = log.level
    log.setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    try:
        with mpl.rc_context():
            yield
    finally:
        log.setLevel(level)


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format="png", dpi=_DPI)
    finally:
        plt.close(fig)
    return path


def plot_pulls(result: FitResult, path: str | os.PathLike[str]) -> Path:
    """Draw the pulls of the nuisance parameters (staterror bins left out) as a PNG.

    Parameters
    ----------
    result
        What :func:`fit` returned.
    path
        The image file.

    Returns
    -------
    Path
        The image file.

    Raises
    ------
    SaettaError
        The model has no nuisance parameter to draw, or ``path`` cannot be written.
    """
    from cabinetry.visualize import plot_result

    pulls = {k: v for k, v in result.pulls().items() if not k.startswith("staterror_")}
    if not pulls:
        msg = "no nuisance parameter to draw pulls of"
        raise SaettaError(msg)
    with _drawing():
        fig = plot_result.pulls(
            np.array([p for p, _ in pulls.values()]),
            np.array([c for _, c in pulls.values()]),
            list(pulls),
        )
        return _save(fig, Path(path))


def plot_prefit_postfit(
    workspace: Mapping[str, Any],
    result: FitResult,
    folder: str | os.PathLike[str],
    *,
    edges: Mapping[str, np.ndarray] | None = None,
) -> list[Path]:
    """Draw each region's stacked Monte Carlo before and after the fit, with the data.

    Each figure (cabinetry's) has the stacked samples, the model uncertainty band, the
    data points and a data / model ratio panel.

    Parameters
    ----------
    workspace
        The workspace :func:`fit` fitted.
    result
        What :func:`fit` returned.
    folder
        Where to write ``<region>_prefit.png`` and ``<region>_postfit.png``.
    edges
        Bin edges per region (:attr:`FitInput.edges`); without them, bin numbers.

    Returns
    -------
    list of Path
        The images, two per region.

    Raises
    ------
    SaettaError
        The workspace is not valid, or a file cannot be written.
    """
    from cabinetry import model_utils, visualize
    from cabinetry.fit.results_containers import FitResults

    with _numpy_minuit():
        ws = _workspace(workspace)
        model = _model(ws)
        data = ws.data(model)
    regions = [
        {"Name": r, "Variable": _OBSERVABLES.get(r, "observable")}
        | ({"Binning": np.asarray(edges[r]).tolist()} if edges and r in edges else {})
        for r in model.config.channels
    ]
    fitted = FitResults(
        result.bestfit,
        result.uncertainties,
        list(result.parameters),
        result.correlations,
        result.twice_nll,
    )
    written = []
    with _drawing():
        for label, fit_results in (("prefit", None), ("postfit", fitted)):
            prediction = model_utils.prediction(
                model, fit_results=fit_results, label=f"{label[:-3]}-fit, {result.data_kind}"
            )
            with np.errstate(divide="ignore", invalid="ignore"):  # an empty bin: no ratio
                figures = visualize.data_mc(
                    prediction, data, config={"Regions": regions}, save_figure=False
                )
            for entry in figures or []:
                written.append(
                    _save(entry["figure"], Path(folder) / f"{entry['region']}_{label}.png")
                )
    return written
