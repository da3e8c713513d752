"""Off-site copies of backups: a second S3 server as the backup target."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from lib.s3 import contents, empty_bucket, fill, moto_client, s3_secrets

from devstack.faultproxy import FaultProxy


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
    # The same rules on each series, each judged from its own contents: the second backup goes; the first
    # stays on both sides (it holds more bytes than any later one, the high-water mark).
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


def sealed_at(remote, bucket: str = "ops-backups") -> list[str]:
    """The names of the sealed remote backups (those with a manifest), oldest first."""
    keys = [o["Key"] for o in remote.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return sorted(k.split("/")[-2] for k in keys if k.endswith("/_backup_metadata.json"))


def test_off_site_history_survives_fresh_runners(project, storage, offsite):
    """The nightly CI job: each night starts with no local backups; on night 5 the project is wiped."""
    src = storage["prod"].client()
    nights = []
    for night in range(7):
        shutil.rmtree(project.root / "backups", ignore_errors=True)  # a fresh runner
        if night < 4:
            fill(src, "avatars", 4 + night)  # the project grows
        elif night == 4:
            for i in range(7):
                src.delete_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin")
        made = project.run("backup-storage", "--copy-to", "offsite", "--keep", "2", "--json")
        assert made.code == 0, made.err
        nights.append(Path(json.loads(made.out)["backups"][0]["path"]).name)
        if night >= 4:
            assert "no old remote backup removed" in made.err and "where the last full backup" in made.err
        time.sleep(1.1)  # one backup a second at most: each night has its own name
    # The remote series is pruned by its own rules: two full backups kept, the wiped nights prune nothing.
    assert sealed_at(offsite.client()) == sorted(nights[2:])
    last_full = nights[3]
    ok = project.run("verify-backup", "--backup", f"offsite:{last_full}", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err
    assert ok.out.strip().splitlines()[-1].startswith("OK: 7 files")


# ---------------------------------------------------------------- a remote backup that tries to write elsewhere

HOSTILE_BUCKET = "ops-backups-hostile"


@pytest.fixture
def moto_offsite(project, storage, moto_port):
    """The backup target on moto (it holds keys a file system cannot), behind a proxy that logs each request."""
    moto = moto_client(moto_port)
    empty_bucket(moto, HOSTILE_BUCKET)
    proxy = FaultProxy(moto_port).start()
    project.extra += f"\n[offsite]\nstorage_url = {proxy.url}\nbucket = {HOSTILE_BUCKET}\nprefix = nightly\n"
    project.secrets.update(s3_secrets("offsite", "moto", "moto-secret"))
    yield moto, proxy
    proxy.stop()


def sent_off_site(project, storage) -> str:
    """A sealed remote backup of prod's three avatars; its prefix in the target bucket."""
    fill(storage["prod"].client(), "avatars", 3)
    made = project.run("backup-storage", "--copy-to", "offsite", "--json")
    assert made.code == 0, made.err
    return json.loads(made.out)["backups"][0]["offsite"]["remote"].split("/", 1)[1]


def restore_remote(project, *extra: str):
    return project.run(
        "restore-storage",
        "--to",
        "preprod",
        "--env",
        "prod",
        "--backup",
        "offsite:latest",
        "--buckets",
        "avatars",
        *extra,
    )


@pytest.mark.parametrize(
    "relative",
    ["/{escape}/absolute-pwned", "../../../dotdot-pwned", "avatars/../../../../inner-dotdot-pwned"],
    ids=["absolute", "dot-dot", "dot-dot-inside"],
)
def test_a_remote_key_outside_the_folder_is_refused_and_nothing_written(project, storage, moto_offsite, relative):
    moto, _ = moto_offsite
    escape = project.root / "escape"
    escape.mkdir()
    prefix = sent_off_site(project, storage)
    relative = relative.format(escape=str(escape).lstrip("/"))
    moto.put_object(Bucket=HOSTILE_BUCKET, Key=prefix + relative, Body=b"pwned")
    for flags in (("--dry-run",), ("--yes",)):
        refused = restore_remote(project, *flags)
        assert refused.code == 1, refused.err
        assert "outside the restore folder" in refused.err and repr(prefix + relative) in refused.err
    written = list(project.root.rglob("*pwned*"))
    assert written == [], "nothing lands outside the folder"
    assert not list((project.root / "tmp").glob("*offsite*")), "nothing fetched is left"
    assert contents(storage["preprod"].client(), "avatars") == {}


def test_a_remote_restore_verifies_before_it_writes_and_a_dry_run_fetches_nothing(project, storage, moto_offsite):
    moto, proxy = moto_offsite
    prefix = sent_off_site(project, storage)
    before = len(proxy.answered)
    dry = restore_remote(project, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["buckets"][0]["to upload"] == 3
    fetched = [path for _, method, path in proxy.answered[before:] if method == "GET" and "list-type" not in path]
    assert len(fetched) == 1 and fetched[0].endswith("/_backup_metadata.json"), "a dry run fetches the manifest alone"
    weird = prefix + "avatars/\u202egnp.exe odd \u2603 %2e%2e"  # inside the folder, but in no manifest
    moto.put_object(Bucket=HOSTILE_BUCKET, Key=weird, Body=b"stray")
    for flags in (("--dry-run",), ("--yes",)):
        stray = restore_remote(project, *flags)
        assert stray.code == 1 and "not in its manifest" in stray.err and repr(weird) in stray.err
    assert contents(storage["preprod"].client(), "avatars") == {}, "nothing was restored from an unverified backup"
    moto.delete_object(Bucket=HOSTILE_BUCKET, Key=weird)
    victim = prefix + "avatars/bulk/0001.bin"
    moto.put_object(Bucket=HOSTILE_BUCKET, Key=victim, Body=bytes([9]) * 1024)  # same size, other bytes
    corrupt = restore_remote(project, "--yes")
    assert corrupt.code == 1 and "does not match its manifest" in corrupt.err
    assert "1 corrupt (avatars/bulk/0001.bin)" in corrupt.err
    assert contents(storage["preprod"].client(), "avatars") == {}
    assert not list((project.root / "tmp").glob("*offsite*")), "nothing fetched is left"
    moto.put_object(Bucket=HOSTILE_BUCKET, Key=victim, Body=bytes([1]) * 1024)
    restored = restore_remote(project, "--yes")
    assert restored.code == 0, restored.err
    assert contents(storage["preprod"].client(), "avatars") == contents(storage["prod"].client(), "avatars")


def test_calendar_retention_from_backup_settings_on_both_series_and_the_listing(project, storage, offsite):
    project.extra += "\n[backup]\nkeep_last = 1\nkeep_daily = 2\n"
    fill(storage["prod"].client(), "avatars", 3)
    made = [
        Path(json.loads(r.out)["backups"][0]["path"]).name
        for r in (project.run("backup-storage", "--copy-to", "offsite", "--json") for _ in range(3))
    ]
    series = project.root / "backups" / "storage" / "prod-qfdztdgublwlmewobxmx"
    # All made today: the newest is the last one and the newest of its day; the rest go, here and there.
    assert [p.name for p in sorted(series.iterdir()) if not p.name.startswith(".")] == made[-1:]
    assert sealed_at(offsite.client()) == made[-1:]
    older = series / "2026-01-31T02-00-00Z"  # a backup from another day, as if the series were older
    shutil.copytree(series / made[-1], older)
    listed = project.run("backups", "--env", "prod", "--json")
    assert listed.code == 0, listed.err
    kept = {b["name"]: (b["kept_by"], b["prunable"]) for b in json.loads(listed.out)["backups"]}
    assert kept == {older.name: (["daily"], False), made[-1]: (["last", "daily", "high-water"], False)}
    narrower = project.run("backups", "--env", "prod", "--keep-daily", "1")
    assert narrower.code == 0, narrower.err
    assert "would be pruned" in narrower.out and "would remove 1 (nothing was removed)" in narrower.out
    assert older.is_dir(), "listing removes nothing"
    remote = project.run("backups", "--env", "prod", "--target", "offsite", "--json")
    assert remote.code == 0, remote.err
    assert [(b["name"], b["kept_by"]) for b in json.loads(remote.out)["backups"]] == [
        (made[-1], ["last", "daily", "high-water"])
    ]
    for bad in (("--keep-daily", "x"), ("--keep", "0", "--keep-daily", "0")):
        refused = project.run("backups", "--env", "prod", *bad)
        assert refused.code == 2 and refused.err.count("\n") == 1, refused.err


def test_the_local_listing_shows_the_backups_of_some_buckets_as_their_own_series(project, storage):
    """`backup-storage --buckets avatars` fills a series of its own (`<env>-<ref>+avatars`): `inv backups`
    lists it beside the all-bucket and full series, each row naming the series it belongs to."""
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=1024)
    src.put_object(Bucket="program-logos", Key="logo.svg", Body=b"<svg/>", ContentType="image/svg+xml")
    runs = {
        "storage": project.run("backup-storage", "--env", "prod", "--json"),
        "storage+avatars": project.run("backup-storage", "--env", "prod", "--buckets", "avatars", "--json"),
        "storage+avatars+program-logos": project.run(
            "backup-storage", "--env", "prod", "--buckets", "program-logos,avatars", "--json"
        ),
    }
    made = {}
    for series, run in runs.items():
        assert run.code == 0, run.err
        made[series] = Path(json.loads(run.out)["backups"][0]["path"])
    assert made["storage+avatars"].parent.name == "prod-qfdztdgublwlmewobxmx+avatars"

    listed = project.run("backups", "--env", "prod", "--json")
    table = project.run("backups", "--env", "prod")

    assert listed.code == 0, listed.err
    rows = [(b["series"], b["name"], b["objects"], b["state"]) for b in json.loads(listed.out)["backups"]]
    assert rows == [
        ("storage", made["storage"].name, 4, "sealed, full"),
        ("storage+avatars", made["storage+avatars"].name, 3, "sealed, full"),
        ("storage+avatars+program-logos", made["storage+avatars+program-logos"].name, 4, "sealed, full"),
    ]
    assert table.code == 0, table.err
    assert "storage+avatars " in table.out and made["storage+avatars"].name in table.out, table.out
    assert "3 backup(s)" in table.out


def test_a_copy_off_site_waits_its_turn_behind_a_run_holding_the_series_lock(project, storage, offsite):
    """Two operators: a laptop's --copy-to while CI's --to holds prod's lock at the target. The copy
    would prune the series under the other run; it is refused instead (exit 2), naming the holder."""
    import os
    import socket
    from datetime import UTC, datetime

    from lib.backups import LOCKS

    fill(storage["prod"].client(), "avatars", 2)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "time": datetime.now(UTC).isoformat()}
    lock = LOCKS + "2026-01-01T00-00-00Z-ci.json"
    offsite.client().put_object(Bucket="ops-backups", Key=lock, Body=json.dumps(holder).encode())

    made = project.run("backup-storage", "--env", "prod", "--copy-to", "offsite")

    assert made.code == 2, made.out + made.err
    assert "another backup of prod to offsite is running" in made.err and f"pid {os.getpid()}" in made.err
    listed = offsite.client().list_objects_v2(Bucket="ops-backups", Prefix="nightly/prod").get("Contents", [])
    assert listed == [], "nothing copied while the lock is held"
