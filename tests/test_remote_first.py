"""Remote-first backups (`--to TARGET`): straight to a backup target, unchanged objects named in its pool, never sent again."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from lib.backups import BASE, LOCKS, blob_key, remote_names
from lib.s3 import contents, fill

from devstack.faultproxy import FaultProxy


@pytest.fixture
def counted_source(project, storage):
    """prod's storage behind a proxy that logs each request it answers."""
    proxy = FaultProxy(storage["prod"].port).start()
    project.envs["prod"]["storage_url"] = proxy.url
    yield proxy
    proxy.stop()


def object_reads(proxy: FaultProxy, since: int) -> list[str]:
    """The object GETs (not listings) the source answered after its `since`th answer."""
    return sorted(path for _, method, path in proxy.answered[since:] if method == "GET" and "?" not in path)


def backed_up(project, *args: str) -> dict:
    made = project.run("backup-storage", "--to", "offsite", "--json", *args)
    assert made.code == 0, made.err
    return json.loads(made.out)["backups"][0]


def test_second_backup_reads_only_the_changed_object_and_restores(project, storage, offsite, counted_source):
    src = storage["prod"].client()
    fill(src, "avatars", 8, size=8192)
    src.put_object(Bucket="program-logos", Key="logo.svg", Body=b"<svg/>", ContentType="image/svg+xml")
    first = backed_up(project)
    assert (first["downloaded"], first["already_there"], first["objects"]) == (9, 0, 9)
    assert first["path"].startswith("offsite:")
    assert not (project.root / "backups").exists(), "no local series"

    src.put_object(Bucket="avatars", Key="bulk/0003.bin", Body=b"changed")
    before = len(counted_source.answered)
    time.sleep(1.1)  # a name of its own
    second = backed_up(project)
    assert object_reads(counted_source, before) == ["/avatars/bulk/0003.bin"], "only the changed object is read"
    assert (second["downloaded"], second["already_there"], second["objects"]) == (1, 8, 9)
    assert remote_names(offsite) == {first["path"].split(":")[1]: True, second["path"].split(":")[1]: True}

    ok = project.run("verify-backup", "--backup", second["path"], "--env", "prod")
    assert ok.code == 0, ok.out + ok.err
    assert ok.out.strip().splitlines()[-1].startswith("OK: 9 files")
    restored = project.run(
        "restore-storage",
        "--to",
        "preprod",
        "--env",
        "prod",
        "--backup",
        second["path"],
        "--buckets",
        "avatars,program-logos",
    )
    assert restored.code == 0, restored.err
    dst = storage["preprod"].client()
    assert contents(dst, "avatars") == contents(src, "avatars")
    assert contents(dst, "program-logos") == contents(src, "program-logos")
    assert not staging(project), "nothing of the backups is left on this machine"


@pytest.mark.parametrize("written", [1, 15], ids=["after-one-object", "half-way"])
def test_a_killed_backup_is_never_latest_and_the_next_run_removes_it(
    project, storage, offsite, counted_source, written
):
    src = storage["prod"].client()
    fill(src, "avatars", 30, size=4096)
    first = backed_up(project)["path"].split(":")[1]
    for i in range(30):
        src.put_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin", Body=b"new %d" % i)  # all to be read again
    counted_source.delay = 0.3
    time.sleep(1.1)
    sealed_keys = len(remote_keys(offsite))  # the first backup's objects, manifest and record
    process = project.start("backup-storage", "--to", "offsite")
    deadline = time.monotonic() + 60
    while len(remote_keys(offsite)) < sealed_keys + 2 + written:  # the lock, the run's mark, its objects
        assert time.monotonic() < deadline and process.poll() is None, "the backup never got under way"
        time.sleep(0.05)
    process.kill()
    process.communicate(timeout=60)
    names = remote_names(offsite)
    assert names[first] and list(names.values()).count(False) == 1, names
    assert len(staging(project)) == 1, "the killed run's temp files"

    latest = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert latest.code == 0, latest.out + latest.err
    assert f"{first}" in latest.out + latest.err, "latest is the sealed backup, not the killed one"

    counted_source.delay = 0.0
    done = project.run("backup-storage", "--to", "offsite", "--json")
    assert done.code == 0, done.err
    assert "removing an unsealed backup" in done.err
    assert not staging(project), "the killed run's temp files are removed too"
    made = json.loads(done.out)["backups"][0]
    assert made["downloaded"] == 30, "nothing of the unsealed backup was copied from"
    assert remote_names(offsite) == {first: True, made["path"].split(":")[1]: True}
    again = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert again.code == 0, again.out + again.err


def staging(project) -> list:
    return list((project.root / "tmp").glob("remote-backup-*"))


def remote_keys(server) -> list[str]:
    """Every key at the target: the series, its pool, its records and locks."""
    listed = server.client().list_objects_v2(Bucket="ops-backups", Prefix="nightly/").get("Contents", [])
    return [o["Key"] for o in listed]


@pytest.mark.parametrize("task", ["backup-storage", "backup"])
def test_to_and_copy_to_together_are_refused(project, storage, offsite, task):
    fill(storage["prod"].client(), "avatars", 2)
    result = project.run(task, "--env", "prod", "--to", "offsite", "--copy-to", "offsite")
    assert result.code == 2 and "--to and --copy-to together" in result.err, result.err
    assert "Traceback" not in result.err
    assert not (project.root / "backups").exists()
    assert remote_names(offsite) == {}


def test_remote_retention_judges_the_remote_series_alone(project, storage, offsite):
    fill(storage["prod"].client(), "avatars", 3)
    made = []
    for _ in range(3):
        made.append(backed_up(project, "--keep", "2")["path"].split(":")[1])
        time.sleep(1.1)
    assert remote_names(offsite) == {made[1]: True, made[2]: True}


def test_a_full_backup_straight_to_the_target_verifies(project, storage, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 4)
    first = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert first.code == 0, first.err
    assert not (project.root / "backups").exists(), "no local series"
    src.put_object(Bucket="avatars", Key="bulk/0001.bin", Body=b"changed")
    time.sleep(1.1)
    second = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert second.code == 0, second.err
    detail = json.loads(second.out)["steps"][0]["detail"]
    assert "1 read, 3 already there" in detail, detail
    names = remote_names(offsite, "nightly/full/prod-qfdztdgublwlmewobxmx/")
    assert len(names) == 2 and all(names.values())
    ok = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err


def record_keys(server) -> list[str]:
    listed = server.client().list_objects_v2(Bucket="ops-backups", Prefix="nightly/records/").get("Contents", [])
    return [o["Key"] for o in listed]


def checked(project) -> dict:
    listed = project.run("backups", "--env", "prod", "--target", "offsite", "--json")
    assert listed.code == 0, listed.err
    return {b["name"]: b["verified"] for b in json.loads(listed.out)["backups"]}


def test_verifications_are_recorded_at_the_target_and_pruned_with_their_backup(project, storage, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=2048)
    first = backed_up(project)["path"]
    name = first.split(":")[1]
    assert checked(project) == {name: None}, "sealed, not verified yet"
    ok = project.run("verify-backup", "--backup", first, "--env", "prod")
    assert ok.code == 0, ok.out + ok.err
    verified = checked(project)[name]
    assert (verified["ok"], verified["by"]) == (True, "verify-backup"), verified
    assert verified["time"][:10] == datetime.now(UTC).date().isoformat()
    table = project.run("backups", "--env", "prod", "--target", "offsite")
    assert "verified" in table.out and "ok by verify-backup" in table.out, table.out

    victim = blob_key(bytes([1]) * 2048)  # avatars/bulk/0001.bin
    remote = offsite.client()
    good = remote.get_object(Bucket="ops-backups", Key=victim)["Body"].read()
    remote.put_object(Bucket="ops-backups", Key=victim, Body=b"x" * len(good))
    bad = project.run("verify-backup", "--backup", first, "--env", "prod")
    assert bad.code == 1, bad.out + bad.err
    assert checked(project)[name]["ok"] is False, "the newest check failed"
    assert "FAILED by verify-backup" in project.run("backups", "--env", "prod", "--target", "offsite").out
    remote.put_object(Bucket="ops-backups", Key=victim, Body=good)
    assert len([k for k in record_keys(offsite) if f"/{name}/" in k]) >= 2
    # A record is a claim, not data: one that is no small JSON object agreeing with its name is ignored.
    forged = f"nightly/records/prod-qfdztdgublwlmewobxmx/{name}/2099-01-01T00-00-00Z-verify-ok.json"
    remote.put_object(Bucket="ops-backups", Key=forged, Body=b"not json")
    assert checked(project)[name]["ok"] is False
    assert b"offsite-secret-Qw3-never-print" not in b"".join(
        remote.get_object(Bucket="ops-backups", Key=k)["Body"].read() for k in record_keys(offsite)
    )

    time.sleep(1.1)
    second = backed_up(project, "--keep", "1")["path"].split(":")[1]
    assert remote_names(offsite) == {second: True}
    assert not [k for k in record_keys(offsite) if f"/{name}/" in k], "the pruned backup's records go with it"


def lock_keys(server) -> list[str]:
    listed = server.client().list_objects_v2(Bucket="ops-backups", Prefix=LOCKS).get("Contents", [])
    return [o["Key"] for o in listed]


def test_two_runs_to_one_target_one_proceeds_the_other_names_who_holds_the_lock(
    project, storage, offsite, counted_source
):
    fill(storage["prod"].client(), "avatars", 6, size=2048)
    counted_source.hold = threading.Event()  # the first run reads no object until the second has been answered
    first = project.start("backup-storage", "--to", "offsite", "--json")
    try:
        deadline = time.monotonic() + 60
        while not lock_keys(offsite):
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.05)
        second = project.run("backup-storage", "--to", "offsite", "--json")
    finally:
        counted_source.hold.set()
        out, err = first.communicate(timeout=120)
    counted_source.hold = None

    assert second.code == 2, second.out + second.err
    (line,) = second.err.strip().splitlines()
    assert "another backup of prod to offsite is running" in line and f"pid {first.pid}" in line, line
    assert f"ops-backups/{LOCKS}" in line and "stale after 30 minutes" in line, line
    assert first.returncode == 0, err
    name = json.loads(out)["backups"][0]["path"].split(":")[1]
    assert remote_names(offsite) == {name: True}, "one backup, from the first run; nothing of the second's"
    assert lock_keys(offsite) == [], "the lock goes with the run"
    ok = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err


def test_two_runs_started_together_exactly_one_proceeds(project, storage, offsite, counted_source):
    fill(storage["prod"].client(), "avatars", 10, size=1024)
    counted_source.hold = threading.Event()  # the winner reads no object until the other run has ended
    runs = [project.start("backup-storage", "--to", "offsite", "--json") for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while all(run.poll() is None for run in runs) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        counted_source.hold.set()
        done = [(run.returncode, out, err) for run in runs for out, err in [run.communicate(timeout=180)]]
    counted_source.hold = None
    assert sorted(code for code, _, _ in done) == [0, 2], done
    (refused,) = [err for code, _, err in done if code == 2]
    assert "another backup of prod to offsite is running" in refused and refused.count("\n") == 1, refused
    (out,) = [out for code, out, _ in done if code == 0]
    name = json.loads(out)["backups"][0]["path"].split(":")[1]
    assert remote_names(offsite) == {name: True} and lock_keys(offsite) == []
    ok = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err


def test_a_stale_lock_is_taken_over(project, storage, offsite):
    fill(storage["prod"].client(), "avatars", 2)
    old = datetime.fromtimestamp(time.time() - 2 * 3600, UTC).isoformat(timespec="seconds")
    stale = LOCKS + "2026-01-01T00-00-00Z-dead.json"
    body = json.dumps({"host": "gone-runner", "pid": 4242, "time": old}).encode()
    offsite.client().put_object(Bucket="ops-backups", Key=stale, Body=body)
    written = time.time() - 2 * 3600
    os.utime(offsite.root / "ops-backups" / stale, (written, written))  # the target's Last-Modified: 2 h ago

    made = project.run("backup-storage", "--to", "offsite", "--json")

    assert made.code == 0, made.err
    assert "taking over a stale lock" in made.err and "gone-runner" in made.err, made.err
    assert lock_keys(offsite) == []
    assert all(remote_names(offsite).values()) and len(remote_names(offsite)) == 1


def backdate(server, names: dict[str, str]) -> None:
    """Rename remote backups (old name -> new), their records with them: nights on a calendar of the test's own."""
    client = server.client()
    for old, new in names.items():
        for base in (BASE, BASE.replace("nightly/", "nightly/records/")):
            listed = client.list_objects_v2(Bucket="ops-backups", Prefix=f"{base}{old}/").get("Contents", [])
            for key in sorted((o["Key"] for o in listed), key=lambda k: k.endswith("_backup_metadata.json")):
                moved = f"{base}{new}/" + key[len(f"{base}{old}/") :]  # the manifest last: sealed last
                client.copy_object(Bucket="ops-backups", Key=moved, CopySource={"Bucket": "ops-backups", "Key": key})
            for key in sorted((o["Key"] for o in listed), key=lambda k: not k.endswith("_backup_metadata.json")):
                client.delete_object(Bucket="ops-backups", Key=key)


def calendar_keeps(names: list[str], last: int, daily: int, weekly: int) -> set[str]:
    """restic's forget rules, written out again from their definition: the newest `last`, and the newest
    of each of the newest `daily` days and `weekly` ISO weeks."""
    newest_first = sorted(names, reverse=True)
    kept = set(newest_first[:last])
    for count, period in ((daily, lambda d: d.date()), (weekly, lambda d: d.isocalendar()[:2])):
        seen: list = []
        for name in newest_first:
            when = datetime.strptime(name, "%Y-%m-%dT%H-%M-%SZ")
            if period(when) not in seen and len(seen) < count:
                seen.append(period(when))
                kept.add(name)
    return kept


def test_seven_nights_on_fresh_runners_read_only_the_changes_and_keep_by_the_calendar(
    project, storage, offsite, counted_source
):
    """The nightly CI job with `--to`: each night an empty runner, 1 % of the objects changed, night 5 a
    wiped project (put back on night 6). Before each night the earlier backups are moved one day back,
    so each run judges a series made on successive days (the week turns within it)."""
    src = storage["prod"].client()
    fill(src, "avatars", 100, size=512)
    keep = ("--keep-last", "1", "--keep-daily", "3", "--keep-weekly", "2")
    today = datetime.now(UTC).date()
    nights: list[str] = []  # each night's backup, by the name it has now
    held: dict[str, dict] = {}  # what each backup holds
    expected: set[str] = set()  # what retention should have kept so far
    for night in range(7):
        for folder in ("backups", "tmp"):
            shutil.rmtree(project.root / folder, ignore_errors=True)  # a fresh runner
        moved = {
            name: (today - timedelta(days=night - n)).strftime("%Y-%m-%dT02-00-00Z") for n, name in enumerate(nights)
        }
        backdate(offsite, {old: new for old, new in moved.items() if old in expected})
        nights = [moved[name] for name in nights]
        held = {moved[name]: what for name, what in held.items()}
        expected = {moved[name] for name in expected}
        if night == 5:
            for key in contents(src, "avatars"):
                src.delete_object(Bucket="avatars", Key=key)  # wiped
        elif night:
            if night == 6:
                fill(src, "avatars", 100, size=512)  # put back
            changed = f"bulk/{night * 7:04d}.bin"  # 1 % of the objects, same size, other bytes
            src.put_object(Bucket="avatars", Key=changed, Body=bytes([200 + night]) * 512)
        everything = sorted(f"/avatars/{key}" for key in contents(src, "avatars"))
        # Night 0 reads all; night 6 too, as the newest backup (the wiped night's) holds nothing.
        reads = everything if night in (0, 6) else [] if night == 5 else [f"/avatars/{changed}"]

        before = len(counted_source.answered)
        made = backed_up(project, *keep)

        assert object_reads(counted_source, before) == reads, f"night {night}: only the changed objects are read"
        assert not (project.root / "backups").exists(), "no local series"
        nights.append(made["path"].split(":")[1])
        held[nights[-1]] = contents(src, "avatars")
        if night == 5:
            assert made["kept_because"], "a wiped project prunes nothing"
            expected.add(nights[-1])
        else:
            series = expected | {nights[-1]}
            full = {name for name in series if held[name]}
            expected = calendar_keeps(sorted(full), 1, 3, 2) | calendar_keeps(sorted(series - full), 1, 3, 2)
        names = remote_names(offsite)
        assert set(names) == expected and all(names.values()), f"night {night}: kept by the calendar rules"
        assert any(held[name] for name in names), "never the wiped night alone"

    assert len(expected) >= 3
    for name in sorted(expected):
        ok = project.run("verify-backup", "--backup", f"offsite:{name}", "--env", "prod")
        assert ok.code == 0, ok.out + ok.err
        for key in contents(storage["preprod"].client(), "avatars"):
            storage["preprod"].client().delete_object(Bucket="avatars", Key=key)
        restored = project.run(
            "restore-storage", "--to", "preprod", "--env", "prod", "--backup", f"offsite:{name}", "--buckets", "avatars"
        )
        assert restored.code == 0, restored.err
        assert contents(storage["preprod"].client(), "avatars") == held[name], f"{name} restores what it held"


def test_a_backup_never_lists_the_series_whole(project, storage, offsite):
    """Each remote backup holds every object: listing the series' prefix whole would read all of them, every run."""
    from urllib.parse import parse_qs, urlsplit

    proxy = FaultProxy(offsite.port).start()
    project.extra = project.extra.replace(offsite.url, proxy.url)
    try:
        fill(storage["prod"].client(), "avatars", 3)
        made = []
        for _ in range(3):
            made.append(backed_up(project, "--keep", "2")["path"].split(":")[1])
            time.sleep(1.1)
        listings = [
            parse_qs(urlsplit(path).query)
            for _, method, path in proxy.answered
            if method == "GET" and "list-type" in path
        ]
    finally:
        proxy.stop()
    whole = [q for q in listings if q.get("prefix") == [BASE] and "delimiter" not in q]
    assert listings and not whole, f"{len(whole)} listings of {BASE} whole"
    assert remote_names(offsite) == {made[1]: True, made[2]: True}, "retention still keeps the newest two"
