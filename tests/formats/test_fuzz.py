"""Mutated files never crash or hang saetta, and fail only as a file's errors.

Every outcome is a result, a partial result whose failed units are FormatError or
StorageError, or one of those raised from the metadata scan, naming the file. An
IndexError, a zlib error or an AttributeError from inside uproot, awkward or
pyarrow is a bug: the reader (or the unit boundary) must turn it into a
FormatError. The one exception: damage that renames a branch or changes its type
leaves a readable file of another schema, on which the analysis fails as it would
on any file without the field it needs. Each leak these tests found has a
deterministic test in ``test_corrupt.py``.

``SAETTA_FUZZ_EXAMPLES=2000 pytest tests/formats/test_fuzz.py`` hunts harder.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import saetta
from saetta.analyses import adl
from saetta.datagen import generate_nanoaod

# What damage to a file may surface as. Not DatasetError: a file's bytes never make
# the dataset specification wrong (a damaged row count once came out as one, a unit
# of a negative range: the reader's FormatError now).
ALLOWED = (saetta.FormatError, saetta.StorageError)
ALLOWED_NAMES = frozenset({"FormatError", "MissingBranchError", "StorageError"})
MISSING_FIELD = frozenset({"AttributeError", "FieldNotFoundError"})
EXAMPLES = int(os.environ.get("SAETTA_FUZZ_EXAMPLES", "600"))  # ~30 s a format, 2 cores

_names = itertools.count()


class Pristine:
    """An undamaged file, and the columns its metadata declares."""

    def __init__(self, data: bytes, columns: Mapping[str, object]) -> None:
        self.data = data
        self.columns = columns

    def __repr__(self) -> str:  # what hypothesis prints of a failing example: not the bytes
        return f"Pristine({len(self.data)} bytes)"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pristine]:
    folder = tmp_path_factory.mktemp("fuzz")
    files = {}
    for suffix in (".root", ".parquet"):
        path = generate_nanoaod(folder / f"tiny{suffix}", 300, seed=4, chunk_events=100)
        files[suffix] = Pristine(path.read_bytes(), dict(saetta.Dataset.open(path).columns))
    return files


def attempt(path: Path) -> saetta.Result | saetta.SaettaError:
    try:
        return saetta.run(adl.analysis, path, run_dir=False, progress=False, allow_partial=True)
    except saetta.SaettaError as exc:
        return exc


mutations = st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8
)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".root", ".parquet"])
@settings(
    max_examples=EXAMPLES,
    deadline=20_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=mutations, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_file_gives_a_clean_error(
    suffix: str,
    changes: list[tuple[float, int]],
    cut: float | None,
    pristine: dict[str, Pristine],
    tmp_path: Path,
) -> None:
    data = bytearray(pristine[suffix].data)
    for where, value in changes:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    for earlier in tmp_path.glob("mutant-*"):  # one tmp_path serves every example
        earlier.unlink()
    # A new name each example: a rewrite within the clock's tick, of the same size,
    # would look like the same file to the readers this process keeps open.
    path = tmp_path / f"mutant-{os.getpid()}-{next(_names)}{suffix}"
    path.write_bytes(bytes(data))
    result = attempt(path)
    if isinstance(result, saetta.SaettaError):
        assert isinstance(result, ALLOWED), f"{type(result).__name__}: {result}"
        assert str(path) in str(result)  # the message names the file
        return
    # readable despite the damage (e.g. a changed value): the accounting still adds up
    report = result.report
    assert report.events_processed + report.events_missing == report.events_total
    for failure in report.failures:
        assert failure.error, failure
        if failure.error in ALLOWED_NAMES:
            assert str(path) in failure.message
            continue
        # A renamed branch, or one whose type changed, is a file of another schema,
        # not a detectably damaged one: an analysis that finds no field it needs
        # fails as it would on any such file.
        changed = dict(saetta.Dataset.open(path).columns) != pristine[suffix].columns
        assert changed, f"{failure.error}: {failure.message}\n{failure.traceback}"
        # events.Jet.pt raises AttributeError, events.Jet["pt"] awkward's FieldNotFoundError
        assert failure.error in MISSING_FIELD, f"{failure.error}: {failure.message}"
        assert failure.message.startswith("no field "), failure.message
