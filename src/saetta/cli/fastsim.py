"""The command line (layer 9) — ``saetta simulate showers`` and ``saetta fastsim``:
calorimeter showers simulated in detail, a generator trained on them, its fidelity
measured, and showers generated at scale."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from saetta.cli.run import EXECUTOR_HELP

__all__ = ["fastsim", "simulate"]

_ENERGIES_HELP = (
    "Incident energies in GeV: LOW-HIGH draws them log-uniformly, E1,E2,... shares the "
    "showers out among these energies."
)


def _production_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--events", "-n", type=click.IntRange(min=1), default=10_000,
                         show_default=True, help="Showers to make."),
            click.option("--energies", default="1-1000", show_default=True, help=_ENERGIES_HELP),
            click.option("--events-per-file", type=click.IntRange(min=1), default=1000,
                         show_default=True,
                         help="Showers per output file: one job each, run in parallel."),
            click.option("--seed", type=int, default=1, show_default=True,
                         help="Base seed (same seed, same showers)."),
            click.option("--executor", default="local", show_default=True, help=EXECUTOR_HELP),
            click.option("--testbed", default=None,
                         help="Run the jobs on a named testbed (replaces --executor)."),
            click.option("--progress/--no-progress", default=None,
                         help="Progress bar (default: on a terminal)."),
        ]
    ):  # fmt: skip
        function = option(function)
    return function


def _report(production: object, started: float) -> None:
    from saetta.fastsim.production import Production

    assert isinstance(production, Production)
    seconds = time.perf_counter() - started
    click.echo(
        f"wrote {production.showers:,} showers in {len(production.shards)} "
        f"file{'s' if len(production.shards) != 1 else ''} to {production.folder} "
        f"({production.shards.bytes / 1e6:,.1f} MB) in {seconds:.1f} s "
        f"({production.showers / seconds:,.1f} showers/s, start-up excluded)"
    )
    click.echo(f"read them as a dataset: {production.folder}/showers_*.h5")


@click.group()
def simulate() -> None:
    """Detailed simulation: make reference samples where no Geant4 is installed."""


@simulate.command("showers")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--particle", type=click.Choice(["electron", "photon"]), default="electron",
              show_default=True)  # fmt: skip
@click.option("--calorimeter", default="si-w", show_default=True,
              help="The sampling calorimeter: si-w (tungsten and silicon, 24 X0), pb-scint, or homogeneous-w.")  # fmt: skip
@_production_options
def simulate_showers(
    folder: str,
    particle: str,
    calorimeter: str,
    events: int,
    energies: str,
    events_per_file: int,
    seed: int,
    executor: str,
    testbed: str | None,
    progress: bool | None,
) -> None:
    """Simulate electromagnetic showers in detail (saetta's numba Monte Carlo: every
    particle above the cut-offs tracked in 3D through absorber and active layers) into
    FOLDER as CaloChallenge HDF5 files, one job per file on the executor.

    \b
    The same command again (after a kill or Ctrl-C) makes only the files still missing.
    Example:
      saetta simulate showers showers/ --events 20000 --energies 1-1000 --executor processes:2
    """
    from saetta.fastsim.production import Detailed, Energies, produce

    started = time.perf_counter()
    maker = Detailed(particle, calorimeter)
    production = produce(
        folder,
        maker,
        events=events,
        energies=Energies.parse(energies),
        binning=maker.binning,
        events_per_file=events_per_file,
        seed=seed,
        attrs={"generator": "saetta simulate showers", "calorimeter": calorimeter},
        executor=executor,
        testbed=testbed,
        progress=progress,
    )
    _report(production, started)


@click.group()
def fastsim() -> None:
    """Fast simulation: train a shower generator, measure its fidelity, generate at scale.
    Needs torch: pip install 'saetta[ml]'.

    \b
      saetta simulate showers showers/ --events 20000 --executor processes:2
      saetta simulate showers reference/ --events 5000 --seed 2
      saetta fastsim train showers/ --epochs 30 --run-dir flow/
      saetta fastsim generate flow/generator.pt generated/ --events 5000
      saetta fastsim evaluate reference/ generated/ -o report.html
    """


@fastsim.command("train")
@click.argument("showers", required=False)
@click.option(
    "--model",
    "kind",
    default=None,
    help="The generator's kind [default: the first of saetta.fastsim.model.KINDS].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Showers per batch and rank."
)
@click.option("--lr", type=float, default=None, help="Adam's learning rate.")
@click.option(
    "--workers",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ranks (DDP processes), one per worker.",
)
@click.option(
    "--testbed", default=None, help="A testbed whose workers run the ranks (slurm, htcondor, dask)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="A new or empty folder for the run [default: under ~/.cache/saetta/runs].",
)
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue the run in this folder from its last checkpoint.")  # fmt: skip
def fastsim_train(
    showers: str | None,
    kind: str | None,
    epochs: int,
    batch_size: int | None,
    lr: float | None,
    workers: int,
    testbed: str | None,
    seed: int,
    device: str,
    run_dir: str | None,
    resume_dir: str | None,
) -> None:
    """Train a shower generator on SHOWERS (a folder of shower files, a glob, or the
    CaloChallenge's files), conditioned on the incident energy, as a saetta train job:
    checkpointed, resumable, on local ranks or a testbed's. Writes RUN_DIR/generator.pt."""
    training = _training()
    from saetta.ml import training as ml_training

    time.perf_counter()
    if resume_dir is not None:
        if showers is not None:
            raise click.UsageError("give either SHOWERS or --resume RUN_DIR")
        click.echo(f"saetta: resuming {resume_dir}", err=True)
        result = ml_training.resume(resume_dir)
        generator = training.write_generator(resume_dir, result.settings.script)
    else:
        if showers is None:
            raise click.UsageError("give the SHOWERS to train on, or --resume RUN_DIR")
        folder = Path(run_dir) if run_dir else ml_training.new_run_dir()
        click.echo(
            f"saetta: run directory {folder} (saetta fastsim train --resume {folder})", err=True
        )
        settings = {k: v for k, v in (("batch_size", batch_size), ("lr", lr)) if v is not None}
        result = training.train_generator(
            showers, kind=kind, epochs=epochs, world_size=workers, testbed=testbed, seed=seed,
            directory=folder, device=device, **settings,
        )  # fmt: skip
        generator = result.directory / "generator.pt"
    last = result.losses[-1] if result.losses else {}
    losses = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.endswith("loss"))
    click.echo(
        f"trained on {result.events:,} showers on {result.settings.world_size} rank(s) in "
        f"{result.seconds:.1f} s (the training job); last epoch: {losses or 'not logged'}"
    )
    click.echo(f"wrote {generator}")


@fastsim.command("generate")
@click.argument("model", type=click.Path(dir_okay=False, exists=True))
@click.argument("folder", type=click.Path(file_okay=False))
@_production_options
def fastsim_generate(
    model: str,
    folder: str,
    events: int,
    energies: str,
    events_per_file: int,
    seed: int,
    executor: str,
    testbed: str | None,
    progress: bool | None,
) -> None:
    """Generate showers with the trained MODEL (generator.pt) into FOLDER, in the same
    layout and through the same jobs as 'saetta simulate showers'."""
    _training()
    from saetta.fastsim.production import Energies, Learned, produce

    started = time.perf_counter()
    maker = Learned(model)
    production = produce(
        folder,
        maker,
        events=events,
        energies=Energies.parse(energies),
        binning=maker.binning,
        events_per_file=events_per_file,
        seed=seed,
        attrs={"generator": f"saetta fastsim generate {Path(model).name}"},
        executor=executor,
        testbed=testbed,
        progress=progress,
    )
    _report(production, started)


@fastsim.command("evaluate")
@click.argument("reference")
@click.argument("generated")
@click.option(
    "--second-reference",
    default=None,
    help="An independent sample of the reference: its metrics against REFERENCE are the floor.",
)
@click.option(
    "--binning",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="The binning XML, for files that do not carry one (the CaloChallenge's).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Showers read per sample.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default="fastsim-report.html",
    show_default=True,
    help="The HTML report.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the figures as JSON.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the classifier tests.")  # fmt: skip
def fastsim_evaluate(
    reference: str,
    generated: str,
    second_reference: str | None,
    binning: str | None,
    limit: int | None,
    output: str,
    json_path: str | None,
    seed: int,
) -> None:
    """Compare GENERATED showers with REFERENCE ones by the CaloChallenge's metrics: the
    high-level features' histograms and separation powers, and classifier two-sample
    tests (AUC on held-out showers) on the high-level features and on the voxels."""
    _training()
    from saetta.fastsim.evaluation import evaluate
    from saetta.fastsim.showerfile import read_showers

    samples = [
        read_showers(p, binning=binning, limit=limit) if p else None
        for p in (reference, generated, second_reference)
    ]
    ref, gen, second = samples
    assert ref is not None
    assert gen is not None
    result = evaluate(ref, gen, second_reference=second, seed=seed)
    click.echo(str(result))
    path = result.write_html(output)
    if json_path:
        Path(json_path).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    click.echo(f"wrote {path}")


def _training() -> Any:
    try:
        import torch  # noqa: F401

        from saetta.fastsim import training
    except ImportError as exc:
        msg = f"saetta fastsim needs torch ({exc.name} is missing): pip install 'saetta[ml]'"
        raise click.ClickException(msg) from None
    return training
