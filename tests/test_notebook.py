"""notebooks/quickstart.ipynb runs top to bottom, and says what it should."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _text(cell) -> str:  # type: ignore[no-untyped-def]
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def test_quickstart_notebook(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    shutil.copy(NOTEBOOK, tmp_path)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = "\n".join(_text(c) for c in cells)
    assert "identical on both: True | events: 100000" in text
    assert "Dataset(2 files, 100,000 entries" in text
    assert "100,000 of 100,000 processed" in text
    images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the dimuon plot and the ADL grid
    assert (tmp_path / "sample_1.root").exists()


AGC_NOTEBOOK = NOTEBOOK.with_name("agc.ipynb")


def test_agc_notebook(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("pyhf")
    notebook = nbformat.read(AGC_NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = "\n".join(_text(c) for c in cells)
    assert "2,700 of 2,700 processed" in text
    assert "identical on processes:2 and dask:2: True" in text
    match = re.search(r"μ\(ttbar\) = ([0-9.]+) ± ([0-9.]+)", text)
    assert match, text
    mu, error = float(match.group(1)), float(match.group(2))
    assert abs(mu - 1.3) < min(error, 0.01)  # Asimov with the signal injected ×1.3
    images = [o for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the stacked regions and the pulls
    assert (tmp_path / "agc.root").exists()
    assert (tmp_path / "agc-samples" / "samples.yaml").exists()
