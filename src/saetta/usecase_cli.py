"""Stage: command line (layer 9) — ``saetta plan``, ``saetta validate``, ``saetta testbeds history``.

Registered on the ``saetta`` command by :mod:`saetta.cli`.
"""

from __future__ import annotations

import click

__all__ = ["plan", "testbeds_history", "validate"]


@click.command()
@click.argument("usecase", type=click.Path(dir_okay=False))
def plan(usecase: str) -> None:
    """Calibrate USECASE (a usecase.yaml) on its testbed and predict whether it can be met."""
    raise click.ClickException("not implemented yet")


@click.command()
@click.argument("usecase", type=click.Path(dir_okay=False))
def validate(usecase: str) -> None:
    """Run USECASE for real and compare with the plan and the requirement."""
    raise click.ClickException("not implemented yet")


@click.command("history")
@click.argument("name")
def testbeds_history(name: str) -> None:
    """Show the calibrations and validations recorded for testbed NAME."""
    raise click.ClickException("not implemented yet")
