"""The gamma-ray source analysis over generated DL3 observations: ON/OFF counts and Li & Ma
significance against gammapy's, θ² against astropy's per-row separations, the injected
source found as strong as injected, and the edges (a radius, no events, NaN, a
pointing on the source, a truncated file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from click.testing import CliRunner
from gamma_reference import astropy_theta2, gammapy_on_off, gammapy_significance, li_ma_17

import saetta
from saetta.analyses.gamma import OnOff, li_ma_significance, separation_deg
from saetta.astro.dl3 import event_files
from saetta.astro.gamma_sim import generate_gamma
from saetta.cli.gamma import gamma_command, generate_gamma_command
from saetta.errors import AnalysisError, DatasetError


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four wobble observations of 20,000 expected events each."""
    folder = tmp_path_factory.mktemp("gamma")
    generate_gamma(folder, observations=4, events=20_000, seed=3)
    return folder


def _run(files: object, analysis: OnOff | None = None, **options: object) -> saetta.Result:
    return saetta.run(analysis or OnOff(), files, run_dir=False, **options)  # type: ignore[arg-type]


def test_on_off_counts_and_significance_equal_gammapy(observations: Path) -> None:
    files = event_files(observations)
    result = _run(files)
    expected = [gammapy_on_off(Path(f)) for f in files]
    for (n_on, n_off), obs_id in zip(expected, (1, 2, 3, 4), strict=True):
        assert result["observations"][str(obs_id)] == {"n_on": n_on, "n_off": n_off}
    n_on, n_off = (sum(c) for c in zip(*expected, strict=True))
    assert (result["n_on"], result["n_off"]) == (n_on, n_off)
    found = OnOff().summary(result)
    reference = gammapy_significance(n_on, n_off, 1 / 3)
    assert found.significance == pytest.approx(reference, rel=1e-9)
    assert found.excess == pytest.approx(n_on - n_off / 3)


@pytest.mark.parametrize(
    ("n_on", "n_off", "alpha"), [(130, 300, 1 / 3), (10, 20, 0.25), (5, 90, 0.1)]
)
def test_gammapy_wstat_is_li_ma_eq17(n_on: int, n_off: int, alpha: float) -> None:
    """WStat's sqrt_ts is eq. 17 for these inputs (a deficit included): both references agree."""
    assert gammapy_significance(n_on, n_off, alpha) == pytest.approx(
        li_ma_17(n_on, n_off, alpha), rel=1e-9
    )
    assert li_ma_significance(n_on, n_off, alpha) == pytest.approx(
        li_ma_17(n_on, n_off, alpha), rel=1e-12
    )


def test_li_ma_limits() -> None:
    assert li_ma_significance(0, 0, 0.2) == 0.0
    assert li_ma_significance(5, 0, 0.2) == pytest.approx(np.sqrt(2 * 5 * np.log(6)))
    assert li_ma_significance(0, 5, 0.2) == pytest.approx(-np.sqrt(2 * 5 * np.log(1.2)))


def test_theta2_equals_astropy_per_row(observations: Path) -> None:
    files = event_files(observations)
    result = _run(files)
    analysis = OnOff()
    edges = np.linspace(0, analysis.theta2_max, analysis.theta2_bins + 1)
    reference = sum(np.histogram(astropy_theta2(Path(f)), bins=edges)[0] for f in files)
    np.testing.assert_array_equal(result["theta2_on"].values(), reference)
    assert result["theta2_on"].values()[:2].sum() == result["n_on"]  # 0.1² = 2 bins of 0.005


def test_injected_source_detected_as_strong_as_injected(observations: Path) -> None:
    """truth.json's expected counts (from the instrument's formulas) give the significance
    expected of the injected source (Li & Ma of the expectations); measured on one
    sample, S fluctuates by about one unit around it (S is close to a unit Gaussian
    for counts this large), so 3 units is a 3-sigma test."""
    truth = json.loads((observations / "truth.json").read_text())
    result = _run(event_files(observations))
    expected = li_ma_significance(truth["expected_n_on"], truth["expected_n_off"], 1 / 3)
    found = OnOff().summary(result).significance
    assert expected > 10
    assert abs(found - expected) < 3
    assert abs(result["n_on"] - truth["expected_n_on"]) < 4 * np.sqrt(truth["expected_n_on"])
    assert abs(result["n_off"] - truth["expected_n_off"]) < 4 * np.sqrt(truth["expected_n_off"])


def _equal(a: object, b: object) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict)
        assert a.keys() == b.keys()
        for key in a:
            _equal(a[key], b[key])
    elif hasattr(a, "view"):
        assert a == b
    else:
        assert a == b


def test_chunk_size_and_executor_do_not_change_results(observations: Path) -> None:
    files = event_files(observations)
    whole = dict(_run(files))
    _equal(dict(_run(files, chunk_size=3_001)), whole)
    _equal(dict(_run(files, chunk_size=7_000, executor="processes:2")), whole)
    assert whole["livetime_s"] == pytest.approx(
        sum(
            o["livetime_s"]
            for o in json.loads((observations / "truth.json").read_text())["per_observation"]
        )
    )


def test_truncated_file_is_named_and_the_others_complete(
    observations: Path, tmp_path: Path
) -> None:
    files = [Path(f) for f in event_files(observations)]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    good = _run(sorted(str(p) for p in tmp_path.glob("obs_*.fits")), allow_partial=True)
    assert not good.report.failures  # positive control: the same files, whole
    broken = tmp_path / files[1].name
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    partial = _run(sorted(str(p) for p in tmp_path.glob("obs_*.fits")), allow_partial=True)
    messages = [str(f) for f in partial.report.failures]
    assert messages
    assert all(broken.name in m and "\n" not in m for m in messages)
    assert set(partial["observations"]) == {"1", "3", "4"}
    for key in ("1", "3", "4"):
        assert partial["observations"][key] == good["observations"][key]


def test_generator_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    a = generate_gamma(tmp_path / "a", observations=2, events=2_000, seed=5)
    b = generate_gamma(tmp_path / "b", observations=2, events=2_000, seed=5)
    generate_gamma(tmp_path / "c", observations=2, events=2_000, seed=6)
    for name in ("obs_000001.fits", "obs_000002.fits", "hdu-index.fits.gz", "obs-index.fits.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "obs_000001.fits").read_bytes() != (
        tmp_path / "c" / "obs_000001.fits"
    ).read_bytes()
    assert a.events == b.events
    # A file depends on (seed, OBS_ID) only: the first of four equals the first of two.
    d = generate_gamma(tmp_path / "d", observations=4, events=2_000, seed=5)
    assert d.files[0].read_bytes() == a.files[0].read_bytes()


def test_generated_files_are_gadf_event_lists(observations: Path) -> None:
    from astropy.io import fits

    with fits.open(observations / "obs_000002.fits") as hdus:
        header = hdus["EVENTS"].header
        assert [c.name for c in hdus["EVENTS"].columns] == [
            "EVENT_ID",
            "TIME",
            "RA",
            "DEC",
            "ENERGY",
        ]
        assert [c.format for c in hdus["EVENTS"].columns] == ["K", "D", "E", "E", "E"]
        assert np.all(np.diff(hdus["EVENTS"].data["TIME"]) >= 0)
    assert (header["HDUCLASS"], header["HDUCLAS1"], header["OBS_ID"]) == ("GADF", "EVENTS", 2)
    # Wobble: observation 2 is 0.5 deg east of the source (position angle 90 deg).
    offset = separation_deg(
        header["RA_PNT"], header["DEC_PNT"], header["RA_OBJ"], header["DEC_OBJ"]
    )
    assert offset[0] == pytest.approx(0.5, abs=1e-9)
    assert header["RA_PNT"] > header["RA_OBJ"]
    assert header["LIVETIME"] == pytest.approx(header["ONTIME"] * header["DEADC"])


def _events(ra: list[float], dec: list[float], **header: float) -> ak.Array:
    base = {"RA_PNT": 0.0, "DEC_PNT": 0.5, "RA_OBJ": 0.0, "DEC_OBJ": 0.0, "OBS_ID": 7}
    attrs = {
        "path": "edge.fits",
        "tree": "EVENTS",
        "start": 0,
        "stop": len(ra),
        "header": base | header,
    }
    columns = {
        "RA": np.asarray(ra, np.float64),
        "DEC": np.asarray(dec, np.float64),
        "ENERGY": np.ones(len(ra)),
    }
    return ak.Array(columns, attrs=attrs)


def test_an_event_exactly_on_the_on_radius_is_outside() -> None:
    ra, dec = 0.0, 0.1
    theta = float(separation_deg(ra, dec, 0.0, 0.0)[0])
    assert theta == pytest.approx(0.1, rel=1e-12)
    assert OnOff(on_radius=theta)(_events([ra], [dec]))["n_on"] == 0
    assert OnOff(on_radius=float(np.nextafter(theta, 1.0)))(_events([ra], [dec]))["n_on"] == 1


def test_nan_coordinates_are_excluded() -> None:
    events = _events([0.0, np.nan, 0.01, 0.0], [0.0, 0.0, np.nan, 0.02])
    out = OnOff()(events)
    assert (out["n_on"], out["n_excluded"]) == (2, 2)
    assert out["theta2_on"].sum(flow=True) == 2
    assert out["counts_map"].sum(flow=True) == 2


def test_an_empty_file_gives_empty_results(tmp_path: Path) -> None:
    from astropy.io import fits

    made = generate_gamma(tmp_path / "obs", observations=1, events=500, seed=2)
    with fits.open(made.files[0]) as hdus:
        columns = [
            fits.Column(name=c.name, format=c.format, array=np.zeros(0, c.dtype))
            for c in hdus["EVENTS"].columns
        ]
        empty = fits.BinTableHDU.from_columns(columns, header=hdus["EVENTS"].header)
        assert empty.header["NAXIS2"] == 0
        fits.HDUList([fits.PrimaryHDU(), empty]).writeto(tmp_path / "empty.fits")
    assert OnOff()(_events([], []))["n_on"] == 0
    both = _run([str(made.files[0]), str(tmp_path / "empty.fits")])
    alone = _run([str(made.files[0])])
    assert (both["n_on"], both["n_off"]) == (alone["n_on"], alone["n_off"])
    assert not both.report.failures


def test_an_observation_pointed_at_the_source_is_refused() -> None:
    OnOff()(_events([0.0], [0.0]))  # positive control: a 0.5 deg wobble is fine
    with pytest.raises(
        AnalysisError, match=r"^edge\.fits: the source is 0\.0000 deg from the pointing"
    ):
        OnOff()(_events([0.0], [0.0], DEC_PNT=0.0))
    with pytest.raises(AnalysisError, match="no RA_PNT keyword"):
        OnOff()(ak.Array({"RA": [0.0], "DEC": [0.0]}, attrs={"path": "x.fits", "header": {}}))


def test_off_centres_are_reflected_about_the_pointing() -> None:
    """One event at each OFF centre (the source rotated by 90, 180, 270 deg about the pointing)."""
    out = OnOff()(_events([0.5, 0.0, -0.5 % 360], [0.5, 1.0, 0.5]))
    assert (out["n_on"], out["n_off"]) == (0, 3)


def test_dl3_index_errors_name_the_culprit(observations: Path, tmp_path: Path) -> None:
    from astropy.io import fits

    assert len(event_files(observations / "hdu-index.fits.gz")) == 4  # positive control
    for f in observations.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "obs_000003.fits").unlink()
    with pytest.raises(
        DatasetError, match=r"names an event file that does not exist: .*obs_000003\.fits$"
    ):
        event_files(tmp_path)
    with fits.open(observations / "hdu-index.fits.gz") as hdus:
        columns = [c for c in hdus[1].columns if c.name != "FILE_NAME"]
        fits.BinTableHDU.from_columns(columns).writeto(tmp_path / "hdu-index.fits")
    with pytest.raises(DatasetError, match=r"hdu-index\.fits lacks the column FILE_NAME"):
        event_files(tmp_path / "hdu-index.fits")


def test_obs_index_selects_its_observations(observations: Path, tmp_path: Path) -> None:
    from astropy.io import fits

    for f in observations.iterdir():
        shutil.copy(f, tmp_path / f.name)
    with fits.open(observations / "obs-index.fits.gz") as hdus:
        fits.BinTableHDU(hdus[1].data[[0, 2]]).writeto(
            tmp_path / "obs-index.fits.gz", overwrite=True
        )
    assert [Path(f).name for f in event_files(tmp_path / "obs-index.fits.gz")] == [
        "obs_000001.fits",
        "obs_000003.fits",
    ]


def test_cli_generates_and_analyses(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(
        generate_gamma_command, [str(tmp_path / "obs"), "--observations", "2", "--events", "4000"]
    )
    assert made.exit_code == 0, made.output
    out = tmp_path / "crab.json"
    ran = runner.invoke(
        gamma_command,
        [
            str(tmp_path / "obs"),
            "-o",
            str(out),
            "--plots",
            str(tmp_path / "t2.png"),
            "--run-dir",
            str(tmp_path / "run"),
            "--no-progress",
        ],
    )
    assert ran.exit_code == 0, ran.output
    summary = json.loads(out.with_name("crab.summary.json").read_text())
    files = event_files(tmp_path / "obs")
    n_on, n_off = (sum(c) for c in zip(*(gammapy_on_off(Path(f)) for f in files), strict=True))
    assert (summary["n_on"], summary["n_off"]) == (n_on, n_off)
    assert f"N_on {n_on:,}  N_off {n_off:,}" in ran.output
    assert (tmp_path / "t2.png").stat().st_size > 1000


def test_without_the_map_every_other_result_is_the_same(observations: Path) -> None:
    files = event_files(observations)
    whole, lean = dict(_run(files)), dict(_run(files, OnOff(counts_map=False)))
    assert "counts_map" not in lean
    del whole["counts_map"]
    _equal(lean, whole)


def test_events_across_ra_zero_and_outside_0_360_are_counted() -> None:
    """The kernel's cheap preselection in RA and Dec keeps events across the RA wrap."""
    ra = [359.95, 0.05, 360.05, -0.05, 720.0]
    out = OnOff()(_events(ra, [0.0] * 5))
    assert (out["n_on"], out["n_excluded"]) == (5, 0)
    assert out["counts_map"].sum(flow=True) == 5
