"""Stage: execute (layer 6) — the values a run produces: per-unit outcomes, the report, the result."""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from saetta.dataset import WorkUnit

__all__ = ["Failure", "Result", "RunReport", "UnitOutcome"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one work unit produced no result."""

    unit: WorkUnit
    error: str  # exception type name
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.unit} ({self.unit.num_entries:,} events): {self.error}: {self.message}"


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """What running the analysis on one work unit gave back to the driver."""

    unit: WorkUnit
    result: Any = None
    failure: Failure | None = None
    columns: tuple[str, ...] = ()
    bytes_read: int = 0
    seconds: float = 0.0
    cache_hits: int = 0  # columns served by the column cache
    cache_misses: int = 0  # columns read from the file (and then cached)
    peak_memory: int = 0  # peak resident bytes of the worker process after this unit
    # data cache tier: block hits, block misses, bytes served locally, bytes fetched remotely
    data_cache: tuple[int, int, int, int] = (0, 0, 0, 0)
    worker: str = ""  # host:pid of the process that ran it, and its batch job if any
    started_at: float = 0.0  # wall clock (time.time()) when the unit started

    @property
    def events(self) -> int:
        """Events processed: the unit's entries if it succeeded, else 0."""
        return self.unit.num_entries if self.failure is None else 0


#: The facts :meth:`RunReport.to_dict` writes under their own names, in this order.
_AS_IS = (
    "dataset", "executor", "chunk_size", "files", "units_total", "units_done", "events_total",
    "events_processed", "events_missing", "bytes_read", "wall_seconds", "unit_seconds",
    "events_per_second",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunReport:
    """Measured facts about one run: what was processed, what was not, how fast."""

    dataset: str
    executor: str
    chunk_size: int
    files: int
    units_total: int
    units_done: int
    events_total: int
    events_processed: int
    bytes_read: int
    wall_seconds: float
    unit_seconds: float
    columns: tuple[str, ...]
    failures: tuple[Failure, ...] = field(default=())
    cache_hits: int = 0
    cache_misses: int = 0
    peak_memory: int = 0  # the largest peak resident memory of any worker, bytes
    units: tuple[UnitOutcome, ...] = field(default=(), repr=False)  # per unit, without results
    data_cache: tuple[int, int, int, int] = (0, 0, 0, 0)  # as UnitOutcome.data_cache, summed
    started_at: float = 0.0  # wall clock when the run started

    @property
    def complete(self) -> bool:
        return self.events_processed == self.events_total and not self.failures

    @property
    def events_per_second(self) -> float:
        return self.events_processed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def events_missing(self) -> int:
        return self.events_total - self.events_processed

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in _AS_IS},
            "columns": list(self.columns),
            "complete": self.complete,
            "peak_memory_bytes": self.peak_memory,
            "data_cache": {
                "hits": self.data_cache[0],
                "misses": self.data_cache[1],
                "bytes_from_cache": self.data_cache[2],
                "bytes_from_server": self.data_cache[3],
            },
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "failures": [
                {
                    "unit": f.unit.id,
                    "path": f.unit.path,
                    "start": f.unit.start,
                    "stop": f.unit.stop,
                    "events": f.unit.num_entries,
                    "error": f.error,
                    "message": f.message,
                }
                for f in self.failures
            ],
        }

    def _rows(self) -> list[tuple[str, str]]:
        return [
            ("dataset", self.dataset),
            ("executor", self.executor),
            ("events", f"{self.events_processed:,} of {self.events_total:,} processed"),
            (
                "units",
                f"{self.units_done:,} of {self.units_total:,} done ({_count(self.files, 'file')})",
            ),
            ("bytes read", f"{self.bytes_read / 1e6:,.1f} MB"),
            ("wall time", f"{self.wall_seconds:,.2f} s"),
            ("rate", f"{self.events_per_second:,.0f} events/s"),
            ("peak memory", f"{self.peak_memory / 1e6:,.0f} MB per worker"),
            ("columns", ", ".join(self.columns) or "none"),
            *(
                [
                    (
                        "data cache",
                        (
                            f"{self.data_cache[0]:,} hits, {self.data_cache[1]:,} misses; "
                            f"{self.data_cache[2] / 1e6:,.1f} MB from cache, "
                            f"{self.data_cache[3] / 1e6:,.1f} MB from the server"
                        ),
                    )
                ]
                if any(self.data_cache)
                else []
            ),
            *(
                [("column cache", f"{self.cache_hits:,} hits, {self.cache_misses:,} misses")]
                if self.cache_hits or self.cache_misses
                else []
            ),
        ]

    def __str__(self) -> str:
        lines = [f"{k:>11}: {v}" for k, v in self._rows()]
        if self.failures:
            lines.append(
                f"{'FAILED':>11}: {len(self.failures)} unit{'s' if len(self.failures) != 1 else ''}, "
                f"{self.events_missing:,} events not processed:"
            )
            lines.extend(f"{'':>13}{f}" for f in self.failures)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:right'>{k}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        fails = "".join(f"<li>{html.escape(str(f))}</li>" for f in self.failures)
        failed = f"<p style='color:#b00'><b>Failed units</b></p><ul>{fails}</ul>" if fails else ""
        return f"<table>{rows}</table>{failed}"


class Result(Mapping[str, Any]):
    """The merged output of an analysis over a dataset, with its :class:`RunReport`.

    Behaves as the dict the analysis returned: ``result["met"]`` is the merged
    ``hist.Hist``.
    """

    def __init__(
        self,
        output: Mapping[str, Any],
        report: RunReport,
        run_dir: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._output = dict(output)
        self.report = report
        self.run_dir = run_dir
        #: JSON-able facts the output files record beside the histograms (the samples).
        self.metadata = dict(metadata or {})

    def __getitem__(self, key: str) -> Any:
        return self._output[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._output)

    def __len__(self) -> int:
        return len(self._output)

    def __repr__(self) -> str:
        keys = ", ".join(self._output)
        state = "complete" if self.report.complete else "PARTIAL"
        return (
            f"<Result {state}: {self.report.events_processed:,} events, "
            f"{self.report.wall_seconds:.2f} s; {keys}>"
        )

    def _repr_html_(self) -> str:
        items = "".join(
            f"<li><code>{html.escape(k)}</code>: {html.escape(_describe(v))}</li>"
            for k, v in self._output.items()
        )
        return f"<b>{html.escape(repr(self))}</b><ul>{items}</ul>{self.report._repr_html_()}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def _describe(value: Any) -> str:
    if hasattr(value, "axes") and hasattr(value, "sum"):
        axes = ", ".join(f"{getattr(a, 'name', '') or 'axis'}[{len(a)} bins]" for a in value.axes)
        return f"{type(value).__name__}({axes}), total {value.sum(flow=True)}"
    if isinstance(value, Mapping):
        return f"dict of {len(value)}"
    return repr(value)
