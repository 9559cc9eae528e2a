"""The command line (layer 9) — ``saetta gw``: a matched-filter search over strain files."""

from __future__ import annotations

import time

import click
import numpy as np

from saetta.cli.run import EXECUTOR_HELP

__all__ = ["gw_command"]


@click.command("gw")
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--threshold",
    type=float,
    default=8.0,
    show_default=True,
    help="SNR above which a clustered peak is a trigger.",
)
@click.option(
    "--window",
    type=float,
    default=64.0,
    show_default=True,
    help="Seconds of strain per work-unit entry.",
)
@click.option(
    "--pad",
    type=float,
    default=16.0,
    show_default=True,
    help="Seconds read either side of a window (the filter's reach).",
)
@click.option(
    "--output",
    "-o",
    default="triggers.parquet",
    show_default=True,
    help="Parquet file of the triggers.",
)
@click.option(
    "--injections",
    default=None,
    help="A table of injected chirps (time, mass1, mass2, snr): print found/missed.",
)
@click.option("--executor", default="local", show_default=True, help=EXECUTOR_HELP)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    # A window is about a second of filtering per core: one per unit keeps every
    # worker busy, and the unit's own cost (milliseconds) stays negligible.
    help="Windows per work unit.",
)
@click.option(
    "--run-dir", default=None, help="Run directory; the same command again does only what is left."
)
@click.option("--progress/--no-progress", default=None)
def gw_command(
    files: tuple[str, ...],
    threshold: float,
    window: float,
    pad: float,
    output: str,
    injections: str | None,
    executor: str,
    chunk_size: int,
    run_dir: str | None,
    progress: bool | None,
) -> None:  # fmt: skip
    """Search strain FILES (GWOSC HDF5) for inspirals with the default TaylorF2 bank
    and write the triggers to a Parquet file.

    \b
    Example:
      saetta generate strain strain/ --duration 1024
      saetta gw strain/*.hdf5 -o triggers.parquet --injections strain/injections.parquet
    """
    import saetta
    from saetta.analyses.gw import Search
    from saetta.formats.strain import windows

    started = time.perf_counter()
    dataset = saetta.Dataset.open(list(files), format="strain", tree=windows(window, pad))
    result = saetta.run(
        Search(threshold=threshold),
        dataset,
        executor=executor,
        chunk_size=chunk_size,
        progress=progress,
        run_dir=run_dir,
        command={"argv": ["gw", *files]},
    )
    triggers = result["triggers"]
    triggers.write_parquet(output)
    seconds = time.perf_counter() - started
    click.echo(
        f"{len(triggers):,} triggers in {result['seconds']:,.0f} s of strain "
        f"({result['windows']:,} windows) in {seconds:.1f} s; wrote {output}"
    )
    if injections:
        _compare(triggers, injections)


def _compare(triggers: object, path: str) -> None:
    import pyarrow.parquet as pq

    from saetta.errors import DatasetError
    from saetta.tables import Table

    assert isinstance(triggers, Table)
    try:
        truth = pq.read_table(path, columns=["time", "mass1", "mass2", "snr"]).to_pydict()
    except (OSError, KeyError, ValueError) as exc:
        msg = f"injections: cannot read time, mass1, mass2, snr from {path}: {exc}"
        raise DatasetError(msg, path=path) from exc
    times = triggers["time"]
    found = 0
    for t, m1, m2, snr in zip(
        truth["time"], truth["mass1"], truth["mass2"], truth["snr"], strict=True
    ):
        near = np.flatnonzero(np.abs(times - t) < 0.010) if len(times) else np.zeros(0, dtype=int)
        if len(near):
            found += 1
            got = triggers["snr"][near].max()
            click.echo(f"found   {t:.3f}  {m1:5.1f}+{m2:5.1f}  SNR {snr:5.1f} -> {got:5.1f}")
        else:
            click.echo(f"missed  {t:.3f}  {m1:5.1f}+{m2:5.1f}  SNR {snr:5.1f}")
    click.echo(f"found {found} of {len(truth['time'])} injections")
