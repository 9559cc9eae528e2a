"""The use-case loop on astroparticle data: "θ² of 10^10 events in 10 minutes with 200
cores", calibrated on generated gamma-ray observations, and a small requirement run
for real.

What is asserted is what the loop must get right whatever the machine's speed: the
validation processes every event of the observations exactly once, in the units the
chunk size makes; the plan's projection is the
requirement divided by the measured rate; and an impossible requirement is refused
(the positive control). No timing is asserted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from saetta import usecase as uc
from saetta.astro.gamma_sim import generate_gamma
from saetta.usecase import UseCase

OBSERVATIONS = 2
EVENTS = 60_000


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("astro-usecase")
    generate_gamma(folder, observations=OBSERVATIONS, events=EVENTS, seed=5)
    return folder


def _spec(folder: Path, **requirement: object) -> dict[str, object]:
    return {
        "name": "crab-theta2",
        "analysis": "gamma",
        "dataset": str(folder / "obs_*.fits"),
        "requirement": requirement
        or {"events": 1e5, "time": "10 min", "resources": {"cores": 2, "memory_per_core": "4 GB"}},
        "testbed": "local",
        "chunk_size": 10_000,
        "calibration": {"sample_units": 6, "workers": [1, 2], "repeats": 2},
        "validation": {"fraction": 1.0, "workers": 2},
    }


def _on_counts(folder: Path, radius: float = 0.1) -> int:
    """ON counts by astropy's own separation, around each file's RA_OBJ/DEC_OBJ."""
    from astropy.coordinates import SkyCoord

    total = 0
    for path in sorted(folder.glob("obs_*.fits")):
        with fits.open(path) as hdus:
            events, header = hdus["EVENTS"].data, hdus["EVENTS"].header
            source = SkyCoord(header["RA_OBJ"], header["DEC_OBJ"], unit="deg")
            sky = SkyCoord(
                np.asarray(events["RA"], float), np.asarray(events["DEC"], float), unit="deg"
            )
            total += int((sky.separation(source).deg < radius).sum())
    return total


@pytest.fixture(scope="module")
def validation(observations: Path) -> uc.Validation:
    use = UseCase.from_dict(_spec(observations))
    from saetta.analyses import load_analysis

    return uc.validate(use, load_analysis("gamma"))


def test_a_small_requirement_runs_every_event_once(
    validation: uc.Validation, observations: Path
) -> None:
    assert validation.complete
    files = sorted(observations.glob("obs_*.fits"))
    rows = sum(fits.getheader(p, "EVENTS")["NAXIS2"] for p in files)
    assert validation.events_total == validation.measurement.events == rows
    assert validation.measurement.units == sum(
        math.ceil(fits.getheader(p, "EVENTS")["NAXIS2"] / 10_000) for p in files
    )
    # the histogram fills the loop reports are the analysis' own: its ON counts among them
    assert validation.histogram_fills >= _on_counts(observations) > 0
    assert validation.plan.verdict in {"FEASIBLE", "UNCERTAIN"}, str(validation.plan)


def test_the_issue_use_case_is_planned_from_the_measured_rate(
    validation: uc.Validation, observations: Path
) -> None:
    use = UseCase.from_dict(
        _spec(observations, events=1e10, time="10 min", resources={"cores": 200})
    )
    plan = uc.plan(use, calibration=validation.plan.calibration)
    rate = plan.calibration.model.rate_hz
    assert plan.ideal_cores == math.ceil(1e10 / (rate * 600))
    assert plan.projection.startswith(f"1e+10 events in 10 min needs {plan.ideal_cores:,} core")
    assert plan.verdict in {"FEASIBLE", "NOT FEASIBLE", "UNCERTAIN"}
    # the positive control: a requirement no number of these cores can meet
    impossible = UseCase.from_dict(
        _spec(observations, events=1e15, time="1 min", resources={"cores": 2})
    )
    refused = uc.plan(impossible, calibration=validation.plan.calibration)
    assert refused.verdict == "NOT FEASIBLE"
    assert refused.binding
