"""Storage tasks against Supabase Storage's S3 dialect (a strictness proxy in front of moto)."""

from __future__ import annotations

import io
import json

import pytest
from lib.s3 import contents, empty_bucket, fill, moto_client, s3_secrets

from devstack.storageproxy import StorageProxy

BUCKET = "module-assignment-attachments"


@pytest.fixture
def supabase_target(project, storage, moto_port):
    """preprod's storage is Supabase Storage (through the proxy, at /storage/v1/s3); prod stays rclone."""
    proxy = StorageProxy(moto_port, put_limit=50 << 20).start()
    moto = moto_client(moto_port)
    empty_bucket(moto, BUCKET)
    project.envs["preprod"]["storage_url"] = proxy.url
    project.secrets.update(s3_secrets("preprod", "moto", "moto-secret"))
    yield proxy, moto
    proxy.stop()


def summary(result) -> dict:
    return {b["bucket"]: b for b in json.loads(result.out)["buckets"]}


def test_delete_sends_an_xml_body_storage_reads(project, storage, supabase_target):
    proxy, moto = supabase_target
    moto.put_object(Bucket=BUCKET, Key="stale.pdf", Body=b"old")
    fill(storage["prod"].client(), BUCKET, 2)
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--delete", "--json")
    assert result.code == 0, result.err
    assert summary(result)[BUCKET]["deleted"] == 1
    assert sorted(contents(moto, BUCKET)) == ["bulk/0000.bin", "bulk/0001.bin"]


def test_objects_over_the_upload_limit_go_multipart_and_are_never_read_again(project, storage, supabase_target):
    proxy, moto = supabase_target
    big = bytes(range(256)) * (55 << 12)  # 55 MiB: over the 50 MiB standard-upload limit
    storage["prod"].client().put_object(Bucket=BUCKET, Key="recording.mp4", Body=big, ContentType="video/mp4")
    first = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--json")
    assert first.code == 0, first.err
    head = moto.head_object(Bucket=BUCKET, Key="recording.mp4")
    assert head["ContentLength"] == len(big) and "md5chksum" in head["Metadata"]
    assert not [s for s in proxy.seen if s[2] == 413]
    proxy.seen.clear()
    dry = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    planned = summary(dry)[BUCKET]
    assert (planned["copied"], planned["identical"], planned["read_to_compare"]) == (0, 1, 0)
    assert not [s for s in proxy.seen if s[0] == "GET" and "recording.mp4" in s[1]], "read to compare"


def test_object_content_is_sent_unsigned_and_xml_bodies_hashed(project, storage, supabase_target):
    """Hashing every byte for a header Storage never checks would cost a millisecond of CPU per MiB."""
    proxy, moto = supabase_target
    moto.put_object(Bucket=BUCKET, Key="stale.pdf", Body=b"old")
    src = storage["prod"].client()
    src.put_object(Bucket=BUCKET, Key="small.pdf", Body=b"small" * 100)
    src.put_object(Bucket=BUCKET, Key="large.mp4", Body=bytes(range(256)) * (17 << 12))  # 17 MiB: 2 parts
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--delete")
    assert result.code == 0, result.err
    assert sorted(contents(moto, BUCKET)) == ["large.mp4", "small.pdf"]
    uploads = [sha for (method, path, sha) in proxy.payload_hashes if method == "PUT"]
    assert len(uploads) == 3 and set(uploads) == {"UNSIGNED-PAYLOAD"}, uploads  # one PutObject, two UploadParts
    xml = [sha for (method, path, sha) in proxy.payload_hashes if method == "POST" and "uploads" not in path]
    assert len(xml) == 2 and all(len(sha) == 64 and int(sha, 16) for sha in xml), xml  # complete, delete


def test_refused_keys_are_reported_with_the_servers_reason_and_not_retried(project, storage, supabase_target):
    proxy, moto = supabase_target
    src = storage["prod"].client()
    src.put_object(Bucket=BUCKET, Key="fine.txt", Body=b"ok")
    src.put_object(Bucket=BUCKET, Key="notes #1.txt", Body=b"hash in the name")
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET)
    assert result.code == 1
    assert "notes #1.txt: 400 InvalidKey: Invalid key: notes #1.txt" in result.err
    assert sorted(contents(moto, BUCKET)) == ["fine.txt"]
    assert len([s for s in proxy.seen if s[2] == 400]) == 1, "a 400 is not worth a retry"


def test_storage_errors_are_not_blank(project, storage, supabase_target):
    proxy, moto = supabase_target
    proxy.put_limit = 1 << 10
    storage["prod"].client().put_object(Bucket=BUCKET, Key="two-kib.bin", Body=b"x" * 2048)
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET)
    assert result.code == 1
    assert "413 EntityTooLarge: The object exceeded the maximum allowed size" in result.err


def test_metadata_the_way_storage_keeps_it_still_backs_up_and_restores(project, storage, supabase_target):
    proxy, moto = supabase_target
    moto_via = io.BytesIO(b"<svg/>")
    project.envs["prod"]["storage_url"] = proxy.url
    project.secrets.update(s3_secrets("prod", "moto", "moto-secret"))
    moto.upload_fileobj(
        moto_via, BUCKET, "logo.svg", ExtraArgs={"ContentType": "image/svg+xml", "Metadata": {"Owner": "Ada"}}
    )
    made = project.run("backup-storage", "--buckets", BUCKET, "--json")
    assert made.code == 0, made.err
    path = json.loads(made.out)["backups"][0]["path"]
    empty_bucket(moto, BUCKET)
    restored = project.run("restore-storage", "--to", "prod", "--backup", path, "--buckets", BUCKET, "--yes")
    assert restored.code == 0, restored.err
    head = moto.head_object(Bucket=BUCKET, Key="logo.svg")
    assert head["ContentType"] == "image/svg+xml" and head["Metadata"] == {"owner": "Ada"}


def test_wrong_keys_are_an_exit_2_naming_the_environment(project, storage):
    fill(storage["prod"].client(), "avatars", 1)
    project.secrets["OPS_PREPROD_S3_SECRET_ACCESS_KEY"] = "not-the-secret"
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    assert result.code == 2, result.err
    assert "preprod" in result.err and "OPS_PREPROD_S3_SECRET_ACCESS_KEY" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("budget", [1, None], ids=["once", "every-download"])
def test_a_byte_changed_on_the_way_down_is_never_called_identical(project, storage, supabase_target, budget):
    from devstack.faultproxy import FaultProxy

    proxy, moto = supabase_target
    big = bytes(range(256)) * (20 << 12)  # 20 MiB: multipart at the target, whose ETag is then no MD5
    storage["prod"].client().put_object(Bucket=BUCKET, Key="big.bin", Body=big)
    down = FaultProxy(storage["prod"].port, rate=1.0, faults=("corrupt",), budget=budget).start()
    try:
        project.envs["prod"]["storage_url"] = down.url
        first = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--json")
    finally:
        down.stop()
    assert down.injected.get("corrupt")
    stored = moto.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read() if budget else None
    if budget:  # fetched again: the copy ends equal
        assert first.code == 0, first.err
        assert stored == big
    else:  # every download changed: named, and nothing wrong was stored under the object's name
        assert first.code == 1 and f"{BUCKET}/big.bin" in first.err
    project.envs["prod"]["storage_url"] = storage["prod"].url
    second = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--json")
    assert second.code == 0, second.err
    assert moto.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read() == big
    assert summary(second)[BUCKET]["identical"] == (1 if budget else 0)


def test_a_killed_copy_leaves_no_open_upload_after_the_next_run(project, storage, supabase_target):
    import time

    proxy, moto = supabase_target
    big = bytes(range(256)) * (96 << 12)  # 96 MiB: six parts, a window to be killed in
    storage["prod"].client().put_object(Bucket=BUCKET, Key="film.mp4", Body=big)
    ledger = project.root / ".ops" / "multipart" / "preprod-jtzcrirqflfnagceendt"
    process = project.start("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET)
    deadline = time.monotonic() + 60
    while not list(ledger.glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.kill()
    process.communicate(timeout=30)
    assert list(ledger.glob("*.json")), "the copy finished before it could be killed"
    assert len(moto.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])) == 1
    again = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET)
    assert again.code == 0, again.err
    assert "aborted 1 unfinished multipart upload(s)" in again.err
    assert moto.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert not list(ledger.glob("*.json"))
    assert moto.get_object(Bucket=BUCKET, Key="film.mp4")["Body"].read() == big


def test_a_multipart_source_is_never_read_again_once_copied(project, storage, moto_port):
    """Storage's own multipart objects (ETag `-N`, no MD5 anywhere): the copy records the source's ETag."""
    from boto3.s3.transfer import TransferConfig

    proxy = StorageProxy(moto_port, put_limit=50 << 20).start()
    try:
        moto = moto_client(moto_port)
        empty_bucket(moto, BUCKET)
        big = bytes(range(256)) * (20 << 12)
        moto.upload_fileobj(
            io.BytesIO(big),
            BUCKET,
            "upload.bin",
            Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20),
        )
        assert moto.head_object(Bucket=BUCKET, Key="upload.bin")["ETag"].strip('"').endswith("-3")
        project.envs["prod"]["storage_url"] = proxy.url
        project.secrets.update(s3_secrets("prod", "moto", "moto-secret"))
        first = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--json")
        assert first.code == 0, first.err
        again = project.run(
            "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", BUCKET, "--dry-run", "--json"
        )
        assert again.code == 0, again.err
        plan = summary(again)[BUCKET]
        assert (plan["identical"], plan["copied"], plan["read_to_compare"]) == (1, 0, 0), plan
        assert storage["preprod"].client().get_object(Bucket=BUCKET, Key="upload.bin")["Body"].read() == big
    finally:
        proxy.stop()
