"""Stage: execute (layer 6) — run work units on a Dask cluster (dask.distributed).

One task per run of consecutive work units (one unit, or up to 64 light ones:
:func:`batch_level`); partial results merge *on the workers* along the same
fixed tree as every other executor (:mod:`saetta.execute.merge`), so the client
only ever receives the final result. Units are submitted progressively — a
bounded window in flight — so a million-unit dataset never becomes a
million-node graph, and the analysis function is sent to the workers once.

Needs the ``dask`` extra: ``pip install 'saetta[dask]'``.
"""

from __future__ import annotations

import socket
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from saetta.dataset import WorkUnit
from saetta.errors import ExecutorError
from saetta.execute.merge import MergeTree, Partial, combine
from saetta.execute.outcome import Failure, UnitOutcome
from saetta.execute.placement import Job, parse_workers
from saetta.execute.unit import UnitOptions, pickle_analysis, run_unit

try:
    import distributed
    import distributed.client
    import distributed.scheduler
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = "executor 'dask' needs dask.distributed: pip install 'saetta[dask]'"
    raise ExecutorError(msg, name="dask") from exc

__all__ = ["DaskPlacement", "check_environment", "connect", "drive", "versions"]

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

    def drive(self, job: Job) -> Partial | None:
        """:func:`drive`, again from the start when a dead worker took merged results with it.

        Dask recomputes a lost result from its inputs, but the inputs of a finished
        merge are released to keep the cluster's memory bounded; when such a merge
        is lost, the units not recorded before the run are run again, into a fresh
        tree (so none is counted twice).
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return drive(self, job)
            except distributed.client.FutureCancelledError as exc:
                if attempt == _ATTEMPTS:
                    msg = (
                        f"Dask workers died {attempt} times holding merged results "
                        f"({exc}); is the cluster short of memory?"
                    )
                    raise ExecutorError(msg, name=self.name) from exc
                if job.bar is not None:
                    job.bar.reset()
                    job.bar.update(sum(o.unit.num_entries for o in job.done.values()))
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def close(self, *, cancel: bool = False) -> None:
        if self.owned:
            cluster = self.client.cluster
            self.client.close()
            if cluster is not None:
                cluster.close()


def connect(argument: str, preload: Sequence[str] = ()) -> DaskPlacement:
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
    workers = parse_workers("dask", argument, 2)
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


def versions(client: distributed.Client) -> dict[str, dict[str, str | None]]:
    """The versions of :data:`PACKAGES` on the client (``"client"``) and on each worker,
    as ``distributed.Client.get_versions`` finds them (Python as major.minor)."""
    found: Any = client.get_versions(packages=list(PACKAGES))  # a sync client: the dict
    places = {"client": found["client"], **found["workers"]}
    out = {}
    for where, info in places.items():
        packages = (info or {}).get("packages") or {}
        python = str(packages.get("python") or "?")
        out[where] = {name: packages.get(name) for name in PACKAGES}
        out[where]["python"] = ".".join(python.split(".")[:2])
    return out


def check_environment(client: distributed.Client) -> None:
    """Fail clearly if a worker cannot import saetta or has other versions than the client.

    ``get_versions(check=True)`` only warns about a mismatch; a worker with another
    saetta or awkward gives wrong results or none, so here it is an error.
    """
    try:
        found = versions(client)
    except Exception as exc:
        msg = f"cannot check the Dask workers' environment: {type(exc).__name__}: {exc}"
        raise ExecutorError(msg, name="dask") from exc
    here = found.pop("client")
    problems = []
    for worker, there in sorted(found.items()):
        diffs = [
            f"{name} {there.get(name) or 'missing'} (client {here[name]})"
            for name in here
            if there.get(name) != here[name]
        ]
        if diffs:
            problems.append(f"{worker}: {', '.join(diffs)}")
    if problems:
        msg = "Dask workers differ from this client: " + "; ".join(problems)
        raise ExecutorError(msg, name="dask")


def _batch(pickled: bytes, units: tuple[WorkUnit, ...], options: UnitOptions) -> Partial | None:
    """Run consecutive units on one worker and merge them along the run's tree.

    ``units`` are the leaves of one node of the run's merge tree, so the local tree
    over them has the shape of that subtree: the partial is bit for bit the one the
    units, run one task each, would merge to. Columns the first units read are
    prefetched by the next ones, as in a process pool.
    """
    tree: MergeTree[Partial] = MergeTree(len(units), combine)
    columns: dict[str, None] = {}
    for position, unit in enumerate(units):
        outcome = run_unit(pickled, unit, tuple(columns), options)
        columns.update(dict.fromkeys(outcome.columns))
        tree.add(position, Partial.of(outcome))
    return tree.root


def batch_level(units: int, workers: int) -> int:
    """Units per task, as a power of two ``2^level``: one task per unit costs the
    scheduler milliseconds, as much as a light unit's work. Tasks stay at least eight
    per worker (the last ones finish together) and at most 64 units each."""
    level = 0
    while level < 6 and units >> (level + 1) >= 8 * workers:
        level += 1
    return level


def drive(placement: DaskPlacement, job: Job) -> Partial | None:
    """Run every unit of ``job`` not done on the cluster, in tasks of consecutive units
    (:func:`batch_level`); return the tree-merged partial (fetched once)."""
    client, units = placement.client, job.units
    check_environment(client)
    if job.bar is not None and client.dashboard_link:
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    pickled = pickle_analysis(job.analysis, remote=True)
    token = uuid.uuid4().hex[:12]  # one run's keys never collide with another's
    [shipped] = client.scatter([pickled], broadcast=True, hash=False)
    merges = iter(range(len(units)))

    def join(left: Any, right: Any) -> Any:
        key = f"saetta-merge-{token}-{next(merges)}"
        return client.submit(combine, left, right, key=key, priority=1)

    tree, todo = job.merge_tree(join)  # futures, or partials resumed
    tasks = _tasks(todo, len(units), batch_level(len(todo), placement.workers))
    window = 4 * placement.workers + 2
    running = distributed.as_completed()
    task_of: dict[Any, tuple[int, int]] = {}
    submitted = 0
    with _cancel_on_exit(client, running):
        while submitted < len(tasks) or task_of:
            while submitted < len(tasks) and len(task_of) < window:
                level, k = tasks[submitted]
                future = client.submit(
                    _batch,
                    shipped,
                    units[k << level : (k + 1) << level],
                    job.options,
                    key=f"saetta-units-{token}-{level}-{k}",
                )
                task_of[future.key] = (level, k)
                running.add(future)
                submitted += 1
            future = next(running)
            level, k = task_of.pop(future.key)
            batch = units[k << level : (k + 1) << level]
            if level and _killed_its_workers(future):  # find the culprit: one unit a task
                tasks[submitted:submitted] = [
                    (0, i) for i in range(k << level, (k << level) + len(batch))
                ]
                continue
            tree.add(k, _leaf_or_failure(future, batch[0]), level)
            for unit in batch:
                job.advance(unit)
        root = tree.root
        if root is None or isinstance(root, Partial):
            return root
        result: Partial = root.result()
        return result


def _tasks(todo: Sequence[int], units: int, level: int) -> list[tuple[int, int]]:
    """The nodes ``(level, k)`` of the merge tree to submit, one task each: whole nodes
    of ``2^level`` units where none is done yet, single units elsewhere (a resumed run)."""
    left = set(todo)
    tasks = []
    for k in range(-(-units // (1 << level))):
        members = range(k << level, min((k + 1) << level, units))
        if all(i in left for i in members):
            tasks.append((level, k))
        else:
            tasks += [(0, i) for i in members if i in left]
    return tasks


def _killed_its_workers(future: Any) -> bool:
    return future.status == "error" and isinstance(
        future.exception(), distributed.scheduler.KilledWorker
    )


def _leaf_or_failure(future: Any, unit: WorkUnit) -> Any:
    """The finished task, or, when its one unit killed every worker it ran on, that failure."""
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
