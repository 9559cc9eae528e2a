"""Stage: reports (layer 8) — a use case's plan or validation as text, JSON, Markdown and HTML.

:func:`write` saves one run folder (by default ``./saetta-runs/<use case>/<time>/``)::

    report.json    everything measured and predicted (per-unit timelines included)
    report.md      the same tables, with the plots as PNG files beside it
    report.html    one self-contained page: the tables and the plots inline (base64 PNG)
    scaling.png    throughput vs workers, measured and model; time for Y vs cores
    timeline.png   events/s of each unit, per worker, over the run
    memory.png     peak memory of each worker over the run, against the memory per core

matplotlib is imported only when plots are drawn.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saetta._version import __version__
from saetta.usecase import (
    INTERVAL_Z,
    Measurement,
    Plan,
    Validation,
    format_bytes,
    format_count,
    format_duration,
    format_rate,
)

__all__ = ["figures", "html_page", "markdown", "run_dir", "sections", "text", "to_json", "write"]

Rows = list[tuple[str, str]]
_CAPTIONS = {
    "scaling": "Left: aggregate steady event rate against workers, measured (points) and "
    "model n·r·e(n) (line, ≈95 % band). Right: predicted time for the requirement's data "
    "against cores, with the required time Z and the cores W.",
    "timeline": "Events/s of each work unit over the run, one colour per worker; the black "
    "line is the total.",
    "memory": "Peak resident memory of each worker after each unit, against the memory per core.",
}


# --------------------------------------------------------------------------- tables


def sections(item: Plan | Validation) -> list[tuple[str, Rows]]:
    """The report's tables: (title, rows of (label, value)), for text, Markdown and HTML."""
    plan = item.plan if isinstance(item, Validation) else item
    use, cal, model, req = (
        plan.usecase,
        plan.calibration,
        plan.calibration.model,
        plan.usecase.requirement,
    )
    k = max(model.measured_workers)
    out: list[tuple[str, Rows]] = [
        (
            "Use case",
            [
                ("name", use.name),
                ("analysis", use.analysis),
                (
                    "dataset",
                    (
                        f"{', '.join(use.dataset)}: {cal.dataset_events:,} events, "
                        f"{format_bytes(cal.dataset_bytes)}"
                    ),
                ),
                ("testbed", f"{cal.testbed} ({cal.testbed_kind}) on {cal.host}"),
                ("chunk size", f"{cal.chunk_size:,} events per unit"),
            ],
        ),
        (
            "Requirement",
            [
                (
                    "Y (data)",
                    (
                        f"{req.data_text}: {format_count(plan.events)} events, "
                        f"{format_bytes(plan.data_bytes)} on disk"
                    ),
                ),
                ("Z (time)", f"{req.time_text} ({req.time_s:,.0f} s)"),
                (
                    "W (resources)",
                    f"{req.cores:,} cores"
                    + (
                        f", {format_bytes(req.memory_per_core)} per core"
                        if req.memory_per_core
                        else ""
                    ),
                ),
                (
                    "X (operations)",
                    (
                        f"{format_count(plan.events)} events, "
                        f"{format_count(plan.events * cal.fills_per_event)} histogram fills "
                        f"({cal.fills_per_event:.3g} per event)"
                    ),
                ),
            ],
        ),
        ("Calibration", _calibration_rows(plan)),
        ("Calibration runs", _run_rows(plan)),
        (
            "Model",
            [
                ("formula", "T(n) = t0 + tail · E / (n · r · e(n)),  e(n) = 1 / (1 + α (n − 1))"),
                ("r", f"{format_rate(model.rate_hz)} per core ± {100 * model.rate_rel_err:.1f} %"),
                (
                    "α",
                    f"{model.alpha:.3g} ± {model.alpha_err:.2g}"
                    + (
                        f"  (e({k}) = {model.efficiency(k):.3f})"
                        if k > 1
                        else "  (1 worker only: α = 0)"
                    ),
                ),
                (
                    "t0",
                    (
                        f"{format_duration(model.t0_s)} ± {format_duration(model.t0_err)}"
                        f"  (start-up at {k} worker{'s' * (k > 1)})"
                    ),
                ),
                (
                    "interval",
                    (
                        f"≈95 %: t0, r and α each moved {INTERVAL_Z:g} σ through T(n), the "
                        f"shifts added in quadrature, above and below apart; 1σ = each side / "
                        f"{INTERVAL_Z:g}"
                    ),
                ),
            ],
        ),
        ("Plan", _plan_rows(plan)),
    ]
    if isinstance(item, Validation):
        out.append(("Validation", _validation_rows(item)))
    return out


def _calibration_rows(plan: Plan) -> Rows:
    cal, model = plan.calibration, plan.calibration.model
    overhead = cal.unit_overhead_s
    per_unit = cal.sample_events / cal.sample_units / model.rate_hz
    return [
        (
            "sample",
            (
                f"{cal.sample_units} units, {cal.sample_events:,} events "
                f"({100 * cal.sample_events / cal.dataset_events:.3g} % of the dataset)"
            ),
        ),
        ("workers", ", ".join(map(str, model.measured_workers)) + f"; {len(cal.runs)} runs"),
        ("rate per core", f"{format_rate(model.rate_hz)} ± {100 * model.rate_rel_err:.1f} %"),
        (
            "bytes per core",
            (
                f"{format_bytes(model.rate_hz * cal.bytes_per_event_read)}/s read, "
                f"{format_bytes(model.rate_hz * cal.bytes_per_event_disk)}/s of the files"
            ),
        ),
        (
            "bytes per event",
            (
                f"{cal.bytes_per_event_disk:,.1f} on disk, "
                f"{cal.bytes_per_event_read:,.1f} read by this analysis"
            ),
        ),
        (
            "start-up",
            (
                f"{format_duration(model.t0_s)} (first unit starts after "
                f"{format_duration(cal.first_unit_s)})"
            ),
        ),
        (
            "unit overhead",
            (
                f"{format_duration(overhead)} of {format_duration(per_unit)} per unit "
                if overhead is not None
                else "not measured; "
            )
            + f"(+ {format_duration(cal.dispatch_s)} between units)",
        ),
        ("peak memory", f"{format_bytes(cal.peak_memory)} per worker"),
        ("when", f"{cal.date}, saetta {cal.saetta_version}"),
    ]


def _run_rows(plan: Plan) -> Rows:
    cal = plan.calibration
    runs = [("unit overhead, not fitted", cal.overhead_run)] if cal.overhead_run else []
    runs += [("fitted", m) for m in cal.runs]
    return [
        (
            f"{m.workers} worker{'s' * (m.workers > 1)}",
            (
                f"{format_duration(m.wall_s)} wall, {m.units} units of ≤ {m.chunk_size:,}, "
                f"{format_rate(m.rate_hz)} steady ({m.steady_units} units), all warm after "
                f"{format_duration(m.warmup_s)}, start-up {format_duration(m.t0_s)} ({role})"
            ),
        )
        for role, m in runs
    ]


def _plan_rows(plan: Plan) -> Rows:
    req = plan.usecase.requirement
    fast, slow = plan.cores_range
    cores = "none suffices" if plan.cores_needed is None else f"{plan.cores_needed:,}"
    cores += f" (≈95 %: {_cores(fast)} – {_cores(slow)})"
    return [
        (f"time on {req.cores:,} cores", str(plan.prediction)),
        (f"cores for {req.time_text}", cores),
        ("memory", _memory_text(plan.calibration.peak_memory, req.memory_per_core)),
        ("verdict", plan.verdict_text),
        ("projection", plan.projection),
    ]


def _validation_rows(v: Validation) -> Rows:
    m, req = v.measurement, v.plan.usecase.requirement
    return [
        (
            "ran",
            f"{m.events:,} of {v.events_total:,} events ({100 * v.fraction:g} % of the "
            f"dataset, {m.units} units) on {m.workers} workers"
            + ("" if v.complete else ": INCOMPLETE"),
        ),
        (
            "X (operations)",
            f"{m.events:,} events, {format_count(v.histogram_fills)} histogram fills",
        ),
        ("predicted", str(v.predicted)),
        ("measured", f"{format_duration(m.wall_s)} ({v.deviation_text})"),
        ("model accurate", v.accuracy_text),
        (
            "rate per core",
            (
                f"{format_rate(v.rate_hz)} (calibration {format_rate(v.plan.calibration.rate_hz)}"
                f" ± {100 * v.plan.calibration.model.rate_rel_err:.1f} %)"
            ),
        ),
        (
            "start-up",
            f"{format_duration(m.t0_s)} (calibration {format_duration(v.plan.calibration.model.t0_s)})",
        ),
        ("memory", _memory_text(m.peak_memory, req.memory_per_core)),
        (
            f"{req.data_text} on {req.cores:,} cores",
            (
                f"{format_duration(v.extrapolated_s)} extrapolated from this run (plan: "
                f"{format_duration(v.plan.prediction.time_s)}); required ≤ {req.time_text}"
            ),
        ),
        ("verdict", v.verdict + (f": {', '.join(v.binding)}" if v.binding else "")),
    ]


def _memory_text(peak: int, limit: float | None) -> str:
    if limit is None:
        return f"{format_bytes(peak)} per worker; no limit stated"
    ok = peak <= limit
    return (
        f"{format_bytes(peak)} per worker {'≤' if ok else '>'} {format_bytes(limit)} per core: "
        + ("ok" if ok else "TOO LITTLE")
    )


def _cores(n: int | None) -> str:
    return "∞" if n is None else f"{n:,}"


def _title(item: Plan | Validation) -> str:
    if isinstance(item, Validation):
        return f"{item.plan.usecase.name}: validation — {item.verdict}"
    return f"{item.usecase.name}: plan — {item.verdict}"


def text(item: Plan | Validation) -> str:
    """The whole report as plain text, for a terminal."""
    parts = [_title(item)]
    for title, rows in sections(item):
        width = max(len(k) for k, _ in rows)
        parts.append(f"\n{title}\n" + "\n".join(f"  {k:>{width}}: {v}" for k, v in rows))
    return "\n".join(parts)


def to_json(item: Plan | Validation) -> str:
    """The whole report as one JSON document."""
    document = {"saetta_version": __version__, **item.to_dict()}
    return json.dumps(_clean(document), indent=1, allow_nan=False) + "\n"


def _clean(value: Any) -> Any:
    """Infinities and NaN as null, tuples as lists: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def markdown(item: Plan | Validation, images: Sequence[str] = ()) -> str:
    """The report as Markdown; ``images`` are PNG file names beside it."""
    parts = [f"# {_title(item)}"]
    for title, rows in sections(item):
        table = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)
        parts.append(f"## {title}\n\n| | |\n|---|---|\n{table}")
    for name in images:
        stem = Path(name).stem
        parts.append(f"## {stem.capitalize()}\n\n![{stem}]({name})\n\n{_CAPTIONS.get(stem, '')}")
    return "\n\n".join(parts) + "\n"


def html_page(item: Plan | Validation, pngs: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page: the tables and the plots (inline base64 PNG), no scripts."""
    if isinstance(item, Validation):
        mood = "good" if item.passed else "bad"
    else:
        mood = {"FEASIBLE": "good", "UNCERTAIN": "unsure"}.get(item.verdict, "bad")
    body = [f"<h1 class='{mood}'>{html.escape(_title(item))}</h1>"]
    for title, rows in sections(item):
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        body.append(f"<h2>{html.escape(title)}</h2><table>{cells}</table>")
    for name, png in (pngs or {}).items():
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f"<h2>{html.escape(name.capitalize())}</h2><figure><img alt='{name}' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(_CAPTIONS.get(name, ''))}"
            "</figcaption></figure>"
        )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}th{text-align:right;padding:2px 12px;color:#555;"
        "font-weight:normal;vertical-align:top}td{padding:2px 12px}.good{color:#070}.bad{color:#b00}"
        ".unsure{color:#a60}"
        "img{max-width:100%}figcaption{color:#555;font-size:90%}"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(_title(item))}</title><style>{style}</style></head>"
        f"<body>{''.join(body)}<p style='color:#888'>saetta {__version__}</p></body></html>\n"
    )


# --------------------------------------------------------------------------- plots


def figures(item: Plan | Validation) -> dict[str, bytes]:
    """The report's plots as PNG bytes: ``scaling``, ``timeline``, ``memory``."""
    plan = item.plan if isinstance(item, Validation) else item
    if isinstance(item, Validation):
        run = item.measurement
    else:
        run = max(plan.calibration.runs, key=lambda m: (m.workers, m.events))
    limit = plan.usecase.requirement.memory_per_core
    return {
        "scaling": _png(_scaling, plan, item if isinstance(item, Validation) else None),
        "timeline": _png(_timeline, run),
        "memory": _png(_memory, run, limit),
    }


def _png(draw: Any, *args: Any) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    draw(figure, *args)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _scaling(figure: Any, plan: Plan, validation: Validation | None) -> None:
    import numpy as np

    model, cal, req = plan.calibration.model, plan.calibration, plan.usecase.requirement
    left, right = figure.subplots(1, 2)
    runs = list(cal.runs) + ([validation.measurement] if validation else [])
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
    if validation is not None:
        m = validation.measurement
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


# --------------------------------------------------------------------------- files


def run_dir(name: str, out: str | os.PathLike[str] | None = None) -> Path:
    """The folder for a report: ``out``, or ``./saetta-runs/<name>/<UTC time>/`` (created)."""
    if out is not None:
        folder = Path(out)
    else:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "usecase"
        folder = Path("saetta-runs") / safe / stamp
        for i in range(2, 1000):
            if not folder.exists():
                break
            folder = folder.with_name(f"{stamp}-{i}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write(item: Plan | Validation, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the plots into ``folder``.

    Returns
    -------
    dict
        ``{"json": path, "markdown": path, "html": path, "scaling": path, ...}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = figures(item)
    paths = {name: folder / f"{name}.png" for name in pngs}
    for name, png in pngs.items():
        paths[name].write_bytes(png)
    paths |= {
        "json": folder / "report.json",
        "markdown": folder / "report.md",
        "html": folder / "report.html",
    }
    paths["json"].write_text(to_json(item))
    paths["markdown"].write_text(markdown(item, [f"{name}.png" for name in pngs]))
    paths["html"].write_text(html_page(item, pngs))
    return paths
