"""Attacks on the backup features (`backup --to`, retention, `inv backups`, `drill`, remote restores):
hostile configuration, a target whose contents someone else wrote, clocks that disagree."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from lib.backups import BASE, PROD_REF, add_scratch, remote_names
from lib.db import dump, sql
from lib.s3 import contents, fill, s3_secrets

from ops import config as ops_config

SCRATCH_KEYS = ("AKIADRILLSCRATCH02", "scratch-secret-Jm4-never-print")


@pytest.fixture
def scratch(project, storage, pg, tmp_path):
    """A spare project marked scratch = true: its own migrated database and S3 server."""
    server = add_scratch(project, pg, tmp_path / "s3-scratch", SCRATCH_KEYS)
    yield server
    server.stop()


def copy_remote_backup(server, base: str, name: str, as_name: str) -> None:
    """Another sealed backup under `base`, a copy of `name` (a clock ahead of ours, or someone's forgery)."""
    client = server.client()
    for item in client.list_objects_v2(Bucket="ops-backups", Prefix=f"{base}{name}/")["Contents"]:
        key = f"{base}{as_name}/" + item["Key"][len(f"{base}{name}/") :]
        client.copy_object(Bucket="ops-backups", Key=key, CopySource={"Bucket": "ops-backups", "Key": item["Key"]})


# ---------------------------------------------------------------- drill into a project that is not scratch


@pytest.mark.parametrize(
    "alias",
    ["prod-ref", "prod-db_url", "prod-db_url-spelled-otherwise", "prod-storage_url-spelled-otherwise"],
)
def test_a_scratch_section_that_is_prod_under_another_name_is_never_wiped(project, storage, scratch, alias):
    """A `[scratch]` section copied from `[prod]` (its ref, or its db_url) and marked scratch = true is prod:
    a drill into it would drop prod's app schemas. It must be refused (exit 2) before anything is wiped."""
    fill(storage["prod"].client(), "avatars", 2)
    made = project.run("backup", "--env", "prod", "--json")
    assert made.code == 0, made.err
    prod_url = project.url("prod")
    section = project.envs["scratch"]
    if alias == "prod-ref":
        section.update(ref=PROD_REF, db_url=prod_url, storage_url=project.envs["prod"]["storage_url"])
        project.secrets.update(s3_secrets("scratch", *storage_keys(project, "prod")))
    elif alias == "prod-db_url":
        section["db_url"] = prod_url
    elif alias == "prod-db_url-spelled-otherwise":
        section["db_url"] = prod_url.replace("127.0.0.1", "localhost", 1)
        assert section["db_url"] != prod_url, prod_url
    else:  # its own database, but prod's S3 endpoint (and keys): the drill empties prod's buckets
        section["storage_url"] = project.envs["prod"]["storage_url"].replace("127.0.0.1", "localhost", 1) + "/"
        project.secrets.update(s3_secrets("scratch", *storage_keys(project, "prod")))
    sql(prod_url, "CREATE TABLE public.canary (id int); INSERT INTO public.canary VALUES (1)")
    before = (dump(prod_url), contents(storage["prod"].client(), "avatars"))

    result = project.run("drill", "--env", "prod", "--into", "scratch")

    assert result.code == 2, (result.code, result.out[-600:], result.err[-600:])
    assert "prod" in result.err and "DRILL" not in result.out
    assert sql(prod_url, "SELECT count(*) FROM public.canary") == [(1,)], "prod's schema was dropped"
    assert (dump(prod_url), contents(storage["prod"].client(), "avatars")) == before, "prod was written"


def storage_keys(project, env: str) -> tuple[str, str]:
    prefix = "OPS_" + env.upper()
    return project.secrets[f"{prefix}_S3_ACCESS_KEY_ID"], project.secrets[f"{prefix}_S3_SECRET_ACCESS_KEY"]


# ---------------------------------------------------------------- retention and clocks


@pytest.mark.parametrize("later", ["2099-01-01T00-00-00Z", "zz-not-a-time"], ids=["clock-ahead", "forged-name"])
def test_a_remote_backup_named_after_now_never_costs_the_backup_just_made(project, storage, offsite, later):
    """A sealed backup on the target whose name sorts after now (a runner whose clock ran ahead, or a
    name someone else wrote) must not make retention remove the backup this run just sealed."""
    fill(storage["prod"].client(), "avatars", 3)
    first = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
    assert first.code == 0, first.err
    first_name = json.loads(first.out)["backups"][0]["path"].split(":")[1]
    copy_remote_backup(offsite, BASE, first_name, later)
    time.sleep(1.1)

    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--keep-last", "1", "--json")

    assert made.code == 0, made.err
    name = json.loads(made.out)["backups"][0]["path"].split(":")[1]
    assert remote_names(offsite).get(name) is True, f"the backup just made, {name}, was removed: {made.err}"
    assert remote_names(offsite).get(later) is True and f"warning: {later}" in made.err, made.err


def test_a_local_backup_named_after_now_never_costs_the_backup_just_made(project, storage):
    """The same on this machine: a laptop whose clock was ahead (set right since) made a backup
    named in the future; the next backup with --keep-last 1 must keep itself."""
    fill(storage["prod"].client(), "avatars", 3)
    first = project.run("backup-storage", "--env", "prod", "--json")
    assert first.code == 0, first.err
    folder = Path(json.loads(first.out)["backups"][0]["path"])
    shutil.copytree(folder, folder.with_name("2099-01-01T00-00-00Z"))
    time.sleep(1.1)

    made = project.run("backup-storage", "--env", "prod", "--keep-last", "1", "--json")

    assert made.code == 0, made.err
    path = Path(json.loads(made.out)["backups"][0]["path"])
    assert path.is_dir() and (path / "_backup_metadata.json").is_file(), f"the backup just made was removed: {made.err}"


@pytest.mark.parametrize(
    "flags",
    [
        ("--keep-last", "-1"),
        ("--keep-last", "0"),
        ("--keep-daily", "1e3"),
        ("--keep-weekly", ""),
        ("--keep", "2", "--keep-last", "3"),
        ("--keep-monthly", "-0", "--keep-last", "0"),
    ],
    ids=["negative", "zero-alone", "float", "empty", "both-aliases", "minus-zero"],
)
def test_bad_retention_flags_are_refused_before_anything_is_written(project, storage, offsite, flags):
    fill(storage["prod"].client(), "avatars", 2)
    for task in ("backup-storage", "backup"):
        result = project.run(task, "--env", "prod", "--to", "offsite", *flags)
        assert result.code == 2, (task, flags, result.err[-400:])
        assert len(result.err.strip().splitlines()) == 1, result.err
        assert remote_names(offsite, "nightly/") == {}, "nothing was written to the target"
    listed = project.run("backups", "--env", "prod", "--target", "offsite", *flags)
    assert listed.code == 2, (flags, listed.err[-400:])


# ---------------------------------------------------------------- object paths against the backup's own files


@pytest.mark.parametrize("to", [False, True], ids=["local", "straight-to-target"])
def test_a_bucket_named_database_never_overwrites_the_dump(project, storage, offsite, to):
    """A bucket called `database` holding `data.sql`: its object's path in the backup is the dump's
    (`database/data.sql`). Either refused up front (exit 2) or both kept apart: never one over the other."""
    for server in storage.values():
        server.create_buckets(["database"])
    src = storage["prod"].client()
    src.put_object(Bucket="database", Key="data.sql", Body=b"an object, not the dump\n")
    fill(src, "avatars", 2)
    buckets = " ".join(ops_config.load(Path(__file__).parents[1] / "environments.ini").storage.buckets)
    original_write = project.write

    def write() -> Path:
        ini = original_write()
        ini.write_text(ini.read_text().replace(f"buckets = {buckets}", f"buckets = {buckets} database"))
        return ini

    project.write = write  # type: ignore[method-assign]
    made = project.run("backup", "--env", "prod", *(["--to", "offsite"] if to else []))
    if made.code == 2:
        assert "database" in made.err and len(made.err.strip().splitlines()) == 1, made.err
        return
    assert made.code == 0, made.err
    backup = "offsite:latest" if to else "latest"
    verified = project.run("verify-backup", "--env", "prod", "--backup", backup)
    assert verified.code == 0, verified.out[-800:] + verified.err[-800:]
    restored = project.run(
        "restore-storage", "--to", "preprod", "--env", "prod", "--backup", backup, "--buckets", "database"
    )
    assert restored.code == 0, restored.err[-800:]
    assert contents(storage["preprod"].client(), "database") == contents(src, "database")


# ---------------------------------------------------------------- hostile keys, straight to the target and back

HOSTILE_KEYS = [
    "a",
    "a/b",
    "x/../y",
    "./z",
    "%2E%2E",
    "dir//file",
    "caf\u00e9.png",  # NFC
    "cafe\u0301.png",  # NFD: the same name on a normalising file system
    "Upper.png",
    "upper.png",  # the same name on a case-blind file system
    "folder/",
    "k" * 900,
    "ctl\x01char",
    "trailing space ",
    "..",
    "p/" + "seg/" * 200 + "deep",
]


def test_hostile_keys_go_straight_to_the_target_and_come_back(project, moto_port):
    """Keys a file system cannot hold as they are, backed up twice `--to` the target (the second copies
    them server-side), verified there, and restored: every one back with its own bytes."""
    from lib.s3 import empty_bucket, moto_client

    moto = moto_client(moto_port)
    for bucket in [*ops_config.load(Path(__file__).parents[1] / "environments.ini").storage.buckets, "ops-attack"]:
        empty_bucket(moto, bucket)
    project.envs["prod"].update(storage_url=f"http://127.0.0.1:{moto_port}", storage_region="us-east-1")
    project.secrets.update(s3_secrets("prod", "moto", "moto-secret"))
    project.extra += f"\n[offsite]\nstorage_url = http://127.0.0.1:{moto_port}\nbucket = ops-attack\nprefix = n\n"
    project.secrets.update(s3_secrets("offsite", "moto", "moto-secret"))
    for i, key in enumerate(HOSTILE_KEYS):
        moto.put_object(Bucket="avatars", Key=key, Body=b"%d:" % i + key.encode() * 3)
    want = contents(moto, "avatars")
    assert len(want) == len(HOSTILE_KEYS), sorted(want)

    for _ in range(2):
        made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
        assert made.code == 0, made.err[-1500:]
        time.sleep(1.1)
    assert json.loads(made.out)["backups"][0]["already_there"] == len(HOSTILE_KEYS), made.out
    verified = project.run("verify-backup", "--backup", "offsite:latest", "--env", "prod")
    assert verified.code == 0, verified.out[-1500:] + verified.err[-1500:]

    for key in want:
        moto.delete_object(Bucket="avatars", Key=key)
    restored = project.run(
        "restore-storage", "--to", "prod", "--backup", "offsite:latest", "--buckets", "avatars", "--yes"
    )
    assert restored.code == 0, restored.out[-1500:] + restored.err[-1500:]
    assert contents(moto, "avatars") == want


# ---------------------------------------------------------------- `inv backups` on a fresh machine


def test_backups_at_the_target_lists_an_unsealed_night_from_a_fresh_machine(project, storage, offsite):
    """`inv backups --target` on a machine with no local state: the sealed nights, and a night whose run
    was killed (keys, no manifest) shown as unsealed, as the local listing shows a `.partial-*` one."""
    fill(storage["prod"].client(), "avatars", 2)
    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    sealed = json.loads(made.out)["backups"][0]["path"].split(":")[1]
    killed = "2026-01-01T00-00-00Z" if sealed > "2026-01-01" else "2025-01-01T00-00-00Z"
    offsite.client().put_object(Bucket="ops-backups", Key=f"{BASE}{killed}/avatars/bulk/0000.bin", Body=b"x")
    shutil.rmtree(project.root / "tmp", ignore_errors=True)

    listed = project.run("backups", "--env", "prod", "--target", "offsite", "--json")

    assert listed.code == 0, listed.err
    rows = {b["name"]: b for b in json.loads(listed.out)["backups"]}
    assert rows[sealed]["state"] == "sealed, full", rows
    assert killed in rows and rows[killed]["state"].startswith("unsealed"), rows


# ---------------------------------------------------------------- a drill that should not say OK


def test_a_drill_of_latest_after_a_wiped_night_does_not_pass_the_wiped_backup_as_ok(project, storage, scratch, offsite):
    """The newest off-site backup of a project wiped since (retention judged it not full): `drill
    offsite:latest` drills it and fails, saying it is not full and naming the newest full backup; a
    plain DRILL OK on the wiped night is a false all-clear."""
    src = storage["prod"].client()
    fill(src, "avatars", 6, size=2048)
    good = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert good.code == 0, good.err
    good_name = json.loads(good.out)["steps"][0]["detail"].split(" (")[0].split(":")[1]
    for i in range(6):
        src.delete_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin")
    time.sleep(1.1)
    wiped = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert wiped.code == 0 and "no old remote backup removed" in wiped.out + wiped.err, wiped.out + wiped.err

    result = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch")

    verdict = result.out.strip().splitlines()[-1]
    assert result.code == 1 and verdict.startswith("DRILL FAILED"), (result.code, verdict)
    assert "is not full: 0 objects" in verdict and good_name in verdict, verdict


# ---------------------------------------------------------------- a backup of some buckets, straight to the target


def test_a_backup_of_some_buckets_straight_to_the_target_can_be_named_back(project, storage, offsite):
    """`backup-storage --buckets avatars --to offsite` answers `offsite:<time>`; that very name must work
    with verify-backup and restore-storage, and `inv backups --target` must list it."""
    src = storage["prod"].client()
    fill(src, "avatars", 3)
    made = project.run("backup-storage", "--env", "prod", "--buckets", "avatars", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    path = json.loads(made.out)["backups"][0]["path"]
    assert path.startswith("offsite:"), path

    verified = project.run("verify-backup", "--backup", path, "--env", "prod")
    assert verified.code == 0, verified.out[-600:] + verified.err[-600:]
    restored = project.run(
        "restore-storage", "--to", "preprod", "--env", "prod", "--backup", path, "--buckets", "avatars"
    )
    assert restored.code == 0, restored.err[-600:]
    assert contents(storage["preprod"].client(), "avatars") == contents(src, "avatars")
    listed = project.run("backups", "--env", "prod", "--target", "offsite", "--json")
    assert path.split(":")[1] in [b["name"] for b in json.loads(listed.out)["backups"]], listed.out


# ---------------------------------------------------------------- a target that answers badly


@pytest.mark.parametrize(
    "faults",
    [("500", "slowdown", "reset", "truncate"), ("corrupt",)],
    ids=["errors", "corrupt-bytes"],
)
def test_a_flaky_target_never_gets_a_sealed_backup_that_does_not_verify(project, storage, offsite, faults):
    """Through a target that fails or corrupts a share of object requests, each `--to` run either seals a
    backup that verifies (read straight from the target, no proxy) or fails (exit 1, one error line)
    with nothing sealed by it."""
    from devstack.faultproxy import FaultProxy

    src = storage["prod"].client()
    fill(src, "avatars", 12, size=3000)
    proxy = FaultProxy(offsite.port, rate=0.25, faults=faults, objects_only=True, seed=11).start()
    direct = project.extra
    try:
        for night in range(3):
            project.extra = direct.replace(offsite.url, proxy.url)
            src.put_object(Bucket="avatars", Key=f"night-{night}.bin", Body=b"n%d" % night * 500)
            made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
            project.extra = direct
            if made.code != 0:
                assert made.code == 1 and "error:" in made.err, made.err[-800:]
                continue
            name = json.loads(made.out)["backups"][0]["path"]
            checked = project.run("verify-backup", "--backup", name, "--env", "prod")
            assert checked.code == 0, (night, proxy.injected, checked.out[-800:], checked.err[-800:])
            time.sleep(1.1)
    finally:
        project.extra = direct
        proxy.stop()
    assert proxy.injected, "faults were injected"


# ---------------------------------------------------------------- a target whose listings lag behind


def lagging_listings(port: int):
    """A proxy in front of the target whose listings do not show manifests yet (a store whose listings
    are eventually consistent: a key just written is readable, but not yet listed)."""
    import re

    from devstack.faultproxy import FaultProxy

    class Lagging(FaultProxy):
        def rewritten(self, method: str, path: str, data: bytes) -> bytes:
            if method != "GET" or "list-type=2" not in path:
                return data
            return re.sub(
                rb"<Contents>(?:(?!</Contents>).)*?_backup_metadata\.json</Key>.*?</Contents>", b"", data, flags=re.S
            )

    return Lagging(port).start()


def test_a_sealed_backup_whose_manifest_is_not_listed_yet_is_never_removed(project, storage, offsite):
    """Listings that lag (the last run's manifest not listed yet) must not make the next `--to` run take
    that sealed backup for a killed one and delete its objects: the manifest is there when asked for."""
    src = storage["prod"].client()
    fill(src, "avatars", 4)
    first = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
    assert first.code == 0, first.err
    sealed = json.loads(first.out)["backups"][0]["path"]
    time.sleep(1.1)
    proxy = lagging_listings(offsite.port)
    direct = project.extra
    project.extra = direct.replace(offsite.url, proxy.url)
    try:
        project.run("backup-storage", "--env", "prod", "--to", "offsite")
    finally:
        project.extra = direct
        proxy.stop()

    checked = project.run("verify-backup", "--backup", sealed, "--env", "prod")
    assert checked.code == 0, checked.out[-800:] + checked.err[-800:]


# ---------------------------------------------------------------- a manifest at the target that is not one


@pytest.mark.parametrize(
    "planted",
    [b"garbage", b"[]", b'{"sizes": "x", "full": true}\n', b'{"format": 2}\n{"not": "closed"'],
    ids=["not-json", "a-list", "sizes-not-a-map", "head-then-junk"],
)
def test_an_older_manifest_that_is_not_one_never_stops_the_nightly_backup(project, storage, offsite, planted):
    """Someone (or a broken tool) left an unreadable `_backup_metadata.json` under an older backup name at
    the target: the nightly `--to` still seals its backup (exit 0, the odd one named in a warning) or fails
    with one error line, never a traceback; `inv backups --target` likewise."""
    fill(storage["prod"].client(), "avatars", 2)
    offsite.client().put_object(
        Bucket="ops-backups", Key=f"{BASE}2020-01-01T00-00-00Z/_backup_metadata.json", Body=planted
    )

    made = project.run("backup-storage", "--env", "prod", "--to", "offsite", "--json")
    listed = project.run("backups", "--env", "prod", "--target", "offsite")

    assert made.code in (0, 1), made.err[-800:]
    if made.code == 1:
        assert "2020-01-01T00-00-00Z" in made.err, made.err[-800:]
    assert listed.code in (0, 1), listed.err[-800:]
    sealed = [name for name, ok in remote_names(offsite).items() if ok and name != "2020-01-01T00-00-00Z"]
    assert made.code == 1 or len(sealed) == 1, remote_names(offsite)


# ---------------------------------------------------------------- two operators at once


def test_two_runs_at_once_never_leave_a_sealed_backup_that_does_not_verify(project, storage, offsite):
    """Two `--to` runs of one environment at once: the later is refused by the series lock (exit 2) or,
    once the earlier is done, proceeds. Whatever happens, a backup that ends up sealed must be whole."""
    from devstack.faultproxy import FaultProxy

    src = storage["prod"].client()
    fill(src, "avatars", 16, size=2048)
    slow = FaultProxy(storage["prod"].port, delay=0.4).start()
    try:
        project.envs["prod"]["storage_url"] = slow.url
        earlier = project.start("backup-storage", "--env", "prod", "--to", "offsite")
        deadline = time.monotonic() + 60
        while not any(not sealed for sealed in remote_names(offsite).values()):
            assert time.monotonic() < deadline and earlier.poll() is None, "the earlier run never got under way"
            time.sleep(0.1)
        time.sleep(1.1)
        project.envs["prod"]["storage_url"] = storage["prod"].url
        later = project.run("backup-storage", "--env", "prod", "--to", "offsite")
        assert later.code == 0 or (later.code == 2 and "another backup of prod" in later.err), later.err[-800:]
        earlier.communicate(timeout=120)
    finally:
        slow.stop()
    for name, sealed in remote_names(offsite).items():
        if sealed:
            checked = project.run("verify-backup", "--backup", f"offsite:{name}", "--env", "prod")
            assert checked.code == 0, (name, earlier.returncode, checked.out[-600:])
