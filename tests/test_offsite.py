"""Off-site copies of backups (issue 21, item 2): a second S3 server as the backup target."""

from __future__ import annotations

import json

import pytest
from lib.s3 import contents, fill, s3_secrets

from devstack import localstack

KEYS = ("AKIAOFFSITE0000001", "offsite-secret-Qw3-never-print")


@pytest.fixture
def offsite(project, storage, tmp_path):
    server = localstack.start_s3(*KEYS, root=tmp_path / "s3-offsite")
    server.create_buckets(["ops-backups"])
    project.extra += f"\n[offsite]\nstorage_url = {server.url}\nbucket = ops-backups\nprefix = nightly\n"
    project.secrets.update(s3_secrets("offsite", *KEYS))
    yield server
    server.stop()


def test_copy_verify_tamper_and_restore_from_off_site(project, storage, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 8, size=8192)
    src.put_object(Bucket="program-logos", Key="logo.svg", Body=b"<svg/>", ContentType="image/svg+xml")
    first = project.run("backup-storage", "--copy-to", "offsite", "--json")
    assert first.code == 0, first.err
    sent = json.loads(first.out)["backups"][0]["offsite"]
    assert sent["uploaded"] == 9 and sent["remote"].startswith("ops-backups/nightly/prod-qfdztdgublwlmewobxmx/")
    remote = offsite.client()
    keys = [o["Key"] for o in remote.list_objects_v2(Bucket="ops-backups")["Contents"]]
    assert any(k.endswith("/_backup_metadata.json") for k in keys)

    src.put_object(Bucket="avatars", Key="bulk/0003.bin", Body=b"changed")
    second = project.run("backup-storage", "--copy-to", "offsite", "--json")
    assert second.code == 0, second.err
    sent = json.loads(second.out)["backups"][0]["offsite"]
    assert (sent["uploaded"], sent["copied_server_side"]) == (1, 8), "only the changed object travels"

    ok = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err
    assert ok.out.strip().splitlines()[-1].startswith("OK: 9 files")

    victim = sent["remote"].split("/", 1)[1] + "avatars/bulk/0005.bin"  # in the newest remote backup
    body = bytearray(remote.get_object(Bucket="ops-backups", Key=victim)["Body"].read())
    body[100] ^= 0xFF
    remote.put_object(Bucket="ops-backups", Key=victim, Body=bytes(body))
    bad = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert bad.code == 1 and "FAILED: 1 corrupt (avatars/bulk/0005.bin)" in bad.err
    remote.put_object(Bucket="ops-backups", Key=victim, Body=bytes([5]) * 8192)  # put it right again

    restored = project.run(
        "restore-storage",
        "--to",
        "preprod",
        "--env",
        "prod",
        "--backup",
        "offsite:latest",
        "--buckets",
        "avatars,program-logos",
    )
    assert restored.code == 0, restored.err
    dst = storage["preprod"].client()
    assert contents(dst, "avatars") == contents(src, "avatars")
    assert contents(dst, "program-logos") == contents(src, "program-logos")
    assert not list((project.root / "tmp").glob("*-from-offsite")), "the fetched copy is removed"

    pruned = project.run("backup-storage", "--copy-to", "offsite", "--keep", "1", "--json")
    assert pruned.code == 0, pruned.err
    # Mirrors the local retention: the second backup goes; the first stays on both sides, as the local
    # rules keep it (it holds more bytes than any later one, the high-water mark).
    local = sorted(
        p.name
        for p in (project.root / "backups" / "storage" / "prod-qfdztdgublwlmewobxmx").iterdir()
        if not p.name.startswith(".")
    )
    assert len(json.loads(pruned.out)["backups"][0]["offsite"]["removed"]) == 1
    sealed = sorted(
        k.split("/")[2]
        for k in (o["Key"] for o in remote.list_objects_v2(Bucket="ops-backups")["Contents"])
        if k.endswith("/_backup_metadata.json")
    )
    assert sealed == local and len(local) == 2


def test_an_unknown_target_is_refused_before_any_backup(project, storage, offsite):
    fill(storage["prod"].client(), "avatars", 2)
    result = project.run("backup-storage", "--copy-to", "ofsite")
    assert result.code == 2 and "unknown backup target 'ofsite'" in result.err
    assert not (project.root / "backups").exists()
