"""Stage: execute (layer 6) — testbeds: named places to run, read from ``testbeds.yaml``.

A testbed names an execution target and how big it is, so a notebook or a
command line says ``testbed="leonardo"`` instead of twenty cluster options.
saetta looks for the file, first found wins:

1. ``$SAETTA_TESTBEDS`` (a path);
2. ``./testbeds.yaml``;
3. ``$XDG_CONFIG_HOME/saetta/testbeds.yaml`` (default ``~/.config/saetta/testbeds.yaml``).

Example::

    testbeds:
      laptop:      {type: local, workers: 4}                 # worker processes
      dask-here:   {type: dask, workers: 2}                  # a Dask LocalCluster
      lab:         {type: dask, address: "tcp://10.0.0.5:8786"}
      slurm-local:                                           # dask-jobqueue SLURMCluster
        type: slurm
        workers: 2                                           # or adapt: {minimum: 1, maximum: 50}
        queue: debug            # partition
        account: null
        cores: 1                # per job
        processes: 1            # Dask workers per job
        memory: 2GB             # per job
        walltime: "01:00:00"
        job_extra_directives: ["--exclusive"]
        python: /opt/venv/bin/python
        interface: ib0
      condor:                                                # dask-jobqueue HTCondorCluster
        type: htcondor
        workers: 2
        cores: 1
        memory: 2GB
        disk: 1GB

Every key other than ``type``, ``workers``, ``adapt``, ``address`` and
``startup_timeout`` goes to the dask-jobqueue cluster class as is. Two testbeds
always exist unless a file redefines them: ``local`` (one process per core) and
``dask`` (a LocalCluster, one worker per core).

Clusters that saetta starts it always stops — at the end of the run, on an
error and on Ctrl-C — so no batch job outlives the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from saetta.errors import ExecutorError

__all__ = ["Testbed", "find_testbeds_file", "load_testbeds", "testbed"]

KINDS = ("local", "dask", "slurm", "htcondor")
_OWN_KEYS = frozenset({"type", "workers", "adapt", "address", "startup_timeout"})


@dataclass(frozen=True, slots=True)
class Testbed:
    """One named execution target."""

    name: str
    kind: str
    workers: int | None = None
    adapt: tuple[int, int] | None = None
    address: str | None = None
    startup_timeout: float = 300.0
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = "built in"

    @classmethod
    def from_dict(cls, name: str, spec: object, source: str) -> Testbed:
        if not isinstance(spec, Mapping):  # it comes from YAML: anything is possible
            msg = f"testbed {name!r} in {source} must be a mapping, not {type(spec).__name__}"
            raise ExecutorError(msg, name=name)
        kind = spec.get("type")
        if kind not in KINDS:
            msg = f"testbed {name!r} in {source} has type {kind!r}; use one of {', '.join(KINDS)}"
            raise ExecutorError(msg, name=name)
        adapt = spec.get("adapt")
        if adapt is not None:
            adapt = (int(adapt.get("minimum", 0)), int(adapt["maximum"]))
        workers = spec.get("workers")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            msg = f"testbed {name!r} in {source}: workers must be a positive integer"
            raise ExecutorError(msg, name=name)
        return cls(
            name=name,
            kind=kind,
            workers=workers,
            adapt=adapt,
            address=spec.get("address"),
            startup_timeout=float(spec.get("startup_timeout", 300.0)),
            options={k: v for k, v in spec.items() if k not in _OWN_KEYS},
            source=source,
        )

    @property
    def executor(self) -> str | None:
        """The executor name when the testbed needs no cluster of its own."""
        if self.kind == "local":
            return f"processes:{self.workers}" if self.workers else "processes"
        if self.kind == "dask" and self.address:
            return "dask://" + self.address.split("://", 1)[-1]
        if self.kind == "dask":
            return f"dask:{self.workers or os.cpu_count() or 1}"
        return None

    def describe(self) -> str:
        if self.adapt:
            size = f"adaptive {self.adapt[0]}-{self.adapt[1]} workers"
        elif self.workers:
            size = f"{self.workers} workers"
        else:
            size = "one worker per core"
        where = f" at {self.address}" if self.address else ""
        return f"{self.name}: {self.kind}{where}, {size} ({self.source})"

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A connected ``distributed.Client`` for a Dask or batch testbed, closed on exit."""
        if self.kind in {"slurm", "htcondor"}:
            with self.cluster() as client:
                yield client
            return
        if self.kind != "dask" or self.executor is None:
            msg = f"testbed {self.name!r} is {self.kind}; it has no Dask client"
            raise ExecutorError(msg, name=self.name)
        from saetta.execute.dask import connect

        placement = connect(self.executor.partition(":")[2])
        try:
            yield placement.client
        finally:
            placement.close()

    @contextmanager
    def cluster(self) -> Iterator[Any]:
        """Start the batch cluster, yield a connected ``distributed.Client``, always stop it."""
        if self.kind not in {"slurm", "htcondor"}:
            msg = f"testbed {self.name!r} is {self.kind}, not a batch system"
            raise ExecutorError(msg, name=self.name)
        try:
            import distributed
            from dask_jobqueue import HTCondorCluster, SLURMCluster
        except ImportError as exc:
            msg = f"testbed {self.name!r} ({self.kind}) needs dask-jobqueue: pip install 'saetta[{self.kind}]'"
            raise ExecutorError(msg, name=self.name) from exc
        cls = SLURMCluster if self.kind == "slurm" else HTCondorCluster
        options = dict(self.options)
        # A Dask LocalCluster started earlier in this process (say, a notebook that ran
        # executor="dask" first) leaves __DASK_PARENT_PID in the environment; batch jobs
        # inherit it and their workers then watch the wrong parent and never start.
        options["job_script_prologue"] = [
            *options.get("job_script_prologue", []),
            "unset __DASK_PARENT_PID",
        ]
        try:
            cluster = cls(**options)
        except (TypeError, ValueError) as exc:
            msg = f"testbed {self.name!r}: {cls.__name__} refused its options: {exc}"
            raise ExecutorError(msg, name=self.name) from exc
        client = None
        try:
            if self.adapt:
                cluster.adapt(minimum=self.adapt[0], maximum=self.adapt[1])
                wanted = max(1, self.adapt[0])
            else:
                wanted = self.workers or 1
                cluster.scale(wanted)
            client = distributed.Client(cluster)
            try:
                client.wait_for_workers(wanted, timeout=self.startup_timeout)
            except TimeoutError as exc:
                msg = (
                    f"testbed {self.name!r}: {wanted} {self.kind} workers did not start within "
                    f"{self.startup_timeout:.0f} s; check the queue and the job logs"
                )
                raise ExecutorError(msg, name=self.name) from exc
            yield client
        finally:
            if client is not None:
                client.close()
            cluster.close()


def find_testbeds_file() -> Path | None:
    """The testbeds file saetta would read, or None."""
    candidates = []
    if os.environ.get("SAETTA_TESTBEDS"):
        candidates.append(Path(os.environ["SAETTA_TESTBEDS"]))
    candidates.append(Path("testbeds.yaml"))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidates.append(config / "saetta" / "testbeds.yaml")
    return next((p for p in candidates if p.is_file()), None)


def load_testbeds(path: str | os.PathLike[str] | None = None) -> dict[str, Testbed]:
    """The built-in testbeds, overridden and extended by those in the testbeds file."""
    testbeds = {
        "local": Testbed("local", "local"),
        "dask": Testbed("dask", "dask"),
    }
    file = Path(path) if path is not None else find_testbeds_file()
    if file is None:
        return testbeds
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        msg = f"cannot read testbeds file {file}: {exc}"
        raise ExecutorError(msg, name=str(file)) from exc
    entries = document.get("testbeds", {}) if isinstance(document, Mapping) else None
    if not isinstance(entries, Mapping):
        msg = f"{file} must hold a mapping 'testbeds: {{name: {{type: ...}}}}'"
        raise ExecutorError(msg, name=str(file))
    for name, spec in entries.items():
        testbeds[str(name)] = Testbed.from_dict(str(name), spec, str(file))
    return testbeds


def testbed(name: str) -> Testbed:
    """Look a testbed up by name; an unknown name lists the known ones."""
    known = load_testbeds()
    try:
        return known[name]
    except KeyError:
        where = find_testbeds_file()
        source = f" (from {where} and built-ins)" if where else " (no testbeds.yaml found)"
        msg = f"unknown testbed {name!r}; available: {', '.join(sorted(known))}{source}"
        raise ExecutorError(msg, name=name) from None
