"""The command line (layer 9) — ``saetta generate``: synthetic event files."""

from __future__ import annotations

from typing import Literal

import click

from saetta.cli.gamma import generate_gamma_command
from saetta.cli.run import EXECUTOR_HELP
from saetta.cli.strain import strain as generate_strain_command
from saetta.errors import SaettaError

__all__ = ["generate"]


@click.group()
def generate() -> None:
    """Write event files for trying saetta out: synthetic NanoAOD-like files (nanoaod),
    the Analysis Grand Challenge samples generated with Pythia 8 (agc), gamma-ray
    observations as DL3 event lists (gamma), gravitational-wave strain in the GWOSC
    layout with injected chirps (strain)."""


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


@generate.command("agc")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--events-per-sample", default=20_000, show_default=True, help="Events generated per sample."
)
@click.option(
    "--events-per-file",
    default=5_000,
    show_default=True,
    help="Events per file: one generation job each, run in parallel on the executor.",
)
@click.option(
    "--samples",
    "sample_names",
    default=None,
    help="Comma-separated samples to generate [default: all nine AGC samples].",
)
@click.option("--seed", default=1, show_default=True, help="Base seed (same seed, same files).")
@click.option("--executor", default="local", show_default=True, help=EXECUTOR_HELP)
@click.option("--testbed", default=None, help="Generate on a named testbed (replaces --executor).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def generate_agc_command(
    folder: str,
    events_per_sample: int,
    events_per_file: int,
    sample_names: str | None,
    seed: int,
    executor: str,
    testbed: str | None,
    progress: bool | None,
) -> None:
    """Generate the Analysis Grand Challenge samples into FOLDER with Pythia 8:
    ttbar (nominal and four variations), single top (s-, t-channel, tW) and W+jets,
    in NanoAOD layout, and FOLDER/samples.yaml for 'saetta run agc'.

    \b
    Generation runs as a saetta run (one work unit per file): any executor or
    testbed spreads it, and the same command again generates only what is missing.
    Needs the agc extra: pip install 'saetta[agc]'.

    \b
    Example:
      saetta generate agc data/agc --events-per-sample 50000 --executor processes:2
      saetta run agc data/agc/samples.yaml -o agc.root --executor processes:2
      saetta fit agc.root
    """
    from saetta.generation import generate_agc

    try:
        import pythia8mc  # noqa: F401
    except ImportError:
        msg = "Pythia 8 is not installed: pip install 'saetta[agc]'"
        raise SaettaError(msg) from None
    names = [s.strip() for s in sample_names.split(",")] if sample_names else None
    target = generate_agc(
        folder,
        events_per_sample,
        samples=names,
        events_per_file=events_per_file,
        seed=seed,
        executor=executor,
        testbed=testbed,
        progress=progress,
    )
    click.echo(f"wrote {target}")


generate.add_command(generate_gamma_command)
generate.add_command(generate_strain_command)
