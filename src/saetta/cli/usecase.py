"""The command line (layer 9) — ``saetta plan`` and ``saetta validate``.

Bad input raises :class:`~saetta.UseCaseError`, which ``saetta`` prints as one line (exit 1). A
requirement that cannot be met (NOT FEASIBLE), may not be met (UNCERTAIN: it lies
within the prediction's uncertainty) or was not met (FAIL) exits 3, after the
report is printed and written.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import click

from saetta.errors import SaettaError, UseCaseError
from saetta.usecase import (
    Plan,
    UseCase,
    Validation,
    calibrate_training,
    history,
    report,
    validate_training,
)
from saetta.usecase import plan as make_plan
from saetta.usecase import validate as run_validation

__all__ = ["plan", "validate"]

#: Exit status when the requirement cannot (or may not) be met (plan), or was not met (validate).
NOT_MET = 3

_OUT_HELP = "Folder for the reports [default: ./saetta-runs/<use case name>/<UTC time>/]."
_JSON_HELP = "Print the report as one JSON document on stdout instead of text."
_HISTORY_HELP = "Do not record the run in the testbed history."


def _load(path: str, fraction: float | None = None) -> tuple[UseCase, Callable[[Any], Any] | None]:
    """The use case, and its analysis function (None for a training's)."""
    from saetta.analyses import load_analysis

    usecase = UseCase.load(path)
    if fraction is not None:
        usecase = dataclasses.replace(usecase, fraction=fraction)
    if usecase.train:
        click.echo(
            f"calibrating {usecase.workload} on testbed {usecase.testbed} "
            f"({usecase.calibration_batches} batches per rank) ...",
            err=True,
        )
        return usecase, None
    try:
        analysis = load_analysis(usecase.analysis)
    except SaettaError as exc:
        msg = f"analysis: {exc}"
        raise UseCaseError(msg) from exc
    click.echo(
        f"calibrating {usecase.analysis} on testbed {usecase.testbed} "
        f"({usecase.sample_units} units of {usecase.chunk_size:,} events) ...",
        err=True,
    )
    return usecase, analysis


def _plan(spec: UseCase, analysis: Callable[[Any], Any] | None) -> Plan:
    if analysis is None:
        return make_plan(spec, calibration=calibrate_training(spec))
    return make_plan(spec, analysis)


def _finish(item: Plan | Validation, name: str, out: str | None, as_json: bool) -> None:
    paths = report.write(item, report.run_dir(name, out))
    click.echo(report.to_json(item) if as_json else report.text(item), nl=not as_json)
    click.echo(f"\nwrote {paths['html']} (and report.json, report.md, plots)", err=True)
    if not item.met:
        sys.exit(NOT_MET)


@click.command()
@click.argument("usecase", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help=_OUT_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--no-history", is_flag=True, help=_HISTORY_HELP)
def plan(usecase: str, out: str | None, as_json: bool, no_history: bool) -> None:
    """Calibrate USECASE (a usecase.yaml) on its testbed and predict whether it can be met.

    \b
    Runs the analysis on a sample of work units (a training: its script for a
    few batches) at 1 and k workers, fits
    T(n) = t0 + E / (n r e(n)), and says whether Y can be processed in Z on W
    cores within the memory per core: FEASIBLE, NOT FEASIBLE naming the
    binding constraint, or UNCERTAIN when Z lies within the ≈95 % interval
    (exit status 3 for both). Writes report.json, report.md and a
    self-contained report.html with plots into --out.
    """
    spec, analysis = _load(usecase)
    result = _plan(spec, analysis)
    if not no_history:
        history.record(history.from_calibration(result.calibration, result.verdict))
    _finish(result, spec.name, out, as_json)


@click.command()
@click.argument("usecase", type=click.Path(dir_okay=False))
@click.option(
    "--fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Run this fraction of the dataset [default: the use case's validation.fraction, or 1].",
)
@click.option("--out", type=click.Path(file_okay=False), default=None, help=_OUT_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--no-history", is_flag=True, help=_HISTORY_HELP)
def validate(
    usecase: str, fraction: float | None, out: str | None, as_json: bool, no_history: bool
) -> None:
    """Run USECASE for real and compare with the plan and the requirement.

    \b
    Calibrates first (as 'saetta plan'), then runs the whole dataset, or the
    stated fraction of it, on the testbed. PASS when the measured run,
    extrapolated to Y on W cores, meets Z within the memory per core (else
    exit status 3); "model accurate" says whether the measured time and steady
    rate lie in the plan's ≈95 % intervals, and the interval is narrow enough
    (±25 %) to mean something.
    """
    spec, analysis = _load(usecase, fraction)
    planned = _plan(spec, analysis)
    click.echo(f"plan: {planned.verdict}; running {100 * spec.fraction:g} % ...", err=True)
    if analysis is None:
        result = validate_training(spec, planned=planned)
    else:
        result = run_validation(spec, analysis, planned=planned)
    if not no_history:
        history.record(history.from_calibration(planned.calibration, planned.verdict))
        history.record(history.from_validation(result))
    _finish(result, spec.name, out, as_json)
