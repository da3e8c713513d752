"""What a task shows and journals when it fails in a way nobody planned for (no services)."""

from __future__ import annotations

import json

import pytest
from invoke import Context, Exit

from ops import tasking


def crashing(c: Context) -> None:
    raise KeyError("column 'nme' in the plan")


def test_a_crash_is_one_line_and_journaled_as_crashed(tmp_path, monkeypatch):
    ini = tmp_path / "environments.ini"
    ini.write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    monkeypatch.setenv("OPS_ENVIRONMENTS", str(ini))
    monkeypatch.delenv("OPS_DEBUG", raising=False)
    task = tasking.ops_task(journal=True)(crashing)
    with pytest.raises(Exit) as raised:
        task(Context())
    assert raised.value.code == 1
    assert "crashed: KeyError" in raised.value.message and "OPS_DEBUG=1" in raised.value.message
    entry = json.loads((tmp_path / "ops-journal.jsonl").read_text().splitlines()[-1])
    assert entry["exit_code"] == 1 and entry["outcome"].startswith("crashed: KeyError")


def test_ops_debug_shows_the_exception_itself(tmp_path, monkeypatch):
    ini = tmp_path / "environments.ini"
    ini.write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    monkeypatch.setenv("OPS_ENVIRONMENTS", str(ini))
    monkeypatch.setenv("OPS_DEBUG", "1")
    with pytest.raises(KeyError):
        tasking.ops_task(journal=True)(crashing)(Context())
