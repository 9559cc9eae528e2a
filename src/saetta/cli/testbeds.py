"""The command line (layer 9) — ``saetta testbeds``: list, check, history."""

from __future__ import annotations

import dataclasses
import json
import os

import click

from saetta.usecase import history

__all__ = ["testbeds"]


@click.group()
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
    if not bed.has_client:
        click.echo(f"ok: {bed.executor} on this machine ({os.cpu_count()} cores)")
        return
    from saetta.execute.dask import check_environment, versions

    started = time.perf_counter()
    with bed.client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        check_environment(client)
        elapsed = time.perf_counter() - started
        click.echo(f"ok: {len(workers)} workers up in {elapsed:.1f} s, environment matches:")
        for package, version in versions(client)["client"].items():
            click.echo(f"  {package:<12} {version}")


@testbeds.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
def testbeds_history(name: str, as_json: bool) -> None:
    """Show the calibrations and validations recorded for testbed NAME: how its rate evolved.

    The history is $SAETTA_HISTORY, or $XDG_DATA_HOME/saetta/history.sqlite
    (default ~/.local/share/saetta/history.sqlite).
    """
    rows = history.entries(name)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    elif not rows:
        click.echo(
            f"no calibration or validation recorded for testbed {name!r} in {history.history_path()}"
        )
    else:
        click.echo(f"testbed {name!r}: {len(rows)} entries in {history.history_path()}")
        click.echo(history.format_history(rows))
