"""The README's example analysis runs as written, and gives what plain awkward gives."""

from __future__ import annotations

import re
from pathlib import Path

import awkward as ak
import matplotlib
import numpy as np
import pytest
import uproot
import vector

README = Path(__file__).parents[1] / "README.md"


# mplhep's note on plotting a histogram whose weights are all whole numbers (genWeight is ±1).
@pytest.mark.filterwarnings("ignore:Integer weights indicate poissonian data")
def test_readme_example(small_files: list[Path]) -> None:
    matplotlib.use("Agg")
    block = re.search(r"## An analysis\n\n```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None
    code = block.group(1).replace('"data/*.root"', repr(str(small_files[0].parent / "*.root")))
    namespace: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README is ours
    result = namespace["result"]

    masses, weights = [], []
    for path in small_files:
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
    np.testing.assert_allclose(result["mass"].values(), expected, atol=1e-9)  # type: ignore[index]
    assert result["events"] == 657  # type: ignore[index]
    assert result.report.complete  # type: ignore[attr-defined]
