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


def test_a_name_made_after_one_was_removed_still_sorts_last(tmp_path, monkeypatch):
    """Backups pruned within the second they were made leave gaps: a new name never fills one,
    or the newest backup would sort before an older one (and be taken for it)."""
    monkeypatch.setattr(stamps, "utc_stamp", lambda: "2026-01-01T00-00-00Z")
    made = []
    for _ in range(3):
        made.append(tmp_path / stamps.unused_name(tmp_path, also=".partial-"))
        made[-1].mkdir()
    made[0].rmdir()  # pruned: the oldest two of a --keep 1 series
    made[1].rmdir()
    newest = tmp_path / stamps.unused_name(tmp_path, also=".partial-")
    newest.mkdir()
    assert sorted(tmp_path.iterdir(), key=stamps.stamp_order)[-1] == newest
    run = stamps.new_run_dir(tmp_path)
    assert sorted(tmp_path.iterdir(), key=stamps.stamp_order)[-1] == run


def test_next_stamp_comes_after_every_name_of_this_second():
    now = stamps.utc_stamp()
    assert stamps.stamp_order(Path(stamps.next_stamp({"2020-01-01T00-00-00Z"})))[1] == 0, "no counter needed"
    taken = {now, f"{now}-9", f"{now}-10"}
    following = stamps.next_stamp(taken)
    assert following not in taken and stamps.stamp_order(Path(following)) > stamps.stamp_order(Path(f"{now}-10"))
