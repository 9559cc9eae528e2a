"""Stage: execute (layer 6) — run work units on a Dask cluster (dask.distributed).

One task per work unit; partial results merge *on the workers* along the same
fixed tree as every other executor (:mod:`saetta.execute.merge`), so the client
only ever receives the final result. Units are submitted progressively — a
bounded window in flight — so a million-unit dataset never becomes a
million-node graph, and the analysis function is sent to the workers once.

Needs the ``dask`` extra: ``pip install 'saetta[dask]'``.
"""

from __future__ import annotations

import importlib.metadata
import socket
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from saetta.dataset import WorkUnit
from saetta.errors import ExecutorError
from saetta.execute.merge import MergeTree, Partial, combine
from saetta.execute.outcome import Failure, UnitOutcome
from saetta.execute.unit import UnitOptions, pickle_analysis, run_unit

try:
    import distributed
    import distributed.client
    import distributed.scheduler
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = "executor 'dask' needs dask.distributed: pip install 'saetta[dask]'"
    raise ExecutorError(msg, name="dask") from exc

__all__ = ["DaskPlacement", "check_environment", "connect", "drive"]

_ATTEMPTS = 3

#: Packages whose versions must match between the client and the workers.
PACKAGES = ("saetta", "awkward", "uproot", "numpy", "numba", "hist", "cloudpickle", "distributed")


class DaskPlacement:
    """A connected ``distributed.Client``, and whether saetta started (and must stop) it."""

    def __init__(self, client: distributed.Client, name: str, owned: bool) -> None:
        self.client = client
        self.name = name
        self.owned = owned

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))

    def drive(
        self,
        analysis: Any,
        units: tuple[WorkUnit, ...],
        bar: Any,
        options: UnitOptions,
        done: Mapping[int, UnitOutcome] | None = None,
    ) -> Partial | None:
        """:func:`drive`, again from the start when a dead worker took merged results with it.

        Dask recomputes a lost result from its inputs, but the inputs of a finished
        merge are released to keep the cluster's memory bounded; when such a merge
        is lost, the units not recorded before the run are run again, into a fresh
        tree (so none is counted twice).
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return drive(self, analysis, units, bar, options, done)
            except distributed.client.FutureCancelledError as exc:
                if attempt == _ATTEMPTS:
                    msg = (
                        f"Dask workers died {attempt} times holding merged results "
                        f"({exc}); is the cluster short of memory?"
                    )
                    raise ExecutorError(msg, name=self.name) from exc
                if bar is not None:
                    bar.reset()
                    bar.update(sum(o.unit.num_entries for o in (done or {}).values()))
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def close(self, *, cancel: bool = False) -> None:
        if self.owned:
            cluster = self.client.cluster
            self.client.close()
            if cluster is not None:
                cluster.close()


def connect(argument: str) -> DaskPlacement:
    """``dask`` or ``dask:N``: a LocalCluster of N single-threaded worker processes;
    ``dask://host:port`` (or ``tcp://``): an existing scheduler."""
    if argument.startswith("//"):
        address = "tcp:" + argument
        try:
            _knock(argument[2:])  # a refused connection fails now, not after the timeout
            client = distributed.Client(address, timeout="20s")
        except OSError as exc:
            msg = f"cannot reach the Dask scheduler at {address}: {exc}"
            raise ExecutorError(msg, name="dask") from exc
        return DaskPlacement(client, f"dask {address}", owned=True)
    try:
        workers = int(argument) if argument else 2
    except ValueError:
        workers = 0
    if workers < 1:
        msg = f"'dask:{argument}' needs a positive number of workers, e.g. dask:4"
        raise ExecutorError(msg, name="dask")
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    return DaskPlacement(distributed.Client(cluster), f"dask:{workers}", owned=True)


def _knock(where: str) -> None:
    """Open and close a TCP connection to ``host:port``; OSError if nothing answers."""
    host, _, port = where.rpartition(":")
    if not port.isdigit():
        msg = f"'dask://{where}' needs a port, e.g. dask://{where or 'host'}:8786"
        raise ExecutorError(msg, name="dask")
    with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=10):
        pass


def wrap(client: distributed.Client) -> DaskPlacement:
    """A client the user made: used as is, never closed by saetta."""
    address = getattr(client.scheduler, "address", "?")
    return DaskPlacement(client, f"dask {address}", owned=False)


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    found["python"] = ".".join(map(str, sys.version_info[:2]))
    return found


def check_environment(client: distributed.Client) -> None:
    """Fail clearly if a worker cannot import saetta or has other versions than the client."""
    here = _versions()
    try:
        there = client.run(_versions)
    except Exception as exc:
        msg = f"cannot check the Dask workers' environment: {type(exc).__name__}: {exc}"
        raise ExecutorError(msg, name="dask") from exc
    problems = []
    for worker, versions in sorted(there.items()):
        diffs = [
            f"{name} {versions.get(name)} (client {here[name]})"
            for name in here
            if versions.get(name) != here[name]
        ]
        if diffs:
            problems.append(f"{worker}: {', '.join(diffs)}")
    if problems:
        msg = "Dask workers differ from this client: " + "; ".join(problems)
        raise ExecutorError(msg, name="dask")


def _leaf(pickled: bytes, unit: WorkUnit, options: UnitOptions) -> Partial:
    return Partial.of(run_unit(pickled, unit, (), options))


def drive(
    placement: DaskPlacement,
    analysis: Any,
    units: tuple[WorkUnit, ...],
    bar: Any,
    options: UnitOptions,
    done: Mapping[int, UnitOutcome] | None = None,
) -> Partial | None:
    """Run every unit not ``done`` on the cluster; return the tree-merged partial (fetched once)."""
    client = placement.client
    check_environment(client)
    if bar is not None and client.dashboard_link:
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    pickled = pickle_analysis(analysis, remote=True)
    token = uuid.uuid4().hex[:12]  # one run's keys never collide with another's
    [shipped] = client.scatter([pickled], broadcast=True, hash=False)
    merges = iter(range(len(units)))

    def join(left: Any, right: Any) -> Any:
        key = f"saetta-merge-{token}-{next(merges)}"
        return client.submit(combine, left, right, key=key, priority=1)

    tree: MergeTree[Any] = MergeTree(len(units), join)  # futures, or partials resumed
    for index, outcome in (done or {}).items():
        tree.add(index, Partial.of(outcome))
    todo = [i for i in range(len(units)) if i not in (done or {})]
    window = 4 * placement.workers + 2
    running = distributed.as_completed()
    index_of: dict[Any, int] = {}
    submitted = 0
    with _cancel_on_exit(client, running):
        while submitted < len(todo) or index_of:
            while submitted < len(todo) and len(index_of) < window:
                index = todo[submitted]
                future = client.submit(
                    _leaf,
                    shipped,
                    units[index],
                    options,
                    key=f"saetta-unit-{token}-{index}",
                )
                index_of[future.key] = index
                running.add(future)
                submitted += 1
            future = next(running)
            index = index_of.pop(future.key)
            tree.add(index, _leaf_or_failure(future, units[index]))
            if bar is not None:
                bar.update(units[index].num_entries)
        root = tree.root
        if root is None or isinstance(root, Partial):
            return root
        result: Partial = root.result()
        return result


def _leaf_or_failure(future: Any, unit: WorkUnit) -> Any:
    """The finished leaf, or, when its task killed every worker it ran on, that failure."""
    if future.status != "error":
        return future
    exc = future.exception()
    if not isinstance(exc, distributed.scheduler.KilledWorker):
        future.result()  # raises: a failure of saetta itself, not of the unit
    message = f"the Dask worker died each time it ran this unit ({exc})"
    return Partial.of(UnitOutcome(unit, failure=Failure(unit, "WorkerDied", message)))


@contextmanager
def _cancel_on_exit(
    client: distributed.Client, running: distributed.as_completed
) -> Iterator[None]:
    try:
        yield
    except BaseException:
        futures = list(running.futures)
        if futures:
            client.cancel(futures, force=True)
        raise
