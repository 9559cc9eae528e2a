"""Stage: execute (layer 6) — units through a ``concurrent.futures`` executor.

:class:`FuturesPlacement` drives a job through any ``concurrent.futures.Executor``
and merges the results in this process: the ``local`` executor
(:class:`LocalExecutor`, in this thread), the ``processes`` pool
(:mod:`saetta.execute.processes`), or an executor the user made.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from saetta.errors import ExecutorError
from saetta.execute.merge import Partial, combine
from saetta.execute.outcome import Failure, UnitOutcome
from saetta.execute.placement import Job
from saetta.execute.unit import Analysis, pickle_analysis, run_unit

__all__ = ["FuturesPlacement", "LocalExecutor", "local"]

P = ParamSpec("P")
T = TypeVar("T")


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


class FuturesPlacement:
    """Drives units through a ``concurrent.futures`` executor, merging results here.

    A process pool whose worker dies (killed, out of memory) is replaced through
    ``respawn`` (which gets the broken pool), and the units that were in flight run
    again, one at a time; a unit that kills its worker twice while running alone is
    reported as failed, the others complete.
    """

    def __init__(
        self,
        executor: Executor,
        name: str,
        workers: int,
        *,
        owned: bool,
        pickle: bool,
        respawn: Callable[[Executor], Executor] | None = None,
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

    def drive(self, job: Job) -> Partial | None:
        analysis, units, options = job.analysis, job.units, job.options
        task: Analysis | bytes = pickle_analysis(analysis) if self._pickle else analysis
        tree, left = job.merge_tree(combine)
        todo = deque(left)
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
                if suspects:
                    index = next((i for i in todo if i in suspects), todo[0])
                    todo.remove(index)
                else:  # the common case stays O(1): a scan of todo per unit is O(n²) a run
                    index = todo.popleft()
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
                job.advance(outcome.unit)
        root: Partial | None = tree.root
        return root

    def _replace_pool(self) -> None:
        if self._respawn is None:
            msg = f"a worker of {self.name} died; saetta did not start this executor, so cannot restart it"
            raise ExecutorError(msg, name=self.name)
        if getattr(self.executor, "_broken", False):  # the first of its futures to tell
            self.executor = self._respawn(self.executor)

    def close(self, *, cancel: bool = False) -> None:
        if not self._owned:
            return
        if cancel and isinstance(self.executor, ProcessPoolExecutor):
            # Abandon the units in flight: their workers stop now, not when they finish.
            for process in list(getattr(self.executor, "_processes", {}).values()):
                process.kill()
        self.executor.shutdown(wait=not cancel, cancel_futures=cancel)


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


def local(argument: str, preload: Sequence[str] = ()) -> FuturesPlacement:
    """``local``: each unit in this process, one after another."""
    if argument:
        msg = f"executor 'local' takes no argument, got 'local:{argument}'"
        raise ExecutorError(msg, name="local")
    return FuturesPlacement(LocalExecutor(), "local", 1, owned=True, pickle=False)
