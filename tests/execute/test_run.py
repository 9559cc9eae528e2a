"""run(): exact, order-independent merging; executors; failures named, nothing lost."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest
from adl_reference import reference_histograms
from conftest import flow_values

import saetta
from saetta.analyses import adl


def _sum_reference(paths: list[Path]) -> dict[str, np.ndarray]:
    parts = [reference_histograms(p) for p in paths]
    return {k: sum(p[k] for p in parts) for k in parts[0]}


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 10**9])
def test_result_independent_of_chunk_size(chunk_size: int, small_files: list[Path]) -> None:
    expected = _sum_reference(small_files)
    result = saetta.run(adl.analysis, small_files, chunk_size=chunk_size, progress=False)
    assert result.report.events_processed == result.report.events_total == 657
    if chunk_size == 1:
        assert result.report.units_total == 657
    for name, values in expected.items():
        np.testing.assert_array_equal(flow_values(result, name), values, err_msg=name)


class Scrambled(ThreadPoolExecutor):
    """Four threads that finish units in an order of their own: each call first sleeps a
    few random milliseconds, and the first unit submitted waits until another has
    finished, so the order differs from submission however fast the units run.
    ``finished`` lists (path, first entry) of the units as they finished."""

    def __init__(self, seed: int) -> None:
        super().__init__(max_workers=4)
        self._delays = random.Random(seed)
        self._lock = threading.Lock()
        self._another_finished = threading.Event()
        self._submitted = 0
        self.finished: list[tuple[str, int]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        delay = self._delays.uniform(0.0, 0.01)
        first = self._submitted == 0
        self._submitted += 1
        return super().submit(self._late, first, delay, fn, *args, **kwargs)

    def _late(
        self, first: bool, delay: float, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        if first:
            self._another_finished.wait(timeout=30)
        time.sleep(delay)
        outcome = fn(*args, **kwargs)
        with self._lock:
            self.finished.append((outcome.unit.path, outcome.unit.start))
        if not first:
            self._another_finished.set()
        return outcome


def event_weights(gen_weight: np.ndarray, met_phi: np.ndarray) -> np.ndarray:
    """genWeight times a per-event scale factor, as analyses apply: float64 products of
    53 significant bits, whose sums round at nearly every addition. (Sums of the float32
    genWeights alone are exact in float64; sums of their squares round rarely.)"""
    return gen_weight.astype(np.float64) * (1.0 + met_phi.astype(np.float64) / 7.0)


def weighted_met(events):  # type: ignore[no-untyped-def]
    """A weighted fill and sums of weights: not exact in floating point, so their bits
    show the order the units' results were added in."""
    w = event_weights(np.asarray(events.genWeight), np.asarray(events.MET.phi))
    h = hist.Hist(hist.axis.Regular(20, 0, 200), storage=hist.storage.Weight())
    h.fill(events.MET.pt, weight=w)
    return {"met": h, "sumw": float(np.sum(w)), "sumw2": float(np.sum(w * w)), "n": len(events)}


def adl_and_weighted_met(events):  # type: ignore[no-untyped-def]
    return {**adl.analysis(events), **weighted_met(events)}


def assert_same_bits(result: Any, other: Any) -> None:
    assert (result["n"], result["sumw"], result["sumw2"]) == (
        other["n"],
        other["sumw"],
        other["sumw2"],
    )
    for view in ("values", "variances"):
        np.testing.assert_array_equal(
            getattr(result["met"], view)(flow=True), getattr(other["met"], view)(flow=True), view
        )


def test_file_order_and_executor_do_not_change_result(weighted_small_files: list[Path]) -> None:
    files = weighted_small_files
    expected = _sum_reference(files)
    local = saetta.run(adl_and_weighted_met, files, chunk_size=50, progress=False)
    reordered = saetta.run(
        adl_and_weighted_met, files[::-1], executor="processes:2", chunk_size=50, progress=False
    )
    assert reordered.report.executor == "processes:2"
    with Scrambled(seed=1) as threads:
        scrambled = saetta.run(
            adl_and_weighted_met, files[::-1], executor=threads, chunk_size=50, progress=False
        )
    assert threads.finished != sorted(threads.finished)  # they did finish out of order
    for name, values in expected.items():
        for result in (local, reordered, scrambled):
            np.testing.assert_array_equal(flow_values(result, name), values, err_msg=name)
    assert_same_bits(reordered, local)
    assert_same_bits(scrambled, local)
    # The weights do show a change of order: another chunking adds in another order.
    other = saetta.run(weighted_met, files, chunk_size=100, run_dir=False, progress=False)
    variances = other["met"].variances(flow=True)
    assert not np.array_equal(variances, local["met"].variances(flow=True))


def test_weighted_fills_and_numbers_merge_exactly(weighted_root: Path) -> None:
    import uproot

    names = ["MET_pt", "MET_phi", "genWeight"]
    arrays = uproot.open(weighted_root)["Events"].arrays(names, library="np")
    assert np.mean(np.abs(arrays["genWeight"]) == 1.0) < 0.01
    w = event_weights(arrays["genWeight"], arrays["MET_phi"])
    expected = hist.Hist(hist.axis.Regular(20, 0, 200), storage=hist.storage.Weight())
    expected.fill(arrays["MET_pt"], weight=w)
    # One unit: the very additions of one fill over the whole file.
    whole = saetta.run(weighted_met, weighted_root, chunk_size=20_000, progress=False)
    assert whole.report.units_total == 1
    assert (whole["n"], whole["sumw"], whole["sumw2"]) == (20_000, np.sum(w), np.sum(w * w))
    np.testing.assert_array_equal(whole["met"].values(flow=True), expected.values(flow=True))
    np.testing.assert_array_equal(whole["met"].variances(flow=True), expected.variances(flow=True))
    for chunk_size, executors in [(777, ["local"]), (3_000, ["local", "processes:2"])]:
        first: Any = None
        for executor in executors:
            result = saetta.run(
                weighted_met,
                weighted_root,
                chunk_size=chunk_size,
                executor=executor,
                progress=False,
            )
            first = first or result
            assert result.report.executor == executor
            assert_same_bits(result, first)
        with Scrambled(seed=chunk_size) as threads:
            scrambled = saetta.run(
                weighted_met, weighted_root, chunk_size=chunk_size, executor=threads, progress=False
            )
        assert threads.finished != sorted(threads.finished)  # they did finish out of order
        assert_same_bits(scrambled, first)
        # Another chunking adds the same numbers in another order: the same to rounding,
        # not to the bit (were it, these weights could not show a merge order). The
        # totals of numpy's pairwise sums are often correctly rounded either way; the
        # bins, filled one weight at a time, are not.
        assert first["n"] == 20_000
        for key in ("sumw", "sumw2"):
            assert first[key] == pytest.approx(whole[key], rel=1e-12)
        for view in ("values", "variances"):
            got = getattr(first["met"], view)(flow=True)
            np.testing.assert_allclose(got, getattr(expected, view)(flow=True), rtol=1e-12)
            assert not np.array_equal(got, getattr(expected, view)(flow=True)), view


def fails_on_second_file(events):  # type: ignore[no-untyped-def]
    if events.attrs["path"].endswith("c.root"):
        msg = "boom in c"
        raise RuntimeError(msg)
    return {"n": len(events)}


def test_failing_units_are_named_and_the_rest_completes(small_files: list[Path]) -> None:
    with pytest.raises(saetta.UnitError, match=r"3 of 8 units failed \(257 of 657 events") as info:
        saetta.run(fails_on_second_file, small_files, chunk_size=100, progress=False)
    partial = info.value.result  # type: ignore[attr-defined]
    assert partial["n"] == 400
    report = partial.report
    assert report.events_processed == 400
    assert report.events_missing == 257
    assert not report.complete
    assert [(f.unit.start, f.unit.stop) for f in report.failures] == [
        (0, 100),
        (100, 200),
        (200, 257),
    ]
    assert all(f.error == "RuntimeError" and "boom in c" in f.message for f in report.failures)
    assert "fails_on_second_file" in report.failures[0].traceback
    allowed = saetta.run(
        fails_on_second_file, small_files, chunk_size=100, progress=False, allow_partial=True
    )
    assert allowed["n"] == 400
    assert "FAILED" in str(allowed.report)


def returns_a_string(events):  # type: ignore[no-untyped-def]
    return {"ok": len(events), "bad": "text"}


def returns_a_list(events):  # type: ignore[no-untyped-def]
    return [1, 2]


@pytest.mark.parametrize(
    ("analysis", "message"),
    [
        (returns_a_string, r"result\['bad'\] is a str"),
        (returns_a_list, "must return a dict"),
    ],
)
def test_unmergeable_results_are_named(analysis, message: str, small_files: list[Path]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(saetta.UnitError) as info:
        saetta.run(analysis, small_files[0], progress=False)
    assert info.value.failures[0].error == "AnalysisError"  # type: ignore[attr-defined]
    assert pytest.importorskip("re").search(message, str(info.value))


def test_unknown_executor_lists_the_known_ones(small_files: list[Path]) -> None:
    with pytest.raises(
        saetta.ExecutorError, match="unknown executor 'dsk'; available: dask, local, processes"
    ):
        saetta.run(adl.q1, small_files[0], executor="dsk")
    with pytest.raises(saetta.ExecutorError, match="positive number of workers"):
        saetta.run(adl.q1, small_files[0], executor="processes:0")


@pytest.mark.parametrize("chunk_size", [0, -5, 2.5])
def test_absurd_chunk_size_is_refused(chunk_size: object, small_files: list[Path]) -> None:
    with pytest.raises(saetta.DatasetError, match="chunk size must be a positive"):
        saetta.run(adl.q1, small_files[0], chunk_size=chunk_size)  # type: ignore[arg-type]


def test_report_counts_bytes_and_columns(sample_root: Path) -> None:
    result = saetta.run(adl.q1, sample_root, progress=False)
    report = result.report
    assert report.columns == ("MET_pt",)
    assert 0 < report.bytes_read < sample_root.stat().st_size / 5
    assert report.events_per_second > 0
    assert "20,000 of 20,000 processed" in str(report)
    assert "<table>" in result._repr_html_()
    assert "complete" in repr(result)


def binning_changes_in_c(events):  # type: ignore[no-untyped-def]
    bins = 60 if events.attrs["path"].endswith("c.root") else 50
    h = hist.Hist.new.Reg(bins, 0, 200, name="met").Double()
    h.fill(np.asarray(events.MET.pt))
    return {"met": h, "n": len(events)}


def test_results_that_do_not_merge_fail_their_units_by_name(small_files: list[Path]) -> None:
    for executor in ("local", "processes:2"):
        with pytest.raises(saetta.UnitError) as info:
            saetta.run(
                binning_changes_in_c,
                small_files,
                chunk_size=100,
                executor=executor,
                run_dir=False,
                progress=False,
            )
        report = info.value.result.report
        assert {Path(f.unit.path).name for f in report.failures} == {"c.root"}
        assert all(f.error == "AnalysisError" for f in report.failures)
        assert "does not merge with that of" in report.failures[0].message
        assert "different binning" in report.failures[0].message
        assert report.events_processed == 400  # a.root's units, merged
        kept = info.value.result["met"]
        expected, _ = np.histogram(
            reference_met(small_files[0]), bins=50, range=(0, 200)
        )  # a.root alone, in range
        np.testing.assert_array_equal(kept.values(), expected)
        assert info.value.result["n"] == 400


def reference_met(path: Path) -> np.ndarray:
    import uproot

    return np.asarray(uproot.open(path)["Events"]["MET_pt"].array(library="np"))


def test_a_dataset_without_events_gives_the_analysis_empty_histograms(
    small_files: list[Path],
) -> None:
    empty = small_files[1]  # b.root: 0 events
    result = saetta.run(adl.analysis, [empty], run_dir=False, progress=False)
    assert result.report.units_total == 0
    assert result.report.complete
    for name in result:
        assert result[name].sum(flow=True) == 0
    full = saetta.run(adl.analysis, small_files[:1], run_dir=False, progress=False)
    assert sorted(result) == sorted(full)
    for name in result:
        assert result[name].axes == full[name].axes


def test_an_analysis_that_exits_is_a_failed_unit(small_files: list[Path]) -> None:
    import sys

    def leaves(events):  # type: ignore[no-untyped-def]
        if events.attrs["path"].endswith("c.root"):
            sys.exit(3)
        return adl.q1(events)

    result = saetta.run(leaves, small_files, allow_partial=True, run_dir=False, progress=False)
    assert {f.error for f in result.report.failures} == {"SystemExit"}
    assert result.report.events_processed == 400


def test_workers_never_split_a_cluster_unasked(tmp_path: Path) -> None:
    from saetta.datagen import generate_nanoaod

    path = generate_nanoaod(tmp_path / "two_clusters.root", 60_000, seed=4, chunk_events=30_000)
    size = path.stat().st_size
    result = saetta.run(adl.analysis, path, executor="processes:2", run_dir=False, progress=False)
    assert [u.unit.num_entries for u in result.report.units] == [30_000, 30_000]
    assert result.report.bytes_read <= size  # each basket read once (it was 3x: 10k-event units)
    # Positive control: a chunk size the user asks for is honoured, and then baskets are shared.
    small = saetta.run(
        adl.analysis, path, executor="processes:2", chunk_size=10_000, run_dir=False, progress=False
    )
    assert small.report.units_total == 6
    assert small.report.bytes_read > 2 * size
