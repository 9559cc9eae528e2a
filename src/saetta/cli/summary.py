"""The command line (layer 9) — a result's one-line-per-histogram summary on the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["summary"]


def summary(result: Mapping[str, Any], prefix: str = "") -> str:
    """One line per result: a histogram's entries (all bins), in range and mean; a value.

    A run over samples gets a table instead: per sample, each histogram's nominal
    yield (the sum of weights in range)."""
    if not prefix and getattr(result, "metadata", {}).get("samples"):
        return _samples_table(result)
    lines = [f"{'result':<22}{'entries':>12}{'in range':>12}{'mean':>10}"] if not prefix else []
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            lines.append(summary(value, f"{name}/"))
        elif hasattr(value, "axes") and hasattr(value, "values"):
            lines.append(f"{name:<22}{_histogram_summary(value)}")
        else:
            text = (
                f"{value:,}"
                if isinstance(value, int) and not isinstance(value, bool)
                else str(value)
            )
            lines.append(f"{name:<22}{text:>12}")
    return "\n".join(line for line in lines if line)


def _histogram_summary(h: Any) -> str:
    """Entries, in-range sum and (1-D) mean of any histogram, whatever its storage."""
    import boost_histogram as bh
    import numpy as np

    per_bin = h.counts if h.kind == bh.Kind.MEAN else h.values  # a profile: its entries
    values = np.asarray(per_bin(flow=True), dtype=float)
    inside = np.asarray(per_bin(), dtype=float)
    total = float(inside.sum())
    mean = float("nan")
    if h.ndim == 1 and total and h.axes[0].traits.continuous:
        mean = float((np.asarray(h.axes[0].centers) * inside).sum() / total)
    return f"{values.sum():>12,.0f}{total:>12,.0f}{mean:>10.2f}"


def _samples_table(result: Mapping[str, Any]) -> str:
    import numpy as np

    names = list(dict.fromkeys(k for part in result.values() for k in part))
    shown = [n for n in names if "_" not in n][:6] or names[:6]
    lines = [f"{'sample (nominal yield)':<24}" + "".join(f"{n:>14}" for n in shown)]
    order = [s for s in getattr(result, "metadata", {}).get("samples", {}) if s in result]
    for sample in order or list(result):
        part = result[sample]
        cells = []
        for name in shown:
            h = part.get(name, {}).get("nominal") if isinstance(part.get(name), Mapping) else None
            cells.append(f"{float(np.sum(h.values())):>14,.1f}" if h is not None else f"{'-':>14}")
        lines.append(f"{sample:<24}" + "".join(cells))
    return "\n".join(lines)
