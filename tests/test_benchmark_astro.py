"""Smoke test of the astro benchmark (benchmarks/astro.py, both parts at their smallest):
it runs the peers (astropy, gammapy, PyCBC in its own environment), checks that they
agree with saetta (the same ON/OFF counts, SNRs within 1 %), and exits 0; no timing
assertions."""

from __future__ import annotations

import pathlib
import runpy

import pytest

BENCHMARK = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "astro.py"


@pytest.mark.slow
def test_astro_benchmark_runs_and_checks_itself(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(BENCHMARK), run_name="astro_benchmark")["main"]
    assert main(["--small"]) == 0
    printed = capsys.readouterr().out
    assert "== events" in printed
    assert "== strain" in printed
    for peer in ("astropy", "gammapy", "pycbc"):
        assert peer in printed.lower(), peer
    assert "counts check: ok" in printed
