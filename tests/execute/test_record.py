"""Finished-unit records are plain JSON: exact round trips, and untrusted input refused."""

from __future__ import annotations

import decimal
import fractions
import json
import math
import pickle
from pathlib import Path

import boost_histogram as bh
import hist
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import saetta
from saetta.analyses import adl
from saetta.dataset import WorkUnit
from saetta.execute.outcome import UnitOutcome
from saetta.execute.record import RecordError, decode_result, encode_result, record, unrecord


def _same(a: object, b: object) -> None:
    """Bit-for-bit equality of two results, types included."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, bh.Histogram):
        assert isinstance(b, bh.Histogram)
        assert a.axes == b.axes
        assert a.storage_type is b.storage_type
        # UHI leaves out unset (None) metadata; everything set comes back.
        assert {k: v for k, v in a.__dict__.items() if v is not None} == {
            k: v for k, v in b.__dict__.items() if v is not None
        }
        raw_a, raw_b = np.asarray(a.view(flow=True)), np.asarray(b.view(flow=True))
        assert raw_a.dtype == raw_b.dtype
        assert np.ascontiguousarray(raw_a).tobytes() == np.ascontiguousarray(raw_b).tobytes()
    elif isinstance(a, np.ndarray | np.generic):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float)
        assert math.isnan(b)
    else:
        assert a == b


def _through_json(value: object) -> object:
    return decode_result(json.loads(json.dumps(encode_result(value))))


def _results() -> dict[str, object]:
    rng = np.random.default_rng(3)
    weighted = hist.Hist.new.Reg(20, 0, 1, name="x", label="x [GeV]").Weight()
    weighted.fill(rng.random(200), weight=rng.lognormal(size=200) * rng.choice([-1, 1], 200))
    profile = hist.Hist.new.Reg(4, 0, 4, name="n").Mean()
    profile.fill([0.5, 1.5, 1.5, 9.0], sample=[1.0, 2.0, 4.5, 3.0])  # one fill per bin: no variance
    wmean = bh.Histogram(bh.axis.Variable([0, 1, 5]), storage=bh.storage.WeightedMean())
    wmean.fill([0.5, 2.0], weight=[2.0, 0.5], sample=[3.0, 4.0])
    cats = hist.Hist.new.StrCat([], growth=True, name="c").IntCat([1, 2], name="k").Int64()
    cats.fill(c=["b", "a", "b"], k=[1, 2, 2])
    log = hist.Hist.new.Reg(5, 1, 100, transform=hist.axis.transform.log, name="pt").Double()
    log.fill([2.0, 50.0, 1e9])
    flagged = bh.Histogram(bh.axis.Boolean(), bh.axis.Integer(0, 3, underflow=False))
    flagged.fill([True, False], [1, 5])
    return {
        "weighted": weighted,
        "profile": profile,
        "wmean": wmean,
        "cats": cats,
        "log": log,
        "flagged": flagged,
        "unlimited": bh.Histogram(bh.axis.Regular(3, 0, 3), storage=bh.storage.Unlimited()),
        "count": 7,
        "big": 2**70,
        "sum": -0.1,
        "nan": float("nan"),
        "inf": float("-inf"),
        "complex": 1.5 - 2j,
        "fraction": fractions.Fraction(1, 3),
        "decimal": decimal.Decimal("0.1"),
        "scalar": np.float32(0.25),
        "int8": np.int8(-3),
        "array": rng.normal(size=(3, 4)),
        "bools": np.array([True, False]),
        "empty": np.zeros((0, 2), dtype=np.int16),
        "nested": {"level": {1: np.arange(3, dtype=">i4")}},
    }


def test_every_kind_of_result_comes_back_bit_for_bit() -> None:
    results = _results()
    _same(results, _through_json(results))


def test_a_recorded_histogram_still_merges_exactly() -> None:
    # Mean storage: UHI's own serialisation writes NaN for the variance of a bin with one
    # fill, which would poison every later merge; the record keeps the exact state.
    profile = _results()["profile"]
    assert isinstance(profile, bh.Histogram)
    back = _through_json(profile)
    assert isinstance(back, bh.Histogram)
    twice, reference = back + profile, profile + profile
    np.testing.assert_array_equal(twice.view(flow=True).value, reference.view(flow=True).value)
    np.testing.assert_array_equal(twice.variances(flow=True), reference.variances(flow=True))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "cannot be recorded"),
        ({"h": "text"}, "str cannot be recorded"),
        (np.array(["a"]), "only numbers"),
        (np.array([object()]), "only numbers"),
        ({(1, 2): 1}, "use str or int keys"),
        (True, "bool"),
    ],
)
def test_what_cannot_be_recorded_says_why(value: object, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        encode_result(value)


def test_a_unit_record_round_trips() -> None:
    unit = WorkUnit("/data/a.root", "Events", 100, 250, "root")
    outcome = UnitOutcome(
        unit,
        result=_results(),
        columns=("MET_pt", "nJet"),
        bytes_read=123,
        seconds=0.5,
        cache_hits=1,
        cache_misses=2,
        peak_memory=10**8,
        data_cache=(1, 2, 3, 4),
        worker="host:42",
        started_at=1.7e9,
    )
    back, identity = unrecord(record(outcome, (999, "17")))
    assert identity == (999, "17")
    assert back.unit == unit
    _same(back.result, outcome.result)
    assert (back.columns, back.bytes_read, back.worker) == (outcome.columns, 123, "host:42")
    assert back.data_cache == (1, 2, 3, 4)


_GOOD_LINE = record(
    UnitOutcome(WorkUnit("/a.root", "Events", 0, 10), result={"n": 10}, worker="w"), (5, "v")
)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'{"saetta_record": 99}',
        _GOOD_LINE.replace('"saetta_record":1', '"saetta_record":"1"').encode(),
        _GOOD_LINE.replace(
            '"unit":["/a.root","Events",0,10', '"unit":["/a.root","Events",10,0'
        ).encode(),
        _GOOD_LINE.replace(
            '{"$dict":[["n",10]]}', '{"$dict":[["n",{"$pickle":"gASVAA=="}]]}'
        ).encode(),
        _GOOD_LINE.replace(
            '{"$dict":[["n",10]]}', '{"$array":"<f8","shape":[10],"data":"AAAA"}'
        ).encode(),
        _GOOD_LINE.replace(
            '{"$dict":[["n",10]]}', '{"$array":"|O","shape":[1],"data":"AAAAAAAAAAA="}'
        ).encode(),
        _GOOD_LINE.replace(
            '{"$dict":[["n",10]]}',
            '{"$hist":"hist.Hist","uhi":{"axes":[{"type":"regular","bins":100000000000}]},'
            '"raw":{"shape":[1],"data":""}}',
        ).encode(),
        _GOOD_LINE.replace('"worker":"w"', '"worker":1').encode(),
        b"[" * 100_000,
    ],
    ids=lambda line: line[:40].decode(errors="replace") if isinstance(line, bytes) else "?",
)
def test_malformed_records_are_refused(line: bytes) -> None:
    with pytest.raises(RecordError):
        unrecord(line)


def test_the_good_line_the_malformed_ones_derive_from_is_accepted() -> None:
    outcome, identity = unrecord(_GOOD_LINE)
    assert outcome.result == {"n": 10}
    assert identity == (5, "v")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=len(_GOOD_LINE) + 20), st.integers(0, len(_GOOD_LINE)))
def test_any_damage_to_a_record_is_a_record_error_or_a_valid_record(
    noise: bytes, where: int
) -> None:
    line = _GOOD_LINE.encode()
    damaged = line[:where] + noise + line[where + len(noise) // 2 :]
    try:
        outcome, _ = unrecord(damaged)
    except RecordError:
        return
    assert isinstance(outcome, UnitOutcome)


# --------------------------------------------------------------------------- the run directory


class _Planted:
    """A pickle that, if ever loaded, leaves a file behind: proof of code execution."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.write_text, (self.proof, "pwned"))


def test_a_planted_pickle_is_never_loaded(tmp_path: Path, small_files: list[Path]) -> None:
    run_dir = tmp_path / "run"
    first = saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    proof = tmp_path / "proof"
    payload = pickle.dumps(_Planted(proof))
    # Positive control: loading this payload does run code.
    pickle.loads(payload)
    assert proof.read_text() == "pwned"
    proof.unlink()
    for name in ("0.pkl", "1.pkl", ".0.pkl"):
        (run_dir / "units" / name).write_bytes(payload)
    (run_dir / "run.pkl").write_bytes(payload)
    again = saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    assert not proof.exists()
    np.testing.assert_array_equal(again["q1_met"].view(flow=True), first["q1_met"].view(flow=True))


def test_a_tampered_record_is_a_one_line_error_naming_the_file(
    tmp_path: Path, small_files: list[Path]
) -> None:
    run_dir = tmp_path / "run"
    saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    [segment] = (run_dir / "units").glob("*.jsonl")
    lines = segment.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"saetta_record":1', b'"saetta_record":1,"evil":"x"')
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(saetta.JournalError) as info:
        saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    message = str(info.value)
    assert f"{segment}:2" in message
    assert "\n" not in message


def test_an_unfinished_last_line_is_a_unit_to_run_again(
    tmp_path: Path, small_files: list[Path]
) -> None:
    run_dir = tmp_path / "run"
    first = saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    [segment] = (run_dir / "units").glob("*.jsonl")
    data = segment.read_bytes()
    segment.write_bytes(data[: -len(data.split(b"\n")[-2]) // 2 - 1])  # cut the last record
    again = saetta.run(adl.q1, small_files, chunk_size=100, run_dir=run_dir, progress=False)
    assert again.report.complete
    np.testing.assert_array_equal(again["q1_met"].view(flow=True), first["q1_met"].view(flow=True))
