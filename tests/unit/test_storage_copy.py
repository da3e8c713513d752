"""Copying while the listings go on: the plan's counts and the copies made agree with a plan made first."""

from __future__ import annotations

import threading

from lib.listing import MD5, Bucket

from ops.report import Meter
from ops.s3.base import ObjectInfo
from ops.storage import copy as storage_copy


def copying_into(target: Bucket, monkeypatch) -> list[str]:
    """Copies that land in `target` at once, named in the order they were made."""
    made: list[str] = []

    def store(src, dst, bucket, info, fetched):
        made.append(info.key)
        target.objects[info.key] = info.etag

    monkeypatch.setattr(storage_copy, "fetch_object", lambda src, bucket, info: info)
    monkeypatch.setattr(storage_copy, "store_object", store)
    return made


def test_what_differs_is_copied_and_the_rest_counted(monkeypatch):
    source = Bucket({"a": MD5["a"], "b": MD5["b"], "c": MD5["c"], "d": MD5["d"], "e": MD5["e"]})
    target = Bucket({"b": MD5["b"], "c": MD5["h"]})
    made = copying_into(target, monkeypatch)
    (plan,), outcomes = storage_copy.copy_while_listing(source, target, ["b"], target="preprod", force=False, jobs=2)
    assert sorted(made) == ["a", "c", "d", "e"]
    assert (plan.new, plan.changed, plan.identical, plan.status) == (3, 1, 1, "ok")
    assert (outcomes["b"].copied, outcomes["b"].failures) == (4, [])


def test_a_listing_found_out_of_order_mid_copy_is_compared_again_in_memory(monkeypatch, capsys):
    """`c` is copied before `a` shows the order is not S3's; then both sides are listed whole. `c`,
    already copied by this run, counts as copied, not as identical, and nothing is copied twice."""
    source = Bucket({"c": MD5["c"], "a": MD5["a"], "b": MD5["b"], "d": MD5["d"]})
    target = Bucket({"b": MD5["b"]})
    made = copying_into(target, monkeypatch)
    (plan,), outcomes = storage_copy.copy_while_listing(source, target, ["b"], target="preprod", force=False, jobs=1)
    assert "not S3's key order" in capsys.readouterr().err
    assert sorted(made) == ["a", "c", "d"]
    assert (outcomes["b"].copied, plan.identical, outcomes["b"].failures) == (3, 1, [])


def test_stopping_wakes_a_comparer_waiting_for_room_and_a_worker_waiting_for_a_copy(monkeypatch):
    """Ctrl-C sets the run's stop flag: every side blocked on the hand-off returns at once, without polling."""
    monkeypatch.setattr(storage_copy, "QUEUED", 1)
    with Meter("copied", 0, "objects", 0) as meter:
        full = storage_copy.CopyFeed(["b"], meter)
        assert full.hand_on("b", ObjectInfo("a", 1, MD5["a"]))
        empty = storage_copy.CopyFeed(["b"], meter)  # its listing goes on, and finds nothing yet
        said: list[object] = []
        waiting = [
            threading.Thread(target=lambda: said.append(full.hand_on("b", ObjectInfo("c", 1, MD5["c"])))),
            threading.Thread(target=lambda: said.append(list(empty.copies()))),
        ]
        for thread in waiting:
            thread.start()
        for thread in waiting:
            thread.join(0.3)
        assert all(thread.is_alive() for thread in waiting)  # both wait: no room, no copy yet
        full.stop.set()
        empty.stop.set()
        for thread in waiting:
            thread.join(2)
        assert not any(thread.is_alive() for thread in waiting)
    assert sorted(map(str, said)) == ["False", "[]"]


def test_the_copies_end_once_every_listing_has_ended_and_none_waits():
    with Meter("copied", 0, "objects", 0) as meter:
        feed = storage_copy.CopyFeed(["b", "c"], meter)
        assert feed.hand_on("b", ObjectInfo("a", 1, MD5["a"]))
        feed.listing_ended("b", [])
        feed.listing_ended("c", [])
        assert [(bucket, info.key) for bucket, info in feed.copies()] == [("b", "a")]
