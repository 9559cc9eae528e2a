"""Samples: a samples file read and checked, per-sample results, normalisation, metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

import saetta
from saetta.errors import DatasetError, JournalError
from saetta.samples import Sample, Samples, event_weights, sample_of


def _counting(events):  # a module-level analysis: workers import it by name
    sample = sample_of(events)
    return {
        "events": len(events),
        "sum_weights": float(np.sum(event_weights(events))),
        "is_signal": int(sample is not None and sample.role == "signal"),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from saetta.datagen import generate_nanoaod

    folder = tmp_path_factory.mktemp("samples")
    out = {}
    for name, n, seed in (("sig", 3_000, 1), ("bkg", 2_000, 2), ("bkg2", 1_000, 3)):
        out[name] = generate_nanoaod(folder / f"{name}.root", n, seed=seed, weights="lognormal")
    return out


def _write(folder: Path, text: str) -> Path:
    path = folder / "samples.yaml"
    path.write_text(text)
    return path


def test_a_samples_file_is_read_with_paths_from_its_folder(files: dict[str, Path]) -> None:
    path = _write(
        files["sig"].parent,
        """
luminosity: 100
samples:
  ttbar: {files: [sig.root], xsec: 2.5, generated: 10, role: signal, generator: pythia}
  ttbar_PS: {files: sig.root, xsec: 2.5, generated: 20, role: signal,
             variation_of: ttbar, variation: PS_var}
  data: {files: ["*.root"], role: data}
""",
    )
    samples = Samples.from_yaml(path)
    assert list(samples) == ["ttbar", "ttbar_PS", "data"]
    assert samples["ttbar"].files == (str(files["sig"].parent / "sig.root"),)
    assert samples["ttbar"].weight == pytest.approx(2.5 * 100 / 10)
    assert samples["ttbar_PS"].weight == pytest.approx(2.5 * 100 / 20)
    assert samples["ttbar_PS"].variation_of == "ttbar"
    assert not samples["ttbar_PS"].is_nominal
    assert samples["data"].weight == 1.0
    assert samples["ttbar"].metadata == {"generator": "pythia"}
    assert "ttbar" in repr(samples)
    assert "<table>" in samples._repr_html_()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{files: [a.root], xsec: 1, generated: 1, role: signall}", "role must be one of"),
        ("{files: [a.root], xsec: -1, generated: 1}", "xsec must be a positive number"),
        ("{files: [a.root], xsec: 1}", "generated must be a positive number"),
        ("{files: [], role: data}", "has no files"),
        ("{files: 3, role: data}", "files must be a list"),
        ("{files: [a.root], xsec: 1, generated: 1, variation_of: nope, variation: x}", "'nope'"),
        ("{files: [a.root], xsec: 1, generated: 1, variation_of: s}", "give both"),
        ("[a.root]", "must be a mapping"),
    ],
)
def test_malformed_samples_name_the_problem(tmp_path: Path, entry: str, problem: str) -> None:
    path = _write(tmp_path, f"luminosity: 10\nsamples:\n  s: {entry}\n")
    with pytest.raises(DatasetError, match=problem) as raised:
        Samples.from_yaml(path)
    assert "\n" not in str(raised.value)


def test_a_good_entry_beside_the_malformed_ones_is_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "luminosity: 10\nsamples:\n  s: {files: [a.root], xsec: 1, generated: 4}\n"
    )
    assert Samples.from_yaml(path)["s"].weight == pytest.approx(2.5)


def test_simulated_samples_need_a_luminosity(tmp_path: Path) -> None:
    path = _write(tmp_path, "samples:\n  s: {files: [a.root], xsec: 1, generated: 4}\n")
    with pytest.raises(DatasetError, match="luminosity"):
        Samples.from_yaml(path)
    only_data = _write(tmp_path, "samples:\n  d: {files: [a.root], role: data}\n")
    assert Samples.from_yaml(only_data)["d"].weight == 1.0


def test_not_a_samples_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'samples:' mapping"):
        Samples.from_yaml(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(DatasetError, match="cannot read samples file"):
        Samples.from_yaml(tmp_path / "missing.yaml")


def test_a_file_in_two_samples_is_refused(files: dict[str, Path]) -> None:
    samples = Samples(
        [
            Sample("a", (str(files["sig"]),), xsec_pb=1.0, generated=1.0),
            Sample("b", (str(files["sig"].parent / "*.root"),), xsec_pb=1.0, generated=1.0),
        ],
        luminosity_pb=1.0,
    )
    with pytest.raises(DatasetError, match=r"sig\.root is in both sample 'a' and 'b'"):
        samples.dataset()


def _samples(files: dict[str, Path]) -> Samples:
    return Samples(
        [
            Sample("signal", (str(files["sig"]),), role="signal", xsec_pb=2.0, generated=3000.0),
            Sample(
                "background",
                (str(files["bkg"]), str(files["bkg2"])),
                xsec_pb=30.0,
                generated=6000.0,
            ),
        ],
        luminosity_pb=10.0,
    )


def _gen_weight_sum(path: Path) -> float:
    return float(np.sum(uproot.open(path)["Events"]["genWeight"].array(library="np"), dtype=float))


@pytest.mark.parametrize("executor", ["local", "processes:2"])
def test_results_are_keyed_by_sample_and_normalised(files: dict[str, Path], executor: str) -> None:
    result = saetta.run(
        _counting, _samples(files), executor=executor, chunk_size=700, run_dir=False
    )
    assert set(result) == {"signal", "background"}
    assert result["signal"]["events"] == 3_000
    assert result["background"]["events"] == 3_000
    assert result["signal"]["is_signal"] == len(range(0, 3_000, 700))  # one per unit
    assert result["background"]["is_signal"] == 0
    # computed from the files directly: weight = xsec * lumi / generated * genWeight
    expected_signal = 2.0 * 10.0 / 3000.0 * _gen_weight_sum(files["sig"])
    expected_background = (
        30.0 * 10.0 / 6000.0 * (_gen_weight_sum(files["bkg"]) + _gen_weight_sum(files["bkg2"]))
    )
    assert result["signal"]["sum_weights"] == pytest.approx(expected_signal, rel=1e-12)
    assert result["background"]["sum_weights"] == pytest.approx(expected_background, rel=1e-12)
    assert result.metadata["luminosity_pb"] == 10.0
    assert result.metadata["samples"]["signal"]["role"] == "signal"
    assert result.metadata["samples"]["background"]["weight"] == pytest.approx(0.05)


def test_outside_a_samples_run_an_analysis_has_no_sample(files: dict[str, Path]) -> None:
    result = saetta.run(_counting, [str(files["sig"])], run_dir=False)
    assert result["is_signal"] == 0
    assert result["sum_weights"] == pytest.approx(_gen_weight_sum(files["sig"]), rel=1e-12)
    assert result.metadata == {}


def test_output_files_record_the_samples(files: dict[str, Path], tmp_path: Path) -> None:
    result = saetta.run(_counting, _samples(files), run_dir=False)
    saetta.save(result, tmp_path / "out.json")
    saetta.save(result, tmp_path / "out.root")
    document = json.loads((tmp_path / "out.json").read_text())
    assert document["metadata"]["samples"]["background"]["xsec_pb"] == 30.0
    assert document["values"]["signal/events"] == 3_000
    recorded = json.loads(str(uproot.open(tmp_path / "out.root")["saetta"]))
    assert recorded["metadata"] == document["metadata"]


def test_a_run_directory_refuses_other_samples(files: dict[str, Path], tmp_path: Path) -> None:
    saetta.run(_counting, _samples(files), run_dir=tmp_path / "run")
    again = saetta.run(_counting, _samples(files), run_dir=tmp_path / "run")  # the control
    assert again["signal"]["events"] == 3_000
    other = Samples(
        [Sample(s.name, s.files, role=s.role, xsec_pb=99.0, generated=s.generated)
         for s in _samples(files).values()],
        luminosity_pb=10.0,
    )  # fmt: skip
    with pytest.raises(JournalError):
        saetta.run(_counting, other, run_dir=tmp_path / "run")
