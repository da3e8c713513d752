"""`inv drill`: a backup restored into a scratch environment (its own database and S3 server) and checked."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lib.backups import add_scratch
from lib.db import dump, sql
from lib.s3 import contents, fill

from ops.digest import file_digest

SCRATCH_KEYS = ("AKIADRILLSCRATCH01", "scratch-secret-Hk7-never-print")


@pytest.fixture
def scratch(project, storage, pg, tmp_path):
    """A spare project marked scratch = true: a migrated database holding leftovers, and an S3 server."""
    server = add_scratch(project, pg, tmp_path / "s3-scratch", SCRATCH_KEYS)
    url = project.envs["scratch"]["db_url"]
    sql(url, "CREATE TABLE public.leftover (id int); INSERT INTO public.leftover VALUES (1)")
    sql(url, "INSERT INTO public.plans (key, name, tier_level) VALUES ('stale', 'Stale plan', 9)")
    server.client().put_object(Bucket="avatars", Key="stale.bin", Body=b"left over")
    yield server
    server.stop()


def full_backup(project, *args: str) -> Path:
    made = project.run("backup", "--env", "prod", "--json", *args)
    assert made.code == 0, made.err
    return Path(json.loads(made.out)["steps"][0]["detail"].split(" (")[0])


def manifest(folder: Path) -> dict:
    return json.loads((folder / "_backup_metadata.json").read_text())


def test_a_good_drill_from_off_site_says_ok_with_the_counts(project, storage, scratch, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 6, size=4096)
    src.put_object(Bucket="program-logos", Key="logos/a.svg", Body=b"<svg/>", ContentType="image/svg+xml")
    sql(project.url("prod"), "INSERT INTO public.audit_log (action) SELECT 'login' FROM generate_series(1, 30)")
    folder = full_backup(project, "--copy-to", "offsite")
    recorded = manifest(folder)
    assert recorded["sequences"], "the backup records its sequences"

    result = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch")

    assert result.code == 0, result.out + result.err
    verdict = result.out.strip().splitlines()[-1]
    tables, rows = len(recorded["rows"]), sum(recorded["rows"].values())
    assert verdict.startswith(
        f"DRILL OK: {tables:,} tables, {rows:,} rows, 7 objects (24.0 KiB) restored and checked in "
    )
    assert re.search(r"checked in (\d+m)?\d+s$", verdict)
    url = project.url("scratch")
    assert dump(url) == dump(project.url("prod")), "the scratch database holds prod's rows, no more"
    assert sql(url, "SELECT to_regclass('public.leftover')") == [(None,)], "the app's schema was dropped first"
    assert sql(url, "SELECT count(*) FROM auth.users") == sql(project.url("prod"), "SELECT count(*) FROM auth.users")
    assert contents(scratch.client(), "avatars") == contents(src, "avatars"), "stale.bin is gone"
    assert contents(scratch.client(), "program-logos") == contents(src, "program-logos")
    assert not list((project.root / "tmp").glob("*-from-offsite")), "the fetched copy is removed"
    journal = [json.loads(line) for line in (project.root / "ops-journal.jsonl").read_text().splitlines()]
    assert journal[-1]["task"] == "drill" and journal[-1]["outcome"] == verdict
    assert journal[-1]["envs"] == ["prod", "scratch"]

    status = project.run("status", "--env", "prod", "--json")
    assert status.code == 0, status.err
    (prod,) = json.loads(status.out)["backups"]
    # The drill as its journal line and its record at the target have it (each names when it started).
    started = datetime.fromisoformat(journal[-1]["time"])
    assert abs((datetime.fromisoformat(prod["drill"]) - started).total_seconds()) <= 2, (prod, started)
    assert prod["drill_into"] == "scratch"
    made = datetime.strptime(folder.name, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)
    assert prod["backup"] == made.isoformat(), "the newest backup is the one made here"

    again = project.run("drill", "--into", "scratch", "--backup", str(folder), "--json")
    assert again.code == 0, again.err
    summary = json.loads(again.out)
    assert summary["ok"] and (summary["tables"], summary["row_count"], summary["objects"]) == (tables, rows, 7)

    remote = offsite.client()
    sealed = next(o["Key"] for o in remote.list_objects_v2(Bucket="ops-backups")["Contents"] if "metadata" in o["Key"])
    remote.put_object(Bucket="ops-backups", Key=sealed.rsplit("/", 1)[0] + "/avatars/stray.bin", Body=b"x")
    sql(url, "CREATE TABLE public.marker (id int)")
    tampered = project.run("drill", "--backup", "offsite:latest", "--into", "scratch")
    assert tampered.code == 1, tampered.out + tampered.err
    verdict = tampered.out.strip().splitlines()[-1]
    assert verdict.startswith("DRILL FAILED: backup not fetched, nothing restored: offsite:") and "stray.bin" in verdict
    assert sql(url, "SELECT to_regclass('public.marker')") != [(None,)], "nothing was wiped"


def test_a_drill_names_a_missing_table_a_short_row_count_and_a_corrupt_object(project, storage, scratch):
    fill(storage["prod"].client(), "avatars", 4, size=2048)
    folder = full_backup(project)
    plans = sql(project.url("prod"), "SELECT count(*) FROM public.plans")[0][0]
    # The dump lost a row of public.plans (and was sealed again), the manifest recorded a table the
    # dump does not hold, and an object rotted on disk.
    data = folder / "database" / "data.sql"
    lines = data.read_text().splitlines(keepends=True)
    first_plan = next(n for n, line in enumerate(lines) if line.startswith("COPY public.plans ")) + 1
    data.write_text("".join(lines[:first_plan] + lines[first_plan + 1 :]))
    recorded = manifest(folder)
    recorded["artifacts"]["database/data.sql"] = file_digest(data)
    recorded["rows"]["public.vanished"] = 4
    (folder / "_backup_metadata.json").write_text(json.dumps(recorded))
    rotten = folder / "avatars" / "bulk" / "0002.bin"
    rotten.write_bytes(b"\x00" + rotten.read_bytes()[1:])

    result = project.run("drill", "--env", "prod", "--into", "scratch")

    assert result.code == 1, result.out + result.err
    verdict = result.out.strip().splitlines()[-1]
    assert verdict.startswith("DRILL FAILED: ")
    assert "table public.vanished missing (the backup recorded 4 rows)" in verdict
    assert f"table public.plans: {plans - 1:,} rows, the backup recorded {plans:,}" in verdict
    assert "avatars/bulk/0002.bin: not restored: corrupt in the backup" in verdict
    assert verdict.count("0002.bin") == 1, "each difference is named once"
    assert "objects" in verdict and "restored and checked in" in verdict
    assert "avatars/bulk/0001.bin" not in verdict, "the intact objects are not named"


def test_a_drill_into_an_environment_that_is_not_scratch_is_refused(project, storage, scratch):
    fill(storage["prod"].client(), "avatars", 2)
    folder = full_backup(project)
    target = storage["preprod"].client()
    target.put_object(Bucket="avatars", Key="keep-me.bin", Body=b"preprod's own")
    before = (dump(project.url("preprod")), contents(target, "avatars"))

    for into in ("preprod", "prod"):
        refused = project.run("drill", "--env", "prod", "--backup", str(folder), "--into", into)
        assert refused.code == 2, refused.out + refused.err
        assert f"'{into}' is not a scratch environment" in refused.err and "scratch" in refused.err
        assert "DRILL" not in refused.out

    assert (dump(project.url("preprod")), contents(target, "avatars")) == before, "nothing was written"
    tmp = project.root / "tmp"
    assert not tmp.exists() or not list(tmp.glob("drill-*"))
    assert sql(project.url("scratch"), "SELECT count(*) FROM public.leftover") == [(1,)], "scratch untouched too"

    other = project.run("drill", "--env", "preprod", "--backup", str(folder), "--into", "scratch")
    assert other.code == 2 and "is a backup of prod" in other.err and "--env" in other.err
    assert sql(project.url("scratch"), "SELECT count(*) FROM public.leftover") == [(1,)], "refused before the wipe"

    del project.secrets["OPS_SCRATCH_S3_SECRET_ACCESS_KEY"]
    keyless = project.run("drill", "--env", "prod", "--backup", str(folder), "--into", "scratch")
    assert keyless.code == 2 and "set OPS_SCRATCH_S3_SECRET_ACCESS_KEY" in keyless.err
    assert sql(project.url("scratch"), "SELECT count(*) FROM public.leftover") == [(1,)], "refused before the wipe"


def test_a_drill_with_no_storage_url_restores_into_a_temporary_folder(project, storage, scratch):
    fill(storage["prod"].client(), "avatars", 3, size=1024)
    full_backup(project)
    del project.envs["scratch"]["storage_url"]
    result = project.run("drill", "--into", "scratch", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["objects"] == 3 and summary["storage_into"] == "a temporary folder"
    assert summary["verdict"].startswith("DRILL OK: ")
    assert not list((project.root / "tmp").glob("drill-*")), "the temporary folder is removed"


def test_status_warns_when_the_newest_good_drill_is_too_old(project, storage):
    fill(storage["prod"].client(), "avatars", 1)
    assert project.run("backup-storage", "--env", "prod").code == 0
    project.extra += "\n[backup]\ndrill_max_age_days = 3\n"
    old = (datetime.now(UTC) - timedelta(days=5)).isoformat(timespec="seconds")
    newer_but_failed = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    lines = [
        {"time": old, "task": "drill", "flags": {"into": "scratch"}, "exit_code": 0, "outcome": "DRILL OK: 1 tables"},
        {
            "time": newer_but_failed,
            "task": "drill",
            "flags": {"env": "prod"},
            "exit_code": 1,
            "outcome": "DRILL FAILED: x",
        },
    ]
    (project.root / "ops-journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    shown = project.run("status", "--env", "prod,preprod")

    assert shown.code == 0, shown.err
    assert (
        "warning: prod: the newest successful drill is 5d 0h old, more than [backup] drill_max_age_days = 3"
        in shown.out
    )
    assert "--into scratch" in shown.out
    assert "preprod: no backup" not in shown.out and "warning: preprod" not in shown.out, "no backups, no warning"
    project.extra = project.extra.replace("drill_max_age_days = 3", "drill_max_age_days = 6")
    assert "warning: prod" not in project.run("status", "--env", "prod").out


def test_a_drill_of_a_backup_made_straight_off_site_says_ok(project, storage, scratch, offsite):
    src = storage["prod"].client()
    fill(src, "avatars", 3, size=4096)
    for _ in range(2):  # the second names the first's objects in the pool
        made = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
        assert made.code == 0, made.err
    assert "0 read, 3 already there" in json.loads(made.out)["steps"][0]["detail"]
    assert not (project.root / "backups").exists(), "nothing kept on this machine"

    result = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch")

    assert result.code == 0, result.out + result.err
    assert re.search(r"DRILL OK: .* 3 objects \(12\.0 KiB\) restored and checked in", result.out), result.out
    assert dump(project.url("scratch")) == dump(project.url("prod"))
    assert contents(scratch.client(), "avatars") == contents(src, "avatars")


def test_a_drill_in_ci_shows_on_a_laptop_from_the_records_at_the_target(project, storage, scratch, offsite):
    fill(storage["prod"].client(), "avatars", 2, size=1024)
    made = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err
    name = json.loads(made.out)["steps"][0]["detail"].split(" (")[0].split(":")[-1]
    drilled = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch")
    assert drilled.code == 0, drilled.out + drilled.err

    # A laptop that never ran the drill: no journal, no backups of its own.
    (project.root / "ops-journal.jsonl").unlink()
    status = project.run("status", "--env", "prod", "--json")
    assert status.code == 0, status.err
    (prod,) = json.loads(status.out)["backups"]
    made_at = datetime.strptime(name, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)
    assert prod["backup"] == made_at.isoformat(), "the newest backup is the one at the target"
    assert prod["drill"] and prod["drill_into"] == "scratch", prod
    assert "no backup of it has been drilled" not in project.run("status", "--env", "prod").out

    listed = project.run("backups", "--env", "prod", "--target", "offsite", "--json")
    assert listed.code == 0, listed.err
    (backup,) = json.loads(listed.out)["backups"]
    assert backup["name"] == name and backup["verified"]["ok"] is True, backup
    assert backup["verified"]["by"] == "drill into scratch"

    remote = offsite.client()
    records = [o["Key"] for o in remote.list_objects_v2(Bucket="ops-backups", Prefix="nightly/records/")["Contents"]]
    bodies = b"".join(remote.get_object(Bucket="ops-backups", Key=k)["Body"].read() for k in records)
    assert b"DRILL OK" in bodies
    for secret in (SCRATCH_KEYS[1], "offsite-secret-Qw3-never-print"):
        assert secret.encode() not in bodies

    # The same drill ten days ago: too old, a warning on the laptop.
    (drill_key,) = [k for k in records if "-drill-" in k]
    old = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H-%M-%SZ")
    body = remote.get_object(Bucket="ops-backups", Key=drill_key)["Body"].read()
    remote.put_object(Bucket="ops-backups", Key=drill_key.rsplit("/", 1)[0] + f"/{old}-drill-ok.json", Body=body)
    remote.delete_object(Bucket="ops-backups", Key=drill_key)
    stale = project.run("status", "--env", "prod")
    assert stale.code == 0, stale.err
    assert "warning: prod: the newest successful drill is 10d 0h old" in stale.out, stale.out


def test_a_drill_from_off_site_into_buckets_never_holds_the_backups_objects_on_this_machine(
    project, storage, scratch, offsite
):
    # Each object goes from the target to the scratch buckets on its own: a CI runner's disk holds the
    # objects under way (one a job), never the backup's whole storage.
    from lib.backups import behind

    from devstack.faultproxy import FaultProxy

    fill(storage["prod"].client(), "avatars", 24, size=2048)
    made = project.run("backup", "--env", "prod", "--to", "offsite", "--json")
    assert made.code == 0, made.err[-1500:]
    on_disk: list[int] = []

    class Watching(FaultProxy):
        def rewritten(self, method: str, path: str, data: bytes) -> bytes:
            if method == "GET" and "/blobs/" in path:  # an object read from the pool
                files = [p for p in (project.root / "tmp").rglob("*") if p.is_file()]
                on_disk.append(sum(1 for p in files if "avatars" in p.parts or p.suffix == ".part"))
            return data

    with behind(project, offsite, Watching(offsite.port)):
        result = project.run("drill", "--env", "prod", "--backup", "offsite:latest", "--into", "scratch")

    assert result.code == 0, result.out + result.err
    assert len(on_disk) == 24, "every object was read from the pool once"
    assert max(on_disk) <= 4, f"objects on this machine while objects were read: {on_disk}"  # one a job (4)
