"""The command line (layer 9) — ``saetta gamma`` (a point-source ON/OFF analysis of DL3
event lists) and ``saetta generate gamma`` (simulated observations to run it on)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from saetta.cli.run import EXECUTOR_HELP
from saetta.errors import SaettaError
from saetta.storage import atomic_write

__all__ = ["gamma_command", "generate_gamma_command"]


def _source(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        ra, dec = (float(v) for v in text.split(","))
    except ValueError:
        msg = f"--source: give RA,DEC in degrees, not {text!r}"
        raise click.BadParameter(msg) from None
    return ra, dec


@click.command("gamma")
@click.argument("inputs", nargs=-1, required=True, metavar="INDEX_OR_FILES...")
@click.option(
    "--source",
    default=None,
    help="RA,DEC of the source in degrees [default: each file's RA_OBJ, DEC_OBJ].",
)
@click.option(
    "--on-radius",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Radius of the ON region (and of each OFF region), deg.",
)
@click.option(
    "--off-regions",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Reflected OFF regions; alpha = 1 / this.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the results (histograms, counts, significance) as .json.",
)
@click.option("--executor", default="local", show_default=True, help=EXECUTOR_HELP)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=None, help="Events per work unit at most."
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Record finished units here; the same command with the same --run-dir "
    "again does only what is left [default: a new folder in ~/.cache/saetta/runs].",
)
@click.option(
    "--plots",
    type=click.Path(dir_okay=False),
    default=None,
    help="Draw the theta^2 plot (ON, and OFF times alpha) into this image.",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Give what was processed even if some units failed (marked partial).",
)
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: on a terminal).")  # fmt: skip
def gamma_command(
    inputs: tuple[str, ...],
    source: str | None,
    on_radius: float,
    off_regions: int,
    output: str | None,
    executor: str,
    chunk_size: int | None,
    run_dir: str | None,
    plots: str | None,
    allow_partial: bool,
    progress: bool | None,
) -> None:
    """Count gamma rays from a point source in DL3 event lists: ON events within
    --on-radius of it, OFF events in reflected regions, the excess and its Li & Ma
    significance. INDEX_OR_FILES: an hdu-index or obs-index file, a folder holding
    one, or event files and glob patterns.

    \b
    Example:
      saetta generate gamma obs/ --observations 8
      saetta gamma obs/ -o crab.json --plots theta2.png --executor processes:2
    """
    import saetta
    from saetta.analyses.gamma import OnOff
    from saetta.astro.dl3 import event_files
    from saetta.output import save

    if output is not None and Path(output).suffix.lower() != ".json":
        msg = f"cannot write {output}: give a .json output file"
        raise SaettaError(msg)
    if plots is not None and Path(plots).suffix.lower() not in {".png", ".pdf", ".svg"}:
        msg = f"cannot draw into {plots}: give a .png, .pdf or .svg file"
        raise SaettaError(msg)
    analysis = OnOff(source=_source(source), on_radius=on_radius, off_regions=off_regions)
    files = event_files(list(inputs))
    dataset = saetta.Dataset.open(files, "Events")
    result = saetta.run(
        analysis, dataset, executor=executor, chunk_size=chunk_size, run_dir=run_dir,
        allow_partial=allow_partial, progress=progress,
    )  # fmt: skip
    found = analysis.summary(result)
    click.echo(str(result.report))
    click.echo("")
    click.echo(str(found))
    if output is not None:
        save(result, Path(output))
        summary_path = Path(output).with_name(Path(output).stem + ".summary.json")
        atomic_write(summary_path, json.dumps(found.to_dict(), indent=1) + "\n")
        click.echo(f"wrote {output}")
        click.echo(f"wrote {summary_path}")
    if plots is not None:
        found.plot_theta2(plots)
        click.echo(f"wrote {plots}")
    if result.report.failures:
        failed = len(result.report.failures)
        click.echo(
            f"saetta: warning: result is PARTIAL: {failed} unit{'s' if failed != 1 else ''} "
            f"failed, {result.report.events_missing:,} events not processed",
            err=True,
        )


@click.command("gamma")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option(
    "--observations",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Observations (one event file each), in wobble mode around the source.",
)
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Expected events per observation (source and background).",
)
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed (same seed, same files).")  # fmt: skip
def generate_gamma_command(folder: str, observations: int, events: int, seed: int) -> None:
    """Write simulated gamma-ray observations into FOLDER: GADF DL3 event lists of a
    point source at the Crab's position (power-law spectrum) over an isotropic
    background, through a simple documented instrument, with their obs-index and
    hdu-index and truth.json (see docs/gamma.md)."""
    from saetta.astro.gamma_sim import generate_gamma

    started = time.perf_counter()
    made = generate_gamma(folder, observations=observations, events=events, seed=seed)
    seconds = time.perf_counter() - started
    click.echo(
        f"wrote {made.events:,} events in {len(made.files)} observation"
        f"{'s' if len(made.files) != 1 else ''} to {made.folder} in {seconds:.1f} s"
    )
    click.echo(f"analyse them: saetta gamma {made.hdu_index}")
