"""The command line (layer 9) — ``saetta cache`` and ``saetta runs``: what saetta left on disk."""

from __future__ import annotations

import click

from saetta._config import data_cache_dir, runs_dir

__all__ = ["cache", "runs"]


@click.group()
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


@click.group()
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
    from saetta.execute.rundirs import list_runs

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
    from saetta.execute.journal import remove_run
    from saetta.execute.rundirs import list_runs
    from saetta.quantities import parse_duration

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
