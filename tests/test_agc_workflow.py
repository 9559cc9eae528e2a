"""The AGC end to end through the command line: generate, run, fit, as the README says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

pytest.importorskip("pythia8mc")
pytest.importorskip("pyhf")

pytestmark = pytest.mark.slow

EVENTS = 120  # per sample: enough for every region to fill, a few seconds per sample


_SCRIPT = Path(sys.executable).with_name("saetta")  # the installed command, as a user runs it


def _saetta(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("agc")
    done = _saetta(
        "generate", "agc", "samples", "--events-per-sample", str(EVENTS),
        "--events-per-file", str(EVENTS // 2), "--executor", "processes:2", "--no-progress",
        cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder / "samples"


def test_generate_writes_the_samples_file(generated: Path) -> None:
    document = yaml.safe_load((generated / "samples.yaml").read_text())
    assert document["luminosity"] == 3378.0
    samples = document["samples"]
    assert list(samples) == [
        "ttbar", "ttbar_ME_var", "ttbar_PS_var", "ttbar_scaleup", "ttbar_scaledown",
        "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets",
    ]  # fmt: skip
    assert samples["ttbar"]["xsec"] == pytest.approx(396.87 + 332.97)
    assert samples["wjets"]["xsec"] == pytest.approx(61457 * 0.252)
    assert samples["ttbar_PS_var"]["variation_of"] == "ttbar"
    assert samples["ttbar_PS_var"]["variation"] == "PS_var"
    assert samples["wjets"]["role"] == "background"
    for name, sample in samples.items():
        files = [generated / f for f in sample["files"]]
        assert len(files) == 2
        entries = sum(uproot.open(f)["Events"].num_entries for f in files)
        assert entries == EVENTS == sample["generated_events"], name
        # every event named once: (run, luminosityBlock, event) across all files
    keys = set()
    for sample in samples.values():
        for f in sample["files"]:
            tree = uproot.open(generated / f)["Events"]
            ids = tree.arrays(["run", "luminosityBlock", "event"], library="np")
            keys.update(zip(ids["run"], ids["luminosityBlock"], ids["event"], strict=True))
    assert len(keys) == EVENTS * len(samples)


def test_generating_again_redoes_nothing(generated: Path) -> None:
    files = sorted(generated.rglob("*.root"))
    before = {f: f.stat().st_mtime_ns for f in files}
    done = _saetta(
        "generate", "agc", "samples", "--events-per-sample", str(EVENTS),
        "--events-per-file", str(EVENTS // 2), "--no-progress",
        cwd=generated.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_the_same_jobs_give_the_same_files_on_another_executor(
    generated: Path, tmp_path: Path
) -> None:
    from saetta.generation import generate_agc

    again = generate_agc(
        tmp_path, EVENTS, samples=["ttbar", "wjets"], events_per_file=EVENTS // 2, executor="local"
    )
    for name in ("ttbar", "wjets"):
        for mine, theirs in zip(
            sorted((tmp_path / name).glob("*.root")),
            sorted((generated / name).glob("*.root")),
            strict=True,
        ):
            a = uproot.open(mine)["Events"].arrays(library="np")
            b = uproot.open(theirs)["Events"].arrays(library="np")
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(np.concatenate(a[key]) if a[key].dtype == object
                                              else a[key],
                                              np.concatenate(b[key]) if b[key].dtype == object
                                              else b[key])  # fmt: skip
    assert again.name == "samples.yaml"


def test_run_then_fit(generated: Path, tmp_path: Path) -> None:
    done = _saetta(
        "run", "agc", str(generated / "samples.yaml"), "-o", "agc.root",
        "--executor", "processes:2", "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ttbar" in done.stdout
    assert f"{9 * EVENTS:,} of {9 * EVENTS:,} processed" in done.stdout
    document = json.loads(str(uproot.open(tmp_path / "agc.root")["saetta"]))
    assert document["metadata"]["samples"]["ttbar"]["role"] == "signal"

    fitted = _saetta("fit", "agc.root", "--no-plots", cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    match = re.search(r"μ\(ttbar\) = ([0-9.]+) ± ([0-9.]+)", fitted.stdout)
    assert match, fitted.stdout
    assert float(match.group(1)) == pytest.approx(1.0, abs=1e-4)  # Asimov: the model's own yields
    workspace = json.loads((tmp_path / "agc_fit" / "workspace.json").read_text())
    assert {c["name"] for c in workspace["channels"]} == {"4j1b", "4j2b"}

    injected = _saetta("fit", "agc.root", "--no-plots", "--inject", "1.3", cwd=tmp_path)
    assert injected.returncode == 0, injected.stderr
    mu, error = (float(x) for x in re.findall(r"= ([0-9.]+) ± ([0-9.]+)", injected.stdout)[0])
    assert error > 0
    assert abs(mu - 1.3) < min(error, 0.01)  # printed to 3 decimals

    from saetta.fit import build_workspace, fit, read_fit_input

    fit_input = read_fit_input(tmp_path / "agc.root")
    assert fit(build_workspace(fit_input, data="asimov")).mu == pytest.approx(1.0, abs=1e-6)
