"""saetta.fit and ``saetta fit``: the AGC ttbar model, its fit, reading its input files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pyhf
import pytest
from click.testing import CliRunner

from saetta.errors import FormatError, SaettaError
from saetta.fit import (
    NOMINAL,
    FitInput,
    SampleInfo,
    build_workspace,
    fit,
    read_fit_input,
)

matplotlib.use("Agg")

# pyhf 0.7 validates with jsonschema's deprecated RefResolver.
pytestmark = pytest.mark.filterwarnings(
    "ignore:jsonschema.RefResolver is deprecated:DeprecationWarning"
)

EDGES = np.linspace(110.0, 550.0, 12)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
REGIONS = ("4j1b", "4j2b")
VARIATIONS = (
    "pt_scale_up",
    "pt_res_up",
    *(f"btag_var_{i}_{side}" for i in range(4) for side in ("up", "down")),
    "scale_var_up",
    "scale_var_down",
)
BACKGROUNDS = ("wjets", "single_top_s_chan", "single_top_t_chan", "single_top_tW")
ALTERNATIVES = {"ME_var": 1.03, "PS_var": 0.98, "scaleup": 1.02, "scaledown": 0.97}
SHAPE_NP = ("Jet energy scale", "Jet energy resolution", *(f"b-tag NP {i}" for i in range(1, 5)))


def _nominal(sample: str, region: str) -> np.ndarray:
    x = CENTRES
    if sample == "ttbar":  # a peak: at the top mass in m_bjj, broad in H_T
        peak, height = (175.0, 800.0) if region == "4j2b" else (300.0, 500.0)
        return height * np.exp(-0.5 * ((x - peak) / 60.0) ** 2)
    scale = {"wjets": 400.0 if region == "4j1b" else 60.0, "single_top_s_chan": 20.0}
    slope = {"wjets": 120.0, "single_top_s_chan": 200.0, "single_top_t_chan": 150.0}
    if sample == "single_top_tW":
        return 80.0 * np.exp(-0.5 * ((x - 250.0) / 100.0) ** 2)
    return scale.get(sample, 60.0) * np.exp(-(x - 110.0) / slope[sample])  # falling


def synthetic(*, with_data: bool = False) -> FitInput:
    """Two regions, five nominal samples with small shape variations, four alternatives."""
    samples = {"ttbar": SampleInfo("ttbar", "signal")}
    samples |= {name: SampleInfo(name, "background") for name in BACKGROUNDS}
    histograms = {}
    tilt = (CENTRES - 330.0) / 220.0  # -1 .. +1 across the range
    for region in REGIONS:
        for name in ("ttbar", *BACKGROUNDS):
            nominal = _nominal(name, region)
            variances = 0.02 * nominal
            histograms[name, region, NOMINAL] = (nominal, variances)
            for i, variation in enumerate(VARIATIONS):
                size = 0.01 * (i % 5 + 1)
                if variation.startswith("scale_var"):  # only W+jets has them
                    sign = 0.1 if variation.endswith("up") else -0.08
                    shifted = nominal * (1 + sign * tilt) if name == "wjets" else nominal.copy()
                else:
                    sign = -1 if variation.endswith("down") else 1
                    shifted = nominal * (1 + sign * size * (1 + tilt))
                histograms[name, region, variation] = (shifted, variances)
        for variation, factor in ALTERNATIVES.items():
            name = f"ttbar_{variation}"
            samples[name] = SampleInfo(name, "signal", "ttbar", variation)
            ttbar = histograms["ttbar", region, NOMINAL][0]
            histograms[name, region, NOMINAL] = (ttbar * factor * (1 + 0.02 * tilt), 0.02 * ttbar)
    if with_data:
        samples["data"] = SampleInfo("data", "data")
        for region in REGIONS:
            total = np.round(sum(_nominal(n, region) for n in ("ttbar", *BACKGROUNDS)))
            histograms["data", region, NOMINAL] = (total, total.copy())
    return FitInput(samples, histograms, dict.fromkeys(REGIONS, EDGES))


@pytest.fixture(scope="module")
def fit_input() -> FitInput:
    return synthetic()


def _modifiers(spec: dict[str, Any], region: str, sample: str) -> dict[str, str]:
    (channel,) = (c for c in spec["channels"] if c["name"] == region)
    (entry,) = (s for s in channel["samples"] if s["name"] == sample)
    return {m["name"]: m["type"] for m in entry["modifiers"]}


# --------------------------------------------------------------------------- fits


def test_asimov_at_mu_1_gives_mu_1_and_no_pulls(fit_input: FitInput) -> None:
    result = fit(build_workspace(fit_input, data="asimov"))
    assert result.mu == pytest.approx(1.0, abs=1e-6)
    assert 0.01 < result.mu_error < 0.5
    pulls = result.pulls()
    assert {"Luminosity", "ME variation", "b-tag NP 4", "staterror_4j2b[10]"} <= set(pulls)
    assert "mu" not in pulls
    assert all(abs(pull) < 1e-4 for pull, _ in pulls.values()), pulls
    assert all(0 < constraint <= 1.0 + 1e-3 for _, constraint in pulls.values())
    assert result.data_kind == "asimov (mu=1)"
    assert result.mu_interval is not None
    down, up = result.mu_interval
    assert down < 0 < up
    assert result.mu_error == pytest.approx((up - down) / 2)
    assert str(result) == (
        f"μ(ttbar) = 1.000 ± {result.mu_error:.3f} (+{up:.3f} −{-down:.3f}, MINOS)  (asimov, mu=1)"
    )
    hesse = fit(build_workspace(fit_input, data="asimov"), minos=False)
    assert hesse.mu_interval is None
    assert hesse.mu == result.mu
    assert str(hesse) == f"μ(ttbar) = 1.000 ± {hesse.mu_error:.3f}  (asimov, mu=1)"
    assert "<table>" in result._repr_html_()
    assert result.correlations.shape == (len(result.parameters),) * 2


def test_injected_asimov_recovers_the_injected_mu(fit_input: FitInput) -> None:
    spec = build_workspace(fit_input, data="asimov", inject=1.3)
    result = fit(spec)
    assert abs(result.mu - 1.3) < 1e-4
    assert abs(result.mu - 1.3) < result.mu_error
    assert result.data_kind == "asimov (mu=1.3)"
    # the pseudo-data are the nominal yields with the signal scaled by 1.3
    for observation in spec["observations"]:
        region = observation["name"]
        expected = 1.3 * fit_input.values("ttbar", region)
        expected += sum(fit_input.values(n, region) for n in BACKGROUNDS)
        np.testing.assert_allclose(observation["data"], expected, rtol=1e-12)


def test_fluctuated_pseudo_data_fit_within_three_sigma(fit_input: FitInput) -> None:
    """Positive control: a real fit to Poisson-fluctuated data of the x1.3 model."""
    asimov = build_workspace(fit_input, data="asimov", inject=1.3)
    rng = np.random.default_rng(20240917)
    counts = {o["name"]: rng.poisson(o["data"]).astype(np.float64) for o in asimov["observations"]}
    result = fit(build_workspace(fit_input, data=counts))
    assert result.data_kind == "observed counts"
    assert abs(result.mu - 1.3) < 3 * result.mu_error
    assert abs(result.mu - 1.3) > 1e-4  # the fluctuations moved it: it fitted these data
    assert max(abs(p) for p, _ in result.pulls().values()) > 1e-3


def test_auto_uses_the_data_sample() -> None:
    with_data = synthetic(with_data=True)
    spec = build_workspace(with_data)
    assert spec["measurements"][0]["name"] == "AGC ttbar: data"
    observed = {o["name"]: o["data"] for o in spec["observations"]}
    np.testing.assert_array_equal(observed["4j2b"], with_data.values("data", "4j2b"))
    assert build_workspace(synthetic())["measurements"][0]["name"].endswith("asimov (mu=1)")
    with pytest.raises(SaettaError, match="Asimov data only"):
        build_workspace(with_data, inject=1.3)
    assert fit(spec).data_kind == "data"


# --------------------------------------------------------------------------- workspace


def test_workspace_validates_and_has_the_expected_modifiers(fit_input: FitInput) -> None:
    spec = build_workspace(fit_input)
    pyhf.Workspace(spec)
    if hasattr(pyhf.utils, "validate"):
        pyhf.utils.validate(spec, "workspace.json")
    json.dumps(spec, allow_nan=False)  # plain JSON
    assert [c["name"] for c in spec["channels"]] == list(REGIONS)
    common = {"Luminosity": "normsys"} | dict.fromkeys(SHAPE_NP, "histosys")
    for region in REGIONS:
        staterror = {f"staterror_{region}": "staterror"}
        names = [s["name"] for s in spec["channels"][REGIONS.index(region)]["samples"]]
        assert names == ["ttbar", *BACKGROUNDS]  # alternatives are no samples
        assert _modifiers(spec, region, "ttbar") == common | staterror | {
            "mu": "normfactor",
            "ME variation": "histosys",
            "PS variation": "histosys",
            "ttbar scale variations": "histosys",
        }
        wjets = {"W+jets scale variations": "histosys"}
        assert _modifiers(spec, region, "wjets") == common | staterror | wjets
        for name in BACKGROUNDS[1:]:  # scale_var equals nominal there: no modifier
            assert _modifiers(spec, region, name) == common | staterror
    config = spec["measurements"][0]["config"]
    assert config == {
        "poi": "mu",
        "parameters": [{"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}],
    }


def test_templates_symmetrised_clipped_and_dropped(fit_input: FitInput) -> None:
    histograms = dict(fit_input.histograms)
    nominal, variances = histograms["wjets", "4j1b", NOMINAL]
    big = nominal * np.where(np.arange(11) < 5, 3.0, 1.1)  # 2 * nominal - up < 0 in 5 bins
    histograms["wjets", "4j1b", "pt_scale_up"] = (big, variances)
    histograms["ttbar", "4j1b", "pt_res_up"] = histograms["ttbar", "4j1b", NOMINAL]
    for variation in VARIATIONS:
        histograms["single_top_s_chan", "4j2b", variation] = (np.zeros(11), np.zeros(11))
    histograms["single_top_s_chan", "4j2b", NOMINAL] = (np.zeros(11), np.zeros(11))
    spec = build_workspace(FitInput(fit_input.samples, histograms, fit_input.edges))
    (wjets,) = (s for s in spec["channels"][0]["samples"] if s["name"] == "wjets")
    (jes,) = (m for m in wjets["modifiers"] if m["name"] == "Jet energy scale")
    np.testing.assert_allclose(jes["data"]["hi_data"], big)
    np.testing.assert_allclose(jes["data"]["lo_data"], np.clip(2 * nominal - big, 0, None))
    assert min(jes["data"]["lo_data"]) == 0.0
    assert "Jet energy resolution" not in _modifiers(spec, "4j1b", "ttbar")
    assert "Jet energy resolution" in _modifiers(spec, "4j1b", "wjets")  # control
    assert "Jet energy resolution" in _modifiers(spec, "4j2b", "ttbar")  # control
    in_4j2b = [s["name"] for s in spec["channels"][1]["samples"]]
    assert "single_top_s_chan" not in in_4j2b
    assert "single_top_s_chan" in [s["name"] for s in spec["channels"][0]["samples"]]
    assert fit(spec).mu == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_raise_saetta_errors(fit_input: FitInput) -> None:
    histograms = dict(fit_input.histograms)
    del histograms["wjets", "4j2b", "btag_var_1_down"]
    with pytest.raises(SaettaError, match="wjets/4j2b/btag_var_1_down"):
        build_workspace(FitInput(fit_input.samples, histograms, fit_input.edges))
    nan = histograms["wjets", "4j2b", NOMINAL][0].copy()
    nan[3] = np.nan
    histograms["wjets", "4j2b", NOMINAL] = (nan, nan)
    with pytest.raises(SaettaError, match="NaN"):
        FitInput(fit_input.samples, histograms, fit_input.edges)
    with pytest.raises(SaettaError, match="regions"):
        build_workspace(fit_input, data={"4j1b": np.ones(11)})
    with pytest.raises(SaettaError, match="mu=11"):
        build_workspace(fit_input, data="asimov", inject=11.0)
    with pytest.raises(SaettaError, match="role"):
        SampleInfo("x", "sginal")


# --------------------------------------------------------------------------- files


def _document(fit_input: FitInput) -> dict[str, Any]:
    samples = {
        name: {"role": i.role, "variation_of": i.variation_of, "variation": i.variation}
        | {"files": 3}
        for name, i in fit_input.samples.items()
    }
    report = {"events_processed": 10, "events_total": 10}
    return {
        "saetta_version": "0.1.0",
        "complete": True,
        "report": report,
        "metadata": {"samples": samples},
    }


def _hist(values: np.ndarray, variances: np.ndarray) -> Any:
    import hist

    h = hist.Hist(hist.axis.Regular(11, 110.0, 550.0, name="x"), storage=hist.storage.Weight())
    view = h.view(flow=True)
    view["value"] = np.concatenate([[5.0], values, [7.0]])  # flow bins must be left out
    view["variance"] = np.concatenate([[5.0], variances, [7.0]])
    return h


def write_root(fit_input: FitInput, path: Path, *, skip: str | None = None) -> Path:
    import uproot

    with uproot.recreate(path) as f:
        for key, (values, variances) in fit_input.histograms.items():
            if "/".join(key) != skip:
                f["/".join(key)] = _hist(values, variances)
        f["cutflow"] = _hist(np.ones(11), np.ones(11))  # not a sample's: ignored
        f["saetta"] = json.dumps(_document(fit_input))
    return path


def write_json(fit_input: FitInput, path: Path, *, skip: str | None = None) -> Path:
    document = _document(fit_input)
    document["histograms"] = {}
    for key, (values, variances) in fit_input.histograms.items():
        if "/".join(key) == skip:
            continue
        axis = {"type": "regular", "name": "x", "label": "", "bins": 11, "lo": 110.0, "hi": 550.0}
        document["histograms"]["/".join(key)] = {
            "storage": "weight",
            "axes": [axis],
            "values": [5.0, *values.tolist(), 7.0],
            "variances": [5.0, *variances.tolist(), 7.0],
        }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _assert_same(a: FitInput, b: FitInput) -> None:
    assert dict(a.samples) == dict(b.samples)
    assert set(a.histograms) == set(b.histograms)
    for key, (values, variances) in a.histograms.items():
        np.testing.assert_array_equal(values, b.histograms[key][0], err_msg=str(key))
        np.testing.assert_array_equal(variances, b.histograms[key][1], err_msg=str(key))
    assert list(a.edges) == list(b.edges)
    for region, edges in a.edges.items():
        np.testing.assert_array_equal(edges, b.edges[region])


def test_read_fit_input_root_and_json_agree(tmp_path: Path) -> None:
    original = synthetic(with_data=True)
    from_root = read_fit_input(write_root(original, tmp_path / "agc.root"))
    from_json = read_fit_input(write_json(original, tmp_path / "agc.json"))
    _assert_same(from_root, from_json)
    _assert_same(from_root, original)
    assert from_json.samples["ttbar_PS_var"] == SampleInfo(
        "ttbar_PS_var", "signal", "ttbar", "PS_var"
    )


@pytest.mark.parametrize("write", [write_root, write_json], ids=["root", "json"])
def test_read_fit_input_names_what_is_missing(tmp_path: Path, write: Any) -> None:
    original = synthetic()
    suffix = ".root" if write is write_root else ".json"
    good = write(original, tmp_path / f"good{suffix}")
    assert read_fit_input(good).samples.keys() == original.samples.keys()  # positive control
    missing = write(original, tmp_path / f"bad{suffix}", skip="wjets/4j2b/scale_var_down")
    with pytest.raises(
        FormatError, match=r"bad\.(root|json) lacks histogram 'wjets/4j2b/scale_var_down'"
    ):
        read_fit_input(missing)


def test_read_fit_input_rejects_files_saetta_did_not_write(tmp_path: Path) -> None:
    import uproot

    plain_root = tmp_path / "plain.root"
    with uproot.recreate(plain_root) as f:
        f["ttbar/4j1b/nominal"] = _hist(np.ones(11), np.ones(11))
    plain_json = tmp_path / "plain.json"
    plain_json.write_text('{"histograms": {}}', encoding="utf-8")
    no_metadata = tmp_path / "old.json"
    document = _document(synthetic())
    del document["metadata"]
    no_metadata.write_text(json.dumps(document), encoding="utf-8")
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"not a ROOT file at all" * 10)
    for path, problem in [
        (plain_root, "not a saetta output"),
        (plain_json, "not a saetta output"),
        (no_metadata, "no sample metadata"),
        (garbage, "cannot read"),
        (tmp_path / "absent.json", "cannot read"),
        (tmp_path / "results.txt", "give saetta's .root or .json"),
    ]:
        with pytest.raises(FormatError, match=problem) as caught:
            read_fit_input(path)
        assert str(path) in str(caught.value)
        assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- command line


def _distinct_pixels(path: Path) -> int:
    rgb = (mpimg.imread(path)[..., :3] * 255).astype(np.uint32)
    return len(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]))


def test_cli_fit_writes_workspace_and_plots(tmp_path: Path) -> None:
    from saetta.cli.fit import fit as fit_command

    results = write_json(synthetic(), tmp_path / "agc.json")
    runner = CliRunner()
    outcome = runner.invoke(fit_command, [str(results), "--data", "asimov"])
    assert outcome.exit_code == 0, outcome.output
    assert "μ(ttbar) = 1.000 ± " in outcome.output
    assert "(asimov, mu=1)" in outcome.output
    assert "b-tag NP 1" in outcome.output
    folder = tmp_path / "agc_fit"
    names = ["workspace.json", "pulls.png"]
    names += [f"{r}_{when}.png" for r in REGIONS for when in ("prefit", "postfit")]
    for name in names:
        assert (folder / name).is_file(), name
        assert f"wrote {folder / name}" in outcome.output
    for name in names[1:]:
        assert _distinct_pixels(folder / name) > 1, name
    again = fit(json.loads((folder / "workspace.json").read_text()))
    assert again.mu == pytest.approx(1.0, abs=1e-6)
    assert again.data_kind == "asimov (mu=1)"

    injected = runner.invoke(
        fit_command, [str(results), "--inject", "1.3", "-o", str(tmp_path / "f"), "--no-plots"]
    )
    assert injected.exit_code == 0, injected.output
    assert "μ(ttbar) = 1.300 ± " in injected.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["workspace.json"]
    assert "Example" in runner.invoke(fit_command, ["--help"]).output


def test_cli_fit_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from saetta.cli import cli, main
    from saetta.cli.fit import fit as fit_command

    bad = write_json(synthetic(), tmp_path / "bad.json", skip="ttbar/4j1b/pt_res_up")
    added = "fit" not in cli.commands
    if added:
        cli.add_command(fit_command)
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["fit", str(bad)])
    finally:
        if added:
            del cli.commands["fit"]
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("saetta: error: FormatError: ")
    assert "bad.json lacks histogram 'ttbar/4j1b/pt_res_up'" in err
    assert "\n" not in err
    with_data = write_json(synthetic(with_data=True), tmp_path / "data.json")
    outcome = CliRunner().invoke(fit_command, [str(with_data), "--inject", "2"])
    assert outcome.exit_code == 2
    assert "--data asimov" in outcome.output


# --------------------------------------------------------------------------- low statistics

WEIGHT = 6000.0  # one simulated event: a low-statistics sample of 400 events per sample


def _events(counts: list[float], weight: float = WEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """``counts`` events of ``weight`` per bin: (values, variances) as saetta fills them."""
    n = np.asarray(counts, dtype=np.float64)
    return n * weight, np.abs(n) * weight**2


def low_statistics() -> FitInput:
    """One region of six bins, filled with a few events of large weight, as a 400-event run.

    ttbar has 0 or 1 event in most bins; its jet-energy-scale variation moves an event into
    a bin without nominal events; its ME alternative sample lies far from the nominal
    (events where the nominal has none, none where it has some). W+jets has events of
    both signs: in bin 1 they sum to less than their spread, in bin 4 to a negative value,
    clipped to 0 with a variance > 0.
    """
    edges = np.linspace(110.0, 550.0, 7)
    samples = {
        "ttbar": SampleInfo("ttbar", "signal"),
        "wjets": SampleInfo("wjets", "background"),
        "ttbar_ME_var": SampleInfo("ttbar_ME_var", "signal", "ttbar", "ME_var"),
    }
    ttbar = _events([3, 1, 0, 2, 1, 0])
    w = WEIGHT / 3
    wjets_values = np.array([1.0, 0.5, 0.0, 1.0, -0.25, 0.0]) * w
    wjets = (wjets_values, np.array([1.0, 27.0, 0.0, 1.0, 2.0, 0.0]) * w**2)
    histograms = {
        ("ttbar", "4j1b", NOMINAL): ttbar,
        ("ttbar", "4j1b", "pt_scale_up"): _events([2, 2, 0, 1, 1, 1]),  # into empty bin 5
        ("ttbar", "4j1b", "pt_res_up"): _events([3, 0, 1, 2, 1, 0]),
        ("wjets", "4j1b", NOMINAL): wjets,
        ("wjets", "4j1b", "pt_scale_up"): wjets,
        ("wjets", "4j1b", "pt_res_up"): wjets,
        ("wjets", "4j1b", "scale_var_up"): (wjets_values * 1.2, wjets[1]),
        ("wjets", "4j1b", "scale_var_down"): (wjets_values * 0.7, wjets[1]),
        ("ttbar_ME_var", "4j1b", NOMINAL): _events([0, 2, 1, 0, 3, 1]),  # far from nominal
    }
    for name, (values, variances) in [("ttbar", ttbar), ("wjets", wjets)]:
        for i in range(4):
            for side, factor in (("up", 1 + 0.02 * (i + 1)), ("down", 1 - 0.03 * (i + 1))):
                histograms[name, "4j1b", f"btag_var_{i}_{side}"] = (values * factor, variances)
    return FitInput(samples, histograms, {"4j1b": edges})


def test_low_statistics_asimov_fit_is_at_the_asimov_point(tmp_path: Path) -> None:
    """Templates of a few large-weight events must not let the likelihood grow without
    bound (negative yields in bins where the data are 0): Asimov fits give back mu."""
    from saetta.fit import plot_prefit_postfit

    fit_input = low_statistics()
    spec = build_workspace(fit_input, data="asimov")
    ((ttbar, wjets),) = (c["samples"] for c in spec["channels"])
    by_name = {m["name"]: m for m in ttbar["modifiers"]}
    for name in ("Jet energy scale", "Jet energy resolution", "ME variation"):
        for side in ("hi_data", "lo_data"):  # no variation where the nominal has no event
            assert by_name[name]["data"][side][2] == by_name[name]["data"][side][5] == 0.0
    assert max(by_name["ME variation"]["data"]["hi_data"]) > 0  # control
    (stat_ttbar,) = (m["data"] for m in ttbar["modifiers"] if m["type"] == "staterror")
    (stat_wjets,) = (m["data"] for m in wjets["modifiers"] if m["type"] == "staterror")
    assert wjets["data"][4] == 0.0
    assert stat_wjets[4] == 0.0  # clipped to 0: no Monte Carlo uncertainty there
    total = np.add(ttbar["data"], wjets["data"])
    relative = np.hypot(stat_ttbar, stat_wjets)[total > 0] / total[total > 0]
    np.testing.assert_allclose(relative, [0.52915, 1.0, 0.62270, 1.0], rtol=1e-4)  # 1.71: capped

    result = fit(spec)
    assert abs(result.mu - 1.0) < 1e-6, result
    assert all(abs(pull) < 1e-3 for pull, _ in result.pulls().values()), result.pulls()
    assert 0.01 < result.mu_error < 1.0
    injected = fit(build_workspace(fit_input, data="asimov", inject=1.3))
    assert abs(injected.mu - 1.3) < 1e-3, injected
    written = plot_prefit_postfit(spec, result, tmp_path, edges=fit_input.edges)
    assert sorted(p.name for p in written) == ["4j1b_postfit.png", "4j1b_prefit.png"]
