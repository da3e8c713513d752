"""More attacks on remote-first backups: records and locks at the target that someone else wrote,
and a target that does not answer while `inv status` reads it."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from lib.backups import BASE, LOCKS, RECORDS
from lib.s3 import fill


def test_a_forged_drill_record_for_a_backup_that_is_not_there_is_no_good_drill(project, storage, offsite):
    """A drill-ok record at the target for a backup with no manifest there is a claim about nothing:
    `inv status` must not show it as the newest good drill (records are shown only for a sealed backup)."""
    fill(storage["prod"].client(), "avatars", 2)
    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    now = datetime.now(UTC) + timedelta(seconds=5)
    stamp = now.strftime("%Y-%m-%dT%H-%M-%SZ")
    body = json.dumps({"kind": "drill", "ok": True, "into": "scratch", "time": now.isoformat()}).encode()
    key = f"{RECORDS}2020-01-01T00-00-00Z/{stamp}-drill-ok.json"
    offsite.client().put_object(Bucket="ops-backups", Key=key, Body=body)

    status = project.run("status", "--env", "prod", "--json")

    assert status.code == 0, status.err
    (prod,) = json.loads(status.out)["backups"]
    assert prod["drill"] is None, f"a forged record for a backup that is not there passed as a good drill: {prod}"


def test_a_lock_naming_a_hostile_host_never_reaches_the_terminal(project, storage, offsite):
    """A lock's host, pid and time come from an object anyone with write access to the target wrote:
    the refusal names them without terminal escape sequences or extra lines."""
    fill(storage["prod"].client(), "avatars", 2)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    body = json.dumps({"host": "\x1b]0;owned\x07\x1b[2Jrunner\nfake line", "pid": 7, "time": now}).encode()
    offsite.client().put_object(Bucket="ops-backups", Key=LOCKS + "2000-01-01T00-00-00Z-other.json", Body=body)

    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")

    assert made.code == 2, made.out + made.err
    assert "another backup of prod to offsite is running" in made.err, made.err
    assert "\x1b" not in made.err and "\x07" not in made.err, repr(made.err)
    assert len(made.err.strip().splitlines()) == 1, repr(made.err)


@pytest.fixture
def silent_target(project):
    """A backup target [silent] whose endpoint accepts connections and never answers."""
    from lib.s3 import s3_secrets

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    project.extra += f"\n[silent]\nstorage_url = http://127.0.0.1:{port}\nbucket = ops-backups\nprefix = nightly\n"
    project.secrets.update(s3_secrets("silent", "AKIASILENT00000001", "silent-secret-never-print"))
    yield port
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_status_with_a_target_that_never_answers_finishes_soon_and_names_it(project, storage, silent_target):
    """`inv status` reads, it does not back up: a backup target that hangs is named in a warning
    within seconds, and the rest of the status is shown (exit 0)."""
    started = time.monotonic()
    try:
        status = project.run("status", "--env", "prod", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("inv status still running after 60 s with a target that never answers")
    took = time.monotonic() - started
    assert status.code == 0, status.err
    assert "silent" in status.out and "could not be read" in status.out, status.out
    assert took < 45, f"inv status took {took:.0f} s"


def test_backups_at_the_target_never_passes_escape_sequences_from_names_or_manifests(project, storage, offsite):
    """A backup's name and its manifest's words come from the target, written by whoever can write there:
    `inv backups --target` shows them without terminal escape sequences, and --json stays JSON."""
    fill(storage["prod"].client(), "avatars", 2)
    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    name = json.loads(made.out)["backups"][0]["path"].split(":")[1]
    remote = offsite.client()
    manifest = json.loads(
        remote.get_object(Bucket="ops-backups", Key=f"{BASE}{name}/_backup_metadata.json")["Body"].read()
    )
    manifest["full"] = False
    manifest["not_full_because"] = "\x1b[2J\x1b]0;owned\x07wiped"
    hostile = "2026-01-01T00-00-00Z\x1b[31m"
    remote.put_object(
        Bucket="ops-backups", Key=f"{BASE}{hostile}/_backup_metadata.json", Body=json.dumps(manifest).encode()
    )

    listed = project.run("backups", "--env", "prod", "--target", "offsite")
    as_json = project.run("backups", "--env", "prod", "--target", "offsite", "--json")

    assert listed.code == 0, listed.err
    assert "\x1b" not in listed.out + listed.err and "\x07" not in listed.out, repr(listed.out)
    assert as_json.code == 0, as_json.err
    assert len(json.loads(as_json.out)["backups"]) == 2, as_json.out


@pytest.mark.parametrize("written", ["clock-ahead", "not-json"])
def test_a_lock_nobody_refreshed_for_hours_is_taken_over_whatever_its_body_says(project, storage, offsite, written):
    """The README: a lock is stale after 30 minutes without a refresh, and the next run takes it over.
    The target's own clock says when a lock was last written; the body's time is the writer's clock."""
    import os

    fill(storage["prod"].client(), "avatars", 2)
    ahead = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    body = (
        json.dumps({"host": "gone-runner", "pid": 4242, "time": ahead}).encode()
        if written == "clock-ahead"
        else b"\x00garbage"
    )
    key = LOCKS + "2000-01-01T00-00-00Z-killed.json"
    offsite.client().put_object(Bucket="ops-backups", Key=key, Body=body)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(offsite.root / "ops-backups" / key, (two_hours_ago, two_hours_ago))  # rclone's LastModified

    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")

    assert made.code == 0, made.err
    assert "taking over a stale lock" in made.err, made.err


def test_status_with_a_target_that_refuses_connections_names_it_and_goes_on(project, storage, offsite):
    """A backup target that is down (nothing listens) is one warning line in `inv status`, exit 0,
    the other target's backups still shown, and --json stays one JSON document."""
    from lib.s3 import s3_secrets

    fill(storage["prod"].client(), "avatars", 2)
    assert project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json").code == 0
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    project.extra += f"\n[down]\nstorage_url = http://127.0.0.1:{port}\nbucket = ops-backups\nprefix = nightly\n"
    project.secrets.update(s3_secrets("down", "AKIADOWN0000000001", "down-secret-never-print"))

    started = time.monotonic()
    status = project.run("status", "--env", "prod", timeout=120)
    as_json = project.run("status", "--env", "prod", "--json", timeout=120)

    assert time.monotonic() - started < 90
    assert status.code == 0, status.err
    assert "warning: prod: backups and drills at down:" in status.out, status.out
    assert "(offsite)" in status.out and "down-secret-never-print" not in status.out + status.err
    (prod,) = json.loads(as_json.out)["backups"]
    assert prod["backup_at"] == "offsite" and prod["unread"].startswith("down:"), prod


@pytest.fixture
def dead_scratch(project, storage, pg, tmp_path):
    """A scratch environment whose database is there and whose S3 server is down."""
    from lib.db import new_database
    from lib.s3 import s3_secrets

    from devstack import localstack

    url = new_database(pg, "scratch")
    server = localstack.start_s3("AKIADRILLSCRATCH03", "scratch-secret-Zq9-never-print", root=tmp_path / "s3-dead")
    server.stop()
    project.envs["scratch"] = {
        "ref": "scratchprojectref001",
        "db_url": url,
        "storage_url": server.url,
        "scratch": "true",
    }
    project.secrets.update(s3_secrets("scratch", "AKIADRILLSCRATCH03", "scratch-secret-Zq9-never-print"))
    return server


def test_a_drill_that_fails_half_way_is_the_newest_check_of_its_backup(project, storage, offsite, dead_scratch):
    """After `verify-backup` said ok, a drill of the same backup that fails (the scratch storage is down)
    must not leave `inv backups --target` saying the backup's newest check is ok."""
    fill(storage["prod"].client(), "avatars", 2)
    made = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    ok = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err
    time.sleep(1.1)

    drilled = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch", timeout=240)

    assert drilled.code != 0, drilled.out + drilled.err
    listed = project.run("backups", "--env", "prod", "--target", "offsite", "--json")
    verified = [b["verified"] for b in json.loads(listed.out)["backups"] if b["series"] == "full"]
    assert verified and verified[0]["ok"] is False, (verified, drilled.err[-400:])
