"""The command line (layer 9) — ``saetta generate``: synthetic event files."""

from __future__ import annotations

from typing import Literal

import click

__all__ = ["generate"]


@click.group()
def generate() -> None:
    """Write synthetic event files for trying saetta out."""


@generate.command("nanoaod")
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--events", default=200_000, show_default=True, help="Number of events.")
@click.option("--seed", default=1, show_default=True, help="Random seed (same seed, same file).")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["root", "parquet"]),
    default=None,
    help="File format [default: from the OUTPUT suffix].",
)
@click.option(
    "--compression",
    default="zlib:1",
    show_default=True,
    help="ROOT: zlib:N, lz4:N, zstd:N, lzma:N or none; Parquet: codec name.",
)
def generate_nanoaod_command(
    output: str,
    events: int,
    seed: int,
    file_format: Literal["root", "parquet"] | None,
    compression: str,
) -> None:
    """Write OUTPUT (.root TTree or .parquet) with NanoAOD-like events: jets, muons,
    electrons, MET, with Z -> ll decays so every ADL query fills."""
    from saetta.datagen import generate_nanoaod

    try:
        path = generate_nanoaod(
            output,
            events,
            seed=seed,
            format=file_format,
            compression=compression,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc).replace("pass format=", "pass --format")) from exc
    click.echo(f"wrote {events:,} events to {path} ({path.stat().st_size / 1e6:,.1f} MB)")
