"""Stage: use cases (layer 7) — what ``plan`` and ``validate`` answer, and how it reads.

:class:`Answer` is what :class:`~saetta.usecase.plan.Plan` and
:class:`~saetta.usecase.validate.Validation` have in common: a verdict on the
requirement, whether it is met, the plan behind it, the run its plots show, and
the short summary a terminal or a notebook cell shows. Reports
(:mod:`saetta.usecase.report`) and the command line ask these, never which of
the two they hold.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from saetta.quantities import format_bytes

if TYPE_CHECKING:
    from saetta.usecase.measure import Measurement
    from saetta.usecase.plan import Plan

__all__ = ["Answer", "Rows", "cores_text", "count_text", "memory_text", "table"]

Rows = list[tuple[str, str]]


class Answer:
    """The interface of a plan and a validation (each a frozen dataclass)."""

    __slots__ = ()

    #: ``"plan"`` or ``"validation"``.
    kind: ClassVar[str]

    if TYPE_CHECKING:

        @property
        def plan(self) -> Plan: ...

        @property
        def verdict(self) -> str: ...

        @property
        def met(self) -> bool:
            """Whether the requirement can be (plan) or was (validation) met."""

        @property
        def mood(self) -> str:
            """``"good"``, ``"bad"``, or ``"unsure"`` (within the uncertainty)."""

        @property
        def shown_run(self) -> Measurement:
            """The run whose timeline and memory the report draws."""

        def summary_rows(self) -> Rows: ...

        def to_dict(self) -> dict[str, Any]: ...

    @property
    def title(self) -> str:
        """``"<use case>: plan — FEASIBLE"``."""
        return f"{self.plan.usecase.name}: {self.kind} — {self.verdict}"

    def __str__(self) -> str:
        return f"{self.plan.usecase.name}: {self.kind}\n{table(self.summary_rows())}"

    def _repr_html_(self) -> str:
        colour = {"good": "#070", "unsure": "#a60"}.get(self.mood, "#b00")
        body = "".join(
            f"<tr><th style='text-align:right'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self.summary_rows()
        )
        title = html.escape(f"{self.plan.usecase.name}: {self.kind}")
        return f"<b style='color:{colour}'>{title}</b><table>{body}</table>"


def table(rows: Sequence[tuple[str, str]]) -> str:
    """Rows of (label, value) as aligned text, labels right-aligned."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:>{width}}: {v}" for k, v in rows)


def count_text(n: int | None) -> str:
    """A number of cores that may be unbounded: ``"1,200"`` or ``"∞"``."""
    return "∞" if n is None else f"{n:,}"


def cores_text(n: int) -> str:
    """``"1 core"``, ``"1,200 cores"``."""
    return f"{n:,} core{'s' * (n != 1)}"


def memory_text(peak: int, limit: float | None) -> str:
    """The peak memory per worker against the memory per core, and whether it fits."""
    if limit is None:
        return f"{format_bytes(peak)} per worker; no limit stated"
    ok = peak <= limit
    return (
        f"{format_bytes(peak)} per worker {'≤' if ok else '>'} {format_bytes(limit)} per core: "
        + ("ok" if ok else "TOO LITTLE")
    )
