"""saetta.plot: every histogram gets a panel; 2-D is a colour map; never an empty figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hist
import matplotlib
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, QuadMesh

from saetta.errors import SaettaError
from saetta.execute.outcome import Result, RunReport
from saetta.plot import plot_histograms, save_plots

matplotlib.use("Agg")

RNG = np.random.default_rng(5)
X = RNG.normal(50.0, 20.0, 1_000)
Y = RNG.normal(0.0, 1.0, 1_000)
W = RNG.uniform(0.5, 1.5, 1_000)


def _report() -> RunReport:
    return RunReport(
        dataset="test", executor="local", chunk_size=1_000, files=1, units_total=1,
        units_done=1, events_total=1_000, events_processed=1_000, bytes_read=0,
        wall_seconds=1.0, unit_seconds=1.0, columns=(),
    )  # fmt: skip


def _result() -> Result:
    pt = hist.Hist.new.Reg(10, 0, 100, name="pt", label="p_T [GeV]").Weight().fill(X, weight=W)
    counts = hist.Hist.new.Reg(10, 0, 100, name="pt").Int64().fill(X)
    two = hist.Hist.new.Reg(10, 0, 100, name="pt").Reg(8, -2, 2, name="eta", label="η").Double()
    three = hist.Hist.new.Reg(5, 0, 100, name="a").Reg(4, -2, 2, name="b").Reg(3, 0, 1, name="c")
    channel = hist.Hist.new.StrCat(["ee", "mumu", "emu"], name="channel").Int64()
    return Result(
        {
            "pt": pt,
            "sel": {"counts": counts, "maps": {"pt_eta": two.fill(X, Y)}},
            "cube": three.Double().fill(X, Y, RNG.uniform(0, 1, 1_000)),
            "channel": channel.fill(RNG.choice(["ee", "mumu", "emu"], 1_000)),
            "n": 1_000,
        },
        _report(),
    )


@pytest.fixture
def figure() -> Any:
    fig = plot_histograms(_result())
    yield fig
    plt.close(fig)


def _panels(fig: Any) -> dict[str, Any]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def test_every_histogram_gets_a_panel_nested_ones_included(figure: Any) -> None:
    panels = _panels(figure)
    assert list(panels) == [
        "pt",
        "sel/counts",
        "sel/maps/pt_eta",
        "cube (projected onto a, b)",
        "channel",
    ]
    colour_bars = [ax for ax in figure.axes if not ax.get_title()]
    assert len(colour_bars) == 2  # one per 2-D panel, and no empty grid cell left over
    assert len(figure.axes) == 7


def test_one_dimensional_panels_have_labels_and_error_bars(figure: Any) -> None:
    panels = _panels(figure)
    pt = panels["pt"]
    assert (pt.get_xlabel(), pt.get_ylabel()) == ("p_T [GeV]", "weighted events")
    assert (panels["sel/counts"].get_xlabel(), panels["sel/counts"].get_ylabel()) == (
        "pt",
        "events",
    )
    sumw = np.histogram(X, np.linspace(0, 100, 11), weights=W)[0]
    sumw2 = np.histogram(X, np.linspace(0, 100, 11), weights=W**2)[0]
    bars = [c for c in pt.collections if isinstance(c, LineCollection) and c.get_segments()]
    assert len(bars) == 1
    lows, highs = np.array([[s[0][1], s[1][1]] for s in bars[0].get_segments()]).T
    np.testing.assert_allclose((highs - lows) / 2, np.sqrt(sumw2), rtol=1e-9)
    np.testing.assert_allclose((highs + lows) / 2, sumw, rtol=1e-9)
    counts = panels["sel/counts"]
    bars = [c for c in counts.collections if isinstance(c, LineCollection) and c.get_segments()]
    lows, highs = np.array([[s[0][1], s[1][1]] for s in bars[0].get_segments()]).T
    n = np.histogram(X, np.linspace(0, 100, 11))[0]
    np.testing.assert_allclose((highs - lows) / 2, np.sqrt(n), rtol=1e-9)  # sqrt of counts


def test_two_dimensional_panels_are_colour_maps(figure: Any) -> None:
    panels = _panels(figure)
    two = panels["sel/maps/pt_eta"]
    meshes = [c for c in two.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    expected = np.histogram2d(X, Y, [np.linspace(0, 100, 11), np.linspace(-2, 2, 9)])[0]
    np.testing.assert_array_equal(np.asarray(meshes[0].get_array()).reshape(8, 10), expected.T)
    assert (two.get_xlabel(), two.get_ylabel()) == ("pt", "η")
    cube = panels["cube (projected onto a, b)"]
    assert any(isinstance(c, QuadMesh) for c in cube.collections)


def test_category_axes_are_labelled_bins(figure: Any) -> None:
    channel = _panels(figure)["channel"]
    assert [t.get_text() for t in channel.get_xticklabels()] == ["ee", "mumu", "emu"]
    assert channel.get_xlabel() == "channel"


def test_save_plots_writes_a_readable_png_that_is_not_blank(tmp_path: Path) -> None:
    path = save_plots(_result(), tmp_path / "plots" / "out.png")
    assert path == tmp_path / "plots" / "out.png"
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]
    pixels = mpimg.imread(path)[..., :3]
    rows, columns = pixels.shape[:2]
    assert (rows, columns) == (1200, 2304)  # 2 x 3 panels of 6.4 x 5 inches at 120 dpi
    inked = (pixels < 0.9).any(axis=-1).mean()
    assert inked > 0.05
    assert pixels.var() > 0.01


def test_no_histogram_raises_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "plots" / "empty.png"
    empty = Result({"n": 3, "nested": {"x": 1.5}}, _report())
    with pytest.raises(SaettaError, match="no histograms to plot in the result"):
        save_plots(empty, target)
    assert not target.parent.exists()
    with pytest.raises(SaettaError, match="no histograms to plot in the result"):
        plot_histograms(empty)
    # positive control: one histogram deep in a dict is enough
    one = Result({"n": 3, "nested": {"h": hist.Hist.new.Reg(3, 0, 1).Double()}}, _report())
    assert save_plots(one, target).stat().st_size > 0


def test_an_unknown_image_suffix_is_refused_before_drawing(tmp_path: Path) -> None:
    with pytest.raises(SaettaError, match=r"cannot draw into .*plots\.txt: give one of .*\.png"):
        save_plots(_result(), tmp_path / "plots.txt")
    assert list(tmp_path.iterdir()) == []
    assert save_plots(_result(), tmp_path / "plots.svg").read_text().startswith("<?xml")
