"""Stage: execute (layer 6) — where units run: choosing an executor by name.

Any object with the ``concurrent.futures.Executor`` shape (``submit``,
``shutdown``) works; these names are built in:

- ``local``: in this process, one unit after another (the default; easiest to debug);
- ``processes:N``: N worker processes on this machine (``processes`` alone: one per core).

Other executors are looked up by name in ``_EXECUTORS`` and imported on first use.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from saetta.errors import ExecutorError

__all__ = ["LocalExecutor", "Placement", "available_executors", "resolve_executor"]

P = ParamSpec("P")
T = TypeVar("T")

_EXECUTORS: dict[str, str] = {
    "local": "saetta.execute.executors:_local",
    "processes": "saetta.execute.executors:_processes",
}

# Imported once in the forkserver, so every worker starts with them loaded.
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


@dataclass(frozen=True, slots=True)
class Placement:
    """An executor ready for work, how wide it is, and whether saetta must shut it down."""

    executor: Executor
    name: str
    workers: int
    owned: bool
    pickle_analysis: bool


def available_executors() -> list[str]:
    """Names accepted by ``run(..., executor=NAME)``."""
    return sorted(_EXECUTORS)


def resolve_executor(spec: str | Executor) -> Placement:
    """Turn ``"local"``, ``"processes:4"`` or an Executor instance into a :class:`Placement`."""
    if isinstance(spec, Executor):
        workers = int(getattr(spec, "_max_workers", 0) or os.cpu_count() or 1)
        return Placement(spec, type(spec).__name__, workers, owned=False, pickle_analysis=True)
    name, _, argument = str(spec).partition(":")
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
    return Placement(LocalExecutor(), "local", 1, owned=True, pickle_analysis=False)


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
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    return Placement(pool, f"processes:{workers}", workers, owned=True, pickle_analysis=True)
