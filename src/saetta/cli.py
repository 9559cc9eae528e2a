"""Stage: command line (layer 9) — the ``saetta`` command.

Errors saetta raises on purpose (:class:`~saetta.SaettaError`) print one line
and exit 1; ``--debug`` shows the traceback instead. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import click

from saetta._version import __version__
from saetta.dataset import DEFAULT_CHUNK_SIZE
from saetta.errors import SaettaError
from saetta.usecase_cli import plan, testbeds_history, validate

__all__ = ["main"]

EXECUTOR_HELP = "Where units run: 'local' (this process) or 'processes:N' (N worker processes)."


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
@click.option("--executor", default="processes:2", show_default=True, help=EXECUTOR_HELP)
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
        folder / "results.root",
        executor,
        None,
        "Events",
        progress=True,
        allow_partial=False,
        plots=folder / "adl.png",
        also=(folder / "results.json",),
    )
    click.echo(f"\nopen {folder / 'adl.png'} to see the histograms")


@cli.command()
@click.argument("analysis", required=False)
@click.argument("files", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the results: .root (ROOT histograms) or .json.",
)
@click.option("--executor", default="local", show_default=True, help=EXECUTOR_HELP)
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
    help="Finish the run recorded in this run directory (ANALYSIS and FILES come from it).",
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
    default="50GB",
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
    output: str | None,
    executor: str,
    chunk_size: int | None,
    tree: str,
    run_dir: str | None,
    resume: str | None,
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
    Example:
      saetta run adl data/*.root -o results.root --executor processes:2
      saetta run adl data/*.root -o results.root --testbed slurm-local
      saetta run --resume ~/.cache/saetta/runs/20261129-101500-ab12cd
    """
    if resume is not None:
        saved = _saved_command(resume)
        analysis, files = saved["analysis"], tuple(saved["files"])
        output = output or saved.get("output")
        executor, tree = saved.get("executor", executor), saved.get("tree", tree)
        chunk_size = chunk_size or saved.get("chunk_size")
        testbed = testbed or saved.get("testbed")
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
        Path(output) if output else None,
        executor,
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
    )


def _saved_command(run_dir: str) -> dict[str, Any]:
    path = Path(run_dir) / "command.json"
    try:
        saved: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        msg = f"cannot resume from {run_dir}: no readable command.json ({exc})"
        raise SaettaError(msg) from exc
    return saved


def _only_unit(analysis: str, files: list[str], tree: str, unit_id: str) -> None:
    from saetta.analyses import load_analysis
    from saetta.dataset import WorkUnit
    from saetta.execute.unit import run_unit

    path, _, span = unit_id.rpartition("[")
    try:
        start, stop = (int(x) for x in span.rstrip("]").split(":"))
    except ValueError:
        msg = f"cannot read unit {unit_id!r}; write it as PATH[START:STOP]"
        raise SaettaError(msg) from None
    dataset = _dataset(files, tree)
    info = next((f for f in dataset.files if f.path == path), None)
    if info is None:
        msg = f"unit {unit_id!r} is not in the given files"
        raise SaettaError(msg)
    unit = WorkUnit(info.path, info.tree, start, stop, info.format)
    outcome = run_unit(load_analysis(analysis), unit)
    if outcome.failure is not None:
        click.echo(outcome.failure.traceback or str(outcome.failure), err=True)
        msg = f"unit {outcome.failure}"
        raise SaettaError(msg)
    click.echo(f"unit {unit}: ok, {unit.num_entries:,} events")
    click.echo(_summary(outcome.result))


def _run_and_write(
    analysis: str,
    files: list[str],
    output: Path | None,
    executor: str,
    chunk_size: int | None,
    tree: str,
    *,
    progress: bool | None,
    allow_partial: bool,
    plots: Path | None,
    also: tuple[Path, ...] = (),
    testbed: str | None = None,
    column_cache: str | None = None,
    cache: str | None = None,
    cache_size: str = "50GB",
    run_dir: str | None = None,
) -> None:
    import saetta
    from saetta.analyses import load_analysis
    from saetta.execute.journal import default_run_dir
    from saetta.execute.run import Interrupted
    from saetta.output import save

    _check_outputs(output, plots, also)
    function = load_analysis(analysis)
    dataset = _dataset(files, tree, cache, cache_size)
    directory = Path(run_dir) if run_dir else default_run_dir()
    _save_command(
        directory,
        {
            "analysis": analysis,
            "files": files,
            "tree": tree,
            "executor": executor,
            "chunk_size": chunk_size,
            "testbed": testbed,
            "output": str(output) if output else None,
        },
    )
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
            run_dir=directory,
        )
    except Interrupted as exc:
        click.echo(
            f"saetta: interrupted; finished units are kept. Resume with: "
            f"saetta run --resume {exc.run_dir}",
            err=True,
        )
        sys.exit(130)
    except saetta.UnitError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            click.echo(str(partial.report))
            click.echo(
                f"\nrun directory: {partial.run_dir}\n"
                f"  reproduce a failed unit: saetta run {analysis} {' '.join(files)} "
                f"--only-unit '{partial.report.failures[0].unit.id}'\n"
                f"  after fixing the cause, finish the run: saetta run --resume {partial.run_dir}"
            )
        raise
    click.echo(_summary(result))
    click.echo("")
    click.echo(str(result.report))
    if output is not None:
        save(result, output)
        report_path = output.with_name(output.stem + ".report.json")
        report_path.write_text(json.dumps(result.report.to_dict(), indent=1) + "\n")
        click.echo(f"\nwrote {output} and {report_path}")
        for extra in also:
            save(result, extra)
            click.echo(f"wrote {extra}")
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


def _save_command(directory: Path, command: dict[str, Any]) -> None:
    from saetta.errors import JournalError

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "command.json").write_text(json.dumps(command, indent=1) + "\n")
    except OSError as exc:
        msg = f"cannot use run directory {directory}: {exc.strerror or exc}"
        raise JournalError(msg, path=str(directory)) from exc


def _dataset(
    files: list[str], tree: str, cache: str | None = None, cache_size: str = "50GB"
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


def _check_outputs(output: Path | None, plots: Path | None, also: tuple[Path, ...]) -> None:
    """Refuse a bad output name before the run, not after it."""
    for target in (output, *also):
        if target is not None and target.suffix.lower() not in {".root", ".json"}:
            msg = f"cannot write {target}: give a .root or .json output file"
            raise SaettaError(msg)
    if plots is not None and plots.suffix.lower() not in {".png", ".pdf", ".svg"}:
        msg = f"cannot draw into {plots}: give a .png, .pdf or .svg file"
        raise SaettaError(msg)


def _summary(result: Any) -> str:
    import boost_histogram as bh

    lines = [f"{'result':<22}{'entries':>12}{'in range':>12}{'mean':>10}"]
    for key, value in result.items():
        if isinstance(value, bh.Histogram) and value.ndim == 1:
            centers = value.axes[0].centers
            inside = value.values()
            total = float(inside.sum())
            mean = float((centers * inside).sum() / total) if total else float("nan")
            lines.append(f"{key:<22}{value.sum(flow=True):>12,.0f}{total:>12,.0f}{mean:>10.2f}")
        else:
            lines.append(f"{key:<22}{value!s:>12}")
    return "\n".join(lines)


@cli.command()
@click.argument("file")
@click.option("--tree", default=None, help="Only this tree (default: every tree in the file).")
def inspect(file: str, tree: str | None) -> None:
    """Show the trees of FILE: entries, branches, types and compression."""
    from saetta.dataset import format_of, open_reader
    from saetta.storage import expand

    path = expand([file])[0]
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


_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "saetta", "data"
)


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
    """Delete everything cached in FOLDER [default: ~/.cache/saetta/data]."""
    from saetta.storage import clear_cache

    freed = clear_cache(folder)
    click.echo(f"freed {freed / 1e6:,.1f} MB in {folder}")


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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``saetta`` command."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
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
        click.echo(f"saetta: error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("saetta: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
