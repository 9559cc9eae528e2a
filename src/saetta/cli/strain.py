"""The command line (layer 9) — ``saetta generate strain``: simulated gravitational-wave
strain files in the GWOSC layout, with chirps injected at known times."""

from __future__ import annotations

import os
import time

import click

__all__ = ["strain"]


@click.command("strain")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--duration",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Seconds per file.",
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Samples per second.",
)
@click.option(
    "--files", type=click.IntRange(min=1), default=1, show_default=True, help="Consecutive files."
)
@click.option("--detector", default="H1", show_default=True, help="Detector name.")
@click.option(
    "--gps-start",
    type=int,
    default=1_000_000_000,
    show_default=True,
    help="GPS time of the first sample.",
)
@click.option(
    "--injections",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Chirps per file (10-30 solar masses, optimal SNR 8-40).",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same files)."
)
def strain(
    folder: str,
    duration: int,
    rate: int,
    files: int,
    detector: str,
    gps_start: int,
    injections: int,
    seed: int,
) -> None:
    """Write FOLDER/H-H1_SAETTA-<gps>-<duration>.hdf5 strain files (aLIGO-like coloured
    Gaussian noise with TaylorF2 chirps) and FOLDER/injections.parquet listing the chirps.

    \b
    Example:
      saetta generate strain data/gw --files 2 --injections 8
    """
    from saetta.astro.strain_sim import generate_strain

    started = time.perf_counter()
    written = generate_strain(
        folder,
        duration=duration,
        rate=rate,
        files=files,
        detector=detector,
        gps_start=gps_start,
        injections=injections,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    count = len(written.paths)
    click.echo(
        f"wrote {count} strain file{'s' if count != 1 else ''} of {duration:,} s at {rate:,} Hz "
        f"to {folder} ({written.size_bytes / 1e6:,.1f} MB) in {seconds:.1f} s, "
        f"with {len(written.chirps)} chirps listed in {written.injections}"
    )
    pattern = os.path.join(folder, "*.hdf5")
    click.echo(f"search them: saetta gw {pattern} --injections {written.injections}")
