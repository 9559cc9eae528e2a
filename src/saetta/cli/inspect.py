"""The command line (layer 9) — ``saetta inspect``: what a file holds."""

from __future__ import annotations

import click

__all__ = ["inspect"]


@click.command()
@click.argument("file")
@click.option("--tree", default=None, help="Only this tree (default: every tree in the file).")
@click.option(
    "--format",
    "file_format",
    default=None,
    help="The file's format (fits, hdf5, parquet, root, strain) [default: from its suffix].",
)
def inspect(file: str, tree: str | None, file_format: str | None) -> None:
    """Show what FILE holds: for event files the trees (entries, branches, types,
    compression), for saetta's own outputs (.root, .json) the histograms and the run."""
    from saetta.formats import describe
    from saetta.output import describe as describe_output
    from saetta.storage import expand

    path = expand([file])[0]
    if path.lower().endswith(".json"):
        click.echo(str(describe_output(path)))
        return
    found = describe(path, tree, format=file_format)
    if not tree and not found.trees:  # no events: perhaps saetta's own histograms
        summary = describe_output(path)
        if summary.is_saetta or summary.histograms:
            click.echo(str(summary))
            return
    click.echo(str(found))
