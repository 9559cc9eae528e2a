"""Stage: execute (layer 6) — ``processes:N``: a pool of worker processes on this machine.

Workers are forked from a forkserver that imported saetta's unit runner and the
analysis' module once, so each starts warm. Ctrl-C is the driver's to handle;
a worker whose driver died ends at once; a worker that dies is replaced
(see :class:`~saetta.execute.futures.FuturesPlacement`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from saetta.errors import ExecutorError
from saetta.execute.futures import FuturesPlacement
from saetta.execute.placement import parse_workers

__all__ = ["UNGUARDED_EXIT", "processes"]

#: Exit status of a worker process that found itself re-running the user's script.
UNGUARDED_EXIT = 97


def _start_worker(alive: Connection) -> None:
    """In each worker process: Ctrl-C is the driver's to handle (it stops the workers
    itself), and a worker whose driver died (``kill -9``) ends too, at once.

    ``alive`` is the read end of a pipe whose only write end the driver holds and never
    writes: the kernel closes it when the driver ends, however it ends, even while a
    parent that has not reaped it keeps its pid in use. (Polling the pid missed that:
    a killed driver that is not yet reaped is still there for ``os.kill(pid, 0)``.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            alive.recv_bytes()
        os._exit(1)

    threading.Thread(target=watch, name="saetta-watch-driver", daemon=True).start()


def _start_forkserver() -> None:
    """Start the forkserver ignoring Ctrl-C, which it and the workers it forks inherit.

    A Ctrl-C at the terminal goes to the whole process group: it would stop the
    forkserver with a traceback while it imports its preload, or a worker before
    ``_start_worker`` ignores it. Here the signal is blocked meanwhile, so one that
    comes then is not lost: it arrives as soon as the forkserver is started.
    """
    from multiprocessing import forkserver

    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is None:  # a handler only main may change
        forkserver.ensure_running()
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _refuse_unguarded_script(executor: Executor) -> None:
    """Name the cause when workers died re-running the user's script (see ``run``)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        process.join(timeout=1.0)
    if any(p.exitcode == UNGUARDED_EXIT for p in processes):
        script = getattr(sys.modules.get("__main__"), "__file__", None) or "the script"
        msg = (
            f"the worker processes re-ran {script} when they started, and with it its call of "
            "saetta.run(); put that call under 'if __name__ == \"__main__\":' (worker "
            "processes import the main script)"
        )
        raise ExecutorError(msg, name="processes")


def processes(argument: str, preload: Sequence[str] = ()) -> FuturesPlacement:
    """``processes:N``: a pool of N worker processes (``processes``: one per core)."""
    workers = parse_workers("processes", argument, os.cpu_count() or 1)
    context: Any = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["saetta.execute.unit", *preload])
    # The workers watch the read end; this process holds the only write end for as long
    # as ``pool`` (the placement's respawn) lives, and the kernel closes it when it ends.
    alive, driver_end = context.Pipe(duplex=False)

    def pool() -> Executor:
        if driver_end.closed:  # workers started now would end at once
            msg = f"processes:{workers} was closed"
            raise ExecutorError(msg, name="processes")
        _start_forkserver()
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(alive,),
        )

    def respawn(broken: Executor) -> Executor:
        _refuse_unguarded_script(broken)
        broken.shutdown(wait=False, cancel_futures=True)
        return pool()

    return FuturesPlacement(
        pool(), f"processes:{workers}", workers, owned=True, pickle=True, respawn=respawn
    )
