"""Smoke test of the ADL side-by-side benchmark (benchmarks/adl.py): runs, agrees, writes JSON.

Only saetta and the hand-written uproot + awkward peer, on a tiny generated file:
no ROOT or coffea environments, no timing assertions.
"""

from __future__ import annotations

import json
import pathlib
import runpy

import pytest

ROOT_DIR = pathlib.Path(__file__).resolve().parents[1]
BENCHMARK = ROOT_DIR / "benchmarks" / "adl.py"


@pytest.mark.slow
def test_adl_benchmark_saetta_and_handwritten_agree(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = runpy.run_path(str(BENCHMARK), run_name="adl_benchmark")["main"]
    out = tmp_path / "adl.json"
    report = main(
        [
            "--events", "20000",
            "--peers", "saetta,handwritten",
            "--data-dir", str(tmp_path / "data"),
            "--json", str(out),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out

    assert report["mismatches"] == []
    assert report["agreement"] is True
    assert report["failures"] == {}
    assert set(report["systems"]) == {"saetta-1p", "saetta-2p", "handwritten"}
    for system in report["systems"].values():
        assert set(system["queries"]) == {f"q{i}" for i in range(1, 9)}
        for query in system["queries"].values():
            assert query["events"] == 20000
            assert all(len(v) == 102 for v in query["hists"].values())
    hand = report["systems"]["handwritten"]["queries"]
    assert all(q["agrees_with_saetta-1p"] for q in hand.values())
    assert sum(report["systems"]["saetta-1p"]["queries"]["q1"]["hists"]["q1_met"]) == 20000
    assert "agree bin for bin" in printed
    assert "MISMATCH" not in printed

    written = json.loads(out.read_text())
    assert written["agreement"] is True
    assert written["file"]["entries"] == 20000
    assert set(written["ratios"]) == {f"q{i}" for i in range(1, 9)}
    assert written["ratios"]["q1"]["saetta/handwritten"] > 0


def test_scale_benchmark_measures_every_stage(tmp_path: pathlib.Path) -> None:
    """benchmarks/scale.py at toy sizes: each stage runs, in its own process, and counts
    what an independent reading of its synthetic catalog says it should."""
    import csv

    main = runpy.run_path(str(ROOT_DIR / "benchmarks" / "scale.py"), run_name="scale")["main"]
    report = main(
        [
            "--files", "100,1000", "--records", "100", "--dispatch", "20",
            "--no-dask", "--no-fixed", "--work", str(tmp_path),
        ]
    )  # fmt: skip
    measured = {(stage, n): values for stage, n, values in report["stages"]}
    assert not [key for key, values in measured.items() if "error" in values]
    for n in (100, 1000):
        with open(tmp_path / f"files-{n}.csv", newline="") as listing:
            rows = list(csv.DictReader(listing))
        assert measured["open", n]["files"] == len(rows) == n
        assert measured["open", n]["events"] == sum(int(r["entries"]) for r in rows)
        assert measured["open", n]["bytes"] == sum(int(r["bytes"]) for r in rows)
        units = sum(-(-int(r["entries"]) // 250_000) for r in rows)
        assert measured["plan", n]["units"] == units
    assert measured["journal", 100]["records"] == 100
    for executor in ("local", "processes:2"):
        assert measured[f"dispatch {executor}", 20]["units"] == 20
