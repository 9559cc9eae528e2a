"""The command line (layer 9) — run an analysis, then print and write what it gave.

Shared by ``saetta run`` and ``saetta demo``: one run through :func:`saetta.run`,
its summary and report on the terminal, the output files, and on Ctrl-C or a
failed unit the commands that resume or reproduce it.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import click

from saetta._config import DEFAULT_CACHE_SIZE
from saetta.cli.signals import TERMINATED, stop_at_once
from saetta.cli.summary import summary
from saetta.errors import Interrupted, SaettaError, UnitError
from saetta.storage import atomic_write, redact

__all__ = ["check_outputs", "open_dataset", "run_and_write"]


def run_and_write(
    analysis: str,
    files: list[str],
    outputs: tuple[Path, ...],
    *,
    tree: str = "Events",
    plots: Path | None = None,
    **run_options: Any,
) -> None:
    """Run ``analysis`` (a name :func:`~saetta.analyses.load_analysis` knows) over
    ``files`` with :func:`saetta.run` and ``run_options``; print the summary and the
    report, write ``outputs`` (each with its ``.report.json``) and ``plots``."""
    import saetta
    from saetta.analyses import load_analysis
    from saetta.execute.rundirs import resume_command
    from saetta.output import save

    check_outputs(outputs, plots)
    function = load_analysis(analysis)
    cache, cache_size = run_options.get("cache"), run_options.get("cache_size", DEFAULT_CACHE_SIZE)
    dataset = open_dataset(files, tree, cache, cache_size)
    executor, testbed = run_options.get("executor", "local"), run_options.get("testbed")
    command = resume_command(
        analysis, files, tree=tree, executor=executor, testbed=testbed, outputs=outputs, plots=plots
    )
    try:
        result = saetta.run(function, dataset, command=command, **run_options)
    except Interrupted as exc:
        # Until the process is gone (the pool's threads are joined at exit), a second
        # Ctrl-C or SIGTERM ends it at once, without a traceback.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, stop_at_once)
        why = "terminated" if TERMINATED.is_set() else "interrupted"
        click.echo(
            f"saetta: {why}; finished units are kept. Resume with: "
            f"saetta run --resume {shlex.quote(str(exc.run_dir))}",
            err=True,
        )
        sys.exit(143 if TERMINATED.is_set() else 130)
    except UnitError as exc:
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
    click.echo(summary(result))
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


def open_dataset(
    files: list[str], tree: str, cache: str | None = None, cache_size: str = DEFAULT_CACHE_SIZE
) -> Any:
    """Open FILES; ``@name`` entries come from the dataset catalog; one ``.yaml`` file is a
    samples file (:mod:`saetta.samples`), returned as :class:`~saetta.Samples`."""
    import saetta

    if len(files) == 1 and files[0].lower().endswith((".yaml", ".yml")):
        from saetta.samples import Samples

        return Samples.from_yaml(files[0])
    named = [f for f in files if f.startswith("@")]
    if not named:
        return saetta.Dataset.open(files, tree, cache=cache, cache_size=cache_size)
    if len(files) > 1:
        msg = "give either one @dataset from the catalog or files, not both"
        raise SaettaError(msg)
    return saetta.Dataset.from_catalog(named[0][1:], cache=cache, cache_size=cache_size)


def check_outputs(outputs: tuple[Path, ...], plots: Path | None) -> None:
    """Refuse a bad output name before the run, not after it."""
    for target in outputs:
        if target.suffix.lower() not in {".root", ".json"}:
            msg = f"cannot write {target}: give a .root or .json output file"
            raise SaettaError(msg)
    if plots is not None and plots.suffix.lower() not in {".png", ".pdf", ".svg"}:
        msg = f"cannot draw into {plots}: give a .png, .pdf or .svg file"
        raise SaettaError(msg)
