"""Run-folder names: written and ordered in one place (no services)."""

from __future__ import annotations

from pathlib import Path

from ops import stamps


def test_same_second_runs_sort_in_the_order_they_were_made(tmp_path):
    made = [stamps.new_run_dir(tmp_path) for _ in range(12)]
    assert len(set(made)) == 12
    assert sorted(made, key=stamps.stamp_order) == made


def test_counter_sorts_numerically_not_as_text():
    names = [Path("2026-01-01T00-00-00Z-10"), Path("2026-01-01T00-00-00Z-9"), Path("2026-01-01T00-00-00Z")]
    assert [p.name for p in sorted(names, key=stamps.stamp_order)] == [
        "2026-01-01T00-00-00Z",
        "2026-01-01T00-00-00Z-9",
        "2026-01-01T00-00-00Z-10",
    ]


def test_unused_name_skips_partial_folders(tmp_path):
    first = stamps.unused_name(tmp_path, also=".partial-")
    (tmp_path / f".partial-{first}").mkdir()
    assert stamps.unused_name(tmp_path, also=".partial-") != first
