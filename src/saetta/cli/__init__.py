"""Stage: command line (layer 9) — the ``saetta`` command.

One module per command (group); this one assembles them and runs the command.
Errors saetta raises on purpose (:class:`~saetta.SaettaError`) print one line
and exit 1; ``--debug`` shows the traceback instead. Anything else is a bug and
keeps its traceback.

- :mod:`~saetta.cli.run`, :mod:`~saetta.cli.demo`: ``saetta run``, ``saetta demo``,
  both through :mod:`~saetta.cli.runner` (run, print, write the outputs);
- :mod:`~saetta.cli.inspect`: ``saetta inspect``;
- :mod:`~saetta.cli.testbeds`: ``saetta testbeds list | check | history``;
- :mod:`~saetta.cli.usecase`: ``saetta plan``, ``saetta validate``;
- :mod:`~saetta.cli.housekeeping`: ``saetta cache``, ``saetta runs``;
- :mod:`~saetta.cli.generate`: ``saetta generate`` (synthetic files, the AGC's Pythia samples);
- :mod:`~saetta.cli.fit`: ``saetta fit`` (the HistFactory fit of a result);
- :mod:`~saetta.cli.train`: ``saetta train`` (a training script as a distributed job);
- :mod:`~saetta.cli.fastsim`: ``saetta simulate showers``, ``saetta fastsim train | generate |
  evaluate`` (calorimeter showers, simulated in detail and learned);
- :mod:`~saetta.cli.gamma`: ``saetta gamma`` (ON/OFF analysis of gamma-ray event lists),
  :mod:`~saetta.cli.gw`: ``saetta gw`` (a matched-filter search of strain files),
  :mod:`~saetta.cli.strain` with :mod:`~saetta.cli.gamma`: ``saetta generate strain | gamma``.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from typing import Any

import click

from saetta._version import __version__
from saetta.cli import (
    demo,
    fastsim,
    fit,
    gamma,
    generate,
    gw,
    housekeeping,
    inspect,
    run,
    testbeds,
    train,
    usecase,
)
from saetta.cli.signals import TERMINATED, terminate
from saetta.errors import SaettaError, SaettaWarning
from saetta.storage import scrub

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="saetta")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """saetta: analyse event data (ROOT, Parquet, HDF5, FITS, GW strain) from a laptop
    to a batch system.

    \b
    Start with:   saetta demo
    Then:         saetta run adl data/*.root -o results.root --executor processes:2
    A real one:   saetta generate agc data/agc; saetta run agc data/agc/samples.yaml -o agc.root;
                  saetta fit agc.root
    Train:        saetta train examples/ttbar_vs_wjets.py --workers 2 --epochs 5
    Fast sim:     saetta simulate showers showers/; saetta fastsim train showers/
    Gamma rays:   saetta generate gamma obs/; saetta gamma obs/
    GW strain:    saetta generate strain ligo/; saetta gw ligo/*.hdf5 --injections ligo/injections.parquet
    """
    ctx.obj = {"debug": debug}


for command in (
    demo.demo,
    run.run,
    inspect.inspect,
    testbeds.testbeds,
    housekeeping.cache,
    housekeeping.runs,
    generate.generate,
    fit.fit,
    train.train,
    fastsim.simulate,
    fastsim.fastsim,
    gamma.gamma_command,
    gw.gw_command,
    usecase.plan,
    usecase.validate,
):
    cli.add_command(command)


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
    TERMINATED.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
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
        click.echo("saetta: terminated" if TERMINATED.is_set() else "saetta: interrupted", err=True)
        sys.exit(143 if TERMINATED.is_set() else 130)
    finally:
        warnings.showwarning = _default_showwarning
        # After an interrupted run, a second signal stops the exit at once (see above).
        if previous is not None and signal.getsignal(signal.SIGTERM) is terminate:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
