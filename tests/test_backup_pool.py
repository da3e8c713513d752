"""The pool of a remote-first series: an unchanged object costs the target nothing, a blob goes only when no
sealed backup names it, and a blob that went anyway is read again, never trusted."""

from __future__ import annotations

import json
import time

import pytest
from lib.backups import BASE, POOL, behind, blob_key
from lib.s3 import contents, fill

from devstack.faultproxy import FaultProxy


@pytest.fixture
def counted_target(project, offsite):
    """The backup target behind a proxy that logs each request it answers."""
    with behind(project, offsite, FaultProxy(offsite.port)) as proxy:
        yield proxy


def backed_up(project, *args: str) -> dict:
    made = project.run("backup-storage", "--to", "offsite", "--json", *args)
    assert made.code == 0, made.err
    time.sleep(1.1)  # the next backup gets a name of its own
    return json.loads(made.out)["backups"][0]


def pool_digests(server) -> set[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket="ops-backups", Prefix=POOL)
    return {item["Key"].rsplit("/", 1)[1] for page in pages for item in page.get("Contents", [])}


def digests(client, *buckets: str) -> set[str]:
    return {digest for bucket in buckets for digest in contents(client, bucket).values()}


def test_an_unchanged_object_costs_the_target_no_request(project, storage, offsite, counted_target):
    """Copying each unchanged object into each night's folder is a request an object: as slow as uploading it."""
    src = storage["prod"].client()
    fill(src, "avatars", 40, size=1024)
    backed_up(project)
    src.put_object(Bucket="avatars", Key="bulk/0003.bin", Body=b"changed")
    before = len(counted_target.answered)
    second = backed_up(project)
    writes = [path for _, method, path in counted_target.answered[before:] if method in ("PUT", "POST", "DELETE")]
    assert len(writes) < 10, writes  # the blob, the manifest, the lock, the records: not one per object
    assert [path for path in writes if "/blobs/" in path] == [f"/ops-backups/{blob_key(b'changed')}"]
    assert second["already_there"] == 39 and second["downloaded"] == 1


def test_a_pruned_backups_own_blobs_go_and_what_is_kept_still_restores(project, storage, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 6, size=2048)
    backed_up(project, "--keep-last", "2")
    first = digests(src, "avatars", "program-logos")
    src.put_object(Bucket="avatars", Key="bulk/0001.bin", Body=b"x" * 2048)  # same size: the high-water mark moves on
    second = backed_up(project, "--keep-last", "2")
    held_second = digests(src, "avatars", "program-logos")
    assert pool_digests(offsite) == first | held_second, "nothing is removed while every backup is kept"
    src.put_object(Bucket="avatars", Key="bulk/0002.bin", Body=b"y" * 2048)
    third = backed_up(project, "--keep-last", "2")
    assert len(third["removed"]) == 1

    kept = held_second | digests(src, "avatars", "program-logos")
    assert pool_digests(offsite) == kept, "the first backup's own blob goes; the shared ones stay"
    name = second["path"].split(":")[1]
    checked = project.run("verify-backup", "--backup", f"offsite:{name}", "--env", "prod")
    assert checked.code == 0, checked.out + checked.err


def test_a_blob_gone_from_the_pool_is_read_again_and_verify_names_it_meanwhile(project, storage, offsite):
    """A lifecycle rule or a hand can remove a blob: the backups naming it fail verify, and the next backup
    reads the object from the source instead of naming a blob that is not there."""
    src = storage["prod"].client()
    fill(src, "avatars", 5, size=1024)
    backed_up(project)
    offsite.client().delete_object(Bucket="ops-backups", Key=blob_key(bytes([2]) * 1024))

    checked = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert checked.code == 1, checked.out + checked.err
    assert "avatars/bulk/0002.bin" in checked.out + checked.err

    again = backed_up(project)
    assert (again["downloaded"], again["already_there"]) == (1, 4)
    checked = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert checked.code == 0, checked.out + checked.err


def test_a_killed_runs_blobs_are_removed_by_the_next_run(project, storage, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=1024)
    backed_up(project)
    # What a run killed after one upload leaves: its folder's mark and a blob no manifest names.
    orphan = blob_key(b"a killed run's object")
    target = offsite.client()
    target.put_object(Bucket="ops-backups", Key=orphan, Body=b"a killed run's object")
    target.put_object(Bucket="ops-backups", Key=f"{BASE}2026-01-01T00-00-00Z/_writing", Body=b"")

    made = project.run("backup-storage", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    assert "removing an unsealed backup" in made.err
    assert orphan.rsplit("/", 1)[1] not in pool_digests(offsite)
    assert pool_digests(offsite) == digests(src, "avatars", "program-logos")


def test_a_restore_from_the_pool_gives_back_every_object(project, storage, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=512)
    src.put_object(Bucket="avatars", Key="copy-of-0001.bin", Body=bytes([1]) * 512)  # one blob, two keys
    backed_up(project)
    restored = project.run(
        "restore-storage", "--to", "preprod", "--env", "prod", "--backup", "offsite:latest", "--buckets", "avatars"
    )
    assert restored.code == 0, restored.out + restored.err
    assert contents(storage["preprod"].client(), "avatars") == contents(src, "avatars")
