"""The command line (layer 9) — ``saetta train``: a training script as a distributed job."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["train"]


@click.command()
@click.argument("script", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--data",
    default=None,
    help="What the script's loader(data) reads: files, a glob, a URL or @name of the "
    "dataset catalog [default: the script's own].",
)
@click.option(
    "--testbed",
    default=None,
    help="A testbed (saetta testbeds list) whose workers run the ranks: dask, slurm or "
    "htcondor [default: processes on this machine].",
)
@click.option(
    "--workers",
    "-n",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Ranks (DDP processes), one per worker.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="run.seed, for the script's own seeding."
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Batches between checkpoints (0: at epoch ends only).",
)
@click.option(
    "--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="A new or empty folder for the run [default: a new one under ~/.cache/saetta/runs].",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Continue the run in this folder from its last checkpoint.",
)
def train(
    script: str | None,
    data: str | None,
    testbed: str | None,
    workers: int,
    epochs: int,
    seed: int,
    checkpoint_every: int,
    device: str,
    run_dir: str | None,
    resume_dir: str | None,
) -> None:
    """Train a network: run SCRIPT's train(run) on --workers ranks as one PyTorch
    DistributedDataParallel job, each rank reading its own share of the data,
    checkpointed, resumable after a kill, its weights saved as RUN_DIR/model.pt.

    SCRIPT defines loader(data), which returns a saetta.ml.Loader, and train(run);
    see saetta.ml.training's documentation. Needs torch: pip install 'saetta[ml]'.

    \b
    Examples:
      saetta train train.py --data 'data/*.root' --epochs 5
      saetta train train.py --data @ttbar_vs_wjets --testbed slurm-local --workers 2
      saetta train --resume ~/.cache/saetta/runs/train-20261201-101500-ab12cd
    """
    try:
        from saetta.ml import training
    except ImportError as exc:
        msg = f"saetta train needs torch ({exc.name} is missing): pip install 'saetta[ml]'"
        raise click.ClickException(msg) from None

    if resume_dir is not None:
        if script is not None:
            msg = "give either SCRIPT or --resume RUN_DIR (the run knows its script)"
            raise click.UsageError(msg)
        click.echo(f"saetta: resuming {resume_dir}", err=True)
        result = training.resume(resume_dir, data=data)
    else:
        if script is None:
            raise click.UsageError("give the training SCRIPT, or --resume RUN_DIR")
        folder = Path(run_dir) if run_dir else training.new_run_dir()
        click.echo(f"saetta: run directory {folder} (saetta train --resume {folder})", err=True)
        result = training.train(
            script,
            data=data,
            epochs=epochs,
            world_size=workers,
            testbed=testbed,
            seed=seed,
            checkpoint_every=checkpoint_every,
            device=device,
            directory=folder,
        )
    same = len(set(result.digests)) == 1
    in_loop = result.events / result.loop_s if result.loop_s else 0.0
    click.echo(
        f"trained {result.events:,} events on {result.settings.world_size} rank(s) in "
        f"{result.seconds:.1f} s end to end ({in_loop:,.0f} events/s in the training loop, "
        f"waiting for data {result.data_wait:.1%} of it)"
    )
    for failure in result.failures:
        click.echo(f"not trained on: {failure}", err=True)
    click.echo(
        f"weights: {'identical on every rank' if same else 'DIFFERENT between ranks'}, sha256 {result.digests[0][:16]}"
    )
    click.echo(f"wrote {result.model}")
