"""Use-case reports: text, JSON, Markdown and a self-contained HTML page that a real
browser (headless Chromium) renders without errors, plots included."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from saetta import usecase as uc
from saetta.usecase import report

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (CI runs as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "chromium is not installed and cannot be installed here "
            "(needs root on Debian/Ubuntu: apt-get install -y chromium)"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"])
    for step in steps:
        done = subprocess.run(
            step, capture_output=True, text=True, env=env, timeout=900, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(step)} failed: {done.stderr[-2000:]}")
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("apt-get installed chromium, but there is no chromium on PATH")
    return found


def _browse(
    chromium: str, page: Path, profile: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _unit_timeline(workers: int, units: int, events: int) -> tuple[uc.UnitRecord, ...]:
    records = []
    for w in range(workers):
        start = 0.3
        for i in range(units // workers):
            seconds = 0.8 if i == 0 else 0.1 + 0.01 * w
            memory = (150 + 10 * i + 5 * w) * 10**6
            records.append(uc.UnitRecord(f"node:{100 + w}", start, seconds, events, 5000, memory))
            start += seconds + 0.002
    return tuple(sorted(records, key=lambda u: u.start_s))


def _measurement(workers: int, units: int, events: int, rate: float) -> uc.Measurement:
    timeline = _unit_timeline(workers, units, events)
    return uc.Measurement(
        workers=workers, chunk_size=events, events=units * events, units=units,
        wall_s=1.0 + units * events / rate, bytes_read=units * 5000,
        peak_memory=max(u.peak_memory for u in timeline), rate_hz=rate, rate_rel_err=0.02,
        t0_s=1.0, first_unit_s=0.3, dispatch_s=0.002, timeline=timeline,
    )  # fmt: skip


def _validation(memory: str = "2 GB") -> uc.Validation:
    use = uc.UseCase.from_dict(
        {
            "name": "dimuon-met-2026",
            "analysis": "adl.q5",
            "dataset": "data/*.root",
            "requirement": {
                "data": "1 PB",
                "time": "1 h",
                "resources": {"cores": 2000, "memory_per_core": memory},
            },
        }
    )
    runs = (
        _measurement(1, 8, 10_000, 1e5),
        _measurement(4, 8, 10_000, 3.6e5),
        _measurement(1, 8, 10_000, 1.02e5),
        _measurement(4, 8, 10_000, 3.7e5),
    )
    model = uc.fit_model(runs, 10_000)
    calibration = uc.Calibration(
        usecase=use.name, analysis=use.analysis, testbed="local", testbed_kind="local",
        dataset_events=10**6, dataset_bytes=130 * 10**6, sample_events=80_000, sample_units=8,
        chunk_size=10_000, bytes_per_event_disk=130.0, bytes_per_event_read=15.0, runs=runs,
        overhead_run=_measurement(1, 16, 5000, 0.9e5), model=model,
        peak_memory=max(m.peak_memory for m in runs), histogram_fills=7000.0, host="node",
        saetta_version="0.1.0", date="2026-11-29T08:00:00+00:00",
    )  # fmt: skip
    plan = uc.plan(use, calibration=calibration)
    measured = _measurement(4, 40, 10_000, 3.65e5)
    return uc.Validation(
        plan=plan, fraction=0.4, measurement=measured,
        predicted=model.predict(measured.events, 4, 40), events_total=400_000,
        histogram_fills=35_000.0, complete=True, extrapolated_s=1e7, binding=("time",),
        date="2026-11-29T08:01:00+00:00",
    )  # fmt: skip


def test_text_report_has_every_section() -> None:
    v = _validation()
    text = report.text(v)
    assert text.startswith("dimuon-met-2026: validation — FAIL")
    for title in ("Use case", "Requirement", "Calibration", "Model", "Plan", "Validation"):
        assert f"\n{title}\n" in text
    assert "X (operations): 7.69e+12 events" in text
    assert "1 PB in 1 h needs" in text
    assert "model accurate:" in text
    assert report.text(v.plan).startswith("dimuon-met-2026: plan — NOT FEASIBLE")
    assert "Validation" not in report.text(v.plan)


def test_json_is_strict_and_complete() -> None:
    v = _validation()
    document = json.loads(report.to_json(v))
    assert document["kind"] == "validation"
    assert document["verdict"] == "FAIL"
    assert document["binding"] == ["time"]
    assert len(document["measurement"]["timeline"]) == 40
    calibration = document["plan"]["calibration"]
    assert calibration["model"]["formula"].startswith("T(n) = t0")
    assert calibration["model"]["alpha"] == pytest.approx(v.plan.calibration.model.alpha)
    assert document["plan"]["projection"] == v.plan.projection
    # infinities become null: strict JSON, readable by any parser
    assert report._clean({"a": float("inf"), "b": (1.0, float("nan"))}) == {
        "a": None,
        "b": [1.0, None],
    }


def test_figures_are_pngs_with_content() -> None:
    from matplotlib.image import imread

    pngs = report.figures(_validation())
    assert set(pngs) == {"scaling", "timeline", "memory"}
    for name, png in pngs.items():
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
        pixels = imread(io.BytesIO(png))
        assert pixels.shape[0] > 200, name
        assert pixels.shape[1] > 600, name
        assert pixels.std() > 0.05, f"{name} looks blank"
    assert set(report.figures(_validation().plan)) == set(pngs)  # a plan has plots too


def test_write_makes_a_self_contained_run_folder(tmp_path: Path) -> None:
    paths = report.write(_validation(), tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "report.json", "report.md", "report.html", "scaling.png", "timeline.png", "memory.png",
    }  # fmt: skip
    page = paths["html"].read_text()
    assert page.count("<img ") == 3
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert [base64.b64decode(i) for i in images] == [
        paths[name].read_bytes() for name in ("scaling", "timeline", "memory")
    ]
    # nothing fetched from anywhere: no scripts, links, stylesheets or remote images
    assert not re.search(r"<script|<link|https?://|src='(?!data:)", page)
    markdown = paths["markdown"].read_text()
    assert "![scaling](scaling.png)" in markdown
    assert "| verdict | FAIL: time |" in markdown


def test_run_dir_defaults_under_saetta_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = report.run_dir("dimuon met/2026")
    second = report.run_dir("dimuon met/2026")
    assert first.parent == second.parent == Path("saetta-runs") / "dimuon_met_2026"
    assert first != second
    assert first.is_dir()
    assert second.is_dir()
    assert report.run_dir("x", tmp_path / "given") == tmp_path / "given"


def test_html_report_renders_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    paths = report.write(_validation(), tmp_path / "run")
    shot = tmp_path / "shot.png"
    rendered = _browse(
        chromium,
        paths["html"],
        tmp_path / "profile-1",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
    )
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    assert "Uncaught" not in rendered.stderr, rendered.stderr[-3000:]
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 0.05  # not a blank page

    dom = _browse(chromium, paths["html"], tmp_path / "profile-2", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert "Uncaught" not in dom.stderr, dom.stderr[-3000:]
    images = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,', dom.stdout)
    assert images == ["scaling", "timeline", "memory"]
    assert "dimuon-met-2026: validation — FAIL" in dom.stdout


def test_the_browser_check_catches_script_errors(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>undefinedThing.call();</script></body></html>")
    dom = _browse(chromium, page, tmp_path / "profile", "--dump-dom")
    assert "Uncaught ReferenceError" in dom.stderr


def test_notebook_reprs_are_compact() -> None:
    v = _validation()
    plan_html = v.plan._repr_html_()
    assert plan_html.startswith("<b style='color:#b00'>dimuon-met-2026: plan</b><table>")
    assert "NOT FEASIBLE" in plan_html
    assert "<img" not in plan_html
    assert "FAIL" in v._repr_html_()
    assert len(str(v.plan).splitlines()) == 6
