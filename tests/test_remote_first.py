"""Remote-first backups (`--to TARGET`): straight to a backup target, unchanged objects copied there server-side."""

from __future__ import annotations

import json
import time

import pytest
from lib.s3 import contents, fill

from devstack.faultproxy import FaultProxy

BASE = "nightly/prod-qfdztdgublwlmewobxmx/"


@pytest.fixture
def counted_source(project, storage):
    """prod's storage behind a proxy that logs each request it answers."""
    proxy = FaultProxy(storage["prod"].port).start()
    project.envs["prod"]["storage_url"] = proxy.url
    yield proxy
    proxy.stop()


def remote_names(server, base: str = BASE) -> dict[str, bool]:
    """Each remote backup's name under `base`, and whether it is sealed (holds a manifest)."""
    keys = [o["Key"] for o in server.client().list_objects_v2(Bucket="ops-backups", Prefix=base).get("Contents", [])]
    names: dict[str, bool] = {}
    for key in keys:
        name = key[len(base) :].split("/")[0]
        names[name] = names.get(name, False) or key == f"{base}{name}/_backup_metadata.json"
    return names


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
    assert (first["downloaded"], first["copied_server_side"], first["objects"]) == (9, 0, 9)
    assert first["path"].startswith("offsite:")
    assert not (project.root / "backups").exists(), "no local series"

    src.put_object(Bucket="avatars", Key="bulk/0003.bin", Body=b"changed")
    before = len(counted_source.answered)
    time.sleep(1.1)  # a name of its own
    second = backed_up(project)
    assert object_reads(counted_source, before) == ["/avatars/bulk/0003.bin"], "only the changed object is read"
    assert (second["downloaded"], second["copied_server_side"], second["objects"]) == (1, 8, 9)
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
    process = project.start("backup-storage", "--to", "offsite")
    deadline = time.monotonic() + 60
    sealed_keys = 30 + 1  # the first backup's objects and manifest
    while len(remote_keys(offsite)) < sealed_keys + written:
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
    listed = server.client().list_objects_v2(Bucket="ops-backups", Prefix=BASE).get("Contents", [])
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
    assert "1 read, 3 copied server-side" in detail, detail
    names = remote_names(offsite, "nightly/full/prod-qfdztdgublwlmewobxmx/")
    assert len(names) == 2 and all(names.values())
    ok = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert ok.code == 0, ok.out + ok.err


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
