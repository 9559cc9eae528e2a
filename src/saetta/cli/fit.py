"""The command line (layer 9) — ``saetta fit``: the AGC ttbar cross-section fit."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["fit"]

_SHOWN_PULLS = 12  # the pulls table shows at most this many nuisance parameters


@click.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option(
    "--data",
    type=click.Choice(["auto", "asimov"]),
    default="auto",
    show_default=True,
    help="auto: the data sample of RESULTS if it has one, else Asimov pseudo-data.",
)
@click.option(
    "--inject",
    type=float,
    default=None,
    metavar="MU",
    help="Signal strength of the Asimov pseudo-data [default: 1].",
)
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the workspace and plots [default: RESULTS' stem + '_fit', beside it].",
)
@click.option(
    "--regions",
    default="4j1b,4j2b",
    show_default=True,
    help="Comma-separated regions (histograms) to fit; 'all' for every one in RESULTS.",
)
@click.option("--no-plots", is_flag=True, help="Fit and write workspace.json only.")
@click.option(
    "--no-minos",
    is_flag=True,
    help="Give HESSE's error on mu instead of MINOS's interval (faster; unreliable on "
    "low-statistics templates).",
)
def fit(
    results: str,
    data: str,
    inject: float | None,
    output_dir: str | None,
    regions: str,
    no_plots: bool,
    no_minos: bool,
) -> None:
    """Measure the ttbar signal strength mu from RESULTS, an AGC ttbar run's output
    (.root or .json): build the pyhf model (regions 4j1b and 4j2b, the systematic
    variations as nuisance parameters), fit it, and print mu and the pulls.

    Writes workspace.json (the pyhf workspace), pulls.png, and per region
    <region>_prefit.png and <region>_postfit.png.

    \b
    Examples:
      saetta fit agc.root                             # data if agc.root has it
      saetta fit agc.root --data asimov --inject 1.3  # expect mu = 1.3
      saetta fit agc.json -o fits/agc --no-plots
    """
    from saetta.fit import build_workspace, plot_prefit_postfit, plot_pulls, read_fit_input
    from saetta.fit import fit as fit_workspace
    from saetta.storage import atomic_write

    chosen = None if regions == "all" else [r.strip() for r in regions.split(",") if r.strip()]
    fit_input = read_fit_input(results, chosen)
    has_data = any(info.role == "data" for info in fit_input.samples.values())
    if inject is not None and data == "auto" and has_data:
        msg = f"--inject applies to Asimov data, and {results} has data; add --data asimov"
        raise click.UsageError(msg)
    workspace = build_workspace(fit_input, data=data, inject=1.0 if inject is None else inject)
    result = fit_workspace(workspace, minos=not no_minos)
    click.echo(str(result))
    _echo_pulls(result.pulls())
    folder = (
        Path(output_dir) if output_dir else Path(results).with_name(f"{Path(results).stem}_fit")
    )
    written = [folder / "workspace.json"]
    atomic_write(written[0], json.dumps(workspace, indent=1) + "\n")
    if not no_plots:
        import matplotlib

        matplotlib.use("Agg")
        pulls = {k: v for k, v in result.pulls().items() if not k.startswith("staterror_")}
        if pulls:
            written.append(plot_pulls(result, folder / "pulls.png"))
        written += plot_prefit_postfit(workspace, result, folder, edges=fit_input.edges)
    for path in written:
        click.echo(f"wrote {path}")


def _echo_pulls(pulls: dict[str, tuple[float, float]]) -> None:
    shown = {k: v for k, v in pulls.items() if not k.startswith("staterror_")}
    ranked = sorted(shown.items(), key=lambda item: -round(abs(item[1][0]), 2))[:_SHOWN_PULLS]
    if ranked:
        click.echo(f"  {'nuisance parameter':<28}{'pull':>7}{'constraint':>12}")
    for name, (pull, constraint) in ranked:
        click.echo(f"  {name:<28}{round(pull, 2) + 0.0:>+7.2f}{constraint:>12.2f}")  # no -0.00
    if len(shown) > len(ranked):
        click.echo(f"  ... and {len(shown) - len(ranked)} more with smaller pulls")
    stat = [abs(p) for k, (p, _) in pulls.items() if k.startswith("staterror_")]
    if stat:
        click.echo(f"  staterror ({len(stat)} bins): largest |pull| {max(stat):.2f}")
