"""Mutated files never crash or hang saetta: every outcome is a result or a clean SaettaError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    return {
        suffix: generate_nanoaod(
            folder / f"tiny{suffix}", 300, seed=4, chunk_events=100
        ).read_bytes()
        for suffix in (".root", ".parquet")
    }


mutations = st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8
)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".root", ".parquet"])
@settings(
    max_examples=60,
    deadline=20_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=mutations, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_file_gives_a_clean_error(
    suffix: str,
    changes: list[tuple[float, int]],
    cut: float | None,
    pristine: dict[str, bytes],
    tmp_path: Path,
) -> None:
    data = bytearray(pristine[suffix])
    for where, value in changes:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path = tmp_path / f"mutant-{os.getpid()}{suffix}"
    path.write_bytes(bytes(data))
    try:
        result = saetta.run(adl.analysis, path, run_dir=False, progress=False, allow_partial=True)
    except saetta.SaettaError as exc:
        message = str(exc)
        assert message  # a message, naming something
        return
    # readable despite the damage (e.g. a changed value): the accounting still adds up
    report = result.report
    assert report.events_processed + report.events_missing == report.events_total
    assert all(f.error for f in report.failures)
