"""Stage: execute (layer 6) — a testbed as written in ``testbeds.yaml``, checked, and found by name."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from saetta._config import config_home
from saetta.errors import ExecutorError, QuantityError
from saetta.execute.testbeds import batch
from saetta.execute.testbeds.kinds import KINDS, TYPES
from saetta.quantities import parse_duration

__all__ = ["Testbed", "find_testbeds_file", "load_testbeds", "testbed"]

_OWN_KEYS = ("type", "workers", "adapt", "address", "startup_timeout")
#: dask-jobqueue options that take a list of strings.
_LIST_OPTIONS = frozenset(
    {
        "job_extra_directives",
        "job_directives_skip",
        "job_script_prologue",
        "worker_extra_args",
        "submit_command_extra",
        "cancel_command_extra",
    }
)
_ADDRESS = re.compile(r"(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9_.-]*):(\d{1,5})")


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
        """The testbed ``name`` from its YAML mapping ``spec`` (read from ``source``).

        Raises
        ------
        ExecutorError
            Any field is malformed; the one-line message names the testbed, the file,
            the field and what it should be.
        """
        try:
            fields = _read_spec(spec)
        except _Malformed as exc:
            msg = f"testbed {name!r} in {source}: {exc}"
            raise ExecutorError(msg, name=name) from None
        return cls(name=name, source=source, **fields)

    @property
    def executor(self) -> str | None:
        """The executor name when the testbed needs no cluster of its own."""
        return TYPES[self.kind].executor(self)

    @property
    def default_workers(self) -> int:
        """Its workers when a run does not say: ``workers``, the adaptive maximum, or
        one per core of this machine (local, dask)."""
        return TYPES[self.kind].default_workers(self)

    @property
    def has_client(self) -> bool:
        """Whether it runs on Dask (a cluster, or a batch system's jobs)."""
        return TYPES[self.kind].client is not None

    def describe(self) -> str:
        if self.adapt:
            size = f"adaptive {self.adapt[0]}-{self.adapt[1]} workers"
        elif self.workers:
            size = f"{self.workers} workers"
        else:
            size = "one worker per core"
        where = f" at {self.address}" if self.address else ""
        return f"{self.name}: {self.kind}{where}, {size} ({self.source})"

    def client(self) -> AbstractContextManager[Any]:
        """A connected ``distributed.Client`` for a Dask or batch testbed, closed on exit."""
        client = TYPES[self.kind].client
        if client is None:
            msg = f"testbed {self.name!r} is {self.kind}; it has no Dask client"
            raise ExecutorError(msg, name=self.name)
        return client(self)

    def check_scheduler(self, timeout_s: float = batch.CHECK_TIMEOUT_S) -> None:
        """Check in seconds that the batch system answers (see :func:`batch.check_scheduler`)."""
        self._batch_only()
        batch.check_scheduler(self, timeout_s)

    def cluster(self) -> AbstractContextManager[Any]:
        """Start the batch cluster; a connected ``distributed.Client``, always stopped
        (see :func:`batch.cluster`)."""
        self._batch_only()
        return batch.cluster(self)

    def _batch_only(self) -> None:
        if not TYPES[self.kind].batch:
            msg = f"testbed {self.name!r} is {self.kind}, not a batch system"
            raise ExecutorError(msg, name=self.name)


def _show(value: object) -> str:
    """A YAML value for a one-line message: its type and a short repr (``list [1, 5]``)."""
    if value is None:
        return "null"
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _one_line(exc: BaseException) -> str:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Malformed(Exception):
    """A testbed field is malformed; the message says which and what it should be."""


def _read_spec(spec: object) -> dict[str, Any]:
    """The :class:`Testbed` fields of one YAML testbed mapping (``null`` means not given)."""
    if not isinstance(spec, Mapping):  # it comes from YAML: anything is possible
        msg = f"must be a mapping like {{type: local, workers: 4}}, not {_show(spec)}"
        raise _Malformed(msg)
    for key in spec:
        if not isinstance(key, str):
            msg = f"option names must be strings, not {_show(key)}"
            raise _Malformed(msg)
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in KINDS:
        msg = f"type must be one of {', '.join(KINDS)}, not {_show(kind)}"
        raise _Malformed(msg)
    given = {k for k in _OWN_KEYS if spec.get(k) is not None}
    options = {k: v for k, v in spec.items() if k not in _OWN_KEYS}
    _check_kind(kind, given, options)
    return {
        "kind": kind,
        "workers": _read_workers(spec.get("workers")),
        "adapt": _read_adapt(spec.get("adapt")),
        "address": _read_address(spec.get("address")),
        "startup_timeout": _read_seconds(spec.get("startup_timeout")),
        "options": options,
    }


def _check_kind(kind: str, given: set[str], options: Mapping[str, Any]) -> None:
    takes = TYPES[kind].fields
    if "address" in given and "address" not in takes:
        msg = f"address is only for type dask (a running Dask scheduler), not {kind}"
        raise _Malformed(msg)
    if "adapt" in given and "adapt" not in takes:
        msg = f"adapt is only for types slurm and htcondor, not {kind}"
        raise _Malformed(msg)
    if {"adapt", "workers"} <= given:
        msg = "give workers or adapt, not both"
        raise _Malformed(msg)
    if not TYPES[kind].batch and options:
        key = next(iter(options))
        near = difflib.get_close_matches(key, _OWN_KEYS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        names = ", ".join(k for k in _OWN_KEYS if k in {"type", "workers"} | takes)
        msg = f"unknown key {key!r}{hint} (a {kind} testbed takes {names})"
        raise _Malformed(msg)
    for key in sorted(_LIST_OPTIONS & options.keys()):
        value = options[key]
        if value is not None and not (
            isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        ):
            msg = f"{key} must be a list of strings, not {_show(value)}"
            raise _Malformed(msg)


def _read_workers(workers: object) -> int | None:
    if workers is None or (_is_int(workers) and workers >= 1):
        return workers
    msg = f"workers must be a positive integer, not {_show(workers)}"
    raise _Malformed(msg)


def _read_adapt(adapt: object) -> tuple[int, int] | None:
    if adapt is None:
        return None
    expected = "adapt must be a mapping like {minimum: 1, maximum: 10}"
    if not isinstance(adapt, Mapping):
        msg = f"{expected}, not {_show(adapt)}"
        raise _Malformed(msg)
    for key in adapt:
        if key not in {"minimum", "maximum"}:
            msg = f"{expected}; unknown key {_show(key)}"
            raise _Malformed(msg)
    low, high = adapt.get("minimum", 0), adapt.get("maximum")
    if high is None:
        msg = f"{expected}; maximum is missing"
        raise _Malformed(msg)
    if not (_is_int(low) and low >= 0):
        msg = f"adapt: minimum must be an integer >= 0, not {_show(low)}"
        raise _Malformed(msg)
    if _is_int(high) and high >= max(1, low):
        return low, high
    msg = f"adapt: maximum must be an integer >= {max(1, low)}, not {_show(high)}"
    raise _Malformed(msg)


def _read_address(address: object) -> str | None:
    if address is None:
        return None
    if _is_int(address):
        msg = f'address must be a string like "tcp://host:{address}", not the number {address}'
        raise _Malformed(msg)
    found = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if found is not None and 1 <= int(found.group(2)) <= 65535:
        return found.string
    msg = f'address must be like "tcp://host:8786" or "host:8786", not {_show(address)}'
    raise _Malformed(msg)


def _read_seconds(value: object) -> float:
    """Seconds in ``300``, ``"300 s"``, ``"5 min"``, ``"1 h"``; 300 if not given."""
    if value is None:
        return 300.0
    try:
        return parse_duration(value, "startup_timeout", plain_number=True)
    except QuantityError:
        msg = (
            "startup_timeout must be a positive number of seconds or a duration like "
            f"'5 min', not {_show(value)}"
        )
        raise _Malformed(msg) from None


def find_testbeds_file() -> Path | None:
    """The testbeds file saetta would read, or None."""
    candidates = []
    if os.environ.get("SAETTA_TESTBEDS"):
        candidates.append(Path(os.environ["SAETTA_TESTBEDS"]))
    candidates.append(Path("testbeds.yaml"))
    candidates.append(config_home() / "testbeds.yaml")
    return next((p for p in candidates if p.is_file()), None)


def load_testbeds(path: str | os.PathLike[str] | None = None) -> dict[str, Testbed]:
    """The built-in testbeds, overridden and extended by those in the testbeds file.

    Raises
    ------
    ExecutorError
        The file cannot be read or parsed, or any part of it is malformed.
    """
    testbeds = {
        "local": Testbed("local", "local"),
        "dask": Testbed("dask", "dask"),
    }
    file = Path(path) if path is not None else find_testbeds_file()
    if file is None:
        return testbeds
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    # PyYAML's constructors raise plain ValueError/KeyError/TypeError for bad tagged
    # scalars (``!!int x``, a date 2001-02-30) and RecursionError for deep nesting.
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError, RecursionError) as exc:
        msg = f"cannot read testbeds file {file}: {_one_line(exc)}"
        raise ExecutorError(msg, name=str(file)) from exc
    expected = "'testbeds: {name: {type: ...}}'"
    if document is None:
        return testbeds
    if not isinstance(document, Mapping):
        msg = f"{file} must hold a mapping {expected}, not {_show(document)}"
        raise ExecutorError(msg, name=str(file))
    extra = [key for key in document if key != "testbeds"]
    if extra:
        msg = f"{file}: unknown top-level key {_show(extra[0])}; expected {expected}"
        raise ExecutorError(msg, name=str(file))
    entries = document.get("testbeds") or {}
    if not isinstance(entries, Mapping):
        msg = f"{file}: 'testbeds:' must map names to testbeds {expected}, not {_show(entries)}"
        raise ExecutorError(msg, name=str(file))
    for name, spec in entries.items():
        if not isinstance(name, str) or not name.strip():
            msg = f"{file}: testbed names must be non-empty strings, not {_show(name)}; quote it"
            raise ExecutorError(msg, name=str(file))
        testbeds[name] = Testbed.from_dict(name, spec, str(file))
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
