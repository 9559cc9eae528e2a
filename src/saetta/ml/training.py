"""Stage: ML (layer 7) — ``saetta train``: a user's training loop as a distributed job.

A training script defines two functions::

    def loader(data):              # data: --data (a path, glob or "@name"), or None
        return ml.Loader(data or "data/*.root", ["Jet_pt", "MET_pt"], pad={"Jet": 6}, ...)

    def train(run):                # run: ml.Run
        torch.manual_seed(run.seed)
        model = run.distribute(Net())              # DistributedDataParallel over the ranks
        optimizer = torch.optim.Adam(model.parameters())
        run.track(model=model, optimizer=optimizer)   # checkpointed; restored on --resume
        for epoch in run.epochs():
            for batch in run.batches(epoch):       # this rank's share of the training split
                loss = ...; loss.backward(); optimizer.step(); optimizer.zero_grad()
            run.log(epoch=epoch, loss=run.mean(loss.item()))

:func:`train` runs ``train(run)`` on ``world_size`` ranks, as one PyTorch
DistributedDataParallel job: on local processes, or on the workers of a testbed
(a Dask cluster, SLURM or HTCondor jobs), one rank per worker, with ``gloo`` on
CPUs and ``nccl`` on GPUs. Each rank reads its own units (:class:`~saetta.ml.Loader`),
and every rank gets the same number of batches, so all step together. Should a
unit fail to read on one rank, its batches run out first: :meth:`Run.batches`
runs the loop inside DDP's ``join()``, so that rank shadows the others' gradient
reductions instead of leaving them waiting.

Every ``checkpoint_every`` batches and at each epoch's end, :meth:`Run.batches`
writes a checkpoint (:mod:`~saetta.ml.checkpoint`): the tracked objects, the
position in the epoch, every rank's random states. :func:`resume` continues from
the last one, with the same settings and the same batches from there on, so a
run killed and resumed ends with the weights of one never interrupted (on the
same ranks and loader workers; the loop must use no randomness but torch's,
numpy's and Python's, nor any collective other than DDP's inside the batches).

The run directory holds ``run.json`` (the settings and, when done, the result),
``metrics.jsonl`` (what :meth:`Run.log` recorded), ``checkpoints/`` and the final
``model.pt`` (the tracked model's ``state_dict``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import hashlib
import html
import itertools
import json
import math
import os
import resource
import signal
import socket
import sys
import time
import traceback
import types
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cloudpickle
import torch
import torch.distributed as dist

from saetta._config import runs_dir
from saetta.errors import ExecutorError, SaettaError
from saetta.ml import checkpoint
from saetta.ml.checkpoint import Position
from saetta.ml.loader import Loader
from saetta.storage import atomic_path, lock_folder, redact

__all__ = [
    "Run",
    "Settings",
    "TrainResult",
    "load_script",
    "new_run_dir",
    "resume",
    "train",
    "weights_digest",
]

RUN_KIND = "saetta-train"
_MODULE = "_saetta_user_train"


@dataclass(frozen=True, slots=True)
class Settings:
    """What a training run is: stored in ``run.json``, read back by :func:`resume`."""

    script: str  # absolute path of the training script
    script_sha256: str
    data: str | None = None  # as stored: a URL's credentials removed
    credentials_removed: bool = False
    epochs: int = 1
    world_size: int = 1
    testbed: str | None = None  # None: local processes
    seed: int = 0
    checkpoint_every: int = 100  # batches; 0: at epoch ends only
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    threads: int = 0  # torch threads per rank; 0: this machine's cores / local ranks
    limit_batches: int = 0  # stop each epoch after this many batches (timing runs); 0: all
    timeout_s: float = 1800.0  # a collective that waits this long fails the run


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A finished training run, as ``run.json`` records it."""

    directory: Path
    settings: Settings
    seconds: float
    events: int  # training events seen, all ranks (a resumed run: since the resume)
    data_wait: float  # fraction of the training loop's time spent waiting for batches
    digests: tuple[str, ...]  # sha256 of each rank's final weights
    losses: tuple[Mapping[str, Any], ...]  # what Run.log recorded, in order
    loop_s: float = 0.0  # the slowest rank's time in its training loops
    loop_rel_err: float = 0.0  # relative error of the mean time per batch (its scatter)
    peak_memory: int = 0  # bytes, the largest of any rank
    failures: tuple[str, ...] = ()  # units that could not be read, with why

    @property
    def model(self) -> Path:
        return self.directory / "model.pt"

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def _repr_html_(self) -> str:
        rows = [
            ("run directory", str(self.directory)),
            ("ranks, epochs", f"{self.settings.world_size}, {self.settings.epochs}"),
            ("events trained", f"{self.events:,}"),
            ("wall time", f"{self.seconds:.1f} s end to end, {self.loop_s:.1f} s in the loop"),
            ("waiting for data", f"{self.data_wait:.1%} of the loop"),
            ("weights", "identical on every rank" if len(set(self.digests)) == 1 else "DIFFERENT"),
            *(
                (
                    f"epoch {m.get('epoch', i)}",
                    ", ".join(
                        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in m.items()
                        if k != "epoch"
                    ),
                )
                for i, m in enumerate(self.losses)
            ),
            *(("not trained on", f) for f in self.failures),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>saetta.ml.TrainResult</caption>{body}</table>"

    def __repr__(self) -> str:
        same = "identical on every rank" if len(set(self.digests)) == 1 else "DIFFERENT per rank"
        return (
            f"TrainResult({self.directory}, {self.settings.world_size} rank(s), "
            f"{self.settings.epochs} epoch(s), {self.events:,} events in {self.seconds:.1f} s "
            f"({self.events_per_s:,.0f}/s), data wait {self.data_wait:.1%}, weights {same})"
        )


class Run:
    """What ``train(run)`` gets: the loader, its rank, and checkpointing (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        directory: Path,
        loader: Loader,
        rank: int,
        device: torch.device,
        progress: bool,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.loader = loader
        self.rank = rank
        self.world_size = settings.world_size
        self.num_epochs = settings.epochs
        self.seed = settings.seed
        self.device = device
        self.position = Position()
        self.events = 0
        self.waited = 0.0  # seconds the loop waited for a batch
        self.looped = 0.0  # seconds in the loop over the training batches
        self.cycles = _Spread()  # seconds from one batch to the next
        self._progress = progress and rank == 0
        self._tracked: dict[str, Any] = {}
        self._ddp: Any = None
        self._logged: list[dict[str, Any]] = []

    def distribute(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` on this rank's device, wrapped in DistributedDataParallel when there
        is more than one rank (the same weights on every rank from here on)."""
        model = model.to(self.device)
        if self.world_size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self._ddp = wrapped
        return wrapped

    def track(self, **objects: Any) -> Position:
        """Checkpoint these (anything with ``state_dict``; one named ``model``); on a
        resumed run, load them from the last checkpoint. Returns where training stands."""
        if "model" not in objects:
            msg = (
                "run.track needs the network as model=..., e.g. run.track(model=net, optimizer=opt)"
            )
            raise SaettaError(msg)
        self._tracked = {
            k: getattr(v, "module", v) if k == "model" else v for k, v in objects.items()
        }
        found = checkpoint.latest(self.directory)
        if found is not None:
            position, world = found
            if world != self.world_size:
                msg = f"{self.directory} was checkpointed on {world} ranks; resume it on {world}"
                raise SaettaError(msg)
            checkpoint.restore(self.directory, position, self.rank, self._tracked)
            self.position = position
        return self.position

    def epochs(self) -> range:
        """The epochs still to train: all of them, or those from the checkpoint's on."""
        return range(self.position.epoch, self.num_epochs)

    def batches(self, epoch: int, split: str | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """This rank's batches of ``split`` (the loader's first split, the training one, by
        default) on its device. For the training split: from the checkpoint's batch on, a
        checkpoint every ``checkpoint_every`` batches and at the end, inside DDP's join."""
        training = self.loader.splits[0]
        split = split or training
        start = self.position.batch if split == training and epoch == self.position.epoch else 0
        epoch_batches = self.loader.epoch(
            epoch, split, rank=self.rank, world_size=self.world_size, device=self.device,
            start=start,
        )  # fmt: skip
        if split != training:
            yield from epoch_batches
            return
        if not self._tracked:
            msg = "call run.track(model=..., optimizer=...) before run.batches, to checkpoint them"
            raise SaettaError(msg)
        total = len(epoch_batches)
        batches: Iterable[dict[str, torch.Tensor]] = epoch_batches
        if self.settings.limit_batches:
            total = max(0, min(total, self.settings.limit_batches - start))
            batches = itertools.islice(epoch_batches, total)
        every = self.settings.checkpoint_every
        # Checkpoint only where every rank is still in the loop (the shortest share's length).
        last_shared = min(
            self.loader.num_batches(split, epoch, r, self.world_size)
            for r in range(self.world_size)
        )
        done = start
        joined = self._ddp.join() if self._ddp is not None else contextlib.nullcontext()
        began = time.perf_counter()
        with joined, _progress(total, f"epoch {epoch}", self._progress) as bar:
            iterator = iter(batches)
            cycle = time.perf_counter()
            while True:
                asked = time.perf_counter()
                batch = next(iterator, None)
                self.waited += time.perf_counter() - asked
                if batch is None:
                    break
                yield batch
                done += 1
                self.events += len(batch["entry"])
                bar.update(1)
                if every and done % every == 0 and done < last_shared:
                    self._checkpoint(Position(epoch, done))
                now = time.perf_counter()
                self.cycles.add(now - cycle)
                cycle = now
        self.looped += time.perf_counter() - began
        self._checkpoint(Position(epoch + 1, 0))

    def mean(self, value: float) -> float:
        """``value`` averaged over the ranks (call it on every rank, outside the batches)."""
        if self.world_size == 1:
            return float(value)
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def log(self, **metrics: Any) -> None:
        """Record ``metrics`` (rank 0 writes them to ``metrics.jsonl`` and shows them)."""
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
        self._logged.append(record)
        if self.rank != 0:
            return
        with (self.directory / "metrics.jsonl").open("a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        if self._progress:
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()
            )
            print(f"saetta: {shown}", file=sys.stderr, flush=True)

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _checkpoint(self, position: Position) -> None:
        checkpoint.save(
            self.directory, position, self.rank, self._tracked if self.rank == 0 else None
        )
        if self.world_size > 1:
            dist.barrier()
        if self.rank == 0:
            checkpoint.commit(self.directory, position, self.world_size)
        self.position = position

    def _finish(self) -> dict[str, Any]:
        model = self._tracked.get("model")
        if model is None:
            msg = "train(run) returned without run.track(model=...): there is no model to save"
            raise SaettaError(msg)
        state = model.state_dict()
        if self.rank == 0:
            with atomic_path(self.directory / "model.pt") as temporary:
                torch.save(state, temporary)
        return {
            "rank": self.rank,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "digest": weights_digest(state),
            # Every tracked object (the optimizer's moments too): ranks that stepped apart differ.
            "state_digest": weights_digest({k: v.state_dict() for k, v in self._tracked.items()}),
            "events": self.events,
            "waited": self.waited,
            "looped": self.looped,
            "cycle_rel_err": self.cycles.relative_error(),
            "peak_memory": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "failures": [f"{f.unit}: {f.message}" for f in self.loader.failures],
            "logged": self._logged,
        }


class _Spread:
    """Count, sum and sum of squares of a quantity, for its mean's relative error."""

    def __init__(self) -> None:
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def add(self, value: float) -> None:
        self.n, self.total, self.squares = self.n + 1, self.total + value, self.squares + value**2

    def relative_error(self) -> float:
        if self.n < 2 or self.total <= 0:
            return 0.0
        mean = self.total / self.n
        variance = max(0.0, self.squares / self.n - mean**2) * self.n / (self.n - 1)
        return math.sqrt(variance / self.n) / mean


def weights_digest(state: Mapping[str, Any]) -> str:
    """sha256 of a ``state_dict`` (nested ones too): names, types, shapes and bytes."""
    digest = hashlib.sha256()

    def add(name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().contiguous().numpy()
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
        elif isinstance(value, Mapping):
            for key, item in value.items():
                add(f"{name}/{key}", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                add(f"{name}/{index}", item)
        else:
            digest.update(f"{name}={value!r}".encode())

    add("", state)
    return digest.hexdigest()


# --------------------------------------------------------------------------- launching


def train(
    script: str | os.PathLike[str],
    *,
    data: str | None = None,
    epochs: int = 1,
    world_size: int = 1,
    testbed: str | None = None,
    seed: int = 0,
    checkpoint_every: int = 100,
    device: str = "cpu",
    directory: str | os.PathLike[str] | None = None,
    progress: bool = True,
    threads: int = 0,
    limit_batches: int = 0,
    fresh_process: bool = False,
) -> TrainResult:
    """Run ``script``'s ``train(run)`` on ``world_size`` ranks (see the module docstring).

    ``testbed`` names a testbed (``saetta testbeds list``) whose workers run the ranks;
    None runs them as local processes. ``directory`` is the run directory, new or
    empty (default: a new one under ``~/.cache/saetta/runs``). ``threads`` sets torch's
    threads per rank (0: this machine's cores shared among local ranks; 1 on a
    testbed's workers); ``limit_batches`` ends each epoch after that many batches
    (what a use case's calibration times); ``fresh_process`` runs a single local rank
    in a new process too, as several always are (what a job started cold costs).
    """
    path = Path(script).resolve()
    source = _read_script(path)
    for name, value in (("epochs", epochs), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"{name} must be a positive integer, not {value!r}"
            raise SaettaError(msg)
    if device not in {"cpu", "cuda", "auto"}:
        msg = f"device must be cpu, cuda or auto, not {device!r}"
        raise SaettaError(msg)
    settings = Settings(
        script=str(path),
        script_sha256=hashlib.sha256(source.encode()).hexdigest(),
        data=redact(data) if data is not None else None,
        credentials_removed=data is not None and redact(data) != data,
        epochs=epochs,
        world_size=world_size,
        testbed=testbed,
        seed=seed,
        checkpoint_every=checkpoint_every,
        device=device,
        threads=threads,
        limit_batches=limit_batches,
    )
    folder = Path(directory) if directory is not None else new_run_dir()
    if folder.exists() and any(folder.iterdir()):
        msg = f"{folder} is not empty: resume it with saetta train --resume {folder}, or give a new folder"
        raise SaettaError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    _write_record(
        folder, {"kind": RUN_KIND, "status": "running", "settings": dataclasses.asdict(settings)}
    )
    return _launch(settings, data, source, folder, progress, fresh_process)


def resume(
    directory: str | os.PathLike[str], *, data: str | None = None, progress: bool = True
) -> TrainResult:
    """Continue the run in ``directory`` from its last checkpoint (a finished run is
    returned as it is). ``data`` gives the dataset again where its URL held
    credentials, which the run directory does not keep."""
    folder = Path(directory)
    record = _read_record(folder)
    try:
        settings = Settings(**record["settings"])
    except TypeError as exc:
        msg = f"{folder / 'run.json'} holds settings this saetta does not know: {exc}"
        raise SaettaError(msg) from None
    if record.get("status") == "finished":
        return _result(folder, settings, record["result"])
    source = _read_script(Path(settings.script))
    if hashlib.sha256(source.encode()).hexdigest() != settings.script_sha256:
        msg = f"{settings.script} changed since the run started: resuming it would train another model"
        raise SaettaError(msg)
    if data is None:
        if settings.credentials_removed:
            msg = "the run's dataset URL held credentials, which are not kept: give --data again"
            raise SaettaError(msg)
        data = settings.data
    elif settings.data is not None and redact(data) != settings.data:
        msg = f"--data {redact(data)} is not the run's dataset, {settings.data}"
        raise SaettaError(msg)
    checkpoint.remove_partial(folder)
    return _launch(settings, data, source, folder, progress)


@dataclass(frozen=True, slots=True)
class _Job:
    """What each rank needs; pickled to local processes and Dask workers."""

    settings: Settings
    data: str | None  # the dataset as given, credentials and all (never written)
    source: str
    directory: str
    master: str  # host:port of rank 0's rendezvous
    progress: bool
    threads: int


def _launch(
    settings: Settings,
    data: str | None,
    source: str,
    folder: Path,
    progress: bool,
    fresh_process: bool = False,
) -> TrainResult:
    held = lock_folder(folder)
    if isinstance(held, str):
        msg = f"{folder} is in use by another saetta train ({held}); wait for it, or kill it first"
        raise SaettaError(msg)
    try:
        started = time.perf_counter()
        if settings.testbed is None:
            ranks = _run_local(settings, data, source, folder, progress, fresh_process)
        else:
            ranks = _run_on_testbed(settings, data, source, folder, fresh_process)
        seconds = time.perf_counter() - started
        return _record_result(settings, folder, ranks, seconds)
    finally:
        os.close(held)


def _record_result(
    settings: Settings, folder: Path, ranks: list[dict[str, Any]], seconds: float
) -> TrainResult:
    ranks = sorted(ranks, key=lambda r: r["rank"])
    looped = sum(r["looped"] for r in ranks)
    result = {
        "seconds": seconds,
        "events": sum(r["events"] for r in ranks),
        "data_wait": sum(r["waited"] for r in ranks) / looped if looped else 0.0,
        "loop_s": max(r["looped"] for r in ranks),
        "loop_rel_err": max(r["cycle_rel_err"] for r in ranks),
        "peak_memory": max(r["peak_memory"] for r in ranks),
        "failures": [f for r in ranks for f in r["failures"]],
        "digests": [r["digest"] for r in ranks],
        "state_digests": [r["state_digest"] for r in ranks],
        "workers": [{"worker": r["worker"], "slurm_job": r["slurm_job"]} for r in ranks],
        "losses": ranks[0]["logged"],
    }
    record = _read_record(folder)
    _write_record(folder, {**record, "status": "finished", "result": result})
    return _result(folder, settings, result)


def _run_local(
    settings: Settings,
    data: str | None,
    source: str,
    folder: Path,
    progress: bool,
    fresh_process: bool = False,
) -> list[dict[str, Any]]:
    threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.world_size)
    job = _Job(settings, data, source, str(folder), f"127.0.0.1:{_free_port()}", progress, threads)
    if settings.world_size == 1 and not fresh_process:
        return [_rank_main(job, 0)]
    from torch.multiprocessing.spawn import (
        ProcessExitedException,
        ProcessRaisedException,
        start_processes,
    )

    results = folder / "ranks"
    results.mkdir(exist_ok=True)
    try:
        start_processes(  # type: ignore[no-untyped-call]
            _local_rank, args=(job,), nprocs=settings.world_size, start_method="spawn"
        )
    except ProcessRaisedException as exc:
        raise SaettaError(_last_line(str(exc))) from None
    except ProcessExitedException as exc:
        msg = f"a training rank died ({_last_line(str(exc))})"
        raise SaettaError(msg) from None
    ranks = []
    for rank in range(settings.world_size):
        ranks.append(json.loads((results / f"rank{rank}.json").read_text(encoding="utf-8")))
    return ranks


def _local_rank(rank: int, job: _Job) -> None:
    _die_with_parent()
    summary = _rank_main(job, rank)
    target = Path(job.directory) / "ranks" / f"rank{rank}.json"
    with atomic_path(target) as temporary:
        Path(temporary).write_text(json.dumps(summary), encoding="utf-8")


def _run_on_testbed(
    settings: Settings, data: str | None, source: str, folder: Path, fresh_process: bool
) -> list[dict[str, Any]]:
    from saetta.execute.testbeds import testbed

    bed = testbed(settings.testbed or "")
    if not bed.has_client:
        # A local testbed: its processes are this machine's.
        local = dataclasses.replace(settings, testbed=None)
        return _run_local(local, data, source, folder, False, fresh_process)
    if not bed.address:  # a cluster saetta starts: as many workers as ranks
        bed = dataclasses.replace(bed, workers=settings.world_size, adapt=None)
    with bed.client() as client:
        client.wait_for_workers(settings.world_size, timeout=bed.startup_timeout)
        workers = sorted(client.scheduler_info()["workers"])[: settings.world_size]
        host = urlsplit(workers[0]).hostname or "127.0.0.1"
        port = client.submit(_free_port, workers=[workers[0]], pure=False).result()
        job = _Job(
            settings, data, source, str(folder), f"{host}:{port}", False, settings.threads or 1
        )
        tag = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                _rank_main,
                job,
                rank,
                workers=[address],
                allow_other_workers=False,
                pure=False,
                key=f"saetta-train-{tag}-rank{rank}",
            )
            for rank, address in enumerate(workers)
        ]
        try:
            return list(client.gather(futures))
        except SaettaError:
            raise
        except Exception as exc:  # noqa: BLE001 - a rank's own error, from its worker
            msg = f"a training rank failed on {bed.name}: {type(exc).__name__}: {_last_line(str(exc))}"
            raise ExecutorError(msg, name=bed.name) from None


def _rank_main(job: _Job, rank: int) -> dict[str, Any]:
    """One rank: join the process group, run the script's ``train(run)``, save."""
    settings = job.settings
    torch.set_num_threads(job.threads)
    device = _device(settings.device, rank)
    if settings.world_size > 1:
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            init_method=f"tcp://{job.master}",
            rank=rank,
            world_size=settings.world_size,
            timeout=datetime.timedelta(seconds=settings.timeout_s),
        )
    try:
        try:
            module = load_script(job.source, settings.script)
            loader = module.loader(job.data)
            if not isinstance(loader, Loader):
                msg = f"loader(data) in {settings.script} returned a {type(loader).__name__}, not an ml.Loader"
                raise SaettaError(msg)
            run = Run(settings, Path(job.directory), loader, rank, device, job.progress)
            module.train(run)
        except SaettaError:
            raise
        except Exception as exc:
            raise SaettaError(_script_error(exc, settings.script, rank)) from exc
        summary = run._finish()
        if settings.world_size > 1:
            dist.barrier()
        return summary
    finally:
        if settings.world_size > 1:
            dist.destroy_process_group()


def _script_error(exc: BaseException, script: str, rank: int) -> str:
    """``train.py, line 40, in train: ValueError: ...``: the script's innermost line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == script]
    where = (
        f"{Path(script).name}, line {frames[-1].lineno}, in {frames[-1].name}: " if frames else ""
    )
    text = " ".join(str(exc).split())
    return (
        f"rank {rank}: {where}{type(exc).__name__}: {text}"
        if text
        else f"rank {rank}: {where}{type(exc).__name__}"
    )


def load_script(source: str, path: str) -> types.ModuleType:
    """The training script as a module, checked for its ``loader`` and ``train``."""
    module = types.ModuleType(_MODULE)
    module.__file__ = path
    sys.modules[_MODULE] = module
    # Its functions (a loader's derive) go to loader processes whole, not by a name
    # they cannot import.
    cloudpickle.register_pickle_by_value(module)
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - the user's own script
    for name in ("loader", "train"):
        if not callable(getattr(module, name, None)):
            msg = f"{path} defines no {name}() function; see saetta train --help"
            raise SaettaError(msg)
    return module


def _device(kind: str, rank: int) -> torch.device:
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        msg = "device cuda asked for, but torch sees no GPU here"
        raise SaettaError(msg)
    index = rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _die_with_parent() -> None:
    """Have Linux kill this process when its parent dies (a killed ``saetta train``
    leaves no rank behind)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


def _progress(total: int, label: str, shown: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"saetta: {label}", unit="batch", disable=not shown, leave=False)


def _read_script(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"cannot read the training script {path}: {exc.strerror or exc}"
        raise SaettaError(msg) from None


def new_run_dir() -> Path:
    """A new run directory's path: ``~/.cache/saetta/runs/train-<time>-<id>``."""
    return runs_dir() / f"train-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    with atomic_path(folder / "run.json") as temporary:
        Path(temporary).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def _read_record(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{folder} is not a training run directory (no run.json)"
        raise SaettaError(msg) from None
    except (OSError, ValueError) as exc:
        msg = f"cannot read {path}: {exc}"
        raise SaettaError(msg) from None
    if record.get("kind") != RUN_KIND or not isinstance(record.get("settings"), dict):
        msg = f"{path} is not a saetta train run"
        raise SaettaError(msg)
    return record


def _result(folder: Path, settings: Settings, result: Mapping[str, Any]) -> TrainResult:
    return TrainResult(
        directory=folder,
        settings=settings,
        seconds=float(result["seconds"]),
        events=int(result["events"]),
        data_wait=float(result["data_wait"]),
        digests=tuple(result["digests"]),
        losses=tuple(result["losses"]),
        loop_s=float(result.get("loop_s", 0.0)),
        loop_rel_err=float(result.get("loop_rel_err", 0.0)),
        peak_memory=int(result.get("peak_memory", 0)),
        failures=tuple(result.get("failures", ())),
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else text
    return last.removeprefix("saetta.errors.SaettaError: ")
