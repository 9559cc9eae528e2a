"""The command line (layer 9) — ``saetta run``: an analysis over files, resumed, or one unit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from saetta._config import DEFAULT_CACHE_SIZE
from saetta.cli.runner import open_dataset, run_and_write
from saetta.cli.summary import summary
from saetta.dataset import DEFAULT_CHUNK_SIZE
from saetta.errors import SaettaError
from saetta.execute.unit import UnitOptions

__all__ = ["EXECUTOR_HELP", "run"]

F = TypeVar("F", bound=Callable[..., Any])

#: Options of ``saetta run`` that go to :func:`saetta.run` as they are.
_FORWARDED = (
    "chunk_size", "unit_timeout", "cache", "cache_size", "column_cache", "allow_partial", "progress"
)  # fmt: skip

EXECUTOR_HELP = (
    "Where units run: 'local' (this process), 'processes:N' (N worker processes), "
    "'dask:N' (a local Dask cluster of N workers) or 'dask://HOST:PORT' (a running Dask "
    "scheduler); see also --testbed."
)


def _folder_option(flag: str, envvar: str, text: str) -> Callable[[F], F]:
    """A folder option that may also come from an environment variable."""
    return click.option(
        flag, type=click.Path(file_okay=False), default=None, envvar=envvar,
        help=f"{text} [env: {envvar}].",
    )  # fmt: skip


@click.command()
@click.argument("analysis", required=False)
@click.argument("files", nargs=-1)
@click.option(
    "-o",
    "--output",
    "outputs",
    type=click.Path(dir_okay=False),
    multiple=True,
    help="Write the results: .root (ROOT histograms) or .json; repeat for several files.",
)
@click.option("--executor", default=None, help=EXECUTOR_HELP + "  [default: local]")
@click.option(
    "--chunk-size",
    default=None,
    type=int,
    help=f"Entries per work unit at most [default: {DEFAULT_CHUNK_SIZE:,}, fewer to keep "
    "every worker busy].",
)
@click.option("--tree", default="Events", show_default=True, help="Tree holding the events (ROOT).")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Record finished units here; running the same command with the same --run-dir "
    "again does only what is left [default: a new folder in ~/.cache/saetta/runs].",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Finish the run recorded in this run directory: ANALYSIS, FILES and the options "
    "come from it (an --executor or --testbed given here replaces the recorded one).",
)
@click.option(
    "--unit-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a work unit may run; one that runs longer fails and the others go on "
    "[default: no limit].",
)
@click.option(
    "--only-unit",
    default=None,
    help="Run just this work unit (as named in a failure, e.g. 'data/a.root[0:100000]') "
    "in this process, and show the analysis' traceback if it fails.",
)
@_folder_option(
    "--cache",
    "SAETTA_CACHE",
    "Keep what is read from remote files (root://, https://, s3://) in this folder, "
    "so the next run reads it locally",
)
@click.option(
    "--cache-size",
    default=DEFAULT_CACHE_SIZE,
    show_default=True,
    help="Upper bound of the --cache folder; least recently used blocks go first.",
)
@_folder_option(
    "--column-cache",
    "SAETTA_COLUMN_CACHE",
    "Keep decoded columns in this folder, so the next run over the same files skips decompression",
)
@click.option(
    "--testbed",
    default=None,
    help="Run on a named testbed from testbeds.yaml (see 'saetta testbeds list'); "
    "replaces --executor.",
)
@click.option(
    "--plots",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw every histogram into this image (PNG, PDF, SVG).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Write what was processed even if some units failed (marked partial).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def run(
    analysis: str | None,
    files: tuple[str, ...],
    outputs: tuple[str, ...],
    executor: str | None,
    chunk_size: int | None,
    tree: str,
    run_dir: str | None,
    resume: str | None,
    unit_timeout: float | None,
    only_unit: str | None,
    cache: str | None,
    cache_size: str,
    column_cache: str | None,
    testbed: str | None,
    plots: str | None,
    allow_partial: bool,
    progress: bool | None,
) -> None:
    """Run ANALYSIS over FILES: paths, URLs (root://, https://, s3://), glob patterns,
    @NAME for a dataset of the catalog (datasets.yaml), or one samples file (.yaml:
    files, cross-sections and roles per sample; the results are keyed by sample).

    \b
    ANALYSIS is one of:
      adl                    all eight ADL benchmark queries, in one pass
      adl.q5                 one of them (q1 ... q8)
      agc                    the Analysis Grand Challenge ttbar analysis (FILES: samples.yaml)
      gamma                  the ON/OFF analysis of gamma-ray event lists (see saetta gamma)
      my_analysis.py:func    a function events -> dict of hist.Hist / numbers
      package.module:func    the same, importable

    \b
    Every run records its finished units in a run directory; after a crash, a kill
    or Ctrl-C, --resume finishes it, running only what is left.

    \b
    Example:
      saetta run adl data/*.root -o results.root --executor processes:2
      saetta run adl data/*.root -o results.root --testbed slurm-local
      saetta run agc data/agc/samples.yaml -o agc.root --executor processes:2
      saetta run --resume ~/.cache/saetta/runs/20261129-101500-ab12cd
    """
    context = click.get_current_context()
    given = {
        name
        for name in ("executor", "testbed", "tree", "chunk_size")
        if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    if resume is not None:
        from saetta.execute.rundirs import read_command

        saved = read_command(resume)
        if analysis is None or not files:
            if saved.get("credentials_removed"):
                msg = (
                    f"the files of the run in {resume} had credentials in their URLs, which "
                    f"saetta does not store; give them again: saetta run {saved['analysis']} "
                    f"FILES --run-dir {resume}"
                )
                raise SaettaError(msg)
            analysis, files = saved["analysis"], tuple(saved["files"])
        outputs = outputs or tuple(saved.get("outputs") or ())
        plots = plots or saved.get("plots")
        if not {"executor", "testbed"} & given:
            executor, testbed = saved.get("executor"), saved.get("testbed")
        tree = tree if "tree" in given else saved.get("tree", tree)
        run_dir = resume
    elif analysis is None or not files:
        msg = "give ANALYSIS and FILES, or --resume RUN_DIR"
        raise click.UsageError(msg)
    if only_unit is not None:
        _only_unit(analysis, list(files), tree, only_unit)
        return
    forwarded = {name: context.params[name] for name in _FORWARDED}
    run_and_write(
        analysis,
        list(files),
        tuple(Path(o) for o in outputs),
        tree=tree,
        plots=Path(plots) if plots else None,
        executor=executor or "local",
        testbed=testbed,
        run_dir=run_dir,
        **forwarded,
    )


def _only_unit(analysis: str, files: list[str], tree: str, unit_id: str) -> None:
    from saetta.analyses import load_analysis
    from saetta.dataset import WorkUnit, file_key
    from saetta.execute.unit import run_unit
    from saetta.samples import Samples

    path, _, span = unit_id.rpartition("[")
    try:
        start, stop = (int(x) for x in span.rstrip("]").split(":"))
    except ValueError:
        msg = f"cannot read unit {unit_id!r}; write it as PATH[START:STOP]"
        raise SaettaError(msg) from None
    dataset = open_dataset(files, tree)
    function = load_analysis(analysis)
    if isinstance(dataset, Samples):
        function, dataset = dataset.analysis(function)
    info = next((f for f in dataset.files if file_key(f.path) == file_key(path)), None)
    if info is None:
        msg = f"unit {unit_id!r} is not in the given files"
        raise SaettaError(msg)
    unit = WorkUnit(info.path, info.tree, start, stop, info.format)
    options = UnitOptions(storage=dataset.storage)
    outcome = run_unit(function, unit, options=options)
    if outcome.failure is not None:
        click.echo(outcome.failure.traceback or str(outcome.failure), err=True)
        msg = f"unit {outcome.failure}"
        raise SaettaError(msg)
    click.echo(f"unit {unit}: ok, {unit.num_entries:,} events")
    click.echo(summary(outcome.result))
