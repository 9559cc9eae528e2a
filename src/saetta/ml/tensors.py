"""Stage: ML (layer 7) — the loader's batches as torch tensors, and in loader processes.

Only this module (and :mod:`saetta.ml.training`, :mod:`saetta.ml.to_onnx`, :mod:`saetta.ml.checkpoint`) imports torch: numpy batches need
none (``pip install 'saetta[ml]'`` for the rest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from saetta.execute.outcome import Failure
from saetta.ml.loader import _FAILED, Batch, forkserver

if TYPE_CHECKING:
    from saetta.ml.loader import Epoch, Loader

__all__ = ["Shards", "to_tensors", "worker_batches"]


def to_tensors(batch: Batch, device: Any = None) -> dict[str, torch.Tensor]:
    """Each array as a tensor (sharing the memory on the CPU), moved to ``device`` if given."""
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
        out[key] = tensor.to(device, non_blocking=True) if device is not None else tensor
    return out


class Shards(IterableDataset):  # type: ignore[type-arg]
    """One epoch of one rank as a torch ``IterableDataset``; each ``DataLoader`` worker
    reads its own share of the units (``Loader.stream``'s ``worker`` of ``workers``)."""

    def __init__(
        self, loader: Loader, epoch: int, split: str, rank: int, world_size: int, *,
        report_failures: bool,
    ) -> None:  # fmt: skip
        self.loader, self.epoch, self.split = loader, epoch, split
        self.rank, self.world_size = rank, world_size
        self.report_failures = report_failures

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        failed: list[Failure] = []
        report = failed.append if self.report_failures else None
        stream = self.loader.stream(
            self.epoch, self.split, self.rank, self.world_size, worker, workers, report=report
        )
        for batch in stream:
            while failed:
                yield {_FAILED: failed.pop(0)}
            yield batch
        for failure in failed:
            yield {_FAILED: failure}


def worker_batches(epoch: Epoch) -> Iterator[Batch]:
    """The epoch's batches read by ``loader.workers`` processes, in a fixed order (the
    DataLoader takes them from the workers in turn); their failures reach this process."""
    loader = epoch.loader
    dataset = Shards(
        loader, epoch.epoch, epoch.split, epoch.rank, epoch.world_size, report_failures=True
    )
    device = torch.device(epoch.device) if epoch.device is not None else None
    batches = DataLoader(
        dataset,
        batch_size=None,
        num_workers=loader.workers,
        multiprocessing_context=forkserver(),
        prefetch_factor=loader.prefetch,
        pin_memory=device is not None and device.type == "cuda",
    )
    for batch in batches:
        if _FAILED in batch:
            loader._record(batch[_FAILED])
            continue
        yield batch
