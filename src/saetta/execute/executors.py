"""Stage: execute (layer 6) — where units run: executors chosen by name.

- ``local``: in this process, one unit after another (easiest to debug);
- ``processes:N``: N worker processes on this machine (``processes``: one per core);
- ``dask``, ``dask:N``: a Dask LocalCluster of N workers; ``dask://host:port``: an
  existing Dask scheduler (needs the ``dask`` extra);
- any ``concurrent.futures.Executor`` or ``distributed.Client`` instance.

Each resolves to a :class:`Placement`: something that can *drive* a list of
work units to one merged :class:`~saetta.execute.merge.Partial`, and be closed.
Names map to ``"module:function"`` strings imported on first use, so optional
engines load only when asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any, ParamSpec, Protocol, TypeVar

from saetta.dataset import WorkUnit
from saetta.errors import ExecutorError
from saetta.execute.merge import MergeTree, Partial, combine
from saetta.execute.outcome import Failure, UnitOutcome
from saetta.execute.unit import Analysis, UnitOptions, pickle_analysis, run_unit

__all__ = [
    "FuturesPlacement",
    "LocalExecutor",
    "Placement",
    "available_executors",
    "resolve_executor",
]

P = ParamSpec("P")
T = TypeVar("T")

_EXECUTORS: dict[str, str] = {
    "local": "saetta.execute.executors:_local",
    "processes": "saetta.execute.executors:_processes",
    "dask": "saetta.execute.dask:connect",
}

#: Exit status of a worker process that found itself re-running the user's script.
UNGUARDED_EXIT = 97

# Imported once in the forkserver, so every worker process starts with them loaded.
_PRELOAD = ["saetta.execute.unit", "saetta.analyses.adl"]


class LocalExecutor(Executor):
    """Runs each submitted call at once, in the calling thread."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        return future


class Placement(Protocol):
    """Where a run's units go: how many workers, how to drive units there, how to let go."""

    name: str

    @property
    def workers(self) -> int: ...

    def drive(
        self,
        analysis: Analysis,
        units: tuple[WorkUnit, ...],
        bar: Any,
        options: UnitOptions,
        done: Mapping[int, UnitOutcome] | None = None,
    ) -> Partial | None: ...

    def close(self, *, cancel: bool = False) -> None: ...


class FuturesPlacement:
    """Drives units through a ``concurrent.futures`` executor, merging results here.

    A process pool whose worker dies (killed, out of memory) is replaced, and the
    units that were in flight run again, one at a time; a unit that kills its
    worker twice while running alone is reported as failed, the others complete.
    """

    def __init__(
        self,
        executor: Executor,
        name: str,
        workers: int,
        *,
        owned: bool,
        pickle: bool,
        respawn: Callable[[], Executor] | None = None,
    ) -> None:
        self.executor = executor
        self.name = name
        self._workers = workers
        self._owned = owned
        self._pickle = pickle
        self._respawn = respawn

    @property
    def workers(self) -> int:
        return self._workers

    def drive(
        self,
        analysis: Analysis,
        units: tuple[WorkUnit, ...],
        bar: Any,
        options: UnitOptions,
        done: Mapping[int, UnitOutcome] | None = None,
    ) -> Partial | None:
        task: Analysis | bytes = pickle_analysis(analysis) if self._pickle else analysis
        tree: MergeTree[Partial] = MergeTree(len(units), combine)
        for index, outcome in (done or {}).items():
            tree.add(index, Partial.of(outcome))
        todo = deque(i for i in range(len(units)) if i not in (done or {}))
        # After a worker died, the units that were in flight are suspects: they run one at a
        # time until each finishes, or kills its worker alone (then it is the culprit).
        suspects: set[int] = set()
        deaths: dict[int, int] = {}
        pending: dict[Future[UnitOutcome], int] = {}
        columns: dict[str, None] = {}  # learned from finished units, prefetched by later ones
        window = 2 * self._workers + 1
        # A process pool forks its workers in submit: a Ctrl-C there waits until it is done,
        # else a worker half started is not among those ``close`` stops.
        spawns = isinstance(self.executor, ProcessPoolExecutor)
        whole_spawns = _signals_deferred if spawns else contextlib.nullcontext
        while todo or pending:
            while todo and len(pending) < (1 if suspects else window):
                if suspects and pending:
                    break
                index = next((i for i in todo if i in suspects), todo[0])
                todo.remove(index)
                with whole_spawns():
                    future = self.executor.submit(
                        run_unit, task, units[index], tuple(columns), options
                    )
                pending[future] = index
                if future.done():
                    break  # an in-process executor: learn its columns before the next submit
            alone = len(pending) == 1
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    self._replace_pool()
                    if not (alone and index in suspects):
                        suspects.add(index)
                        todo.appendleft(index)
                        continue
                    deaths[index] = deaths.get(index, 0) + 1
                    if deaths[index] < 2:
                        todo.appendleft(index)
                        continue
                    message = (
                        f"the worker process died {deaths[index]} times running this unit alone"
                    )
                    outcome = UnitOutcome(
                        units[index], failure=Failure(units[index], "WorkerDied", message)
                    )
                suspects.discard(index)
                columns.update(dict.fromkeys(outcome.columns))
                tree.add(index, Partial.of(outcome))
                if bar is not None:
                    bar.update(outcome.unit.num_entries)
        return tree.root

    def _replace_pool(self) -> None:
        if self._respawn is None:
            msg = f"a worker of {self.name} died; saetta did not start this executor, so cannot restart it"
            raise ExecutorError(msg, name=self.name)
        if getattr(self.executor, "_broken", False):  # the first of its futures to tell
            _refuse_unguarded_script(self.executor)
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = self._respawn()

    def close(self, *, cancel: bool = False) -> None:
        if not self._owned:
            return
        if cancel and isinstance(self.executor, ProcessPoolExecutor):
            # Abandon the units in flight: their workers stop now, not when they finish.
            for process in list(getattr(self.executor, "_processes", {}).values()):
                process.kill()
        self.executor.shutdown(wait=not cancel, cancel_futures=cancel)


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


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM that come meanwhile are handled on leaving, not inside."""
    numbers = (signal.SIGINT, signal.SIGTERM)
    main = threading.current_thread() is threading.main_thread()
    if not main or any(signal.getsignal(n) is None for n in numbers):  # None: not put back
        yield
        return
    caught: list[int] = []
    previous = {n: signal.signal(n, lambda signum, frame: caught.append(signum)) for n in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


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


def available_executors() -> list[str]:
    """Names accepted by ``run(..., executor=NAME)``."""
    return sorted(_EXECUTORS)


def resolve_executor(spec: Any) -> Placement:
    """Turn ``"local"``, ``"processes:4"``, ``"dask://host:8786"``, an Executor or a
    ``distributed.Client`` into a :class:`Placement`."""
    if isinstance(spec, Executor):
        workers = int(getattr(spec, "_max_workers", 0) or os.cpu_count() or 1)
        return FuturesPlacement(spec, type(spec).__name__, workers, owned=False, pickle=True)
    if type(spec).__module__.startswith("distributed"):
        from saetta.execute.dask import wrap

        return wrap(spec)
    if not isinstance(spec, str):
        msg = f"executor must be a name or an Executor, not {type(spec).__name__}"
        raise ExecutorError(msg, name=str(spec))
    name, _, argument = spec.partition(":")
    try:
        target = _EXECUTORS[name]
    except KeyError:
        msg = f"unknown executor {spec!r}; available: {', '.join(available_executors())}"
        raise ExecutorError(msg, name=name) from None
    module, _, attr = target.partition(":")
    factory: Callable[[str], Placement] = getattr(importlib.import_module(module), attr)
    return factory(argument)


def _local(argument: str) -> Placement:
    if argument:
        msg = f"executor 'local' takes no argument, got 'local:{argument}'"
        raise ExecutorError(msg, name="local")
    return FuturesPlacement(LocalExecutor(), "local", 1, owned=True, pickle=False)


def _processes(argument: str) -> Placement:
    try:
        workers = int(argument) if argument else (os.cpu_count() or 1)
    except ValueError:
        workers = 0
    if workers < 1:
        msg = f"'processes:{argument}' needs a positive number of workers, e.g. processes:4"
        raise ExecutorError(msg, name="processes")

    context: Any = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
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

    return FuturesPlacement(
        pool(), f"processes:{workers}", workers, owned=True, pickle=True, respawn=pool
    )
