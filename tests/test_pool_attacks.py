"""Attacks on the pool of remote-first backups (`--to`): tampered manifests at the target, blobs that
rot there, the sweep, and runs killed at any request."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
from lib.backups import BASE, LOCKS, POOL, PROD_REF, behind, blob_key, remote_names
from lib.s3 import contents, fill

from devstack.faultproxy import FaultProxy

METADATA = "_backup_metadata.json"


def backed_up(project, *args: str) -> dict:
    made = project.run("backup-storage", "--to", "offsite", "--json", *args)
    assert made.code == 0, made.out[-1500:] + made.err[-1500:]
    time.sleep(1.1)  # the next backup gets a name of its own
    return json.loads(made.out)["backups"][0]


def name_of(made: dict) -> str:
    return made["path"].split(":")[1]


def verify(project, backup: str = "offsite:latest"):
    return project.run("verify-backup", "--backup", backup, "--env", "prod")


def pool_digests(server) -> set[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket="ops-backups", Prefix=POOL)
    return {item["Key"].rsplit("/", 1)[1] for page in pages for item in page.get("Contents", [])}


def read_manifest(server, base: str, name: str) -> str:
    body = server.client().get_object(Bucket="ops-backups", Key=f"{base}{name}/{METADATA}")["Body"].read()
    return body.decode()


def write_manifest(server, base: str, name: str, text: str) -> None:
    server.client().put_object(Bucket="ops-backups", Key=f"{base}{name}/{METADATA}", Body=text.encode())


def retag(text: str, key: str, **changes) -> str:
    """The manifest `text` with the entry of object `key` changed (format 2: one line an object)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(json.dumps(key) + ": "):
            comma = line.endswith(",")
            entry = json.loads(line.rstrip(",").split(": ", 1)[1])
            for field, value in changes.items():
                if value is None:
                    entry.pop(field, None)
                else:
                    entry[field] = value
            lines[i] = json.dumps(key) + ": " + json.dumps(entry) + ("," if comma else "")
            return "\n".join(lines)
    raise AssertionError(f"{key} not in the manifest")


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def clean(result) -> None:
    assert "Traceback" not in result.out + result.err, result.err[-2000:]


# ---------------------------------------------------------------- a blob that rots at the target


def test_a_blob_corrupted_at_the_target_is_not_named_again_by_the_next_backup(project, storage, offsite):
    """Same size, other bytes (bit rot, a hand): verify names it, and the next backup must not name the
    rotten blob again as the unchanged object's content (every backup after would fail verify until the
    object changes at the source). The listing it makes anyway has each blob's ETag: the MD5 of its bytes."""
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=1024)
    first = name_of(backed_up(project))
    victim = blob_key(bytes([2]) * 1024)
    offsite.client().put_object(Bucket="ops-backups", Key=victim, Body=b"r" * 1024)
    bad = verify(project)
    assert bad.code == 1 and "avatars/bulk/0002.bin" in bad.out + bad.err, bad.out + bad.err

    again = backed_up(project)
    ok = verify(project)
    assert ok.code == 0, ok.out[-1500:] + ok.err[-1500:]
    assert (again["downloaded"], again["already_there"]) == (1, 3)
    healed = verify(project, "offsite:" + first)
    assert healed.code == 0, "the blob was written again with its own bytes: " + healed.out[-800:]


def test_a_blob_replaced_at_the_target_by_a_multipart_upload_is_not_named_again(project, storage, moto_port):
    """As above, the other bytes uploaded in parts to a target that answers with S3's multipart ETags (moto):
    the listing's ETag is then no MD5, only the size agrees, and a check by size alone names the rotten
    blob in every backup after, while verify (by the listing's MD5) cannot tell either."""
    from lib.s3 import empty_bucket, moto_client, s3_secrets

    target = moto_client(moto_port)
    empty_bucket(target, "ops-parts")
    project.extra += f"\n[offsite]\nstorage_url = http://127.0.0.1:{moto_port}\nbucket = ops-parts\nprefix = nightly\n"
    project.secrets.update(s3_secrets("offsite", "moto", "moto-secret"))
    fill(storage["prod"].client(), "avatars", 4, size=1024)
    backed_up(project)
    victim = blob_key(bytes([2]) * 1024)
    upload = target.create_multipart_upload(Bucket="ops-parts", Key=victim)["UploadId"]
    part = target.upload_part(Bucket="ops-parts", Key=victim, UploadId=upload, PartNumber=1, Body=b"r" * 1024)
    target.complete_multipart_upload(
        Bucket="ops-parts",
        Key=victim,
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert "-" in target.head_object(Bucket="ops-parts", Key=victim)["ETag"]
    again = backed_up(project)
    body = target.get_object(Bucket="ops-parts", Key=victim)["Body"].read()
    assert (again["downloaded"], body) == (1, bytes([2]) * 1024), again


def test_a_manifest_naming_another_objects_blob_is_not_propagated(project, storage, offsite):
    """The newest manifest's entry of one object names the blob of another object (a sha256 edited, the
    size, ETag and MD5 left): verify names it, and the next backup must read the object again rather than
    copy the wrong name into every backup after."""
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=1024)
    first = name_of(backed_up(project))
    text = read_manifest(offsite, BASE, first)
    write_manifest(offsite, BASE, first, retag(text, "bulk/0001.bin", sha256=sha(bytes([3]) * 1024)))
    bad = verify(project)
    assert bad.code == 1 and "avatars/bulk/0001.bin" in bad.out + bad.err, bad.out + bad.err

    backed_up(project)
    ok = verify(project)
    assert ok.code == 0, ok.out[-1500:] + ok.err[-1500:]


def test_a_manifest_naming_another_objects_blob_with_its_md5_too_is_not_propagated(project, storage, offsite):
    """As above, with the entry's MD5 edited to the other blob's as well: the pool's listing then agrees
    with the entry, so only the source's ETag (the object's own MD5) tells the entry is not this object's.
    The next backup must read it again, not name the other object's bytes with verify saying OK."""
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=1024)
    first = name_of(backed_up(project))
    text = read_manifest(offsite, BASE, first)
    other = bytes([3]) * 1024
    forged = retag(text, "bulk/0001.bin", sha256=sha(other), md5=hashlib.md5(other).hexdigest())
    write_manifest(offsite, BASE, first, forged)

    again = backed_up(project)
    assert again["downloaded"] == 1, again
    latest = read_manifest(offsite, BASE, name_of(again))
    assert sha(bytes([3]) * 1024) not in latest.split(json.dumps("bulk/0001.bin"), 1)[1].split("\n", 1)[0]
    ok = verify(project)
    assert ok.code == 0, ok.out[-1500:] + ok.err[-1500:]


# ---------------------------------------------------------------- hostile sha256 values in a manifest


OTHER_ENV_SHA = "nightly/blobs/preprod-jtzcrirqflfnagceendt/00/" + "0" * 64


@pytest.mark.parametrize(
    "value",
    # Every other form (upper case, a number, too short) is refused by tests/unit/test_pool.py's same rule.
    ["../../preprod-jtzcrirqflfnagceendt/aa/" + "a" * 64, OTHER_ENV_SHA, None],
    ids=["dot-dot", "other-env-key", "missing"],
)
def test_a_hostile_sha256_is_named_and_nothing_reads_outside_the_pool(project, storage, offsite, value):
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    first = name_of(backed_up(project))
    text = read_manifest(offsite, BASE, first)
    write_manifest(offsite, BASE, first, retag(text, "bulk/0001.bin", sha256=value))

    checked = verify(project)
    clean(checked)
    assert checked.code == 1, checked.out + checked.err
    restored = project.run(
        "restore-storage", "--to", "preprod", "--env", "prod", "--backup", "offsite:latest", "--buckets", "avatars"
    )
    clean(restored)
    assert restored.code == 1, restored.out + restored.err
    assert contents(storage["preprod"].client(), "avatars") == {}, "nothing restored"
    listed = project.run("backups", "--env", "prod", "--target", "offsite")
    clean(listed)
    assert listed.code == 0, listed.err

    # The next backup reads that object again, and what it seals verifies; the sweep keeps every blob a
    # sealed manifest names.
    again = backed_up(project, "--keep-last", "2")
    assert again["downloaded"] == 1, again
    clean(verify(project))
    assert verify(project).code == 0
    assert pool_digests(offsite) >= set(contents(src, "avatars").values())


@pytest.mark.parametrize("layout", ["pool/../x", None])
def test_a_manifest_whose_layout_is_not_pool_fails_verify_and_the_next_backup_reads_again(
    project, storage, offsite, layout
):
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    first = name_of(backed_up(project))
    head, rest = read_manifest(offsite, BASE, first).split("\n", 1)
    fields = json.loads(head + "}}")
    if layout is None:
        fields.pop("layout")
    else:
        fields["layout"] = layout
    write_manifest(offsite, BASE, first, json.dumps(fields)[:-3] + "{\n" + rest)
    checked = verify(project)
    clean(checked)
    assert checked.code == 1, checked.out + checked.err
    again = backed_up(project)
    assert again["downloaded"] == 3, again
    assert verify(project).code == 0


# ---------------------------------------------------------------- the sweep


def test_a_manifest_that_cannot_be_read_in_a_buckets_series_stops_the_sweep(project, storage, offsite):
    """A damaged manifest in the `+avatars` series: the sweep cannot know what it names, so it removes nothing."""
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    some = project.run("backup-storage", "--to", "offsite", "--buckets", "avatars", "--json")
    assert some.code == 0, some.err
    partial = name_of(json.loads(some.out)["backups"][0])
    time.sleep(1.1)
    src.put_object(Bucket="avatars", Key="only-in-partial.bin", Body=b"p" * 512)
    kept_by_partial = sha(b"p" * 512)
    base = f"nightly/prod-{PROD_REF}+avatars/"
    second = project.run("backup-storage", "--to", "offsite", "--buckets", "avatars", "--json")
    assert second.code == 0, second.err
    partial2 = name_of(json.loads(second.out)["backups"][0])
    time.sleep(1.1)
    text = read_manifest(offsite, base, partial2)
    write_manifest(offsite, base, partial2, text[: len(text) // 2])  # cut short
    src.delete_object(Bucket="avatars", Key="only-in-partial.bin")
    for _ in range(3):
        made = project.run("backup-storage", "--to", "offsite", "--json", "--keep-last", "1")
        assert made.code == 0, made.err
        time.sleep(1.1)
    assert "unused objects not removed" in made.err, made.err
    assert kept_by_partial in pool_digests(offsite)
    assert partial in remote_names(offsite, base)


def test_a_manifest_cut_short_at_a_line_end_stops_the_sweep(project, storage, offsite):
    """A manifest that lost its last lines (cut at a line's end: each object's line still reads) names fewer
    objects than its first line counts: the sweep must not take it at its word and remove the rest's blobs."""
    src = storage["prod"].client()
    fill(src, "avatars", 2, size=512)
    src.put_object(Bucket="avatars", Key="z-only-here.bin", Body=b"z" * 512)
    first = name_of(backed_up(project))
    lines = read_manifest(offsite, BASE, first).split("\n")
    # Cut just before the line of the object only it names (lines come in the order objects were done).
    cut = next(i for i, line in enumerate(lines) if line.startswith('"z-only-here.bin"'))
    write_manifest(offsite, BASE, first, "\n".join(lines[:cut]) + "\n")
    src.delete_object(Bucket="avatars", Key="z-only-here.bin")
    # What a killed run leaves makes the next run sweep, though it prunes nothing.
    offsite.client().put_object(Bucket="ops-backups", Key=f"{BASE}2026-01-01T00-00-00Z/_writing", Body=b"")
    made = project.run("backup-storage", "--to", "offsite", "--json")
    assert made.code == 0, made.err[-1500:]
    assert "removing an unsealed backup" in made.err
    assert sha(b"z" * 512) in pool_digests(offsite), "the blob only the damaged manifest named was removed"
    assert "unused objects not removed" in made.err, made.err
    damaged = verify(project, f"offsite:{first}")
    clean(damaged)
    assert damaged.code == 1, damaged.out + damaged.err
    listed = project.run("backups", "--env", "prod", "--target", "offsite")
    clean(listed)


def test_a_sealed_backup_with_a_name_that_is_no_time_keeps_its_blobs(project, storage, offsite):
    """A backup copied by hand under a name of its own (`before-migration`) is sealed: the sweep keeps what
    it names even after every backup that shared those blobs is pruned."""
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    first = name_of(backed_up(project))
    client = offsite.client()
    for item in client.list_objects_v2(Bucket="ops-backups", Prefix=f"{BASE}{first}/")["Contents"]:
        key = item["Key"].replace(f"/{first}/", "/before-migration/")
        client.copy_object(Bucket="ops-backups", Key=key, CopySource={"Bucket": "ops-backups", "Key": item["Key"]})
    for i in range(3):
        src.put_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin", Body=b"new %d" % i * 200)
    made = [backed_up(project, "--keep-last", "1") for _ in range(2)]
    assert first not in remote_names(offsite), made
    held = verify(project, "offsite:before-migration")
    assert held.code == 0, held.out[-1500:] + held.err[-1500:]


def test_a_pruned_backup_sharing_blobs_with_a_kept_one_and_a_full_series(project, storage, offsite):
    """A full snapshot (its own series) names blobs the storage series' pruned nights named: the sweep keeps them."""
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    full = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert full.code == 0, full.err
    time.sleep(1.1)
    backed_up(project, "--keep-last", "1")
    for i in range(3):
        src.put_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin", Body=b"changed %d" % i * 64)
    backed_up(project, "--keep-last", "1")
    backed_up(project, "--keep-last", "1")
    names = remote_names(offsite, f"nightly/full/prod-{PROD_REF}/")
    assert len(names) == 1
    held = verify(project, "offsite:" + next(iter(names)))
    assert held.code == 0, held.out[-1500:] + held.err[-1500:]


# ---------------------------------------------------------------- a run killed at any request


class KillingProxy(FaultProxy):
    """The target behind a proxy that SIGKILLs `victim` when it makes its `kill_at`th request (which never
    reaches the target), and counts the requests of a run left alone."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.victim: subprocess.Popen | None = None
        self.kill_at = 0
        self.seen = 0

    def forward(self, handler) -> None:
        with self.lock:
            self.seen += 1
            doomed = self.victim is not None and self.seen == self.kill_at
        if doomed and self.victim is not None:
            os.kill(self.victim.pid, signal.SIGKILL)
            self.victim.wait(timeout=30)
            handler.close_connection = True
            return
        super().forward(handler)


@pytest.fixture
def killing_target(project, offsite):
    with behind(project, offsite, KillingProxy(offsite.port)) as proxy:
        yield proxy


def named_digests(server) -> set[str]:
    """Every blob a sealed pooled manifest at the target names."""
    client, named = server.client(), set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="ops-backups", Prefix="nightly/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/" + METADATA) and "/records/" not in item["Key"]:
                whole = json.loads(client.get_object(Bucket="ops-backups", Key=item["Key"])["Body"].read())
                if whole.get("layout") == "pool":
                    named |= {e["sha256"] for b in whole["buckets"].values() for e in b["manifest"].values()}
    return named


# Small here (two kills); POOL_KILL_STRIDE=1 kills at every request (5 minutes).
KILL_STRIDE = int(os.environ.get("POOL_KILL_STRIDE", "17"))


def test_a_run_killed_at_any_request_leaves_latest_verifying_and_the_next_run_cleans_up(
    project, storage, offsite, killing_target
):
    """A `--to` run that prunes and sweeps, SIGKILLed at its Nth request to the target (every `KILL_STRIDE`th N):
    `latest` still verifies, and the next run leaves exactly the blobs the sealed backups name."""
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=700)
    backed_up(project, "--keep-last", "1")
    src.put_object(Bucket="avatars", Key="bulk/0000.bin", Body=b"round 0" * 100)
    before = killing_target.seen
    backed_up(project, "--keep-last", "1")
    requests = killing_target.seen - before
    assert requests > 10, requests
    for round_, kill_at in enumerate(range(1, requests + 1, KILL_STRIDE), start=1):
        src.put_object(Bucket="avatars", Key=f"bulk/{round_ % 4:04d}.bin", Body=b"round %d" % round_ * 100)
        killing_target.seen, killing_target.kill_at = 0, kill_at
        killing_target.victim = project.start("backup-storage", "--to", "offsite", "--keep-last", "1")
        killing_target.victim.communicate(timeout=120)
        killed = killing_target.victim.returncode
        killing_target.victim = None
        assert killed == -signal.SIGKILL or kill_at > killing_target.seen, (kill_at, killed)
        latest = verify(project)
        assert latest.code == 0, (kill_at, latest.out[-1200:], latest.err[-1200:])
        time.sleep(1.1)
        src.put_object(Bucket="avatars", Key="after.bin", Body=b"after %d" % round_ * 100)
        backed_up(project, "--keep-last", "1")
        latest = verify(project)
        assert latest.code == 0, (kill_at, latest.out[-1200:], latest.err[-1200:])
        assert pool_digests(offsite) == named_digests(offsite), f"killed at request {kill_at}"
        assert all(remote_names(offsite).values()), (kill_at, remote_names(offsite))


# ---------------------------------------------------------------- a target whose listings lag behind


class LaggingProxy(FaultProxy):
    """The target behind a proxy whose listings do not show a manifest until `lag` seconds after it was
    written (a store whose listings are eventually consistent: a key just written reads, but is not listed)."""

    def __init__(self, port: int, lag: float) -> None:
        super().__init__(port)
        self.lag, self.written = lag, {}

    def relay(self, handler, upstream, path, body, fault):
        if handler.command == "PUT" and path.split("?")[0].endswith("/" + METADATA):
            self.written[path.split("?")[0].split("/", 2)[2]] = time.monotonic()
        return super().relay(handler, upstream, path, body, fault)

    def rewritten(self, method: str, path: str, data: bytes) -> bytes:
        if method != "GET" or "list-type=2" not in path:
            return data
        for key in [key for key, when in self.written.items() if time.monotonic() - when < self.lag]:
            data = re.sub(
                rb"<Contents>(?:(?!</Contents>).)*?<Key>" + re.escape(key.encode()) + rb"</Key>.*?</Contents>",
                b"",
                data,
                flags=re.S,
            )
        return data


def test_the_sweep_never_removes_the_blobs_of_the_backup_it_just_sealed_on_a_lagging_target(project, storage, offsite):
    """The run that seals a backup then sweeps (it found a killed run's folder): its own manifest is not
    listed yet, and the blobs only it names must stay."""
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=600)
    backed_up(project)
    offsite.client().put_object(Bucket="ops-backups", Key=f"{BASE}2026-01-01T00-00-00Z/_writing", Body=b"")
    src.put_object(Bucket="avatars", Key="bulk/0001.bin", Body=b"only in the second" * 40)
    with behind(project, offsite, LaggingProxy(offsite.port, lag=120)):
        made = project.run("backup-storage", "--to", "offsite", "--json")
    assert made.code == 0, made.err[-1500:]
    assert "removing an unsealed backup" in made.err
    assert sha(b"only in the second" * 40) in pool_digests(offsite)
    checked = verify(project)
    assert checked.code == 0, checked.out[-800:] + checked.err[-800:]


# ---------------------------------------------------------------- the source: one content under many keys


def test_one_content_under_many_keys_is_one_blob_and_each_key_comes_back(project, storage, offsite):
    """Sixty keys, one content, read at once by parallel jobs: one blob (written by many PUTs at once on a
    file-system-backed server), every key restored."""
    src = storage["prod"].client()
    for i in range(60):
        src.put_object(Bucket="avatars", Key=f"same/{i:03d}.bin", Body=b"one content " * 300)
    made = backed_up(project)
    assert made["downloaded"] == 60, made
    assert pool_digests(offsite) == {sha(b"one content " * 300)}
    assert verify(project).code == 0
    restored = project.run(
        "restore-storage", "--to", "preprod", "--env", "prod", "--backup", "offsite:latest", "--buckets", "avatars"
    )
    assert restored.code == 0, restored.out[-1500:] + restored.err[-1500:]
    assert contents(storage["preprod"].client(), "avatars") == contents(src, "avatars")


# ---------------------------------------------------------------- two environments at one target


def test_an_environment_whose_name_starts_with_anothers_keeps_its_own_pool(project, storage, offsite):
    """`prod` and `prod-x` (its own ref) back up to one target: prod's prunes and sweeps never touch prod-x's."""
    from lib.s3 import S3_KEYS, s3_secrets

    project.envs["prod-x"] = {**project.envs["prod"], "ref": "xxxxxxxxxxxxxxxxxxxx", "protected": "false"}
    project.secrets.update(s3_secrets("prod-x", *S3_KEYS["prod"]))
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    other = project.run("backup-storage", "--env", "prod-x", "--to", "offsite", "--json")
    assert other.code == 0, other.err[-1500:]
    for i in range(3):
        src.put_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin", Body=b"prod %d" % i * 200)
        backed_up(project, "--env", "prod", "--keep-last", "1")
    checked = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod-x")
    assert checked.code == 0, checked.out[-1500:] + checked.err[-1500:]
    listed = project.run("backups", "--env", "prod", "--target", "offsite", "--json")
    assert listed.code == 0, listed.err
    assert len(json.loads(listed.out)["backups"]) == 1, listed.out


# ---------------------------------------------------------------- a target without DeleteObjects


class NoBulkDelete(FaultProxy):
    """A target that does not implement DeleteObjects (POST ?delete), as Google Cloud Storage's XML API."""

    def forward(self, handler) -> None:
        if handler.command == "POST" and "delete" in handler.path.partition("?")[2].split("&")[0]:
            handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
            self.refuse(handler, 501, "NotImplemented")
            return
        super().forward(handler)


def test_a_target_without_bulk_delete_gets_sealed_backups_and_no_lock_left_behind(project, storage, offsite):
    """Google Cloud Storage's S3 API has no DeleteObjects (one DELETE a key): a run there must not report a
    sealed backup as failed, nor leave its lock to refuse every run of the next 30 minutes on other hosts."""
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=512)
    with behind(project, offsite, NoBulkDelete(offsite.port)):
        for round_ in range(2):
            src.put_object(Bucket="avatars", Key="bulk/0001.bin", Body=b"changed %d" % round_ * 100)
            made = project.run("backup-storage", "--to", "offsite", "--json", "--keep-last", "1")
            assert made.code == 0, made.err[-1500:]
            time.sleep(1.1)
    locks = offsite.client().list_objects_v2(Bucket="ops-backups", Prefix="nightly/locks/").get("Contents", [])
    assert locks == [], [lock["Key"] for lock in locks]
    assert len(remote_names(offsite)) == 1 and verify(project).code == 0


# ---------------------------------------------------------------- a drill of a backup whose blob rotted


@pytest.fixture
def scratch(project, storage, pg, tmp_path):
    from lib.backups import add_scratch

    server = add_scratch(project, pg, tmp_path / "s3-scratch", ("AKIAPOOLSCRATCH003", "scratch-secret-Pq7-never-print"))
    yield server
    server.stop()


def test_a_drill_of_a_backup_whose_blob_rotted_fails_and_names_it(project, storage, scratch, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=900)
    made = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err[-1500:]
    offsite.client().put_object(Bucket="ops-backups", Key=blob_key(bytes([1]) * 900), Body=b"q" * 900)
    result = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch")
    clean(result)
    verdict = result.out.strip().splitlines()[-1] if result.out.strip() else result.err
    assert result.code == 1 and "FAILED" in verdict, (result.code, result.out[-800:], result.err[-800:])
    assert "bulk/0001.bin" in result.out + result.err, result.out[-800:] + result.err[-800:]


# ---------------------------------------------------------------- a run whose lock was taken over


def test_a_run_whose_lock_was_taken_over_never_seals_over_the_run_that_took_it(project, storage, offsite):
    """A run stalls (a laptop asleep, a paused VM) long enough for its lock to be taken over as stale; the
    run that took it over prunes and sweeps a blob the stalled run had named as unchanged. Waking, the
    stalled run must not seal a backup naming a blob that is gone (restic aborts a run whose lock went)."""
    src = storage["prod"].client()
    fill(src, "avatars", 4, size=800)
    backed_up(project)
    src.put_object(Bucket="avatars", Key="new.bin", Body=b"new" * 300)  # the stalled run reads it: it waits there
    proxy = FaultProxy(storage["prod"].port).start()
    proxy.hold = threading.Event()
    direct = project.envs["prod"]["storage_url"]
    project.envs["prod"]["storage_url"] = proxy.url
    stalled = project.start("backup-storage", "--to", "offsite", "--keep-last", "1")
    try:
        project.envs["prod"]["storage_url"] = direct
        deadline = time.monotonic() + 60
        while not any(path.startswith("/avatars") and "list-type=2" in path for _, _, path in proxy.answered):
            assert time.monotonic() < deadline and stalled.poll() is None, "the run never got under way"
            time.sleep(0.1)
        time.sleep(1)  # it has named the unchanged objects, and waits for new.bin
        # Its lock looks stale now (as after 30 minutes without a refresh): a process of this host that is gone.
        gone = subprocess.Popen(["true"])
        gone.wait()
        client = offsite.client()
        (lock,) = client.list_objects_v2(Bucket="ops-backups", Prefix=LOCKS)["Contents"]
        body = {"host": socket.gethostname(), "pid": gone.pid, "time": "2026-01-01T00:00:00+00:00"}
        client.put_object(Bucket="ops-backups", Key=lock["Key"], Body=json.dumps(body).encode())
        src.delete_object(Bucket="avatars", Key="bulk/0000.bin")
        time.sleep(1.1)
        took = project.run("backup-storage", "--to", "offsite", "--keep-last", "1", "--json")
        assert took.code == 0 and "taking over a stale lock" in took.err, took.err[-1500:]
        assert sha(bytes([0]) * 800) not in pool_digests(offsite), "swept: only the pruned backup named it"
    finally:
        proxy.hold.set()
        out, err = stalled.communicate(timeout=120)
        proxy.stop()
    for name, sealed in remote_names(offsite).items():
        checked = verify(project, f"offsite:{name}")
        assert sealed and checked.code == 0, (name, stalled.returncode, err[-800:], checked.out[-800:])
    assert stalled.returncode != 0, "the stalled run said its backup was made: " + err[-800:]
    assert "was taken over by another run" in err and "Traceback" not in err, err[-1500:]
    assert len(remote_names(offsite)) == 1, "what the stalled run wrote is not sealed"


# ---------------------------------------------------------------- backups from before the pool


@pytest.mark.xfail(
    strict=True,
    reason="the move into the pool trusts the old manifest's sha256 (it cannot hash at the target), and remote "
    "verify vouches by MD5 alone: the blob under the wrong name passes verify, restore refuses it",
)
def test_an_off_site_copy_whose_manifest_lies_about_a_digest_never_verifies_as_ok(project, storage, offsite):
    """The first `--to` after `--copy-to` copies each unchanged file into the pool server-side, under the
    digest the copy's manifest records (it cannot hash at the target). A manifest edited to record another
    digest puts other bytes under that name: verify must then not say OK of a backup restore refuses."""
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=700)
    copied = project.run("backup-storage", "--copy-to", "offsite", "--json")
    assert copied.code == 0, copied.err[-1500:]
    (name,) = remote_names(offsite)
    text = read_manifest(offsite, BASE, name)
    write_manifest(offsite, BASE, name, retag(text, "bulk/0001.bin", sha256=sha(b"a ghost")))
    time.sleep(1.1)
    made = backed_up(project)
    assert made["copied_server_side"] >= 1, made
    checked = verify(project)
    restored = project.run(
        "restore-storage", "--to", "preprod", "--env", "prod", "--backup", "offsite:latest", "--buckets", "avatars"
    )
    assert (checked.code == 0) == (restored.code == 0), (checked.out[-600:], restored.err[-600:])


def test_a_copy_off_site_and_a_run_to_the_target_at_once(project, storage, offsite):
    """`--copy-to` and `--to` of one environment started together: each goes on in turn or is refused
    (exit 2), and every backup sealed at the target verifies."""
    src = storage["prod"].client()
    fill(src, "avatars", 20, size=2048)
    backed_up(project)
    src.put_object(Bucket="avatars", Key="bulk/0005.bin", Body=b"changed" * 200)
    runs = [
        project.start("backup-storage", "--copy-to", "offsite", "--keep-last", "1"),
        project.start("backup-storage", "--to", "offsite", "--keep-last", "1"),
    ]
    ended = [run.communicate(timeout=180) for run in runs]
    codes = [run.returncode for run in runs]
    assert set(codes) <= {0, 2} and 0 in codes, (codes, [err[-800:] for _, err in ended])
    for name, sealed in remote_names(offsite).items():
        assert sealed, name
        checked = verify(project, f"offsite:{name}")
        assert checked.code == 0, (name, checked.out[-800:])
