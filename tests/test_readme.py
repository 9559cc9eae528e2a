"""Every code block of the README runs as written: the Python API, the command line, the YAML.

The commands run in a folder laid out as the README assumes (``data/*.root``,
``data/*.parquet``, ``my_analysis.py`` holding the README's own analysis), so they
run unchanged; a command that needs a server or a batch system is listed in
``ELSEWHERE`` with the test that covers it, and any README command in neither
place fails the test until someone decides.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import matplotlib
import numpy as np
import pytest
import uproot
import vector
import yaml

from saetta.datagen import generate_nanoaod

README = Path(__file__).parents[1] / "README.md"
SAETTA = Path(sys.executable).with_name("saetta")

#: README commands not run here, and where they are tested instead.
ELSEWHERE = {
    "saetta testbeds check slurm-local": "tests/execute/test_batch.py (real SLURM)",
    "saetta run adl data/*.root --testbed slurm-local": "tests/execute/test_batch.py",
    "saetta run adl root://eos.example/": "tests/test_remote.py (real XRootD)",
    "saetta cache info": "tests/test_remote.py (a cache filled from a real server)",
    "saetta run adl @ttbar_2016": "tests/test_dataset.py (catalogs), tests/test_remote.py",
    "saetta plan usecase.yaml": "tests/test_usecase.py",
    "saetta validate usecase.yaml": "tests/test_usecase.py",
    "saetta testbeds history local": "tests/test_usecase.py",
    "saetta run --resume": "tests/execute/test_run_dir.py, tests/execute/test_journal.py",
    "saetta inspect out.root": "tests/test_cli.py (inspect of saetta's own outputs)",
    "saetta generate agc": "tests/test_agc_workflow.py (Pythia 8: minutes at this size)",
    "saetta run agc": "tests/test_agc_workflow.py, tests/test_agc_reference.py",
    "saetta fit agc.root": "tests/test_agc_workflow.py, tests/test_fit.py",
    "saetta train": "tests/test_ml_training.py (local ranks, SIGKILL and resume, real SLURM)",
    "saetta simulate showers": "tests/test_fastsim_cli.py, tests/test_fastsim_production.py",
    "saetta fastsim": "tests/test_fastsim_cli.py (the README's sequence, end to end)",
}
#: Sizes made small so the test stays quick; nothing else is changed.
SMALLER = {"saetta demo": "saetta demo --events 3000", "--events 200000": "--events 2000"}


def _blocks(language: str | None = None) -> list[str]:
    found = re.findall(r"```(\w*)\n(.*?)```", README.read_text(), re.DOTALL)
    return [text for lang, text in found if language is None or lang == language]


def _analysis_block() -> str:
    block = re.search(r"## An analysis\n\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None
    return block.group(1)


def _commands() -> list[str]:
    lines = []
    for text in _blocks():
        for line in text.splitlines():
            command = line.split("  #")[0].strip()
            for step in command.split("&&"):
                if step.strip().startswith("saetta "):
                    lines.append(step.strip())
    return lines


@pytest.fixture(scope="module")
def readme_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder as the README assumes one."""
    folder = tmp_path_factory.mktemp("readme")
    data = folder / "data"
    data.mkdir()
    generate_nanoaod(data / "a.root", 1500, seed=1, chunk_events=500)
    generate_nanoaod(data / "b.root", 900, seed=2, chunk_events=300)
    generate_nanoaod(data / "a.parquet", 1500, seed=1, chunk_events=500)
    shutil.copy(data / "a.root", data / "file.root")
    analysis = _analysis_block().split("result = saetta.run(")[0]  # the function, not its use
    (folder / "my_analysis.py").write_text(analysis)
    return folder


def _reference_mass(paths: list[Path]) -> np.ndarray:
    masses, weights = [], []
    for path in paths:
        ev = uproot.open(path)["Events"].arrays(
            ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "genWeight"]
        )
        mu = vector.zip(
            {"pt": ev.Muon_pt, "eta": ev.Muon_eta, "phi": ev.Muon_phi, "mass": ev.Muon_mass}
        )
        mu = mu[ev.Muon_pt > 10]
        two = ak.num(mu) >= 2
        masses.append(np.asarray((mu[two][:, 0] + mu[two][:, 1]).mass))
        weights.append(np.asarray(ev.genWeight[two]))
    expected, _ = np.histogram(
        np.concatenate(masses), bins=60, range=(60, 120), weights=np.concatenate(weights)
    )
    return expected


# mplhep's note on plotting a histogram whose weights are all whole numbers (genWeight is ±1).
@pytest.mark.filterwarnings("ignore:Integer weights indicate poissonian data")
def test_readme_analysis_through_the_python_api(
    readme_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(readme_folder)
    namespace: dict[str, object] = {}
    exec(compile(_analysis_block(), str(README), "exec"), namespace)  # noqa: S102 - the README is ours
    result = namespace["result"]
    roots = sorted((readme_folder / "data").glob("*.root"))
    roots.remove(readme_folder / "data" / "file.root")  # a copy, on purpose: it counts too
    expected = _reference_mass([*roots, readme_folder / "data" / "file.root"])
    np.testing.assert_allclose(result["mass"].values(), expected, atol=1e-9)  # type: ignore[index]
    assert result["events"] == 3900  # type: ignore[index]
    assert result.report.complete  # type: ignore[attr-defined]


def test_readme_training_block_runs(readme_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's loader example, as written: every event of the train split once."""
    pytest.importorskip("torch")
    block = re.search(
        r"## Training a network\n.*?```python\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert block is not None
    monkeypatch.chdir(readme_folder)
    namespace: dict[str, object] = {}
    code = block.group(1) + "\nseen = [b['entry'] for b in loader.epoch(0, 'train')]\n"
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README is ours
    loader = namespace["loader"]
    seen = namespace["seen"]
    entries = sum(len(e) for e in seen)  # type: ignore[attr-defined]
    assert entries == loader.num_events("train") > 0  # type: ignore[attr-defined]


def _classify(command: str) -> str | None:
    return next((k for k in ELSEWHERE if command.startswith(k)), None)


def test_every_readme_command_is_run_here_or_covered_elsewhere() -> None:
    commands = _commands()
    assert len(commands) > 10
    ran = [c for c in commands if _classify(c) is None]
    assert any("my_analysis.py:analysis" in c for c in ran)
    assert set(ELSEWHERE) <= {_classify(c) for c in commands}, "ELSEWHERE names a gone command"


@pytest.mark.filterwarnings("ignore:Integer weights indicate poissonian data")
@pytest.mark.parametrize("command", [c for c in _commands() if _classify(c) is None])
def test_readme_command_runs_as_written(command: str, readme_folder: Path) -> None:
    text = command
    for long, short in SMALLER.items():
        text = text.replace(long, short) if short not in text else text
    args = shlex.split(text)
    args = [a for arg in args for a in (sorted(map(str, readme_folder.glob(arg))) or [arg])]
    done = subprocess.run(
        [str(SAETTA), *args[1:]],
        cwd=readme_folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{text}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    outputs = [args[i + 1] for i, a in enumerate(args) if a in {"-o", "--output", "--plots"}]
    for name in outputs:
        target = readme_folder / name
        assert target.stat().st_size > 0, name
        if target.suffix == ".json":
            assert json.loads(target.read_text())["complete"] is True
        if target.suffix == ".root":
            assert uproot.open(target).keys()
        if target.suffix == ".png":
            assert target.read_bytes().startswith(b"\x89PNG")
        assert f"wrote {name}" in done.stdout
    if "my_analysis.py:analysis" in text:  # the README's weighted histogram, on the CLI
        assert "mass" in done.stdout
        written = uproot.open(readme_folder / "out.root")["mass"]
        roots = sorted(str(p) for p in (readme_folder / "data").glob("*.root"))
        np.testing.assert_allclose(
            written.values(), _reference_mass([Path(p) for p in roots]), atol=1e-9
        )


def test_readme_yaml_blocks_are_valid_configurations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saetta.execute.testbeds import load_testbeds
    from saetta.usecase import UseCase

    blocks = _blocks("yaml")
    assert len(blocks) == 3
    testbeds, usecase, astro = blocks
    (tmp_path / "testbeds.yaml").write_text(testbeds)
    loaded = load_testbeds(tmp_path / "testbeds.yaml")
    assert {"lab", "slurm-local", "condor"} <= set(loaded)
    parsed = UseCase.from_dict(yaml.safe_load(usecase), str(README))
    assert parsed.analysis == "adl.q5"
    crab = UseCase.from_dict(yaml.safe_load(astro), str(README))
    assert crab.analysis == "gamma"
    assert crab.requirement.events == 1e10
