"""`inv sync-storage` between two real S3 servers, with and without injected faults."""

from __future__ import annotations

import io
import json
import os

import pytest
from boto3.s3.transfer import TransferConfig
from lib.s3 import S3_KEYS, contents, fill, moto_client, s3_secrets

from devstack.faultproxy import FaultProxy

TRICKY_KEYS = [
    "plain.png",
    "with space/my file.pdf",
    "ünïcödé/naïve ✓.txt",
    "a+b=c.txt",
    "100%/done%20.txt",
    "deep/er/and/deeper/file.json",
    "folder/.emptyFolderPlaceholder",
    "zero-bytes.bin",
]


def summary(result) -> dict:
    return {b["bucket"]: b for b in json.loads(result.out)["buckets"]}


def test_sync_copies_tricky_keys_and_headers(project, storage):
    src = storage["prod"].client()
    for key in TRICKY_KEYS:
        body = b"" if key.endswith(("zero-bytes.bin", ".emptyFolderPlaceholder")) else key.encode() * 3
        src.put_object(
            Bucket="avatars",
            Key=key,
            Body=body,
            ContentType="image/png",
            CacheControl="max-age=3600",
            ContentDisposition='attachment; filename="x.png"',
            Metadata={"owner": "ada", "note": "v1"},
        )
    big = io.BytesIO(os.urandom(1 << 20) * 65)  # 65 MiB: stored in parts on both sides, so neither ETag is an MD5
    src.upload_fileobj(big, "resource-library", "videos/intro.mp4", ExtraArgs={"ContentType": "video/mp4"})

    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 0, result.err
    buckets = summary(result)
    assert buckets["avatars"]["copied"] == len(TRICKY_KEYS)
    assert buckets["resource-library"]["copied"] == 1
    assert buckets["group-notes"]["status"] == "empty"
    dst = storage["preprod"].client()
    for bucket in ("avatars", "resource-library"):
        assert contents(src, bucket) == contents(dst, bucket)
    head = dst.head_object(Bucket="avatars", Key="with space/my file.pdf")
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == "max-age=3600"
    assert head["ContentDisposition"] == 'attachment; filename="x.png"'
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {"owner": "ada", "note": "v1"}
    video = dst.head_object(Bucket="resource-library", Key="videos/intro.mp4")
    assert video["ContentType"] == "video/mp4"
    assert "md5chksum" in {k.lower() for k in video["Metadata"]}, "a multipart upload records its MD5"

    second = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--json")
    assert second.code == 0, second.err
    assert sum(b["copied"] for b in summary(second).values()) == 0
    assert summary(second)["avatars"]["identical"] == len(TRICKY_KEYS)


def test_changed_object_of_same_size_is_copied(project, storage):
    src, dst = storage["prod"].client(), storage["preprod"].client()
    fill(src, "program-logos", 20)
    assert project.run("sync-storage", "--from", "prod", "--to", "preprod").code == 0
    src.put_object(Bucket="program-logos", Key="bulk/0007.bin", Body=b"\xff" * 1024)
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--json", "--buckets", "program-logos")
    assert result.code == 0, result.err
    assert summary(result)["program-logos"]["copied"] == 1
    assert contents(src, "program-logos") == contents(dst, "program-logos")


def test_force_copies_everything(project, storage):
    fill(storage["prod"].client(), "email-assets", 5)
    assert project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "email-assets").code == 0
    forced = project.run(
        "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "email-assets", "--force", "--json"
    )
    assert summary(forced)["email-assets"]["copied"] == 5


def test_delete_only_when_asked(project, storage):
    src, dst = storage["prod"].client(), storage["preprod"].client()
    fill(src, "avatars", 3)
    dst.put_object(Bucket="avatars", Key="only-in-target.txt", Body=b"keep me?")
    kept = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--json")
    assert kept.code == 0 and "only-in-target.txt" in contents(dst, "avatars")
    dry = project.run(
        "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--delete", "--dry-run", "--json"
    )
    assert summary(dry)["avatars"]["deleted"] == 1 and "only-in-target.txt" in contents(dst, "avatars")
    deleted = project.run(
        "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--delete", "--json"
    )
    assert deleted.code == 0, deleted.err
    assert summary(deleted)["avatars"]["deleted"] == 1
    assert contents(src, "avatars") == contents(dst, "avatars")


def test_dry_run_copies_nothing(project, storage):
    fill(storage["prod"].client(), "client-badges", 4)
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--dry-run", "--json")
    assert result.code == 0, result.err
    assert summary(result)["client-badges"]["copied"] == 4
    assert contents(storage["preprod"].client(), "client-badges") == {}


def test_missing_target_bucket_refused_before_copying(project, storage):
    fill(storage["prod"].client(), "avatars", 2)
    storage["preprod"].client().delete_bucket(Bucket="group-notes")
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod")
    assert result.code == 2
    assert "group-notes" in result.err and "migrations" in result.err
    assert contents(storage["preprod"].client(), "avatars") == {}


def test_unknown_bucket_refused(project, storage):
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars,selfies")
    assert result.code == 2 and "selfies" in result.err


def test_missing_keys_refused(project, storage):
    del project.secrets["OPS_PREPROD_S3_SECRET_ACCESS_KEY"]
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod")
    assert result.code == 2 and "OPS_PREPROD_S3_SECRET_ACCESS_KEY" in result.err


def test_protected_target_needs_yes(project, storage):
    fill(storage["preprod"].client(), "avatars", 1)
    result = project.run("sync-storage", "--from", "preprod", "--to", "prod")
    assert result.code == 2 and "--yes" in result.err
    assert contents(storage["prod"].client(), "avatars") == {}


@pytest.mark.parametrize("moto_side", ["prod", "preprod"], ids=["multipart-source", "multipart-target"])
def test_multipart_objects_are_not_copied_again(project, storage, moto_port, moto_side):
    """moto gives multipart uploads `md5-N` ETags, which never equal a plain MD5."""
    proxy = FaultProxy(moto_port, prefix="/storage/v1/s3").start()  # a Supabase-like endpoint path
    try:
        moto = moto_client(moto_port)
        bucket = "module-client-content"
        if bucket not in [b["Name"] for b in moto.list_buckets()["Buckets"]]:
            moto.create_bucket(Bucket=bucket)
        for page in moto.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                moto.delete_object(Bucket=bucket, Key=item["Key"])
        project.envs[moto_side]["storage_url"] = proxy.url
        project.secrets.update(s3_secrets(moto_side, "moto", "moto-secret"))
        source = moto if moto_side == "prod" else storage["prod"].client()
        source.upload_fileobj(
            io.BytesIO(b"m" * (12 << 20)),
            bucket,
            "lesson.bin",
            Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20),
        )
        first = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", bucket, "--json")
        assert first.code == 0, first.err
        assert summary(first)[bucket]["copied"] == 1
        second = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", bucket, "--json")
        assert second.code == 0, second.err
        assert (summary(second)[bucket]["copied"], summary(second)[bucket]["identical"]) == (0, 1)
        target = moto if moto_side == "preprod" else storage["preprod"].client()
        assert contents(source, bucket) == contents(target, bucket)
    finally:
        proxy.stop()


def test_faults_end_with_every_object_copied_or_listed(project, storage):
    src, dst = storage["prod"].client(), storage["preprod"].client()
    fill(src, "avatars", 60, size=4096)
    fill(src, "goal-resources", 40, size=2048)
    proxy = FaultProxy(storage["preprod"].port, rate=0.2, seed=11).start()
    try:
        project.envs["preprod"]["storage_url"] = proxy.url
        result = project.run(
            "sync-storage", "--from", "prod", "--to", "preprod", "--json", "--buckets", "avatars,goal-resources"
        )
        assert sum(proxy.injected.values()) > 10, proxy.injected
    finally:
        proxy.stop()
    data = json.loads(result.out)
    failed = {(f["bucket"], f["key"]) for f in data["failures"]}
    assert result.code == (1 if failed else 0), result.err
    if failed:
        assert "re-run: inv sync-storage" in result.err
    for bucket in ("avatars", "goal-resources"):
        source, target = contents(src, bucket), contents(dst, bucket)
        for key, digest in source.items():
            assert target.get(key) == digest or (bucket, key) in failed, f"{bucket}/{key} neither copied nor listed"
        assert set(target) <= set(source)
    # A clean re-run finishes the job.
    project.envs["preprod"]["storage_url"] = storage["preprod"].url
    again = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars,goal-resources")
    assert again.code == 0, again.err
    assert contents(src, "avatars") == contents(dst, "avatars")


def test_content_changed_on_the_way_is_fetched_and_sent_again(project, storage):
    """Copies are checked by the target's MD5 against the source's, not by hashing every byte here."""
    src, dst = storage["prod"].client(), storage["preprod"].client()
    fill(src, "avatars", 8, size=4096)
    down = FaultProxy(storage["prod"].port, rate=0.5, seed=3, faults=("corrupt",), budget=3).start()
    up = FaultProxy(storage["preprod"].port, rate=0.5, seed=5, faults=("corrupt",), budget=3).start()
    try:
        project.envs["prod"]["storage_url"], project.envs["preprod"]["storage_url"] = down.url, up.url
        result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    finally:
        down.stop()
        up.stop()
    assert result.code == 0, result.err
    assert down.injected == {"corrupt": 3} and up.injected == {"corrupt": 3}
    assert contents(src, "avatars") == contents(dst, "avatars")


def test_a_part_changed_on_the_way_is_caught_where_the_target_gives_an_md5(project, storage):
    """rclone serve s3 answers a multipart upload with the whole object's MD5: a changed part shows."""
    src, dst = storage["prod"].client(), storage["preprod"].client()
    src.put_object(Bucket="resource-library", Key="videos/long.mp4", Body=os.urandom(17 << 20))  # two parts
    up = FaultProxy(storage["preprod"].port, rate=1.0, faults=("corrupt",), budget=1).start()
    try:
        project.envs["preprod"]["storage_url"] = up.url
        result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "resource-library")
    finally:
        up.stop()
    assert result.code == 0, result.err
    assert up.injected == {"corrupt": 1}
    assert contents(src, "resource-library") == contents(dst, "resource-library")


def test_a_copy_that_always_arrives_changed_is_reported(project, storage):
    fill(storage["prod"].client(), "avatars", 1, size=4096)
    down = FaultProxy(storage["prod"].port, rate=1.0, faults=("corrupt",)).start()  # every download changed
    try:
        project.envs["prod"]["storage_url"] = down.url
        result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    finally:
        down.stop()
    assert result.code == 1
    assert "avatars/bulk/0000.bin: ContentMismatch" in result.err and "not" in result.err
    assert "re-run: inv sync-storage --from prod --to preprod --buckets avatars" in result.err
    assert down.injected["corrupt"] == 4  # one download, then three more


def test_secrets_never_printed(project, storage):
    fill(storage["prod"].client(), "avatars", 2)
    result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 0, result.err
    for _key_id, secret in S3_KEYS.values():
        assert secret not in result.out + result.err
    for path in project.files():
        for _, secret in S3_KEYS.values():
            assert secret.encode() not in path.read_bytes(), path


@pytest.fixture
def https_storage(project, tmp_path):
    """Both environments' storage over https with a certificate from a CA of this test: (CA file, prod client)."""
    import boto3
    import trustme
    from botocore.config import Config

    from devstack import localstack

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "s3.crt", tmp_path / "s3.key", tmp_path / "ca.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    servers = {
        env: localstack.start_s3(*S3_KEYS[env], root=tmp_path / f"s3-{env}", tls=(cert, key))
        for env in ("prod", "preprod")
    }
    clients = {}
    try:
        for env, server in servers.items():
            project.envs[env].update(storage_url=server.url, storage_region="us-east-1")
            project.secrets.update(s3_secrets(env, *S3_KEYS[env]))
            clients[env] = boto3.client(
                "s3",
                endpoint_url=server.url,
                region_name="us-east-1",
                verify=str(ca_file),
                aws_access_key_id=server.key_id,
                aws_secret_access_key=server.secret,
                config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"),
            )
            clients[env].create_bucket(Bucket="avatars")
        yield ca_file, clients
    finally:
        for server in servers.values():
            server.stop()


def test_sync_over_https_verifies_the_server(project, https_storage):
    """Hosted Storage is https: certificates are verified (system roots, SSL_CERT_FILE, certifi's)."""
    ca_file, clients = https_storage
    clients["prod"].put_object(Bucket="avatars", Key="a/b c.png", Body=b"png" * 100)
    refused = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    # An unknown CA is refused at once (no retries), before anything is copied, saying how to fix it.
    assert refused.code == 2 and "does not verify" in refused.err and "SSL_CERT_FILE" in refused.err
    trusted = project.run(
        "sync-storage",
        "--from",
        "prod",
        "--to",
        "preprod",
        "--buckets",
        "avatars",
        "--json",
        env={"SSL_CERT_FILE": str(ca_file)},
    )
    assert trusted.code == 0, trusted.err
    assert summary(trusted)["avatars"]["copied"] == 1
    assert clients["preprod"].get_object(Bucket="avatars", Key="a/b c.png")["Body"].read() == b"png" * 100


def test_https_proxy_is_used_unless_no_proxy_names_the_host(project, https_storage):
    """Behind a company proxy, every S3 call (listings, bodies, both sides) goes through HTTPS_PROXY."""
    from devstack.connectproxy import ConnectProxy

    ca_file, clients = https_storage
    for i in range(3):
        clients["prod"].put_object(Bucket="avatars", Key=f"p/{i}.bin", Body=bytes([i]) * 1000)
    ports = {env: client.meta.endpoint_url.rpartition(":")[2] for env, client in clients.items()}
    proxy = ConnectProxy().start()
    try:
        through = project.run(
            "sync-storage",
            "--from",
            "prod",
            "--to",
            "preprod",
            "--buckets",
            "avatars",
            "--json",
            env={"SSL_CERT_FILE": str(ca_file), "HTTPS_PROXY": proxy.url, "NO_PROXY": ""},
        )
        assert through.code == 0, through.err
        assert summary(through)["avatars"]["copied"] == 3
        assert {tunnel.rpartition(":")[2] for tunnel in proxy.tunnels} == set(ports.values())
        clients["prod"].put_object(Bucket="avatars", Key="p/new.bin", Body=b"new")
        tunnels = len(proxy.tunnels)
        around = project.run(
            "sync-storage",
            "--from",
            "prod",
            "--to",
            "preprod",
            "--buckets",
            "avatars",
            "--json",
            env={"SSL_CERT_FILE": str(ca_file), "HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"},
        )
        assert around.code == 0, around.err
        assert summary(around)["avatars"]["copied"] == 1
        assert len(proxy.tunnels) == tunnels, "NO_PROXY named the host: nothing should go through the proxy"
    finally:
        proxy.stop()


def many_on_disk(folder, count):
    """More objects than one listing page, written straight into the server's folder (quicker than PUTs)."""
    for n in range(count):
        (folder / f"users/u{n:04d}.png").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"users/u{n:04d}.png").write_bytes(b"avatar %d" % n)


def test_copying_starts_before_the_listing_ends(project, storage, tmp_path):
    """As rclone does: what the first page shows is copied while the later pages are on their way."""
    many_on_disk(tmp_path / "s3-prod" / "avatars", 1100)
    source = FaultProxy(storage["prod"].port, page_delay=1.5).start()
    target = FaultProxy(storage["preprod"].port).start()
    try:
        project.envs["prod"]["storage_url"] = source.url
        project.envs["preprod"]["storage_url"] = target.url
        result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--json")
    finally:
        source.stop()
        target.stop()
    assert result.code == 0, result.err
    assert json.loads(result.out)["buckets"][0]["copied"] == 1100
    last_page = max(t for t, _, path in source.answered if "continuation-token=" in path)
    first_copy = min(t for t, method, _ in target.answered if method == "PUT")
    assert first_copy < last_page - 1.0, "nothing was copied before the last page came"
    assert contents(storage["preprod"].client(), "avatars") == contents(storage["prod"].client(), "avatars")


def test_a_listing_that_fails_part_way_says_what_was_copied(project, storage, tmp_path):
    """Copies found on the first page are made; the bucket then ends failed, never as done."""
    many_on_disk(tmp_path / "s3-prod" / "avatars", 1100)
    source = FaultProxy(storage["prod"].port, fail_pages=True).start()
    try:
        project.envs["prod"]["storage_url"] = source.url
        result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--json")
        text = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    finally:
        source.stop()
    assert result.code == 1 and text.code == 1, result.err
    data = json.loads(result.out)
    (bucket,) = data["buckets"]
    assert bucket["status"] == "listing failed" and bucket["copied"] == 1000 and bucket["failed"] == 0, bucket
    (failure,) = data["failures"]
    assert failure["key"] == "" and "listing failed" in failure["error"] and "not compared" in failure["error"]
    assert "avatars: listing failed" in text.err and "re-run: inv sync-storage" in text.err, text.err
    assert "Traceback" not in result.err + text.err
    copied = contents(storage["preprod"].client(), "avatars")
    assert len(copied) == 1000  # the first page's, each whole
    source_contents = contents(storage["prod"].client(), "avatars")
    assert all(source_contents[key] == digest for key, digest in copied.items())


def test_an_object_read_to_compare_that_is_always_cut_short_is_named(project, storage, moto_port):
    """A no-change sync reads an object whose ETags cannot be compared; its GET is cut short every time."""
    bucket, key, body = "module-client-content", "lesson.bin", b"m" * (6 << 20)
    moto = moto_client(moto_port)
    if bucket not in [b["Name"] for b in moto.list_buckets()["Buckets"]]:
        moto.create_bucket(Bucket=bucket)
    multipart = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    moto.upload_fileobj(io.BytesIO(body), bucket, key, Config=multipart)  # an `md5-2` ETag: no MD5
    storage["preprod"].client().put_object(Bucket=bucket, Key=key, Body=body)
    proxy = FaultProxy(moto_port, rate=1.0, faults=("truncate",), objects_only=True).start()
    try:
        project.envs["prod"]["storage_url"] = proxy.url
        project.secrets.update(s3_secrets("prod", "moto", "moto-secret"))
        result = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", bucket)
    finally:
        proxy.stop()
    assert proxy.injected.get("truncate"), "the proxy never cut a GET short"
    assert result.code == 1
    assert "listing failed" not in result.err and "cannot reach it" not in result.err, result.err
    assert f"{bucket}/{key}" in result.err and "GetObject" in result.err and "cut short" in result.err, result.err
