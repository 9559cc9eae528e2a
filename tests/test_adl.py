"""The shipped ADL queries against the independent per-event reference, bin for bin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import flow_values

import saetta
from saetta.analyses import adl


def test_histogram_names_and_binning() -> None:
    assert list(adl.HISTOGRAMS) == [
        "q1_met", "q2_jet_pt", "q3_jet_pt", "q4_met", "q5_met",
        "q6_trijet_pt", "q6_trijet_btag", "q7_sum_pt", "q8_mt",
    ]  # fmt: skip


@pytest.mark.parametrize("fixture", ["sample_root", "sample_parquet", "sample_rntuple"])
def test_all_queries_match_reference(
    fixture: str, request: pytest.FixtureRequest, reference: dict[str, np.ndarray]
) -> None:
    path: Path = request.getfixturevalue(fixture)
    result = saetta.run(adl.analysis, path, chunk_size=6_000, progress=False)
    assert set(result) == set(reference)
    for name, expected in reference.items():
        h = result[name]
        lo, hi, _ = adl.HISTOGRAMS[name]
        assert h.axes[0].edges[0] == lo
        assert h.axes[0].edges[-1] == hi
        assert len(h.axes[0]) == 100
        np.testing.assert_array_equal(flow_values(result, name), expected, err_msg=name)
    # the sample must exercise every query, or the comparison proves little
    assert all(expected[1:-1].sum() > 100 for expected in reference.values())


@pytest.mark.parametrize("query", sorted(adl.QUERIES))
def test_each_query_alone(query: str, sample_root: Path, reference: dict[str, np.ndarray]) -> None:
    result = saetta.run(adl.QUERIES[query], sample_root, progress=False)
    assert all(name.startswith(query + "_") for name in result)
    for name in result:
        np.testing.assert_array_equal(flow_values(result, name), reference[name])
