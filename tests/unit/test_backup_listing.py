"""A backup's objects and their paths: as the listing goes (S3's order), or listed whole first (any other)."""

from __future__ import annotations

import pytest
from lib.listing import MD5, Bucket

from ops.backup.buckets import _objects
from ops.s3 import objects as s3objects

KEYS = ["a", "a-b", "a.png", "a/b", "a/b/c", "b", "b/%", "c/./d"]


def given(s3, buckets, *, in_order):
    present, objects = _objects(s3, buckets, in_order=in_order)
    return present, sorted((bucket, info.key, path) for bucket, info, path in objects)


def test_a_listing_in_order_gives_what_a_whole_listing_gives():
    s3 = Bucket(dict.fromkeys(KEYS, MD5["a"]), page=3)
    streamed, whole = given(s3, ["b1", "b2"], in_order=True), given(s3, ["b1", "b2"], in_order=False)
    assert streamed == whole
    assert len(whole[1]) == 2 * len(KEYS) and len({path for _, _, path in whole[1]}) == 2 * len(KEYS)


def test_a_listing_out_of_order_is_refused_for_streaming_and_read_whole_instead():
    s3 = Bucket(dict.fromkeys(reversed(KEYS), MD5["a"]), page=3)
    with pytest.raises(s3objects.OutOfOrder):
        given(s3, ["b1"], in_order=True)
    assert given(s3, ["b1"], in_order=False) == given(Bucket(dict.fromkeys(KEYS, MD5["a"])), ["b1"], in_order=False)


def test_a_missing_bucket_is_left_out():
    assert given(Bucket(None), ["b1"], in_order=True) == ([], [])
    assert given(Bucket(None), ["b1"], in_order=False) == ([], [])
