"""Stage: use cases (layer 7) — the tables of a plan's or a validation's report."""

from __future__ import annotations

from saetta.quantities import format_bytes, format_count, format_duration, format_rate
from saetta.usecase.answer import Answer, Rows, count_text, memory_text
from saetta.usecase.plan import Plan
from saetta.usecase.spec import INTERVAL_Z
from saetta.usecase.validate import Validation

__all__ = ["sections"]


def sections(item: Answer) -> list[tuple[str, Rows]]:
    """The report's tables: (title, rows of (label, value)), for text, Markdown and HTML."""
    plan = item.plan
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
    if isinstance(item, Validation):  # the one section only a validation has
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
    cores += f" (≈95 %: {count_text(fast)} – {count_text(slow)})"
    return [
        (f"time on {req.cores:,} cores", str(plan.prediction)),
        (f"cores for {req.time_text}", cores),
        ("memory", memory_text(plan.calibration.peak_memory, req.memory_per_core)),
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
        ("memory", memory_text(m.peak_memory, req.memory_per_core)),
        (
            f"{req.data_text} on {req.cores:,} cores",
            (
                f"{format_duration(v.extrapolated_s)} extrapolated from this run (plan: "
                f"{format_duration(v.plan.prediction.time_s)}); required ≤ {req.time_text}"
            ),
        ),
        ("verdict", v.verdict + (f": {', '.join(v.binding)}" if v.binding else "")),
    ]
