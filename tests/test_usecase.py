"""Use cases: parsing the requirement, the scaling model, plan and validate on real runs.

The expensive part is one real calibration + validation on the local testbed
(module fixture ``validation``): calibrate on 100,000 events, validate on
1,500,000 (15x), and check that the measured time lies within the model's
stated interval, and that the interval is narrow; the other plans re-use that
calibration with other requirements. Everything else (the start-up, the
interval and its σ, the verdicts) is tested on synthetic timelines, no timing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import saetta
from saetta import usecase as uc
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod
from saetta.errors import QuantityError, UseCaseError
from saetta.execute.outcome import RunReport, UnitOutcome
from saetta.usecase import (
    Calibration,
    Measurement,
    Model,
    Requirement,
    UnitRecord,
    UseCase,
)
from saetta.usecase import model as model_module

VALIDATION_EVENTS = 1_500_000
CHUNK = 12_500
SAMPLE_UNITS = 8  # 100,000 events


def _spec(dataset: str | list[str], **changes: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "test-usecase",
        "analysis": "adl",
        "dataset": dataset,
        "requirement": {
            "data": "1 GB",
            "time": "10 min",
            "resources": {"cores": 2, "memory_per_core": "4 GB"},
        },
        "testbed": "local",
        "chunk_size": CHUNK,
        "calibration": {"sample_units": SAMPLE_UNITS, "workers": [1, 2], "repeats": 3},
        "validation": {"fraction": 1.0, "workers": 2},
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_nanoaod(
        tmp_path_factory.mktemp("usecase") / "big.root", VALIDATION_EVENTS, seed=11
    )


@pytest.fixture(scope="module")
def validation(big_file: Path) -> uc.Validation:
    """A generous use case, calibrated on 100k events and validated on all 1.5M."""
    return uc.validate(UseCase.from_dict(_spec(str(big_file))), adl.analysis)


# --------------------------------------------------------------------------- real runs


def test_generous_spec_is_feasible_and_passes(validation: uc.Validation) -> None:
    plan = validation.plan
    assert plan.verdict == "FEASIBLE", str(plan)
    assert plan.binding == ()
    assert plan.cores_needed == 1
    assert "1 GB in 10 min needs 1 core at this rate" in plan.projection
    assert validation.verdict == "PASS", str(validation)
    assert validation.complete
    assert validation.extrapolated_s < 600


def test_planning_accuracy_on_a_15x_larger_run(validation: uc.Validation) -> None:
    calibration, measured = validation.plan.calibration, validation.measurement
    assert calibration.sample_events == SAMPLE_UNITS * CHUNK == 100_000
    assert measured.events == VALIDATION_EVENTS >= 10 * calibration.sample_events
    p, model = validation.predicted, calibration.model
    runs = "; ".join(
        f"{m.workers}w {m.wall_s:.2f}s {m.rate_hz:.4g}/s t0 {m.t0_s:.2f}" for m in calibration.runs
    )
    summary = (
        f"predicted {p.time_s:.3f} s (interval {p.low_s:.3f}-{p.high_s:.3f}), "
        f"measured {validation.measured_s:.3f} s, error {100 * validation.error_rel:+.1f} %; "
        f"{model}; runs: {runs}; validation t0 {measured.t0_s:.2f} s, "
        f"rate {measured.rate_hz:.4g}/s"
    )
    print(summary)
    # The only timing assertions. The measured time (and the steady rate) must lie
    # in the stated ≈95 % interval, and that interval must be narrow enough to
    # mean something: a noisy calibration widens it, and a wide enough interval
    # contains any measurement. Quiet, the interval is ±8-20 % (relative width
    # 0.16-0.40 in 30 quiet runs of this test and of adl, adl.q1, adl.q6 at 20x)
    # and the errors lie within -3 … +10 % (docs/usecase.md); 0.5 (±25 %) leaves
    # room above that, and is the widest with which `validate` calls a model
    # accurate. On a busy machine the interval grows, as it should, and this test
    # fails rather than passing vacuously.
    assert p.relative_width <= 0.5, summary
    assert validation.model_accurate, f"{validation.accuracy_text}; {summary}"
    assert "model accurate: yes" in str(validation)


def test_calibration_measures_what_the_model_needs(validation: uc.Validation) -> None:
    c = validation.plan.calibration
    assert [m.workers for m in c.runs] == [1, 2, 1, 2, 1, 2]
    assert all(m.events == 100_000 and m.units == 8 for m in c.runs)
    assert c.overhead_run is not None
    assert (c.overhead_run.units, c.overhead_run.chunk_size) == (16, CHUNK // 2)
    assert c.model.measured_workers == (1, 2)
    assert c.model.rate_rel_err > 0  # units never take exactly the same time
    assert c.model.alpha >= 0
    assert c.model.t0_s > 0  # worker start-up and numba's cache loading
    assert c.unit_overhead_s is not None
    assert c.unit_overhead_s >= 0
    size = Path(validation.plan.usecase.dataset[0]).stat().st_size
    assert c.bytes_per_event_disk == pytest.approx(size / VALIDATION_EVENTS)
    assert c.bytes_per_event_read > 0  # whole baskets: more than on disk when units are small
    assert c.peak_memory > 10e6
    workers = {u.worker for u in c.runs[1].timeline}
    assert len(workers) == 2


def test_operations_are_events_and_histogram_fills(
    validation: uc.Validation, big_file: Path
) -> None:
    result = saetta.run(adl.analysis, big_file, executor="local", chunk_size=500_000, run_dir=False)
    fills = sum(h.sum(flow=True) for h in result.values())
    assert validation.histogram_fills == pytest.approx(fills)
    assert validation.measurement.events == VALIDATION_EVENTS
    nested = {"a": result["q1_met"], "b": {"c": result["q2_jet_pt"], "n": 3}}
    expected = result["q1_met"].sum(flow=True) + result["q2_jet_pt"].sum(flow=True)
    assert uc.histogram_fills(nested) == expected


def test_impossible_spec_names_the_binding_constraint(validation: uc.Validation) -> None:
    use = UseCase.from_dict(
        _spec(
            "x.root",
            requirement={"data": "1 PB", "time": "1 h", "resources": {"cores": 10}},
        )
    )
    plan = uc.plan(use, calibration=validation.plan.calibration)
    assert plan.verdict == "NOT FEASIBLE"
    assert plan.binding in {("time",), ("cores",)}
    assert plan.binding[0] in str(plan)
    assert plan.projection.startswith(f"1 PB in 1 h needs {plan.ideal_cores:,} cores at this rate")
    assert plan.ideal_cores > 1000


def test_too_little_memory_is_caught(validation: uc.Validation, big_file: Path) -> None:
    spec = _spec(
        str(big_file),
        requirement={
            "data": "1 GB",
            "time": "10 min",
            "resources": {"cores": 2, "memory_per_core": "10 MB"},
        },
        validation={"fraction": 0.05},
    )
    use = UseCase.from_dict(spec)
    plan = uc.plan(use, calibration=validation.plan.calibration)
    assert plan.binding == ("memory",)
    assert "memory" in plan.binding_text()
    assert "TOO LITTLE" in str(plan)
    checked = uc.validate(use, adl.analysis, planned=plan)
    assert checked.verdict == "FAIL"
    assert "memory" in checked.binding
    assert checked.measurement.events == 6 * CHUNK  # 5 % of 120 units


def test_reports_of_a_real_validation(validation: uc.Validation, tmp_path: Path) -> None:
    from saetta.usecase import report

    paths = report.write(validation, tmp_path)
    document = json.loads(paths["json"].read_text())
    assert document["verdict"] == "PASS"
    assert document["measurement"]["events"] == VALIDATION_EVENTS
    assert len(document["measurement"]["timeline"]) == VALIDATION_EVENTS // CHUNK
    assert document["plan"]["calibration"]["model"]["rate_hz"] > 0
    assert "| model accurate |" in paths["markdown"].read_text()
    assert paths["html"].read_text().count("data:image/png;base64,") == 3
    assert "<b style='color:#070'>" in validation._repr_html_()
    assert "<table>" in validation.plan._repr_html_()


# --------------------------------------------------------------------------- command line


def _saetta(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("saetta")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "saetta.cli"]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False
    )


def test_command_line_plan_validate_and_history(sample_root: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "s.root").symlink_to(sample_root)
    (tmp_path / "usecase.yaml").write_text(
        textwrap.dedent(
            """\
            name: cli-case
            analysis: adl.q1
            dataset: "data/*.root"      # relative to this file
            requirement:
              events: 2.5e6
              time: 90 min
              resources: {cores: 4, memory_per_core: 2 GB}
            chunk_size: 2500
            calibration: {sample_units: 4, workers: [1, 2], repeats: 1}
            validation: {fraction: 0.5}
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["SAETTA_HISTORY"] = str(tmp_path / "history.sqlite")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planned = _saetta("plan", "../usecase.yaml", env=env, cwd=elsewhere)
    assert planned.returncode == 0, planned.stderr
    assert "cli-case: plan — FEASIBLE" in planned.stdout
    assert "2,500,000 events in 90 min needs 1 core at this rate" in planned.stdout
    folders = list((elsewhere / "saetta-runs" / "cli-case").iterdir())
    assert len(folders) == 1
    assert {p.name for p in folders[0].iterdir()} >= {"report.html", "report.json", "report.md"}

    checked = _saetta("validate", "../usecase.yaml", "--json", "--out", "v", env=env, cwd=elsewhere)
    assert checked.returncode == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert document["verdict"] == "PASS"
    assert document["events_processed"] == 10_000  # half of the 20,000 events
    assert (elsewhere / "v" / "report.html").exists()

    history = _saetta("testbeds", "history", "local", env=env, cwd=elsewhere)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert "3 entries" in lines[0]
    assert [line.split()[1] for line in lines[2:]] == ["calibration", "calibration", "validation"]

    impossible = tmp_path / "impossible.yaml"
    impossible.write_text(
        (tmp_path / "usecase.yaml")
        .read_text()
        .replace("events: 2.5e6", "data: 1 PB")
        .replace("workers: [1, 2]", "workers: [1]")
    )
    refused = _saetta("plan", str(impossible), "--no-history", env=env, cwd=elsewhere)
    assert refused.returncode == 3, refused.stderr
    assert "NOT FEASIBLE" in refused.stdout

    (tmp_path / "bad.yaml").write_text(
        (tmp_path / "usecase.yaml").read_text().replace("90 min", "90 minutes please")
    )
    bad = _saetta("plan", str(tmp_path / "bad.yaml"), env=env, cwd=elsewhere)
    assert bad.returncode == 1
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "saetta: error: UseCaseError: requirement.time: cannot read '90 minutes please'"
        )
    )


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 PB", 1e15),
        ("500 TB", 5e14),
        ("2 GB", 2e9),
        ("512 MB", 512e6),
        ("512MB", 512e6),
        ("2 GiB", 2 * 2**30),
        ("1.5e3 kB", 1.5e6),
    ],
)
def test_parse_bytes(text: str, expected: float) -> None:
    assert uc.parse_bytes(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1 h", 3600), ("90 min", 5400), ("3600 s", 3600), ("2 days", 172800), ("1.5h", 5400)],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert uc.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.5e6 events", 2.5e6), ("5e11", 5e11), (5e11, 5e11), (1000, 1000.0)],
)
def test_parse_count(value: object, expected: float) -> None:
    assert uc.parse_count(value) == expected


def test_parse_data_tells_sizes_from_events() -> None:
    assert uc.parse_data("1 PB") == (None, 1e15)
    assert uc.parse_data("2.5e6 events") == (2.5e6, None)


@pytest.mark.parametrize(
    ("function", "value"),
    [
        (uc.parse_bytes, "2"),  # no unit
        (uc.parse_bytes, "2 GBs"),
        (uc.parse_bytes, "-1 GB"),
        (uc.parse_bytes, "0 GB"),
        (uc.parse_bytes, None),
        (uc.parse_bytes, True),
        (uc.parse_duration, "1 fortnight"),
        (uc.parse_duration, 3600),  # a bare number: seconds or hours?
        (uc.parse_duration, "inf s"),
        (uc.parse_count, "5 GB"),
        (uc.parse_count, "many"),
        (uc.parse_data, "1 h"),
        (uc.parse_data, "5e11"),  # events or bytes? say which
    ],
)
def test_malformed_quantities_name_the_field(function: object, value: object) -> None:
    with pytest.raises(QuantityError, match=r"^requirement\.x: cannot read"):
        function(value, "requirement.x")  # type: ignore[operator]


def test_usecase_from_dict_and_defaults() -> None:
    use = UseCase.from_dict(
        {
            "name": "n",
            "analysis": "adl.q5",
            "dataset": "data/*.root",
            "requirement": {"events": "5e11", "time": "1 h", "resources": {"cores": 2000}},
        }
    )
    assert use.dataset == ("data/*.root",)
    assert use.requirement.events == 5e11
    assert use.requirement.data_bytes is None
    assert use.requirement.memory_per_core is None
    assert use.requirement.data_text == "5e+11 events"
    assert (use.testbed, use.chunk_size, use.sample_units, use.repeats) == (
        "local",
        saetta.dataset.DEFAULT_CHUNK_SIZE,
        8,
        2,
    )
    assert use.calibration_workers is None
    assert use.fraction == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        use.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": ""}, r"^name: expected a non-empty string"),
        ({"colour": "blue"}, r"unknown field 'colour'"),
        ({"requirement": {"data": "1 PB", "time": "1 h"}}, r"^requirement\.resources:"),
        (
            {"requirement": {"data": "1 PB", "time": "soon", "resources": {"cores": 4}}},
            r"^requirement\.time: cannot read 'soon'",
        ),
        (
            {"requirement": {"data": "1 PB", "time": "1 h", "resources": {"cores": 0}}},
            r"^requirement\.resources\.cores: expected a positive integer",
        ),
        (
            {
                "requirement": {
                    "data": "1 PB",
                    "time": "1 h",
                    "resources": {"cores": 4, "memory_per_core": "lots"},
                }
            },
            r"^requirement\.resources\.memory_per_core: cannot read 'lots'",
        ),
        (
            {
                "requirement": {
                    "data": "1 PB",
                    "events": 5,
                    "time": "1 h",
                    "resources": {"cores": 1},
                }
            },
            r"^requirement: give data",
        ),
        (
            {"validation": {"fraction": 1.5}},
            r"^validation\.fraction: expected a number in \(0, 1\]",
        ),
        ({"calibration": {"workers": [1, "two"]}}, r"^calibration\.workers: expected a positive"),
        ({"calibration": {"sample_units": -3}}, r"^calibration\.sample_units:"),
        ({"dataset": []}, r"^dataset:"),
        ({"chunk_size": "big"}, r"^chunk_size: expected a positive integer, got 'big'"),
    ],
)
def test_malformed_usecase_names_the_field(change: dict[str, object], message: str) -> None:
    spec = _spec("x.root")
    spec.update(change)
    with pytest.raises(UseCaseError, match=message):
        UseCase.from_dict(spec)


def test_load_resolves_paths_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / "u.yaml").write_text(
        "name: n\nanalysis: my/ana.py:run\ndataset: ['data/*.root', '/abs/x.root', "
        "'root://eos/x.root']\nrequirement: {data: 1 TB, time: 1 h, resources: {cores: 1}}\n"
        "chunk_size: 1e5\n"
    )
    use = UseCase.load(tmp_path / "u.yaml")
    assert use.analysis == f"{tmp_path}/my/ana.py:run"
    assert use.dataset == (f"{tmp_path}/data/*.root", "/abs/x.root", "root://eos/x.root")
    assert use.chunk_size == 100_000
    with pytest.raises(UseCaseError, match="cannot read use case"):
        UseCase.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(UseCaseError, match="not valid YAML"):
        UseCase.load(tmp_path / "bad.yaml")


def test_the_example_usecase_loads() -> None:
    example = Path(__file__).parents[1] / "examples" / "usecase.yaml"
    use = UseCase.load(example)
    assert use.name == "dimuon-met-2026"
    assert use.dataset == (str(example.parents[1] / "data" / "*.root"),)
    assert use.requirement.data_bytes == 1e15
    assert use.requirement.time_s == 3600
    assert (use.requirement.cores, use.requirement.memory_per_core) == (2000, 2e9)
    assert use.calibration_workers == (1, 2)


def test_catalog_datasets(
    monkeypatch: pytest.MonkeyPatch, sample_root: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text(f"dimuon-2026: {{files: ['{sample_root}']}}\n")
    monkeypatch.setenv("SAETTA_CATALOG", str(catalog))
    opened = uc.open_dataset(UseCase.from_dict(_spec("@dimuon-2026")))
    assert (opened.name, opened.num_entries) == ("dimuon-2026", 20_000)
    with pytest.raises(UseCaseError, match=r"^dataset: no dataset 'other' in .*dimuon-2026"):
        uc.open_dataset(UseCase.from_dict(_spec("@other")))
    with pytest.raises(UseCaseError, match="cannot be mixed"):
        uc.open_dataset(UseCase.from_dict(_spec(["@dimuon-2026", "x.root"])))


def test_sample_takes_the_first_units_file_after_file(small_files: list[Path]) -> None:
    # consecutive units of one file, as a real run reads them (a worker opens each
    # file once); not one unit of each file, which would time a file opening per unit
    ds = saetta.Dataset.open([str(p) for p in small_files])
    units = ds.units(100)
    a = [u for u in units if u.path.endswith("a.root")]
    c = [u for u in units if u.path.endswith("c.root")]
    assert len(a) > 3
    sample = uc.sample_dataset(ds, 3, 100)
    assert sample.units(100) == tuple(a[:3])
    assert sample.num_entries == sum(u.num_entries for u in a[:3])
    a_info = next(f for f in sample.files if f.path.endswith("a.root"))
    full = next(f for f in ds.files if f.path.endswith("a.root"))
    assert a_info.size_bytes == round(full.size_bytes * a_info.num_entries / full.num_entries)
    # then the next file (b.root is empty)
    assert uc.sample_dataset(ds, len(a) + 1, 100).units(100) == (*a, c[0])
    assert uc.sample_dataset(ds, 100, 100).units(100) == units  # more than there is: all


# --------------------------------------------------------------------------- the model


def _model(**changes: float) -> Model:
    values: dict[str, float] = {
        "rate_hz": 1e6,
        "rate_rel_err": 0.0,
        "alpha": 0.0,
        "alpha_err": 0.0,
        "t0_s": 1.0,
        "t0_err": 0.0,
    }
    values.update(changes)
    return Model(**values, chunk_size=100_000)  # type: ignore[arg-type]


def test_model_prediction_and_efficiency() -> None:
    model = _model(alpha=0.1)
    assert model.efficiency(1) == 1
    assert model.efficiency(11) == pytest.approx(0.5)
    # 8e6 events, 80 units, 4 workers: 20 waves; e(4) = 1/1.3
    p = model.predict(8e6, 4)
    assert p.time_s == pytest.approx(1 + 8e6 / (4 * 1e6 / 1.3))
    assert p.err_low_s == p.err_high_s == 0
    assert p.low_s == p.high_s == p.time_s
    # more workers than units: the idle ones do not help
    assert _model().predict(2e5, 8).time_s == pytest.approx(1 + 1e5 / 1e6)
    # the last, partly filled wave: 3 units on 2 workers take two waves
    assert _model().predict(3e5, 2, units=3).time_s == pytest.approx(1 + 2 * 1e5 / 1e6)
    assert uc.tail_factor(3, 2) == pytest.approx(4 / 3)
    assert uc.tail_factor(4, 2) == 1


def test_model_uncertainty_adds_terms_in_quadrature() -> None:
    model = _model(rate_rel_err=0.03, alpha=0.1, alpha_err=0.02, t0_err=0.2)
    p = model.predict(8e6, 4)
    work = p.time_s - 1
    # each parameter moved 2σ, one at a time, through T(n); the shifts in quadrature
    slow_rate = 1 + work / (1 - 2 * 0.03) - p.time_s
    slow_alpha = 1 + 8e6 * (1 + 0.14 * 3) / 4e6 - p.time_s
    assert p.high_s - p.time_s == pytest.approx(math.hypot(0.4, slow_rate, slow_alpha))
    fast_rate = p.time_s - (1 + work / (1 + 2 * 0.03))
    fast_alpha = p.time_s - (1 + 8e6 * (1 + 0.06 * 3) / 4e6)
    assert p.time_s - p.low_s == pytest.approx(math.hypot(0.4, fast_rate, fast_alpha))
    # the 1σ of each side is its half-width over INTERVAL_Z: one uncertainty
    assert p.err_high_s == pytest.approx((p.high_s - p.time_s) / uc.INTERVAL_Z)
    assert p.err_low_s == pytest.approx((p.time_s - p.low_s) / uc.INTERVAL_Z)
    assert p.contains(p.time_s + 1.9 * p.err_high_s)
    assert not p.contains(p.time_s + 2.1 * p.err_high_s)
    # far away it is asymmetric (α cannot go below 0) ...
    far_model = _model(rate_rel_err=0.03, alpha=0.05, alpha_err=0.04)
    far = far_model.predict(1e12, 10_000)
    assert far.high_s - far.time_s > far.time_s - far.low_s > 0
    # ... and never beyond the model with every parameter 2σ faster (or slower)
    fastest = _model(rate_hz=1.06e6).predict(1e12, 10_000)
    assert far.low_s == pytest.approx(fastest.time_s)
    slowest = _model(rate_hz=0.94e6, alpha=0.13).predict(1e12, 10_000)
    assert far.high_s <= slowest.time_s


def test_interval_and_sigma_are_one_uncertainty() -> None:
    """The "N σ" of every report is the distance to the prediction over the interval's
    half-width / INTERVAL_Z on that side: ±2.00 σ exactly at the ends."""
    from saetta.usecase import report

    model = _model(rate_rel_err=0.04, alpha=0.05, alpha_err=0.03, t0_err=0.1)
    predicted = model.predict(1.6e6, 2, 16)
    assert predicted.err_high_s > predicted.err_low_s > 0  # asymmetric: 1/r
    half_width = predicted.high_s - predicted.time_s
    for measured, sigmas in (
        (predicted.high_s, 2.0),
        (predicted.time_s + 0.5 * half_width, 1.0),
        (predicted.low_s, -2.0),
        (predicted.high_s + half_width, 4.0),
    ):
        assert predicted.sigmas(measured) == pytest.approx(sigmas)
        assert predicted.contains(measured) == (abs(sigmas) <= 2)
        v = _validation_of(model, predicted, measured)
        shown = f"{measured / predicted.time_s - 1:+.1%}".replace("%", " %")
        expected = f"{shown}, {sigmas:+.2f} σ"
        assert expected in str(v)
        assert expected in report.text(v)
        assert expected in report.markdown(v)
        assert expected in report.html_page(v)
        assert v.to_dict()["sigmas"] == pytest.approx(sigmas)
    outside = _validation_of(model, predicted, predicted.high_s + half_width)
    assert not outside.model_accurate
    assert "(+4.00 σ)" in outside.accuracy_text


def _validation_of(model: Model, predicted: uc.Prediction, wall_s: float) -> uc.Validation:
    plan = uc.plan(UseCase.from_dict(_spec("x.root")), calibration=_calibration(model))
    run = dataclasses.replace(
        _measurement(2, 2 * model.rate_hz / (1 + model.alpha), 0.5), wall_s=wall_s
    )
    return uc.Validation(
        plan=plan, fraction=1.0, measurement=run, predicted=predicted, events_total=8000,
        histogram_fills=1.0, complete=True, extrapolated_s=1.0, binding=(),
        date="2026-01-01T00:00:00+00:00",
    )  # fmt: skip


def test_cores_needed_inverts_the_prediction() -> None:
    for alpha in (0.0, 0.001, 0.01):
        model = _model(alpha=alpha)
        n = model.cores_needed(1e10, 3600)
        assert n is not None
        assert model.predict(1e10, n).time_s <= 3600 + 1e-6
        assert model.predict(1e10, n - 1).time_s > 3600
    assert _model(t0_s=4000).cores_needed(1e6, 3600) is None  # start-up alone too long
    assert _model(alpha=0.01).cores_needed(1e12, 3600) is None  # saturates at r/α = 1e8/s
    assert _model(alpha=0.01).max_rate_hz == pytest.approx(1e8)
    assert _model(alpha=2.0).cores_needed(1e6, 3600) == 1  # more workers only hurt


def _measurement(workers: int, rate: float, t0: float, rel: float = 0.01) -> Measurement:
    return Measurement(
        workers=workers, chunk_size=1000, events=8000, units=8, wall_s=t0 + 8000 / rate,
        bytes_read=80_000, peak_memory=100_000_000, rate_hz=rate, rate_rel_err=rel, t0_s=t0,
        first_unit_s=0.01, dispatch_s=0.001, timeline=(),
    )  # fmt: skip


def test_fit_recovers_rate_efficiency_and_startup() -> None:
    runs = [
        _measurement(1, 1000.0, 0.5, rel=0.06),
        _measurement(4, 4000 / 1.3, 0.6, rel=0.06),
        _measurement(1, 1000.0, 0.5, rel=0.06),
        _measurement(4, 4000 / 1.3, 0.6, rel=0.06),
    ]
    model = uc.fit_model(runs, 1000)
    assert model.rate_hz == pytest.approx(1000)
    assert model.alpha == pytest.approx(0.1)
    assert model.t0_s == pytest.approx(0.6)  # the start-up at the largest worker count
    assert model.t0_err == pytest.approx(0.06)  # no scatter: at least 10 % of t0
    assert model.rate_rel_err == pytest.approx(math.sqrt(2 * 0.06**2) / 2)  # no scatter
    assert model.alpha_err > 0
    assert model.measured_workers == (1, 4)
    # a repeat disturbed by another process does not move the model, but widens it
    disturbed = uc.fit_model([*runs, _measurement(1, 600.0, 0.9), _measurement(4, 2000, 1.5)])
    assert disturbed.rate_hz == pytest.approx(1000)
    assert disturbed.alpha == pytest.approx(0.1)
    assert disturbed.t0_s == pytest.approx(0.6)
    assert disturbed.rate_rel_err > 0.2 > model.rate_rel_err
    assert disturbed.t0_err > 0.4
    # two repeats that disagree: their scatter is the error
    spread = uc.fit_model([_measurement(1, 1000.0, 0.5), _measurement(1, 1100.0, 0.5)])
    assert spread.rate_rel_err == pytest.approx(math.hypot(0.01 / math.sqrt(2), 0.0673), rel=0.01)
    # three short runs can agree by chance: a rate is never known better than 3 %
    lucky = uc.fit_model([_measurement(1, 1000.0, 0.5, rel=0.001)] * 3)
    assert lucky.rate_rel_err == model_module.RATE_REL_ERR_FLOOR == 0.03
    # super-linear scaling (a cache effect) is clamped: never predict e(n) > 1
    assert uc.fit_model([_measurement(1, 1000, 0.5), _measurement(2, 2200, 0.5)]).alpha == 0
    with pytest.raises(UseCaseError, match="no 1-worker run"):
        uc.fit_model([_measurement(2, 2000, 0.5)])


def test_measure_reads_the_unit_timeline() -> None:
    unit = saetta.WorkUnit("f.root", "Events", 0, 1000)
    started = 1000.0

    def outcome(worker: str, start: float, seconds: float) -> UnitOutcome:
        return UnitOutcome(
            unit, seconds=seconds, worker=worker, started_at=started + start, bytes_read=10,
            peak_memory=5,
        )  # fmt: skip

    # two workers; first units slow (warm-up), then 0.1 s per 1000 events, 0.01 s gaps
    units = (
        outcome("h:1", 0.2, 0.5),
        outcome("h:2", 0.2, 0.5),
        outcome("h:1", 0.71, 0.1),
        outcome("h:2", 0.71, 0.1),
        outcome("h:1", 0.82, 0.1),
        outcome("h:2", 0.82, 0.1),
    )
    report = RunReport(
        dataset="d", executor="x", chunk_size=1000, files=1, units_total=6, units_done=6,
        events_total=6000, events_processed=6000, bytes_read=60, wall_seconds=1.0,
        unit_seconds=1.4, columns=(), units=units, peak_memory=5, started_at=started,
    )  # fmt: skip
    m = uc.measure(report, 2, 1.0, started, 1000)
    assert m.rate_hz == pytest.approx(2 * 2000 / 0.22)
    assert m.t0_s == pytest.approx(1.0 - 6000 / m.rate_hz)
    assert m.first_unit_s == pytest.approx(0.2)
    assert m.dispatch_s == pytest.approx(0.01)
    assert m.rate_rel_err == pytest.approx(0, abs=1e-9)  # identical steady units
    assert m.timeline[0] == UnitRecord("h:1", pytest.approx(0.2), 0.5, 1000, 10, 5)


def _timeline_run(workers: int, units: int) -> Measurement:
    """A run with 3.5 s of kernel loading in each worker's first unit (no timing: synthetic).

    Worker 0 starts at 0.2 s, worker 1 at 0.7 s (its process came up later). A unit
    takes 0.1 s per 1000 events, but 0.25 s while another worker is still loading
    its kernels (they compete for the cores and the disk). The wall time ends 0.1 s
    after the last unit (the final merge).
    """
    unit = saetta.WorkUnit("f.root", "Events", 0, 1000)
    free = [0.2 + 0.5 * w for w in range(workers)]
    warm = [math.inf] * workers
    outcomes = []
    for _ in range(units):
        w = min(range(workers), key=lambda i: free[i])
        start = free[w]
        if warm[w] == math.inf:
            seconds = 3.5
            warm[w] = start + seconds
        else:
            others_loading = any(warm[o] > start + 1e-9 for o in range(workers) if o != w)
            seconds = 0.25 if others_loading else 0.1
        outcomes.append(
            UnitOutcome(unit, seconds=seconds, worker=f"h:{w}", started_at=1000 + start)
        )
        free[w] = start + seconds
    wall = max(free) + 0.1
    report = RunReport(
        dataset="d", executor="x", chunk_size=1000, files=1, units_total=units,
        units_done=units, events_total=1000 * units, events_processed=1000 * units,
        bytes_read=0, wall_seconds=wall, unit_seconds=sum(o.seconds for o in outcomes),
        columns=(), units=tuple(outcomes), peak_memory=0, started_at=1000.0,
    )  # fmt: skip
    return uc.measure(report, workers, wall, 1000.0, 1000)


def test_slow_first_units_are_start_up_not_scaling_loss() -> None:
    single, pair = _timeline_run(1, 8), _timeline_run(2, 8)
    assert single.rate_hz == pytest.approx(10_000)
    # worker 0 ran two slow units while worker 1 loaded; from 4.2 s both were warm, and
    # from 4.3 s the 2n + 1 = 5 units queued at the start (no column prefetch) were done
    assert pair.rate_hz == pytest.approx(20_000)  # the steady state: no scaling loss
    assert pair.warmup_s == pytest.approx(4.3)
    assert pair.t0_s == pytest.approx(pair.wall_s - 8000 / 20_000)  # the rest is start-up
    model = uc.fit_model([single, pair, single, pair], 1000)
    assert model.rate_hz == pytest.approx(10_000)
    assert model.alpha == pytest.approx(0, abs=1e-9)
    assert model.t0_s == pytest.approx(pair.t0_s)
    # so a run 20 times larger is predicted to within 1 %: its start-up is the same
    run = _timeline_run(2, 160)
    assert model.predict(run.events, 2, run.units).time_s == pytest.approx(run.wall_s, rel=0.01)


def test_units_queued_before_the_first_result_are_start_up() -> None:
    # 1 worker: units 1 and 2 were queued with unit 0, before the run knew which
    # columns to prefetch, and took 15 % longer; the steady rate starts after them
    unit = saetta.WorkUnit("f.root", "Events", 0, 1000)
    seconds = [1.0, 0.115, 0.115, 0.1, 0.1, 0.1, 0.1, 0.1]
    starts = [0.1 + sum(seconds[:i]) for i in range(len(seconds))]
    outcomes = tuple(
        UnitOutcome(unit, seconds=d, worker="h:1", started_at=1000 + t)
        for t, d in zip(starts, seconds, strict=True)
    )
    report = RunReport(
        dataset="d", executor="x", chunk_size=1000, files=1, units_total=8, units_done=8,
        events_total=8000, events_processed=8000, bytes_read=0, wall_seconds=2.0,
        unit_seconds=sum(seconds), columns=(), units=outcomes, peak_memory=0,
        started_at=1000.0,
    )  # fmt: skip
    m = uc.measure(report, 1, 2.0, 1000.0, 1000)
    assert m.rate_hz == pytest.approx(10_000)
    assert m.warmup_s == pytest.approx(0.1 + 1.23)
    assert m.steady_units == 5


def test_verdict_is_uncertain_when_the_requirement_lies_in_the_interval() -> None:
    # α = 1.26 ± 1 from two workers: at the central values scaling saturates
    # at r/α long before 2000 cores process 1 PB in 1 h; the fast end does not
    saturating = {"rate_rel_err": 0.05, "alpha": 1.26, "alpha_err": 1.0, "t0_err": 0.1}
    unsure = _plan("1 TB", "1 h", 2000, **saturating)
    p = unsure.prediction
    assert unsure.cores_needed is None  # the central model alone says NOT FEASIBLE
    assert p.low_s <= 3600 < p.high_s
    assert unsure.verdict == "UNCERTAIN"
    assert unsure.uncertain == ("time",)
    assert unsure.binding == ()
    assert not unsure.feasible
    verdict_row = str(unsure).splitlines()[1].strip()
    assert verdict_row.startswith("verdict: UNCERTAIN: time (1 h lies within")
    assert "NOT FEASIBLE" not in str(unsure)
    assert unsure.verdict_text.endswith("scaling saturates at 794 k events/s, α = 1.26 ± 1)")
    # inside the interval on the cores side too: needs about W
    close = _plan("1 PB", "1 h", 2138, rate_rel_err=0.05)
    assert close.verdict == "UNCERTAIN"
    assert close.uncertain == ("cores",)
    fast, slow = close.cores_range
    assert fast is not None
    assert slow is not None
    assert fast < 2138 < slow
    assert close.prediction.low_s <= 3600 < close.prediction.high_s
    assert f"cores (needs 2,138, ≈95 %: {fast:,} – {slow:,}; has 2,138" in close.verdict_text
    # the clear cases keep their words
    assert _plan("1 PB", "1 h", 3000, rate_rel_err=0.05).verdict == "FEASIBLE"
    assert _plan("1 PB", "1 h", 1000, rate_rel_err=0.05).verdict == "NOT FEASIBLE"


def test_model_accurate_needs_the_rate_and_a_narrow_interval() -> None:
    model = _model(rate_rel_err=0.03, alpha=0.05, alpha_err=0.02, t0_err=0.1)
    predicted = model.predict(1.6e6, 2, 16)
    good = _validation_of(model, predicted, predicted.time_s)
    assert good.model_accurate, good.accuracy_text
    assert good.accuracy_text == "yes"
    # the right time for the wrong reason: a faster steady rate, a slower start-up
    fast = dataclasses.replace(good.measurement, rate_hz=1.3 * good.measurement.rate_hz)
    lucky = dataclasses.replace(good, measurement=fast)
    assert lucky.predicted.contains(lucky.measured_s)
    assert not lucky.model_accurate
    assert lucky.accuracy_text.startswith("no: steady rate 2.48 M events/s on 2 workers outside")
    # a noisy calibration: an interval of ±40 % would contain almost anything
    noisy = _model(rate_rel_err=0.2, alpha=0.05, alpha_err=0.1, t0_err=0.1)
    wide = _validation_of(noisy, noisy.predict(1.6e6, 2, 16), predicted.time_s)
    assert wide.predicted.contains(wide.measured_s)
    assert wide.predicted.relative_width > uc.MAX_INTERVAL_WIDTH
    assert not wide.model_accurate
    assert "the interval is too wide to test the model" in wide.accuracy_text


def _calibration(model: Model, peak: int = 300_000_000) -> Calibration:
    run = _measurement(1, model.rate_hz, model.t0_s)
    return Calibration(
        usecase="u", analysis="adl.q5", testbed="local", testbed_kind="local",
        dataset_events=2_000_000, dataset_bytes=260_000_000, sample_events=8000, sample_units=8,
        chunk_size=model.chunk_size, bytes_per_event_disk=130.0, bytes_per_event_read=15.0,
        runs=(run,), overhead_run=None, model=model, peak_memory=peak, histogram_fills=800.0,
        host="h", saetta_version="0", date="2026-01-01T00:00:00+00:00",
    )  # fmt: skip


def _plan(data: str, time: str, cores: int, memory: str = "2 GB", **model: float) -> uc.Plan:
    use = UseCase.from_dict(
        _spec(
            "x.root",
            requirement={
                "data": data,
                "time": time,
                "resources": {"cores": cores, "memory_per_core": memory},
            },
        )
    )
    return uc.plan(use, calibration=_calibration(_model(**model)))


def test_plan_verdicts_and_binding_constraints() -> None:
    # 1 PB at 130 B/event = 7.7e12 events; 1e6 events/s per core: 2,137 cores for 1 h
    ok = _plan("1 PB", "1 h", 3000)
    assert ok.verdict == "FEASIBLE"
    assert ok.ideal_cores == math.ceil(1e15 / 130 / 1e6 / 3600) == 2137
    assert ok.cores_needed == 2138  # the 1 s start-up costs one more core
    assert ok.projection.startswith("1 PB in 1 h needs 2,137 cores at this rate")
    assert ok.prediction.time_s < 3600

    cores = _plan("1 PB", "1 h", 2000)
    assert (cores.verdict, cores.binding) == ("NOT FEASIBLE", ("cores",))
    assert cores.binding_text() == "cores (needs 2,138, has 2,000)"

    saturated = _plan("1 PB", "1 h", 2000, alpha=0.01)
    assert saturated.binding == ("time",)
    assert "no number suffices (scaling saturates at 100 M events/s" in saturated.projection
    assert saturated.binding_text() == (
        "time (no number of cores meets 1 h: scaling saturates at 100 M events/s, α = 0.01)"
    )

    slow_start = _plan("1 GB", "1 s", 2000, t0_s=5.0)
    assert slow_start.binding == ("time",)
    assert "the start-up alone takes 5 s" in slow_start.projection

    memory = _plan("1 GB", "1 h", 4, memory="100 MB")
    assert memory.binding == ("memory",)
    assert memory.binding_text() == "memory (300 MB per worker > 100 MB)"
    both = _plan("1 PB", "1 h", 10, memory="100 MB")
    assert both.binding == ("memory", "cores")
    assert "NOT FEASIBLE: memory (300 MB per worker > 100 MB); cores" in str(both)


def test_plan_needs_an_analysis_or_a_calibration() -> None:
    with pytest.raises(UseCaseError, match="give the analysis"):
        uc.plan(UseCase.from_dict(_spec("x.root")))


def test_requirement_needs_exactly_one_data_volume() -> None:
    with pytest.raises(UseCaseError):
        Requirement(time_s=1, cores=1)
    with pytest.raises(UseCaseError):
        Requirement(time_s=1, cores=1, events=1, data_bytes=1)


def test_formatting() -> None:
    assert uc.format_bytes(1e15) == "1 PB"
    assert uc.format_bytes(2.5e9) == "2.5 GB"
    assert uc.format_bytes(512) == "512 B"
    assert uc.format_duration(0.45) == "450 ms"
    assert uc.format_duration(12.34) == "12.3 s"
    assert uc.format_duration(250) == "4 min 10 s"
    assert uc.format_duration(3600 + 23 * 60) == "1 h 23 min"
    assert uc.format_duration(10 * 86400) == "10 days"
    assert uc.format_duration(math.inf) == "never"
    assert uc.format_rate(283_000) == "283 k events/s"
