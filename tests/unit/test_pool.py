"""The pool's names: a digest read from a manifest is a SHA-256 or refused, and membership holds in any order."""

from __future__ import annotations

import hashlib

import pytest

from ops.backup import pool
from ops.config import BackupTarget, Environment
from ops.errors import OperationFailed

POOL = "nightly/blobs/prod-ref/"


def sha(n: int) -> str:
    return hashlib.sha256(b"%d" % n).hexdigest()


@pytest.mark.parametrize("forged", ["../../etc/passwd", "A" * 64, sha(1)[:63], sha(1) + "/x", None, 7, ""])
def test_a_digest_that_is_no_sha256_names_no_key(forged):
    with pytest.raises(OperationFailed, match="no SHA-256"):
        pool.blob_key(POOL, forged)
    assert forged not in pool.Blobs([sha(1)])


def test_keys_and_digests_map_one_to_one():
    digest = sha(3)
    key = pool.blob_key(POOL, digest)
    assert key == f"{POOL}{digest[:2]}/{digest}"
    assert pool.digest_of(POOL, key) == digest
    assert pool.digest_of(POOL, f"{POOL}zz/{digest}") is None, "a blob filed under the wrong fan-out is not ours"
    assert pool.digest_of(POOL, f"{POOL}{digest[:2]}/{digest}.tmp") is None


def test_membership_in_listing_order_and_out_of_it():
    digests = [sha(n) for n in range(2000)]
    for order in (sorted(digests), sorted(digests, reverse=True), digests):
        blobs = pool.Blobs(order[:1000])
        assert len(blobs) == 1000
        assert all(d in blobs for d in order[:1000])
        assert not any(d in blobs for d in order[1000:])


def test_the_pool_is_the_environments_and_never_read_from_a_manifest():
    env = Environment(name="prod", ref="abc")
    target = BackupTarget("offsite", "ops-backups", "nightly", Environment(name="offsite"))
    assert pool.pool_prefix(target, env) == "nightly/blobs/prod-abc/"
    assert pool.pooled({"layout": "pool"}) and not pool.pooled({}) and not pool.pooled({"layout": "../x"})


def test_a_blob_is_held_only_with_the_size_and_md5_its_listing_gives():
    md5 = "0" * 31 + "1"
    blobs = pool.Blobs([(sha(2), 10, md5), (sha(1), 5, None)])  # out of order: sorted with what it says
    assert blobs.holds(sha(2), 10, md5)
    assert not blobs.holds(sha(2), 10, "f" * 32), "other bytes of the same size"
    assert not blobs.holds(sha(2), 11, md5)
    assert not blobs.holds(sha(2), 10, "not an md5") and not blobs.holds(sha(3), 10, md5)
    assert blobs.holds(sha(1), 5, "a" * 32), "a multipart ETag vouches for the size alone"


def test_blobs_named_before_the_listing_are_spooled_and_each_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(pool.Named, "CHUNK", 2)  # pieces of two: the check crosses their edges
    md5 = "0" * 31 + "1"
    blobs = pool.Blobs([(sha(n), 10, md5) for n in range(1, 5)] + [(sha(9), 7, None)])
    named = pool.Named(tmp_path / "named")
    for n in (1, 2, 3, 4):
        named.add(pool.short(sha(n)), 10, pool.short(md5))
    named.add(pool.short(sha(9)), 7, -2)  # a multipart blob: its size is the check
    assert named.lost(blobs) == 0
    named.add(pool.short(sha(5)), 10, pool.short(md5))  # gone from the pool
    named.add(pool.short(sha(1)), 11, pool.short(md5))  # the MD5 of another size: not these bytes
    named.add(pool.short(sha(2)), 10, -2)  # no MD5 named where the listing has one
    assert named.lost(blobs) == 3
    assert (tmp_path / "named").stat().st_size == 8 * 3 * 8, "what was named is on disk, not held"
    named.close()
