"""The testbed history: calibrations and validations in SQLite, and the table of rates."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from saetta.cli.testbeds import testbeds as beds_group
from saetta.errors import UseCaseError
from saetta.usecase import history


def _entry(**changes: object) -> history.HistoryEntry:
    entry = history.HistoryEntry(
        kind="calibration", testbed="local", date="2026-01-01T10:00:00+00:00",
        saetta_version="0.1.0", host="node1", usecase="dimuon", analysis="adl.q5",
        rate_hz=1.0e6, events=400_000, workers=2, wall_s=3.5, alpha=0.05,
        peak_memory=200_000_000, predicted_s=None, verdict="FEASIBLE",
    )  # fmt: skip
    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


def test_where_the_history_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SAETTA_HISTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert history.history_path() == tmp_path / "data" / "saetta" / "history.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert history.history_path() == tmp_path / "home/.local/share/saetta/history.sqlite"
    monkeypatch.setenv("SAETTA_HISTORY", str(tmp_path / "h.sqlite"))
    assert history.history_path() == tmp_path / "h.sqlite"


def test_record_and_read_back_per_testbed(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "history.sqlite"
    assert history.entries("local", path) == ()  # no file yet: nothing, and no file made
    assert not path.exists()
    first = _entry()
    later = _entry(date="2026-03-01T10:00:00+00:00", rate_hz=1.2e6, saetta_version="0.2.0")
    validation = _entry(
        kind="validation", date="2026-03-01T10:05:00+00:00", alpha=None, predicted_s=4.2,
        verdict="PASS",
    )  # fmt: skip
    other = _entry(testbed="slurm-local")
    for e in (later, first, validation, other):  # out of order: read back by date
        assert history.record(e, path) == path
    assert history.entries("local", path) == (first, later, validation)
    assert history.entries("slurm-local", path) == (other,)
    assert len(history.entries(None, path)) == 4
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM history").fetchone() == (4,)


def test_table_shows_how_the_rate_evolved(tmp_path: Path) -> None:
    rows = (
        _entry(),
        _entry(date="2026-03-01T10:00:00+00:00", rate_hz=1.2e6, saetta_version="0.2.0"),
        _entry(
            date="2026-03-02T10:00:00+00:00",
            rate_hz=0.9e6,
            kind="validation",
            predicted_s=4.2,
            verdict="FAIL",
        ),
    )
    lines = history.format_history(rows).splitlines()
    assert lines[0].split()[:6] == ["date", "kind", "analysis", "saetta", "host", "rate/core"]
    assert "+0.0%" in lines[1]
    assert "+20.0%" in lines[2]
    assert "0.2.0" in lines[2]
    assert "-10.0%" in lines[3]
    assert "FAIL (pred 4.2 s)" in lines[3]


def test_unusable_history_is_a_saetta_error(tmp_path: Path) -> None:
    not_a_db = tmp_path / "history.sqlite"
    not_a_db.write_text("this is not SQLite " * 100)
    with pytest.raises(UseCaseError, match="cannot use the testbed history"):
        history.record(_entry(), not_a_db)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(UseCaseError, match="cannot use the testbed history"):
        history.record(_entry(), blocked / "sub" / "history.sqlite")


def test_testbeds_history_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    monkeypatch.setenv("SAETTA_HISTORY", str(path))
    runner = CliRunner()
    empty = runner.invoke(beds_group, ["history", "local"])
    assert empty.exit_code == 0
    assert "no calibration or validation recorded for testbed 'local'" in empty.output
    history.record(_entry(), path)
    history.record(_entry(rate_hz=1.1e6, date="2026-02-01T00:00:00+00:00"), path)
    shown = runner.invoke(beds_group, ["history", "local"])
    assert shown.exit_code == 0
    assert f"testbed 'local': 2 entries in {path}" in shown.output
    assert "+10.0%" in shown.output
    as_json = runner.invoke(beds_group, ["history", "local", "--json"])
    assert [e["rate_hz"] for e in json.loads(as_json.output)] == [1.0e6, 1.1e6]
