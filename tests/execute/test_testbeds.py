"""Testbeds read from YAML: every malformed field is one ExecutorError line, never a traceback.

The batch-system check against real SLURM and HTCondor is in ``test_batch.py``; here only
what needs no service: validation, and the check's missing-command and timeout branches.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saetta.errors import ExecutorError
from saetta.execute.testbeds import KINDS, load_testbeds
from saetta.execute.testbeds import Testbed as Bed  # a Test* name pytest would collect

GOOD = """\
testbeds:
  laptop: {type: local, workers: 4}
  lab: {type: dask, address: "tcp://10.0.0.5:8786"}
  lab6: {type: dask, address: "[::1]:8786"}
  cluster:
    type: slurm
    adapt: {minimum: 1, maximum: 50}
    startup_timeout: 5 minutes
    queue: debug
    job_extra_directives: ["--exclusive"]
  condor: {type: htcondor, workers: 2, startup_timeout: 90, memory: 2GB}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "testbeds.yaml"
    path.write_text(text)
    return path


def _load_one(tmp_path: Path, spec: object) -> Bed:
    path = _write(tmp_path, yaml.safe_dump({"testbeds": {"bed": spec}}))
    return load_testbeds(path)["bed"]


def _refused(tmp_path: Path, spec: object) -> str:
    with pytest.raises(ExecutorError) as info:
        _load_one(tmp_path, spec)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_valid_file_gives_the_expected_testbeds(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    beds = load_testbeds(path)
    assert set(beds) == {"local", "dask", "laptop", "lab", "lab6", "cluster", "condor"}
    assert beds["laptop"] == Bed("laptop", "local", workers=4, source=str(path))
    assert beds["laptop"].executor == "processes:4"
    assert beds["lab"].address == "tcp://10.0.0.5:8786"
    assert beds["lab"].executor == "dask://10.0.0.5:8786"
    cluster = beds["cluster"]
    assert (cluster.kind, cluster.adapt, cluster.workers) == ("slurm", (1, 50), None)
    assert cluster.startup_timeout == 300.0
    assert cluster.options == {"queue": "debug", "job_extra_directives": ["--exclusive"]}
    condor = beds["condor"]
    assert (condor.workers, condor.startup_timeout, condor.options) == (2, 90.0, {"memory": "2GB"})


# The three malformed testbeds of the issue, each beside the valid form of the same field.


def test_adapt_must_be_a_mapping_with_a_maximum(tmp_path: Path) -> None:
    assert _load_one(tmp_path, {"type": "slurm", "adapt": {"maximum": 5}}).adapt == (0, 5)
    message = _refused(tmp_path, {"type": "slurm", "adapt": [1, 5]})
    assert message == (
        f"testbed 'bed' in {tmp_path / 'testbeds.yaml'}: adapt must be a mapping like "
        "{minimum: 1, maximum: 10}, not list [1, 5]"
    )
    assert "maximum is missing" in _refused(tmp_path, {"type": "slurm", "adapt": {"minimum": 1}})
    assert "maximum must be an integer >= 3" in _refused(
        tmp_path, {"type": "slurm", "adapt": {"minimum": 3, "maximum": 2}}
    )


def test_startup_timeout_is_seconds_or_a_duration(tmp_path: Path) -> None:
    for value, seconds in [("5 minutes", 300.0), ("300s", 300.0), ("1.5 h", 5400.0), (42, 42.0)]:
        bed = _load_one(tmp_path, {"type": "slurm", "startup_timeout": value})
        assert bed.startup_timeout == seconds, value
    for value in ["5 parsecs", "soon", -5, 0, True, [300], ".inf"]:
        message = _refused(tmp_path, {"type": "slurm", "startup_timeout": value})
        assert "testbed 'bed' in " in message
        assert "startup_timeout must be a positive number of seconds" in message, value


def test_an_address_is_a_string_with_host_and_port(tmp_path: Path) -> None:
    assert _load_one(tmp_path, {"type": "dask", "address": "host:8786"}).address == "host:8786"
    message = _refused(tmp_path, {"type": "dask", "address": 8786})
    assert message == (
        f"testbed 'bed' in {tmp_path / 'testbeds.yaml'}: address must be a string like "
        '"tcp://host:8786", not the number 8786'
    )
    for value in ["host", "tls://host:8786", "host:99999", "a b:1", ""]:
        assert 'address must be like "tcp://host:8786"' in _refused(
            tmp_path, {"type": "dask", "address": value}
        )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"workers": 2}, "type must be one of local, dask, slurm, htcondor, not null"),
        ({"type": "slrum"}, "type must be one of local, dask, slurm, htcondor, not str 'slrum'"),
        ({"type": "local", "workers": 0}, "workers must be a positive integer, not int 0"),
        ({"type": "local", "workers": True}, "workers must be a positive integer, not bool"),
        ({"type": "local", "workers": "4"}, "workers must be a positive integer, not str '4'"),
        ({"type": "local", "worker": 4}, "unknown key 'worker'; did you mean 'workers'?"),
        ({"type": "dask", "queue": "x"}, "unknown key 'queue' (a dask testbed takes"),
        ({"type": "local", "address": "h:1"}, "address is only for type dask"),
        ({"type": "dask", "adapt": {"maximum": 2}}, "adapt is only for types slurm and htcondor"),
        ({"type": "slurm", "workers": 2, "adapt": {"maximum": 2}}, "workers or adapt, not both"),
        ({"type": "slurm", "adapt": {"max": 2}}, "unknown key str 'max'"),
        ({"type": "slurm", "job_script_prologue": "module load x"}, "must be a list of strings"),
        ({"type": "slurm", "job_extra_directives": [1]}, "must be a list of strings"),
        ({"type": "slurm", 1: "x"}, "option names must be strings, not int 1"),
        ([{"type": "local"}], "must be a mapping like {type: local, workers: 4}, not list"),
    ],
)
def test_each_malformed_field_is_named(tmp_path: Path, spec: object, expected: str) -> None:
    message = _refused(tmp_path, spec)
    assert message.startswith(f"testbed 'bed' in {tmp_path / 'testbeds.yaml'}: ")
    assert expected in message


def test_null_means_not_given(tmp_path: Path) -> None:
    spec = {"type": "slurm", "workers": None, "adapt": None, "startup_timeout": None}
    assert _load_one(tmp_path, spec) == Bed("bed", "slurm", source=str(tmp_path / "testbeds.yaml"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- laptop\n- lab\n", "must hold a mapping 'testbeds: {name: {type: ...}}', not list"),
        ("testbeds: [laptop, lab]\n", "'testbeds:' must map names to testbeds"),
        ("testbeds:\n  1: {type: local}\n", "testbed names must be non-empty strings, not int 1"),
        ("testbeds:\n  null: {type: local}\n", "testbed names must be non-empty strings, not null"),
        ("testbed:\n  a: {type: local}\n", "unknown top-level key str 'testbed'"),
        ("testbeds: {a: {type: local}\n", "cannot read testbeds file"),
        ("testbeds: {a: {type: local, workers: !!int four}}\n", "cannot read testbeds file"),
        ("testbeds: {a: {type: local, when: 2001-02-30}}\n", "cannot read testbeds file"),
        ("testbeds: {a: {type: local, ok: !!bool maybe}}\n", "cannot read testbeds file"),
        ("testbeds: " + "[" * 5000 + "\n", "cannot read testbeds file"),
        ("testbeds: !!python/object:os.system {}\n", "cannot read testbeds file"),
    ],
)
def test_a_malformed_document_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ExecutorError) as info:
        load_testbeds(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_and_undecodable_files(tmp_path: Path) -> None:
    assert set(load_testbeds(_write(tmp_path, ""))) == {"local", "dask"}
    assert set(load_testbeds(_write(tmp_path, "testbeds:\n"))) == {"local", "dask"}
    (tmp_path / "testbeds.yaml").write_bytes(b"\xff\xfe\x00testbeds")
    with pytest.raises(ExecutorError, match="cannot read testbeds file"):
        load_testbeds(tmp_path / "testbeds.yaml")


# Arbitrary YAML: only ExecutorError (one line) or a well-formed Testbed.

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["5 min", "300s", "tcp://h:8786", "h:8786", "local", "slurm", "debug"])
    | st.binary(max_size=8)
    | st.dates()
)
_KEYS = st.text(max_size=10) | st.integers() | st.none() | st.booleans()
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    ["type", "workers", "adapt", "address", "startup_timeout", "job_script_prologue", "queue"]
)
_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _assert_well_formed(bed: Bed) -> None:
    assert bed.kind in KINDS
    assert bed.workers is None or (type(bed.workers) is int and bed.workers >= 1)
    assert bed.adapt is None or (0 <= bed.adapt[0] <= bed.adapt[1] and bed.adapt[1] >= 1)
    assert bed.address is None or isinstance(bed.address, str)
    assert isinstance(bed.startup_timeout, float)
    assert bed.startup_timeout > 0
    assert all(isinstance(k, str) for k in bed.options)


def _load_or_refuse(path: Path) -> None:
    try:
        beds = load_testbeds(path)
    except ExecutorError as exc:
        message = str(exc)
    else:
        for bed in beds.values():
            _assert_well_formed(bed)
        return
    assert "\n" not in message
    assert str(path) in message


@_SETTINGS
@given(kind=st.sampled_from(KINDS), name=_FIELDS, value=_VALUES)
def test_any_value_of_any_field(tmp_path: Path, kind: str, name: str, value: Any) -> None:
    spec = {"type": kind, name: value} if name != "type" else {"type": value}
    _load_or_refuse(_write(tmp_path, yaml.safe_dump({"testbeds": {"bed": spec}})))


@_SETTINGS
@given(spec=st.dictionaries(_FIELDS | _KEYS, _VALUES, max_size=5))
def test_any_testbed_mapping(tmp_path: Path, spec: dict[Any, Any]) -> None:
    _load_or_refuse(_write(tmp_path, yaml.safe_dump({"testbeds": {"bed": spec}})))


@_SETTINGS
@given(document=_VALUES | st.dictionaries(st.just("testbeds"), _VALUES, min_size=1))
def test_any_document(tmp_path: Path, document: Any) -> None:
    _load_or_refuse(_write(tmp_path, yaml.safe_dump(document)))


@_SETTINGS
@given(
    text=st.text(
        alphabet=st.sampled_from(list("testbeds: {}[],-!&*?|>'\"#%@`\n 0a1.")), max_size=60
    )
)
def test_any_text(tmp_path: Path, text: str) -> None:
    _load_or_refuse(_write(tmp_path, text))


# The batch-system check, where no service is needed.


def _executable(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("kind", "present", "missing", "node"),
    [
        ("slurm", [], "sbatch", "a SLURM login node"),
        ("slurm", ["sbatch"], "squeue", "a SLURM login node"),
        ("htcondor", [], "condor_submit", "an HTCondor submit node"),
        ("htcondor", ["condor_submit"], "condor_q", "an HTCondor submit node"),
    ],
)
def test_check_names_a_missing_command(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    present: list[str],
    missing: str,
    node: str,
) -> None:
    for name in present:
        _executable(tmp_path, name, "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutorError) as info:
        Bed("x", kind).check_scheduler()
    assert str(info.value) == f"testbed 'x' ({kind}): {missing} not found on PATH; is this {node}?"


def test_check_gives_up_on_a_scheduler_that_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _executable(tmp_path, "condor_submit", "exit 0")
    _executable(tmp_path, "condor_q", "exec sleep 60")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CONDOR_CONFIG", raising=False)
    started = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        Bed("x", "htcondor").check_scheduler(timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert str(info.value) == (
        "testbed 'x' (htcondor): 'condor_q -totals' failed (no answer within 0.5 s); "
        "is the condor_schedd running? (CONDOR_CONFIG unset)"
    )


def test_only_batch_testbeds_are_checked() -> None:
    with pytest.raises(ExecutorError, match="testbed 'laptop' is local, not a batch system"):
        Bed("laptop", "local").check_scheduler()
