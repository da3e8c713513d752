"""Copying while the listings go on: the plan's counts and the copies made agree with a plan made first."""

from __future__ import annotations

from lib.listing import MD5, Bucket

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
