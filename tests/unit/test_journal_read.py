"""Reading the ops journal: damaged lines are counted and skipped, names match exactly (no services)."""

from __future__ import annotations

import json

from ops import journal


def line(**fields) -> bytes:
    entry = {"time": "2026-11-30T10:00:00+00:00", "task": "sync-data", "envs": ["prod"], "exit_code": 0} | fields
    return json.dumps(entry).encode() + b"\n"


def test_damaged_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "ops-journal.jsonl"
    path.write_bytes(
        line()
        + b"[1,2]\n"
        + b'{"time": "2026-11-30T1\xff"}\n'
        + b'{"time": "not a time"}\n'
        + b"\n"
        + line(task="backup")
    )
    report = journal.read(path)
    assert [e["task"] for e in report.entries] == ["backup", "sync-data"]
    assert report.damaged == 3
    assert "3 damaged lines skipped" in report.footer()


def test_a_time_without_a_zone_is_utc_with_since(tmp_path):
    path = tmp_path / "ops-journal.jsonl"
    path.write_bytes(line(time="2026-11-30T10:00:00") + line(time="2020-01-01T00:00:00"))
    report = journal.read(path, since="2026-11-01")
    assert [e["time"] for e in report.entries] == ["2026-11-30T10:00:00"] and report.damaged == 0


def test_environments_match_exactly(tmp_path):
    path = tmp_path / "ops-journal.jsonl"
    path.write_bytes(line(envs=["prod"]) + line(envs=["preprod"]) + line(envs="prod"))
    assert journal.read(path, env="pro").entries == []
    assert [e["envs"] for e in journal.read(path, env="prod").entries] == [["prod"]]
