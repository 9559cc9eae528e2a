"""Stage: use cases (layer 7) — a use case's plan or validation as text, JSON, Markdown and HTML.

:func:`write` saves one run folder (by default ``./saetta-runs/<use case>/<time>/``)::

    report.json    everything measured and predicted (per-unit timelines included)
    report.md      the same tables, with the plots as PNG files beside it
    report.html    one self-contained page: the tables and the plots inline (base64 PNG)
    scaling.png    throughput vs workers, measured and model; time for Y vs cores
    timeline.png   events/s of each unit, per worker, over the run
    memory.png     peak memory of each worker over the run, against the memory per core

The tables are :mod:`~saetta.usecase.report.tables`, the plots
:mod:`~saetta.usecase.report.figures`; this module renders and writes them. A
report asks its :class:`~saetta.usecase.answer.Answer` (a plan or a validation)
for what it shows, so one code path serves both.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saetta._version import __version__
from saetta.storage import atomic_write
from saetta.usecase.answer import Answer, table
from saetta.usecase.report.figures import CAPTIONS, figures
from saetta.usecase.report.tables import sections

__all__ = ["figures", "html_page", "markdown", "run_dir", "sections", "text", "to_json", "write"]


def text(item: Answer) -> str:
    """The whole report as plain text, for a terminal."""
    parts = [item.title]
    for title, rows in sections(item):
        parts.append(f"\n{title}\n{table(rows)}")
    return "\n".join(parts)


def to_json(item: Answer) -> str:
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


def markdown(item: Answer, images: Sequence[str] = ()) -> str:
    """The report as Markdown; ``images`` are PNG file names beside it."""
    parts = [f"# {item.title}"]
    for title, rows in sections(item):
        table = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)
        parts.append(f"## {title}\n\n| | |\n|---|---|\n{table}")
    for name in images:
        stem = Path(name).stem
        parts.append(f"## {stem.capitalize()}\n\n![{stem}]({name})\n\n{CAPTIONS.get(stem, '')}")
    return "\n\n".join(parts) + "\n"


def html_page(item: Answer, pngs: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page: the tables and the plots (inline base64 PNG), no scripts."""
    body = [f"<h1 class='{item.mood}'>{html.escape(item.title)}</h1>"]
    for title, rows in sections(item):
        cells = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        body.append(f"<h2>{html.escape(title)}</h2><table>{cells}</table>")
    for name, png in (pngs or {}).items():
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f"<h2>{html.escape(name.capitalize())}</h2><figure><img alt='{name}' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(CAPTIONS.get(name, ''))}"
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
        f"<title>{html.escape(item.title)}</title><style>{style}</style></head>"
        f"<body>{''.join(body)}<p style='color:#888'>saetta {__version__}</p></body></html>\n"
    )


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


def write(item: Answer, folder: str | os.PathLike[str]) -> dict[str, Path]:
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
        atomic_write(paths[name], png)
    paths |= {
        "json": folder / "report.json",
        "markdown": folder / "report.md",
        "html": folder / "report.html",
    }
    atomic_write(paths["json"], to_json(item))
    atomic_write(paths["markdown"], markdown(item, [f"{name}.png" for name in pngs]))
    atomic_write(paths["html"], html_page(item, pngs))
    return paths
