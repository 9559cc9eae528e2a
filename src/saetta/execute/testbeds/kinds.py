"""Stage: execute (layer 6) — testbed kinds: what each of local, dask, slurm, htcondor does.

One :class:`Kind` a type of testbed: which fields it takes, the executor it runs
on, how to get a Dask client for it, how many workers it has by default. A new
kind of testbed is one entry in :data:`TYPES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from saetta.execute.testbeds import batch

if TYPE_CHECKING:
    from saetta.execute.testbeds.spec import Testbed

__all__ = ["KINDS", "TYPES", "Kind"]


@dataclass(frozen=True, slots=True)
class Kind:
    """One type of testbed."""

    name: str
    fields: frozenset[str]  # the testbed fields it takes, besides type and workers
    batch: bool  # a batch system: other keys go to the dask-jobqueue cluster class
    executor: Callable[[Testbed], str | None]  # None: it needs a cluster started
    client: Callable[[Testbed], AbstractContextManager[Any]] | None
    default_workers: Callable[[Testbed], int]


def _local_executor(bed: Testbed) -> str:
    return f"processes:{bed.workers}" if bed.workers else "processes"


def _dask_executor(bed: Testbed) -> str:
    if bed.address:
        return "dask://" + bed.address.split("://", 1)[-1]
    return f"dask:{bed.workers or os.cpu_count() or 1}"


@contextmanager
def _dask_client(bed: Testbed) -> Iterator[Any]:
    from saetta.execute.dask import connect

    placement = connect(_dask_executor(bed).partition(":")[2])
    try:
        yield placement.client
    finally:
        placement.close()


def _cores(bed: Testbed) -> int:
    return bed.workers or os.cpu_count() or 1


def _jobs(bed: Testbed) -> int:
    return bed.workers or (bed.adapt[1] if bed.adapt else 1)


#: Each testbed ``type`` and what it does.
TYPES = MappingProxyType(
    {
        "local": Kind("local", frozenset(), False, _local_executor, None, _cores),
        "dask": Kind(
            "dask",
            frozenset({"address", "startup_timeout"}),
            False,
            _dask_executor,
            _dask_client,
            _cores,
        ),
        **{
            name: Kind(
                name,
                frozenset({"adapt", "startup_timeout"}),
                True,
                lambda bed: None,
                batch.cluster,
                _jobs,
            )
            for name in ("slurm", "htcondor")
        },
    }
)

#: The testbed types, in the order messages list them.
KINDS = tuple(TYPES)
