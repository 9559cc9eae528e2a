"""Stage: ML (layer 7) — batches of any dataset saetta reads, streamed into training.

One epoch of one split, for one rank of ``world_size``:

1. the dataset's work units are put in a random order drawn from ``(seed, epoch)``
   (the file order otherwise); rank ``r`` takes every ``world_size``-th unit from
   the ``r``-th, and loader worker ``w`` of ``N`` every ``N``-th of those, so each
   unit, and so each event, is read by exactly one worker of one rank;
2. each unit is read as :func:`saetta.run` reads one (the column cache, the data
   cache tier, retries, the same error messages), on background threads that
   keep ``prefetch`` units ahead of the training loop, and keeps only the events
   of the split (:func:`~saetta.ml.features.split_codes`);
3. a shuffle buffer of at most ``shuffle_buffer`` events mixes the units: after
   each unit, the batches that bring the buffer back under its bound are drawn
   at random from all it holds; at the end of the stream it is emptied the same
   way. Memory is bounded by the buffer and the units in flight, not the dataset;
4. batches are dicts of arrays (:class:`~saetta.ml.features.Features`), plus
   ``"file"`` (the file's index in :attr:`Loader.files`) and ``"entry"``: every
   event's identity. Each worker's last batch may be short; on several ranks, each
   rank gets the same number of batches (:meth:`Loader.batch_sizes`).

The order is a function of ``(seed, epoch, rank, world_size, workers)`` and the
data: the same run gives the same batches; another epoch, other ones.

A unit that cannot be read (a corrupt file, a server that stays down) is left
out of the epoch with a :class:`~saetta.errors.SaettaWarning` naming it; every
other unit is still delivered, and :attr:`Loader.failures` lists what was not.
"""

from __future__ import annotations

import concurrent.futures
import html
import math
import multiprocessing
import os
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from saetta.dataset import DEFAULT_CHUNK_SIZE, Dataset
from saetta.errors import DatasetError, SaettaWarning
from saetta.execute.outcome import Failure
from saetta.execute.unit import UnitOptions, run_unit
from saetta.ml.features import Derive, Features, Split, split_codes
from saetta.units import WorkUnit

__all__ = ["Epoch", "Loader"]

Batch = dict[str, Any]

#: Marks a worker's report of a unit it could not read, inside the batch stream.
_FAILED = "__saetta_failed__"


class Loader:
    """Batches of ``features`` from ``data`` for training (see the module docstring).

    Parameters
    ----------
    data
        Paths, URLs or globs, a ``"@name"`` of the dataset catalog, or a
        :class:`saetta.Dataset`.
    features
        Branch names (``"MET_pt"``, ``"Jet_pt"``) or names ``derive`` returns.
    pad
        ``{collection: n}``: per-object features are padded or cut to ``n`` objects.
    target, weight
        A per-event branch (or derived name) returned as ``"target"`` / ``"weight"``.
    derive
        ``derive(events) -> {name: array}``, computed per unit on the events
        :func:`saetta.run` would give an analysis.
    batch_size
        Events per batch.
    shuffle, seed
        Whether to shuffle, and the seed the order is drawn from (with the epoch).
    split
        ``{name: fraction}``, default ``{"train": 1.0}``; see
        :func:`~saetta.ml.features.split_codes`.
    chunk_size
        Entries per work unit, as for :func:`saetta.run`.
    shuffle_buffer
        Events the shuffle buffer may hold (besides the units in flight).
    workers
        Loader processes (a torch ``DataLoader``'s ``num_workers``); 0 reads on
        background threads of this process.
    prefetch
        Units each worker reads ahead (threads), and batches a process keeps ready.
    column_cache
        A folder for decoded columns: the second epoch reads them from there.
    tree, dtype, pad_value
        The tree (ROOT), the features' type, the value of padded slots.
    """

    def __init__(
        self,
        data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Dataset,
        features: Sequence[str],
        *,
        pad: Mapping[str, int] | None = None,
        target: str | None = None,
        weight: str | None = None,
        derive: Derive | None = None,
        batch_size: int = 1024,
        shuffle: bool = True,
        seed: int = 0,
        split: Mapping[str, float] | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        shuffle_buffer: int = 200_000,
        workers: int = 0,
        prefetch: int = 2,
        column_cache: str | os.PathLike[str] | None = None,
        tree: str = "Events",
        dtype: str = "float32",
        pad_value: float = 0.0,
    ) -> None:
        for name, value, least in (
            ("batch_size", batch_size, 1),
            ("shuffle_buffer", shuffle_buffer, 0),
            ("workers", workers, 0),
            ("prefetch", prefetch, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                msg = f"{name} must be an integer of at least {least}, not {value!r}"
                raise DatasetError(msg)
        self.dataset = _open(data, tree)
        self.features = Features.of(
            features,
            self.dataset.columns,
            pad=pad,
            target=target,
            weight=weight,
            derive=derive,
            dtype=dtype,
            pad_value=pad_value,
        )
        self.split = Split.of(split)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.workers = workers
        self.prefetch = prefetch
        self.units = self.dataset.units(chunk_size)
        self.options = UnitOptions(
            column_cache=os.fspath(column_cache) if column_cache is not None else None,
            storage=self.dataset.storage,
        )
        self.failures: list[Failure] = []
        self._file_index = {(f.path, f.tree): i for i, f in enumerate(self.units.files)}
        self._counts: np.ndarray | None = None
        self._orders: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ what is there

    @property
    def files(self) -> tuple[str, ...]:
        """The files in the order ``batch["file"]`` indexes them."""
        return tuple(f.path for f in self.units.files)

    @property
    def splits(self) -> tuple[str, ...]:
        return self.split.names

    def unit_counts(self) -> np.ndarray:
        """Events of each split in each unit, ``(units, splits)``: from the events' identities,
        without reading the data."""
        if self._counts is None:
            counts = np.zeros((len(self.units), len(self.split.names)), dtype=np.int64)
            for i, unit in enumerate(self.units):
                codes = split_codes(unit.path, unit.start, unit.stop, self.split)
                counts[i] = np.bincount(codes, minlength=len(self.split.names))
            self._counts = counts
        return self._counts

    def num_events(self, split: str = "train") -> int:
        """Events in ``split``, over all ranks."""
        return int(self.unit_counts()[:, self.split.index(split)].sum())

    def num_batches(
        self, split: str = "train", epoch: int = 0, rank: int = 0, world_size: int = 1
    ) -> int:
        """Batches rank ``rank`` of ``world_size`` gets of ``split`` in ``epoch``, if every unit
        is read: the same number on every rank (see :meth:`batch_sizes`)."""
        workers = max(self.workers, 1)
        return sum(
            len(self.batch_sizes(split, epoch, rank, world_size, w, workers))
            for w in range(workers)
        )

    def batch_sizes(
        self, split: str, epoch: int, rank: int, world_size: int, worker: int = 0, workers: int = 1
    ) -> list[int]:
        """The sizes of the batches one loader worker of one rank gives, in order.

        On one rank: ``batch_size`` each, the last one short. On several, every rank
        gives as many batches as the rank with the most events, so that the ranks step
        together (an optimizer that steps on one rank and not on another would train
        two models): a rank with fewer events makes its last few batches smaller. Only
        a rank with fewer events than that many batches (a dataset of a few units over
        many ranks) gets fewer; :meth:`saetta.ml.Run.batches` then lets it join early.
        """
        column = self.unit_counts()[:, self.split.index(split)]

        def events(r: int) -> int:
            return int(column[self.shards(epoch, r, world_size)[worker::workers]].sum())

        own, size = events(rank), self.batch_size
        wanted = max(math.ceil(events(r) / size) for r in range(world_size))
        full = min(own // size, wanted)
        while full and own - full * size < wanted - full:
            full -= 1  # leave at least one event for each smaller batch
        rest, parts = own - full * size, min(wanted - full, own - full * size)
        return (
            [size] * full + [rest // parts + (i < rest % parts) for i in range(parts)]
            if parts
            else [size] * full
        )

    def shards(self, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """The units (indices into :attr:`units`) rank ``rank`` of ``world_size`` reads in
        ``epoch``, in reading order; worker ``w`` of ``N`` takes ``[w::N]`` of them."""
        _check_rank(rank, world_size)
        shard: np.ndarray = self._order(epoch)[rank::world_size]
        return shard

    def _order(self, epoch: int) -> np.ndarray:
        """The epoch's unit order, drawn once: every rank's batch count needs it."""
        if self._orders.get(epoch) is None:
            order = np.arange(len(self.units))
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
            self._orders = {epoch: order}  # the current epoch's only
        return self._orders[epoch]

    # ------------------------------------------------------------------ batches

    def epoch(
        self,
        epoch: int,
        split: str = "train",
        *,
        rank: int | None = None,
        world_size: int | None = None,
        device: Any = None,
        start: int = 0,
        tensors: bool = True,
    ) -> Epoch:
        """The batches of ``split`` in ``epoch`` for this rank, from batch ``start`` on.

        ``rank`` and ``world_size`` default to torch.distributed's when it is
        initialised, else 0 and 1. ``tensors=False`` gives numpy arrays (no torch
        needed); ``device`` moves torch tensors there.
        """
        if rank is None or world_size is None:
            rank, world_size = _distributed_rank()
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            msg = f"start must be a batch number, 0 or more, not {start!r}"
            raise DatasetError(msg)
        self.split.index(split)
        _check_rank(rank, world_size)
        return Epoch(self, epoch, split, rank, world_size, device, start, tensors)

    def torch_dataset(
        self, epoch: int, split: str = "train", *, rank: int = 0, world_size: int = 1
    ) -> Any:
        """A torch ``IterableDataset`` of the batches, for ``DataLoader(ds, batch_size=None,
        num_workers=N)``: each of the N workers reads its own units (set ``workers=N`` on
        this loader too, so that :meth:`num_batches` counts the same)."""
        from saetta.ml.tensors import Shards

        self.split.index(split)
        _check_rank(rank, world_size)
        return Shards(self, epoch, split, rank, world_size, report_failures=False)

    def stream(
        self,
        epoch: int,
        split: str,
        rank: int,
        world_size: int,
        worker: int = 0,
        workers: int = 1,
        *,
        report: Callable[[Failure], None] | None = None,
    ) -> Iterator[Batch]:
        """Numpy batches of one loader worker (see the module docstring); ``report`` gets each
        unit that could not be read."""
        indices = self.shards(epoch, rank, world_size)[worker::workers]
        wanted = self.split.index(split)
        counts = self.unit_counts()[:, wanted]
        units = [self.units[int(i)] for i in indices if counts[i]]
        rng = np.random.default_rng([self.seed, epoch, rank, world_size, worker, workers])
        sizes = self.batch_sizes(split, epoch, rank, world_size, worker, workers)
        buffer = _Buffer(sizes, self.batch_size, self.shuffle_buffer, rng if self.shuffle else None)
        for unit, outcome in self._read(units):
            if outcome.failure is not None:
                (report or self._record)(outcome.failure)
                continue
            arrays: dict[str, np.ndarray] = outcome.result
            codes = split_codes(unit.path, unit.start, unit.stop, self.split)
            keep = codes == wanted
            chosen = {k: v[keep] for k, v in arrays.items()}
            chosen["file"] = np.full(int(keep.sum()), self._file_index[unit.path, unit.tree])
            chosen["entry"] = np.arange(unit.start, unit.stop, dtype=np.int64)[keep]
            yield from buffer.add(chosen)
        yield from buffer.drain()

    def _read(self, units: Sequence[WorkUnit]) -> Iterator[tuple[WorkUnit, Any]]:
        """Each unit's outcome, in order, read ``prefetch`` units ahead on threads."""
        if not units:
            return
        pool = concurrent.futures.ThreadPoolExecutor(self.prefetch, "saetta-loader")
        pending: deque[tuple[WorkUnit, concurrent.futures.Future[Any]]] = deque()
        todo = iter(units)

        def top_up() -> None:
            while len(pending) < self.prefetch and (unit := next(todo, None)) is not None:
                pending.append((unit, pool.submit(self._read_unit, unit)))

        try:
            top_up()
            while pending:
                unit, future = pending.popleft()
                top_up()
                yield unit, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _read_unit(self, unit: WorkUnit) -> Any:
        return run_unit(self.features.arrays, unit, self.features.branches, self.options)

    def _record(self, failure: Failure) -> None:
        self.failures.append(failure)
        unit = failure.unit
        warnings.warn(
            f"{unit.path} entries [{unit.start}, {unit.stop}) left out: {failure.message}",
            SaettaWarning,
            stacklevel=2,
        )

    def features_of(self, events: Any) -> dict[str, np.ndarray]:
        """The arrays the network was trained on, for ``events`` in an analysis (to run the
        exported model on them, e.g. with :func:`saetta.inference.session`)."""
        return self.features.arrays(events)

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        padded = ", ".join(f"{c}×{n}" for c, (n, _) in self.features.padded.items())
        split = ", ".join(f"{k} {v:g}" for k, v in self.split.fractions.items())
        return (
            f"Loader({self.dataset!r}, {len(self.features.flat)} flat features"
            f"{', padded ' + padded if padded else ''}, batch {self.batch_size:,}, "
            f"split {split}, {'shuffled' if self.shuffle else 'in order'}"
            f"{f', seed {self.seed}' if self.shuffle else ''})"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("data", repr(self.dataset)),
            ("flat", ", ".join(self.features.flat) or "—"),
            *((f"{c} (×{n})", ", ".join(names)) for c, (n, names) in self.features.padded.items()),
            ("target", self.features.target or "—"),
            ("batch", f"{self.batch_size:,}"),
            ("split", ", ".join(f"{k} {v:g}" for k, v in self.split.fractions.items())),
            ("shuffle", f"seed {self.seed}" if self.shuffle else "off"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>saetta.ml.Loader</caption>{body}</table>"


@dataclass(frozen=True)
class Epoch:
    """One epoch's batches for one rank; ``len()`` is their number if every unit is read."""

    loader: Loader
    epoch: int
    split: str
    rank: int
    world_size: int
    device: Any
    start: int
    tensors: bool

    def __len__(self) -> int:
        total = self.loader.num_batches(self.split, self.epoch, self.rank, self.world_size)
        return max(total - self.start, 0)

    def __iter__(self) -> Iterator[Batch]:
        if self.loader.workers:
            from saetta.ml.tensors import worker_batches

            batches: Iterable[Batch] = worker_batches(self)
        else:
            batches = self.loader.stream(self.epoch, self.split, self.rank, self.world_size)
        convert = _converter(self.tensors, self.device)
        for position, batch in enumerate(batches):
            if position >= self.start:
                yield convert(batch)

    def __repr__(self) -> str:
        ranks = f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else ""
        return f"Epoch({self.epoch}, {self.split!r}{ranks}, {len(self):,} batches)"


class _Buffer:
    """The shuffle buffer: batches out as units come in (see the module docstring, 3), of
    the planned ``sizes`` (then ``batch_size``, if more events come than planned).

    In order, batches are slices of the units. Shuffled, the events wait in one
    pool, a row of bytes per event holding all its arrays, so that drawing an event
    touches one place in memory, not one per array (4 times faster for six arrays);
    a batch is a uniformly random set of the pool's rows, and the holes it leaves
    are filled from the pool's end: an event is copied
    in, out, and at most once in between, whatever the pool's size.
    """

    def __init__(
        self, sizes: list[int], batch_size: int, capacity: int, rng: np.random.Generator | None
    ) -> None:
        self.sizes, self.batch_size, self.rng = deque(sizes), batch_size, rng
        self.capacity = capacity if rng is not None else 0
        self.pool = np.empty((0, 0), dtype=np.uint8)
        self.layout: list[tuple[str, np.dtype[Any], tuple[int, ...], slice]] = []
        self.parts: deque[dict[str, np.ndarray]] = deque()  # in order: the units held
        self.size = 0  # events held
        self.head = 0  # in order: the first event of parts[0] not yet given out

    def add(self, arrays: dict[str, np.ndarray]) -> Iterator[Batch]:
        n = len(arrays["entry"])
        if n and self.rng is None:  # in order: batches are slices of the units
            self.parts.append(arrays)
            self.size += n
        elif n:
            self._append(arrays, n)
        while self.size - self.capacity >= self._next:
            yield self._take(self._next)

    def drain(self) -> Iterator[Batch]:
        while self.size:
            yield self._take(min(self._next, self.size))

    @property
    def _next(self) -> int:
        return self.sizes[0] if self.sizes else self.batch_size

    def _append(self, arrays: dict[str, np.ndarray], n: int) -> None:
        if not self.layout:
            offset = 0
            for key, value in arrays.items():
                width = value.dtype.itemsize * int(np.prod(value.shape[1:], dtype=np.int64))
                self.layout.append(
                    (key, value.dtype, value.shape[1:], slice(offset, offset + width))
                )
                offset += width
            self.pool = np.empty((0, offset), dtype=np.uint8)
        need = self.size + n
        if need > len(self.pool):
            room = max(need, 2 * len(self.pool), self.capacity + 2 * n)
            grown = np.empty((room, self.pool.shape[1]), dtype=np.uint8)
            grown[: self.size] = self.pool[: self.size]
            self.pool = grown
        rows = self.pool[self.size : need]
        for key, _, _, where in self.layout:
            rows[:, where] = np.ascontiguousarray(arrays[key]).reshape(n, -1).view(np.uint8)
        self.size = need

    def _take(self, count: int) -> Batch:
        if self.sizes:
            self.sizes.popleft()
        last = self.size - count
        if self.rng is None:
            self.size = last
            return self._slice(count)
        chosen = self.rng.choice(self.size, count, replace=False, shuffle=False)
        rows = np.take(self.pool, chosen, axis=0)
        holes = chosen[chosen < last]
        kept = np.ones(count, dtype=bool)
        kept[chosen[chosen >= last] - last] = False
        self.pool[holes] = np.take(self.pool, last + np.flatnonzero(kept), axis=0)
        self.size = last
        return {
            key: rows[:, where].copy().view(dtype).reshape(count, *shape)
            for key, dtype, shape, where in self.layout
        }

    def _slice(self, count: int) -> Batch:
        """The next ``count`` events in arrival order, from the units as they came."""
        pieces: list[Batch] = []
        while count:
            part = self.parts[0]
            taken = min(count, len(part["entry"]) - self.head)
            pieces.append({k: v[self.head : self.head + taken] for k, v in part.items()})
            self.head += taken
            count -= taken
            if self.head == len(part["entry"]):
                self.parts.popleft()
                self.head = 0
        if len(pieces) == 1:
            return pieces[0]
        return {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def _converter(tensors: bool, device: Any) -> Callable[[Batch], Batch]:
    if not tensors:
        return lambda batch: {k: np.asarray(v) for k, v in batch.items()}
    from saetta.ml.tensors import to_tensors

    return lambda batch: to_tensors(batch, device)


def _open(data: Any, tree: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str) and data.startswith("@"):
        return Dataset.from_catalog(data[1:])
    return Dataset.open(data, tree)


def _check_rank(rank: int, world_size: int) -> None:
    if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
        msg = f"rank {rank!r} of world size {world_size!r}: need 0 <= rank < world size"
        raise DatasetError(msg)


def _distributed_rank() -> tuple[int, int]:
    dist = sys.modules.get("torch.distributed")  # never imported: never initialised
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def forkserver() -> Any:
    """The start method of loader processes: a fork server, which forks its workers from
    a clean process (not this one's threads) and has saetta imported once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["saetta.ml.loader", "saetta.ml.tensors"])
    return context
