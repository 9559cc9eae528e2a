"""Stage: use cases (layer 7) — the plots of a report: scaling, timeline, memory.

matplotlib is imported only when plots are drawn.
"""

from __future__ import annotations

import io
from typing import Any

from saetta.quantities import format_bytes
from saetta.usecase.answer import Answer
from saetta.usecase.measure import Measurement
from saetta.usecase.plan import Plan

__all__ = ["CAPTIONS", "figures"]

CAPTIONS = {
    "scaling": "Left: aggregate steady event rate against workers, measured (points) and "
    "model n·r·e(n) (line, ≈95 % band). Right: predicted time for the requirement's data "
    "against cores, with the required time Z and the cores W.",
    "timeline": "Events/s of each work unit over the run, one colour per worker; the black "
    "line is the total.",
    "memory": "Peak resident memory of each worker after each unit, against the memory per core.",
}


def figures(item: Answer) -> dict[str, bytes]:
    """The report's plots as PNG bytes: ``scaling``, ``timeline``, ``memory`` (the last two
    where the shown run has per-unit records)."""
    plan, run = item.plan, item.shown_run
    limit = plan.usecase.requirement.memory_per_core
    validation = None if item is plan else run  # a validation: its run, with the calibration
    drawn = {"scaling": _png(_scaling, plan, validation)}
    if run.timeline:  # a training's runs have batches, not units, to draw
        drawn["timeline"] = _png(_timeline, run)
        drawn["memory"] = _png(_memory, run, limit)
    return drawn


def _png(draw: Any, *args: Any) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    draw(figure, *args)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _scaling(figure: Any, plan: Plan, validated: Measurement | None) -> None:
    """Throughput against workers (calibration runs, model, the validation run if
    ``validated``), and the time for Y against cores."""
    import numpy as np

    model, cal, req = plan.calibration.model, plan.calibration, plan.usecase.requirement
    left, right = figure.subplots(1, 2)
    runs = list(cal.runs) + ([validated] if validated else [])
    top = max(max(m.workers for m in runs) * 2, 4)
    n = np.arange(1, top + 1)
    rate, low, high = np.array([model.predict_rate(int(k)) for k in n]).T
    left.plot(n, rate, "-", color="C0", label="model n·r·e(n)")
    left.fill_between(n, low, high, color="C0", alpha=0.2)
    left.plot(n, n * model.rate_hz, "--", color="0.6", label="ideal n·r")
    left.plot(
        [m.workers for m in cal.runs], [m.rate_hz for m in cal.runs], "o", color="C1",
        label="calibration",
    )  # fmt: skip
    if validated is not None:
        m = validated
        left.plot([m.workers], [m.rate_hz], "*", ms=14, color="C2", label="validation")
    left.set(xlabel="workers", ylabel="events/s (all workers)", title="Scaling")
    left.set_ylim(bottom=0)
    left.legend()
    hi = max(req.cores, plan.cores_needed or 0, 8) * 10
    cores = np.unique(np.geomspace(1, hi, 200).astype(int))
    predictions = [model.predict(plan.events, int(c)) for c in cores]
    right.plot(cores, [p.time_s for p in predictions], "-", color="C0", label="model")
    right.fill_between(
        cores,
        [p.low_s for p in predictions],
        [p.high_s for p in predictions],
        color="C0",
        alpha=0.2,
    )
    right.axhline(req.time_s, color="C3", label=f"Z = {req.time_text}")
    right.axvline(req.cores, color="C2", label=f"W = {req.cores:,} cores")
    right.plot([req.cores], [plan.prediction.time_s], "o", color="C0")
    right.set(
        xscale="log", yscale="log", xlabel="cores", ylabel="seconds",
        title=f"Time for {req.data_text}",
    )  # fmt: skip
    right.legend()


def _workers(run: Measurement) -> list[str]:
    return list(dict.fromkeys(u.worker for u in run.timeline))


def _timeline(figure: Any, run: Measurement) -> None:
    import numpy as np

    axes = figure.subplots()
    end = max((u.end_s for u in run.timeline), default=1.0)
    for i, worker in enumerate(_workers(run)):
        units = [u for u in run.timeline if u.worker == worker and u.seconds > 0]
        axes.hlines(
            [u.events / u.seconds for u in units], [u.start_s for u in units],
            [u.end_s for u in units], color=f"C{i % 10}", lw=2, label=worker if i < 8 else None,
        )  # fmt: skip
    edges = np.linspace(0, end, 60)
    total = np.zeros(len(edges) - 1)
    for u in run.timeline:
        if u.seconds > 0:
            overlap = np.clip(
                np.minimum(edges[1:], u.end_s) - np.maximum(edges[:-1], u.start_s), 0, None
            )
            total += u.events * overlap / u.seconds
    axes.stairs(total / np.diff(edges), edges, color="k", label="all workers")
    axes.set(
        xlabel="seconds since the run started",
        ylabel="events/s",
        title=f"Throughput per worker ({run.workers} workers, {run.events:,} events)",
    )
    axes.set_xlim(0, end)
    axes.set_ylim(bottom=0)
    axes.legend(fontsize="small", ncols=2)


def _memory(figure: Any, run: Measurement, limit: float | None) -> None:
    axes = figure.subplots()
    for i, worker in enumerate(_workers(run)):
        units = [u for u in run.timeline if u.worker == worker]
        axes.step(
            [u.end_s for u in units],
            [u.peak_memory / 1e6 for u in units],
            where="post",
            color=f"C{i % 10}",
            marker=".",
            label=worker if i < 8 else None,
        )
    peak = max((u.peak_memory for u in run.timeline), default=0)
    if limit is not None:
        axes.axhline(limit / 1e6, color="C3", label=f"memory per core {format_bytes(limit)}")
    axes.set(
        xlabel="seconds since the run started",
        ylabel="MB",
        title=(f"Peak resident memory per worker (max {format_bytes(peak)})"),
    )
    axes.set_xlim(left=0)
    axes.set_ylim(0, max(peak, limit or 0) / 1e6 * 1.1 or 1)
    axes.legend(fontsize="small")
