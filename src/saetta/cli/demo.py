"""The command line (layer 9) — ``saetta demo``: a sample, the ADL queries, a plot."""

from __future__ import annotations

from pathlib import Path

import click

from saetta.cli.run import EXECUTOR_HELP
from saetta.cli.runner import run_and_write

__all__ = ["demo"]


@click.command()
@click.option("--events", default=200_000, show_default=True, help="Events in the sample.")
@click.option(
    "--out",
    "out_dir",
    default="saetta-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the sample and the results.",
)
@click.option("--executor", default="local", show_default=True, help=EXECUTOR_HELP)
def demo(events: int, out_dir: str, executor: str) -> None:
    """Generate a NanoAOD-like sample and run the eight ADL benchmark queries on it.

    Writes the sample, results.root, results.json, results.report.json and adl.png into --out.
    """
    from saetta.datagen import generate_nanoaod

    folder = Path(out_dir)
    sample = folder / f"nanoaod_{events}.root"
    if not sample.exists():
        click.echo(f"generating {events:,} events into {sample} ...", err=True)
        generate_nanoaod(sample, events, seed=1)
    outputs = (folder / "results.root", folder / "results.json")
    run_and_write(
        "adl", [str(sample)], outputs, plots=folder / "adl.png", executor=executor, progress=True
    )
    click.echo(f"\nopen {folder / 'adl.png'} to see the histograms")
