"""The decoded-column cache: same results, served from disk the second time, never stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from adl_reference import reference_histograms
from conftest import flow_values

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod


def _cached_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.arrow"))


def test_second_run_reads_from_cache(
    tmp_path: Path, sample_root: Path, reference: dict[str, np.ndarray]
) -> None:
    cache = tmp_path / "cache"
    first = saetta.run(adl.q7, sample_root, column_cache=cache, chunk_size=5_000, progress=False)
    assert first.report.cache_hits == 0
    assert first.report.cache_misses > 0
    assert first.report.bytes_read > 0
    second = saetta.run(adl.q7, sample_root, column_cache=cache, chunk_size=5_000, progress=False)
    assert second.report.cache_misses == 0
    assert second.report.cache_hits == first.report.cache_misses
    assert second.report.bytes_read == 0
    for result in (first, second):
        np.testing.assert_array_equal(flow_values(result, "q7_sum_pt"), reference["q7_sum_pt"])


def test_rewritten_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "data.root"
    cache = tmp_path / "cache"
    generate_nanoaod(path, 1_000, seed=1)
    saetta.run(adl.q1, path, column_cache=cache, progress=False)
    generate_nanoaod(path, 1_000, seed=2)  # same name, other events
    result = saetta.run(adl.q1, path, column_cache=cache, progress=False)
    assert result.report.cache_hits == 0
    np.testing.assert_array_equal(
        flow_values(result, "q1_met"), reference_histograms(path)["q1_met"]
    )


def test_processes_share_the_cache(tmp_path: Path, small_files: list[Path]) -> None:
    cache = tmp_path / "cache"
    expected = saetta.run(adl.analysis, small_files, chunk_size=50, progress=False)
    for _ in range(2):
        result = saetta.run(
            adl.analysis,
            small_files,
            executor="processes:2",
            chunk_size=50,
            column_cache=cache,
            progress=False,
        )
        for name in expected:
            np.testing.assert_array_equal(flow_values(result, name), flow_values(expected, name))
    assert result.report.cache_misses == 0
    # no temporary files left behind: only the marker that makes the folder saetta's
    assert [p.name for p in cache.rglob(".*")] == [".saetta-column-cache"]


def test_eviction_keeps_the_bound(tmp_path: Path, sample_root: Path) -> None:
    from saetta.formats import open_reader
    from saetta.formats.column_cache import CachedReader
    from saetta.storage import file_identity

    cache = tmp_path / "cache"
    bound = 600_000
    reader = CachedReader(
        open_reader(str(sample_root)), cache, file_identity(str(sample_root)), max_bytes=bound
    )
    for start in range(0, 20_000, 2_000):
        reader.read(["Jet_pt", "Jet_eta"], start, start + 2_000)
        assert sum(p.stat().st_size for p in _cached_files(cache)) <= bound
    assert 0 < len(_cached_files(cache)) < 20
    kept = reader.read(["Jet_pt"], 18_000, 20_000)["Jet_pt"]  # most recent: still cached
    assert reader.hits >= 1
    fresh = open_reader(str(sample_root)).read(["Jet_pt"], 18_000, 20_000)["Jet_pt"]
    np.testing.assert_array_equal(kept.offsets - kept.offsets[0], fresh.offsets - fresh.offsets[0])


def test_corrupt_cache_file_is_replaced(tmp_path: Path, sample_root: Path) -> None:
    cache = tmp_path / "cache"
    saetta.run(adl.q1, sample_root, column_cache=cache, progress=False)
    for path in _cached_files(cache):
        path.write_bytes(b"garbage")
    result = saetta.run(adl.q1, sample_root, column_cache=cache, progress=False)
    assert result.report.cache_hits == 0
    again = saetta.run(adl.q1, sample_root, column_cache=cache, progress=False)
    assert again.report.cache_misses == 0
    np.testing.assert_array_equal(flow_values(result, "q1_met"), flow_values(again, "q1_met"))


def test_threads_claiming_a_new_cache_folder_at_once_all_get_it(tmp_path: Path) -> None:
    """The loader's prefetch threads open a new column cache together: each one's claim
    must see the others' marker as the cache's own, not as another kind of folder."""
    import threading

    from saetta.storage.disk import claim_folder, owns

    def claim(folder: Path, start: threading.Barrier, errors: list[BaseException]) -> None:
        start.wait()
        try:
            claim_folder(folder, "column-cache", "column cache")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    for attempt in range(30):
        folder = tmp_path / f"cache{attempt}"
        errors: list[BaseException] = []
        start = threading.Barrier(4)
        threads = [threading.Thread(target=claim, args=(folder, start, errors)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert owns(folder, "column-cache")


def test_a_folder_of_another_kind_is_still_refused(tmp_path: Path) -> None:
    """Positive control: a data-cache folder is not taken as a column cache."""
    from saetta.errors import StorageError
    from saetta.storage.disk import claim_folder

    claim_folder(tmp_path / "c", "data-cache", "data cache")
    with pytest.raises(StorageError, match="not a column cache"):
        claim_folder(tmp_path / "c", "column-cache", "column cache")
