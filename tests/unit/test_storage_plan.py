"""The sync plan compares two listings as they stream, in S3's key order; another order is compared in memory."""

from __future__ import annotations

import pytest
from lib.listing import MD5, Bucket

from ops.s3.base import ObjectInfo, ObjectList
from ops.storage import plan as storage_plan


def plan(source, target, delete=True):
    return storage_plan.plan_bucket(Bucket(source), Bucket(target), "b", force=False, delete=delete)


def test_streamed_plan_copies_new_and_changed_and_deletes_what_only_the_target_has():
    made = plan(
        {"a": MD5["a"], "b": MD5["b"], "d/x": MD5["c"], "é": MD5["e"]},
        {"a": MD5["a"], "b": MD5["h"], "c": MD5["c"], "d-y": MD5["d"], "z": MD5["f"]},
    )
    assert [o.key for o in made.copy] == ["b", "d/x", "é"]
    assert (made.new, made.changed, made.identical) == (2, 1, 1)
    assert made.delete == ["c", "d-y", "z"]
    assert made.target_objects == 5 and made.status == "ok"


def test_a_listing_out_of_s3_order_is_compared_in_memory_with_the_same_result(capsys):
    ordered = plan({"a": MD5["a"], "b": MD5["b"], "c": MD5["c"]}, {"b": MD5["b"], "x": MD5["d"]})
    shuffled = plan({"c": MD5["c"], "a": MD5["a"], "b": MD5["b"]}, {"x": MD5["d"], "b": MD5["b"]})
    assert "not S3's key order" in capsys.readouterr().err
    assert sorted(o.key for o in shuffled.copy) == [o.key for o in ordered.copy] == ["a", "c"]
    assert shuffled.delete == ordered.delete == ["x"]


@pytest.mark.parametrize(
    ("source", "target", "status"),
    [
        (None, {"a": MD5["a"]}, "absent"),
        ({"a": MD5["a"]}, None, storage_plan.NO_TARGET),
        ({}, {"a": MD5["a"]}, "empty"),
    ],
)
def test_missing_and_empty_buckets(source, target, status):
    made = plan(source, target)
    assert made.status == status
    assert list(made.copy) == []
    if status != storage_plan.NO_TARGET:
        assert made.delete == ["a"]  # recorded for check_deletes to refuse


def test_object_list_gives_back_what_it_was_given():
    objects = [
        ObjectInfo("a", 0, ""),
        ObjectInfo("d/é 😀", 5, "0123456789abcdef0123456789abcdef"),
        ObjectInfo("x", 7, "e-3"),
    ]
    held = ObjectList(objects)
    assert list(held) == objects and len(held) == 3 and held.total_size == 12
    held.append(ObjectInfo("", 1, "z"))
    assert list(held)[-1] == ObjectInfo("", 1, "z") and list(ObjectList()) == []
