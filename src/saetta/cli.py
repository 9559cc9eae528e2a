"""Stage: command line (layer 9) — the ``saetta`` command.

Errors saetta raises on purpose (:class:`~saetta.SaettaError`) print one line
and exit 1; ``--debug`` shows the traceback instead. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import click

from saetta._config import DEFAULT_CACHE_SIZE, data_cache_dir, runs_dir
from saetta._version import __version__
from saetta.dataset import DEFAULT_CHUNK_SIZE
from saetta.errors import SaettaError, SaettaWarning
from saetta.execute.unit import UnitOptions
from saetta.storage import atomic_write, scrub
from saetta.usecase_cli import plan, testbeds_history, validate

__all__ = ["main"]

EXECUTOR_HELP = (
    "Where units run: 'local' (this process), 'processes:N' (N worker processes), "
    "'dask:N' (a local Dask cluster of N workers) or 'dask://HOST:PORT' (a running Dask "
    "scheduler); see also --testbed."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="saetta")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """saetta: analyse event data (ROOT, Parquet) from a laptop to a batch system.

    \b
    Start with:   saetta demo
    Then:         saetta run adl data/*.root -o results.root --executor processes:2
    """
    ctx.obj = {"debug": debug}


@cli.command()
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
    _run_and_write(
        "adl",
        [str(sample)],
        (folder / "results.root", folder / "results.json"),
        executor,
        None,
        "Events",
        progress=True,
        allow_partial=False,
        plots=folder / "adl.png",
    )
    click.echo(f"\nopen {folder / 'adl.png'} to see the histograms")


@cli.command()
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
@click.option(
    "--cache",
    "cache",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SAETTA_CACHE",
    help="Keep what is read from remote files (root://, https://, s3://) in this folder, "
    "so the next run reads it locally [env: SAETTA_CACHE].",
)
@click.option(
    "--cache-size",
    default=DEFAULT_CACHE_SIZE,
    show_default=True,
    help="Upper bound of the --cache folder; least recently used blocks go first.",
)
@click.option(
    "--column-cache",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SAETTA_COLUMN_CACHE",
    help="Keep decoded columns in this folder, so the next run over the same files "
    "skips decompression [env: SAETTA_COLUMN_CACHE].",
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
    or @NAME for a dataset of the catalog (datasets.yaml).

    \b
    ANALYSIS is one of:
      adl                    all eight ADL benchmark queries, in one pass
      adl.q5                 one of them (q1 ... q8)
      my_analysis.py:func    a function events -> dict of hist.Hist / numbers
      package.module:func    the same, importable

    \b
    Every run records its finished units in a run directory; after a crash, a kill
    or Ctrl-C, --resume finishes it, running only what is left.

    \b
    Example:
      saetta run adl data/*.root -o results.root --executor processes:2
      saetta run adl data/*.root -o results.root --testbed slurm-local
      saetta run --resume ~/.cache/saetta/runs/20261129-101500-ab12cd
    """
    context = click.get_current_context()
    given = {
        name
        for name in ("executor", "testbed", "tree", "chunk_size")
        if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    if resume is not None:
        saved = _saved_command(resume)
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
    _run_and_write(
        analysis,
        list(files),
        tuple(Path(o) for o in outputs),
        executor or "local",
        chunk_size,
        tree,
        progress=progress,
        allow_partial=allow_partial,
        plots=Path(plots) if plots else None,
        testbed=testbed,
        column_cache=column_cache,
        cache=cache,
        cache_size=cache_size,
        run_dir=run_dir,
        unit_timeout=unit_timeout,
    )


def _saved_command(run_dir: str) -> Mapping[str, Any]:
    from saetta.execute.journal import read_command

    saved = read_command(run_dir)
    analysis, files = saved.get("analysis"), saved.get("files")
    if not isinstance(analysis, str) or not (
        isinstance(files, list) and files and all(isinstance(f, str) for f in files)
    ):
        msg = f"cannot resume from {run_dir}: its run.json records no analysis and files"
        raise SaettaError(msg)
    return saved


def _only_unit(analysis: str, files: list[str], tree: str, unit_id: str) -> None:
    from saetta.analyses import load_analysis
    from saetta.dataset import WorkUnit, file_key
    from saetta.execute.unit import run_unit

    path, _, span = unit_id.rpartition("[")
    try:
        start, stop = (int(x) for x in span.rstrip("]").split(":"))
    except ValueError:
        msg = f"cannot read unit {unit_id!r}; write it as PATH[START:STOP]"
        raise SaettaError(msg) from None
    dataset = _dataset(files, tree)
    info = next((f for f in dataset.files if file_key(f.path) == file_key(path)), None)
    if info is None:
        msg = f"unit {unit_id!r} is not in the given files"
        raise SaettaError(msg)
    unit = WorkUnit(info.path, info.tree, start, stop, info.format)
    options = UnitOptions(storage=dataset.storage)
    outcome = run_unit(load_analysis(analysis), unit, options=options)
    if outcome.failure is not None:
        click.echo(outcome.failure.traceback or str(outcome.failure), err=True)
        msg = f"unit {outcome.failure}"
        raise SaettaError(msg)
    click.echo(f"unit {unit}: ok, {unit.num_entries:,} events")
    click.echo(_summary(outcome.result))


def _command(
    analysis: str,
    files: list[str],
    tree: str,
    executor: str,
    testbed: str | None,
    outputs: tuple[Path, ...],
    plots: Path | None,
) -> dict[str, Any]:
    """What ``saetta run --resume`` needs to run this again, from any folder, without secrets."""
    from saetta.storage import is_remote, redact

    where, sep, name = analysis.rpartition(":")
    if sep and where.endswith(".py"):
        analysis = f"{os.path.abspath(where)}:{name}"
    stored = [f if f.startswith("@") or is_remote(f) else os.path.abspath(f) for f in files]
    return {
        "analysis": analysis,
        "files": [redact(f) for f in stored],
        "credentials_removed": any(redact(f) != f for f in stored),
        "tree": tree,
        "executor": executor,
        "testbed": testbed,
        "outputs": [str(o.absolute()) for o in outputs],
        "plots": str(plots.absolute()) if plots else None,
    }


def _run_and_write(
    analysis: str,
    files: list[str],
    outputs: tuple[Path, ...],
    executor: str,
    chunk_size: int | None,
    tree: str,
    *,
    progress: bool | None,
    allow_partial: bool,
    plots: Path | None,
    testbed: str | None = None,
    column_cache: str | None = None,
    cache: str | None = None,
    cache_size: str = DEFAULT_CACHE_SIZE,
    run_dir: str | None = None,
    unit_timeout: float | None = None,
) -> None:
    import saetta
    from saetta.analyses import load_analysis
    from saetta.execute.run import Interrupted
    from saetta.output import save
    from saetta.storage import redact

    _check_outputs(outputs, plots)
    function = load_analysis(analysis)
    dataset = _dataset(files, tree, cache, cache_size)
    command = _command(analysis, files, tree, executor, testbed, outputs, plots)
    try:
        result = saetta.run(
            function,
            dataset,
            executor=executor,
            chunk_size=chunk_size,
            progress=progress,
            allow_partial=allow_partial,
            testbed=testbed,
            column_cache=column_cache,
            cache=cache,
            cache_size=cache_size,
            run_dir=run_dir,
            unit_timeout=unit_timeout,
            command=command,
        )
    except Interrupted as exc:
        # Until the process is gone (the pool's threads are joined at exit), a second
        # Ctrl-C or SIGTERM ends it at once, without a traceback.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, _stop_at_once)
        why = "terminated" if _TERMINATED.is_set() else "interrupted"
        click.echo(
            f"saetta: {why}; finished units are kept. Resume with: "
            f"saetta run --resume {shlex.quote(str(exc.run_dir))}",
            err=True,
        )
        sys.exit(143 if _TERMINATED.is_set() else 130)
    except saetta.UnitError as exc:
        partial = exc.result
        if partial is not None:
            shown = " ".join(shlex.quote(redact(f)) for f in files)
            click.echo(str(partial.report))
            click.echo(
                f"\nrun directory: {partial.run_dir}\n"
                f"  reproduce a failed unit: saetta run {shlex.quote(analysis)} {shown} "
                f"--only-unit {shlex.quote(partial.report.failures[0].unit.id)}\n"
                f"  after fixing the cause, finish the run: saetta run --resume "
                f"{shlex.quote(str(partial.run_dir))}"
            )
        raise
    click.echo(_summary(result))
    click.echo("")
    click.echo(str(result.report))
    if outputs:
        click.echo("")
    reports = {o.with_name(o.stem + ".report.json"): None for o in outputs}
    for output in outputs:
        save(result, output)
        click.echo(f"wrote {output}")
    for report_path in reports:
        atomic_write(report_path, json.dumps(result.report.to_dict(), indent=1) + "\n")
        click.echo(f"wrote {report_path}")
    if plots is not None:
        from saetta.plot import save_plots

        save_plots(result, plots)
        click.echo(f"wrote {plots}")
    if result.report.failures:
        failed = len(result.report.failures)
        click.echo(
            f"saetta: warning: result is PARTIAL: {failed} unit{'s' if failed != 1 else ''} "
            f"failed, {result.report.events_missing:,} events not processed",
            err=True,
        )


def _dataset(
    files: list[str], tree: str, cache: str | None = None, cache_size: str = DEFAULT_CACHE_SIZE
) -> Any:
    """Open FILES; ``@name`` entries come from the dataset catalog."""
    import saetta

    named = [f for f in files if f.startswith("@")]
    if not named:
        return saetta.Dataset.open(files, tree, cache=cache, cache_size=cache_size)
    if len(files) > 1:
        msg = "give either one @dataset from the catalog or files, not both"
        raise SaettaError(msg)
    return saetta.Dataset.from_catalog(named[0][1:], cache=cache, cache_size=cache_size)


def _check_outputs(outputs: tuple[Path, ...], plots: Path | None) -> None:
    """Refuse a bad output name before the run, not after it."""
    for target in outputs:
        if target.suffix.lower() not in {".root", ".json"}:
            msg = f"cannot write {target}: give a .root or .json output file"
            raise SaettaError(msg)
    if plots is not None and plots.suffix.lower() not in {".png", ".pdf", ".svg"}:
        msg = f"cannot draw into {plots}: give a .png, .pdf or .svg file"
        raise SaettaError(msg)


def _summary(result: Mapping[str, Any], prefix: str = "") -> str:
    """One line per result: a histogram's entries (all bins), in range and mean; a value."""
    lines = [f"{'result':<22}{'entries':>12}{'in range':>12}{'mean':>10}"] if not prefix else []
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            lines.append(_summary(value, f"{name}/"))
        elif hasattr(value, "axes") and hasattr(value, "values"):
            lines.append(f"{name:<22}{_histogram_summary(value)}")
        else:
            text = (
                f"{value:,}"
                if isinstance(value, int) and not isinstance(value, bool)
                else str(value)
            )
            lines.append(f"{name:<22}{text:>12}")
    return "\n".join(line for line in lines if line)


def _histogram_summary(h: Any) -> str:
    """Entries, in-range sum and (1-D) mean of any histogram, whatever its storage."""
    import boost_histogram as bh
    import numpy as np

    per_bin = h.counts if h.kind == bh.Kind.MEAN else h.values  # a profile: its entries
    values = np.asarray(per_bin(flow=True), dtype=float)
    inside = np.asarray(per_bin(), dtype=float)
    total = float(inside.sum())
    mean = float("nan")
    if h.ndim == 1 and total and h.axes[0].traits.continuous:
        mean = float((np.asarray(h.axes[0].centers) * inside).sum() / total)
    return f"{values.sum():>12,.0f}{total:>12,.0f}{mean:>10.2f}"


@cli.command()
@click.argument("file")
@click.option("--tree", default=None, help="Only this tree (default: every tree in the file).")
def inspect(file: str, tree: str | None) -> None:
    """Show what FILE holds: for event files the trees (entries, branches, types,
    compression), for saetta's own outputs (.root, .json) the histograms and the run."""
    from saetta.dataset import format_of, open_reader
    from saetta.output import describe
    from saetta.storage import expand

    path = expand([file])[0]
    if path.lower().endswith(".json"):
        click.echo(str(describe(path)))
        return
    if format_of(path) == "parquet":
        import pyarrow.parquet as pq

        reader = open_reader(path, "Events", "parquet")
        meta = pq.ParquetFile(path).metadata
        click.echo(
            f"{path}: Parquet, {reader.num_entries:,} rows in {meta.num_row_groups} row groups"
        )
        codec = meta.row_group(0).column(0).compression if meta.num_row_groups else "-"
        click.echo(f"compression: {codec}")
        _print_columns(reader.columns.values(), {})
        return
    import uproot

    from saetta.formats.root import RootReader, list_trees

    trees = [tree] if tree else list_trees(path)
    if not tree and not trees:
        summary = describe(path)
        if summary.is_saetta or summary.histograms:
            click.echo(str(summary))
            return
    if tree:
        RootReader(path, tree).close()  # a wrong --tree fails here, listing the trees
    with uproot.open(path) as f:
        click.echo(
            f"{path}: ROOT file, {os.path.getsize(path) / 1e6:,.1f} MB, "
            f"compression {f.file.compression}"
        )
        for name in trees:
            t = f[name]
            if not hasattr(t, "iteritems"):
                click.echo(f"\n{name}: {type(t).__name__}, {t.num_entries:,} entries")
                continue
            sizes = {b.name: (b.compressed_bytes, b.uncompressed_bytes) for b in t.branches}
            click.echo(f"\n{name}: TTree, {t.num_entries:,} entries, {len(sizes)} branches")
            reader = RootReader(path, name)
            _print_columns(reader.columns.values(), sizes)
            reader.close()


def _print_columns(columns: Any, sizes: dict[str, tuple[int, int]]) -> None:
    header = f"  {'branch':<28}{'type':<16}"
    if sizes:
        header += f"{'compressed':>14}{'ratio':>8}"
    click.echo(header)
    for c in columns:
        kind = f"{c.dtype}[]" if c.jagged else c.dtype
        line = f"  {c.name:<28}{kind:<16}"
        if c.name in sizes:
            comp, raw = sizes[c.name]
            line += f"{comp / 1e6:>11.2f} MB{raw / comp if comp else 0:>8.2f}"
        click.echo(line)


@cli.group()
def testbeds() -> None:
    """Named places to run (testbeds.yaml): list them, check one works."""


@testbeds.command("list")
def testbeds_list() -> None:
    """List the testbeds saetta knows, and the file they come from."""
    from saetta.execute.testbeds import find_testbeds_file, load_testbeds

    where = find_testbeds_file()
    click.echo(f"testbeds file: {where or 'none found (see saetta testbeds --help)'}")
    for bed in load_testbeds().values():
        click.echo("  " + bed.describe())


@testbeds.command("check")
@click.argument("name")
def testbeds_check(name: str) -> None:
    """Start testbed NAME, count its workers, check they run saetta with the same
    package versions as here, and stop it again."""
    import time

    from saetta.execute.testbeds import testbed

    bed = testbed(name)
    click.echo(bed.describe())
    if bed.kind == "local":
        click.echo(f"ok: {bed.executor} on this machine ({os.cpu_count()} cores)")
        return
    from saetta.execute.dask import _versions, check_environment

    started = time.perf_counter()
    with bed.client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        check_environment(client)
        elapsed = time.perf_counter() - started
        click.echo(f"ok: {len(workers)} workers up in {elapsed:.1f} s, environment matches:")
        for package, version in _versions().items():
            click.echo(f"  {package:<12} {version}")


@cli.group()
def cache() -> None:
    """The data cache tier: what remote reads left on this disk."""


_CACHE_DIR = str(data_cache_dir())


@cache.command("info")
@click.argument("folder", default=_CACHE_DIR, required=False)
def cache_info_command(folder: str) -> None:
    """Show the files, blocks and bytes held in FOLDER [default: ~/.cache/saetta/data]."""
    from saetta.storage import cache_info

    info = cache_info(folder)
    click.echo(
        f"{info['directory']}: {info['files']:,} files, {info['blocks']:,} blocks, "
        f"{info['bytes'] / 1e6:,.1f} MB"
    )


@cache.command("clear")
@click.argument("folder", default=_CACHE_DIR, required=False)
def cache_clear_command(folder: str) -> None:
    """Delete the blocks cached in FOLDER [default: ~/.cache/saetta/data].

    Only a folder saetta made as a data cache is touched, and in it only the
    block files saetta wrote.
    """
    from saetta.storage import clear_cache

    freed = clear_cache(folder)
    click.echo(f"freed {freed / 1e6:,.1f} MB in {folder}")


@cli.group()
def runs() -> None:
    """Run directories: list them, delete old ones."""


@runs.command("list")
@click.option(
    "--base",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to look [default: ~/.cache/saetta/runs].",
)
def runs_list(base: str | None) -> None:
    """List the run directories saetta made: analysis, start, units done, state, size."""
    from saetta.execute.journal import list_runs

    found = list_runs(base)
    click.echo(
        f"{len(found)} run director{'y' if len(found) == 1 else 'ies'} in {base or runs_dir()}"
    )
    for info in found:
        state = {True: "complete", False: "partial", None: "unfinished"}[info.complete]
        click.echo(
            f"  {info.directory.name}  {info.analysis}  {info.created}  "
            f"{info.units_done:,} units  {state}  {info.bytes / 1e6:,.1f} MB"
        )


@runs.command("clean")
@click.option(
    "--older-than",
    default="7d",
    show_default=True,
    help="Delete run directories whose last session ended longer ago than this "
    "(e.g. 12h, 7d, 0 for all).",
)
@click.option("--base", type=click.Path(file_okay=False), default=None, help="As for list.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
def runs_clean(older_than: str, base: str | None, dry_run: bool) -> None:
    """Delete old run directories (only ones saetta made; never one a run is using)."""
    import time

    from saetta.errors import JournalError
    from saetta.execute.journal import list_runs, remove_run
    from saetta.usecase.quantities import parse_duration

    age = 0.0 if older_than.strip() in {"0", "0s"} else parse_duration(older_than, "--older-than")
    now = time.time()
    removed = 0
    for info in list_runs(base):
        try:
            last = max(p.stat().st_mtime for p in info.directory.iterdir())
        except (OSError, ValueError):
            continue
        if now - last < age:
            continue
        if dry_run:
            click.echo(f"would delete {info.directory}")
            continue
        try:
            left = remove_run(info.directory)
        except JournalError as exc:
            click.echo(f"kept {info.directory}: {exc}")
            continue
        removed += 1
        if left:
            click.echo(f"kept {info.directory}: it holds files saetta did not write")
    if not dry_run:
        click.echo(f"deleted {removed} run director{'y' if removed == 1 else 'ies'}")


@cli.group()
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


cli.add_command(plan)
cli.add_command(validate)
testbeds.add_command(testbeds_history)


#: Set by SIGTERM: the run winds down as after one Ctrl-C.
_TERMINATED = threading.Event()


def _terminate(signum: int, frame: Any) -> None:
    _TERMINATED.set()
    raise KeyboardInterrupt


def _stop_at_once(signum: int, frame: Any) -> None:
    os._exit(128 + signum)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    if issubclass(category, SaettaWarning):
        click.echo(f"saetta: warning: {message}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``saetta`` command."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    _TERMINATED.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    warnings.showwarning = _show_warning
    try:
        cli.main(args=argv, prog_name="saetta", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("saetta: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SaettaError as exc:
        if debug:
            raise
        text = scrub(" ".join(str(exc).split()))
        click.echo(f"saetta: error: {type(exc).__name__}: {text}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(
            "saetta: terminated" if _TERMINATED.is_set() else "saetta: interrupted", err=True
        )
        sys.exit(143 if _TERMINATED.is_set() else 130)
    finally:
        warnings.showwarning = _default_showwarning
        # After an interrupted run, a second signal stops the exit at once (see above).
        if previous is not None and signal.getsignal(signal.SIGTERM) is _terminate:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
