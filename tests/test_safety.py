"""Safety hardening: no lost backup object, no good backup deleted, no trusted tampered file,
no secret in a child's environment."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from lib.db import dump, sql
from lib.project import FAKE_DB_PASSWORD
from lib.s3 import contents, empty_bucket, fill, moto_client, s3_secrets

from devstack.faultproxy import FaultProxy

PROD_REF = "qfdztdgublwlmewobxmx"


def series(project, suffix: str = "") -> Path:
    return project.root / "backups" / "storage" / f"prod-{PROD_REF}{suffix}"


def sealed(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def backup(project, *args: str) -> dict:
    result = project.run("backup-storage", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)["backups"][0]


# ---------------------------------------------------------------- keys a file system cannot hold as-is

HOSTILE_KEYS = {
    "a/../b": b"dot-dot",
    "a/%2E%2E/b": b"escaped dot-dot",
    "a//b": b"empty segment",
    "a/%00/b": b"escaped empty",
    "a": b"a file",
    "a/b": b"inside the folder a",
    "x/./y": b"dot",
    "long/" + "\u6f22" * 90 + ".txt": b"90 CJK",
    "100%/done%20.txt": b"percent",
    "100%25/done.txt": b"escaped percent",
}


def test_hostile_keys_back_up_verify_and_restore_exactly(project, storage, moto_port):
    moto = moto_client(moto_port)
    bucket = "group-notes"
    empty_bucket(moto, bucket)
    for key, body in HOSTILE_KEYS.items():
        moto.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="text/x-" + str(len(body)), Metadata={"origin": "test"}
        )
    project.envs["prod"]["storage_url"] = f"http://127.0.0.1:{moto_port}"
    project.secrets.update(s3_secrets("prod", "moto", "moto-secret"))
    made = backup(project, "--buckets", bucket)
    assert made["objects"] == len(HOSTILE_KEYS)
    verified = project.run("verify-backup", "--backup", made["path"], "--json")
    assert verified.code == 0, verified.out + verified.err
    assert not list(Path(made["path"]).rglob("*.part"))
    expected = contents(moto, bucket)
    empty_bucket(moto, bucket)
    restored = project.run(
        "restore-storage", "--to", "prod", "--backup", made["path"], "--buckets", bucket, "--yes", "--json"
    )
    assert restored.code == 0, restored.err
    assert contents(moto, bucket) == expected
    for key, body in HOSTILE_KEYS.items():
        head = moto.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "text/x-" + str(len(body)) and head["Metadata"] == {"origin": "test"}


# ---------------------------------------------------------------- concurrent backups, retention, modes


def test_two_backups_at_once_lose_nothing(project, storage):
    fill(storage["prod"].client(), "avatars", 30)
    proxy = FaultProxy(storage["prod"].port, delay=0.05).start()
    try:
        project.envs["prod"]["storage_url"] = proxy.url
        first = project.start("backup-storage")
        deadline = time.monotonic() + 30
        while not any(p.name.startswith(".partial-") for p in series(project).glob(".*")):
            assert time.monotonic() < deadline and first.poll() is None, "the first backup never started"
            time.sleep(0.05)
        second = project.run("backup-storage")
        out, err = first.communicate(timeout=120)
    finally:
        proxy.stop()
    assert first.returncode == 0, err
    assert second.code == 2 and "another backup" in second.err
    made = sealed(series(project))
    assert len(made) == 1
    for folder in made:
        assert project.run("verify-backup", "--backup", str(folder)).code == 0


def test_subset_and_shrunken_backups_never_prune_full_ones(project, storage):
    src = storage["prod"].client()
    fill(src, "avatars", 6)
    fill(src, "program-logos", 2)
    first = backup(project, "--keep", "1")
    for _ in range(2):
        backup(project, "--buckets", "avatars", "--keep", "1")
    assert [str(p) for p in sealed(series(project))] == [first["path"]]  # subsets live in their own series
    assert len(sealed(series(project, "+avatars"))) == 1
    for i in range(6):  # a wiped project (or the wrong endpoint) looks nearly empty
        src.delete_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin")
    shrunk = backup(project, "--keep", "1")
    assert shrunk["removed"] == [] and "objects" in shrunk["kept_because"]
    assert Path(first["path"]).is_dir()
    storage["prod"].client().delete_bucket(Bucket="client-badges")
    missing = backup(project, "--keep", "1")
    assert missing["removed"] == [] and "client-badges" in missing["kept_because"]
    assert Path(first["path"]).is_dir()


def test_backup_files_are_private_whatever_the_umask(project, storage):
    fill(storage["prod"].client(), "avatars", 2)
    old = os.umask(0o022)
    try:
        made = Path(backup(project)["path"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE(made.parent.stat().st_mode) == 0o700
    for path in made.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


# ---------------------------------------------------------------- restore goes where the backup came from


def test_restore_defaults_to_the_targets_own_backups(project, storage):
    fill(storage["prod"].client(), "avatars", 3)
    made = backup(project)
    implicit = project.run("restore-storage", "--to", "preprod")
    assert implicit.code == 2 and "no complete backup of preprod" in implicit.err
    named = project.run("restore-storage", "--to", "preprod", "--backup", made["path"])
    assert named.code == 2 and "--env" in named.err
    wrong = project.run("restore-storage", "--to", "preprod", "--backup", made["path"], "--env", "preprod")
    assert wrong.code == 2 and PROD_REF in wrong.err
    assert contents(storage["preprod"].client(), "avatars") == {}
    explicit = project.run("restore-storage", "--to", "preprod", "--env", "prod")
    assert explicit.code == 0, explicit.err
    assert f"backup of prod ({PROD_REF})" in explicit.err
    assert contents(storage["preprod"].client(), "avatars") == contents(storage["prod"].client(), "avatars")


# ---------------------------------------------------------------- --delete from a hollow source


def test_delete_refuses_an_empty_source_and_too_many_deletions(project, storage):
    fill(storage["preprod"].client(), "avatars", 12)
    before = contents(storage["preprod"].client(), "avatars")
    empty = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--delete")
    assert empty.code == 2 and "empty" in empty.err
    fill(storage["prod"].client(), "avatars", 1)
    many = project.run(
        "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--delete", "--max-delete", "5"
    )
    assert many.code == 2 and "--max-delete" in many.err
    assert contents(storage["preprod"].client(), "avatars") == before
    allowed = project.run(
        "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--delete", "--max-delete", "11"
    )
    assert allowed.code == 0, allowed.err
    assert contents(storage["preprod"].client(), "avatars") == contents(storage["prod"].client(), "avatars")


# ---------------------------------------------------------------- files we wrote are checked before trusted


def test_tampered_export_is_refused_before_writing(project):
    exported = project.run("sync-data", "--from", "prod", "--export-only", "--tables", "plans,features", "--json")
    assert exported.code == 0, exported.err
    run = Path(json.loads(exported.out)["run_dir"])
    before = dump(project.url("preprod"))
    manifest = json.loads((run / "manifest.json").read_text())
    original = manifest["tables"][0]["file"]
    for hostile in ("/etc/passwd", "../../manifest.json"):
        manifest["tables"][0]["file"] = hostile
        (run / "manifest.json").write_text(json.dumps(manifest))
        refused = project.run("sync-data", "--from-export", str(run), "--to", "preprod")
        assert refused.code == 2 and "file name" in refused.err, refused.err
    manifest["tables"][0]["file"] = original
    (run / "manifest.json").write_text(json.dumps(manifest))
    data = (run / original).read_text().replace("Try the platform", "Hacked platform")
    (run / original).write_text(data)
    edited = project.run("sync-data", "--from-export", str(run), "--to", "preprod")
    assert edited.code == 2 and original in edited.err and "does not match its manifest" in edited.err
    assert dump(project.url("preprod")) == before


def test_backup_manifest_paths_stay_inside_the_backup(project, storage):
    fill(storage["prod"].client(), "avatars", 2)
    made = Path(backup(project)["path"])
    (project.root / "outside.bin").write_bytes(b"not part of any backup")
    metadata = json.loads((made / "_backup_metadata.json").read_text())
    entry = next(iter(metadata["buckets"]["avatars"]["manifest"].values()))
    for hostile in (str(project.root / "outside.bin"), "../../../../outside.bin"):
        entry["path"] = hostile
        (made / "_backup_metadata.json").write_text(json.dumps(metadata))
        for args in (
            ("verify-backup", "--backup", str(made)),
            ("restore-storage", "--to", "prod", "--backup", str(made), "--yes"),
        ):
            refused = project.run(*args)
            assert refused.code == 2 and "outside" in refused.err, (args, refused.err)


# ---------------------------------------------------------------- SQL and child processes


def test_table_and_sequence_names_with_quotes_sync(project):
    create = """CREATE TABLE public."it's" (id serial PRIMARY KEY, "na'me" text);"""
    for env in ("prod", "preprod"):
        sql(project.url(env), create)
    sql(project.url("prod"), """INSERT INTO public."it's" ("na'me") VALUES ('o''brien'), ('x')""")
    project.safe_extra = ["it's"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "it's")
    assert result.code == 0, result.err
    assert dump(project.url("prod"), 'public."it\'s"') == dump(project.url("preprod"), 'public."it\'s"')
    sql(project.url("preprod"), """INSERT INTO public."it's" ("na'me") VALUES ('next')""")
    assert sql(project.url("preprod"), """SELECT max(id) FROM public."it's" """) == [(3,)]


def test_child_processes_get_only_their_own_secret(project, tmp_path):
    recorded = tmp_path / "cli-env.json"
    fake_cli = tmp_path / "fake-supabase"
    fake_cli.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump(dict(os.environ), open({str(recorded)!r}, 'w'))\n"
        "print('[]')\n"
    )
    fake_cli.chmod(0o755)
    others = {
        "OPS_PROD_DB_PASSWORD": "prod-pw-never-to-a-child",
        "OPS_PROD_S3_SECRET_ACCESS_KEY": "s3-never-child",
        "SUPABASE_ACCESS_TOKEN": "sbp_" + "f" * 40,
        "OPS_PREPROD_DB_PASSWORD": FAKE_DB_PASSWORD,
    }
    listed = project.run("secrets", "--env", "preprod", env={"SUPABASE_CLI": str(fake_cli), **others})
    assert listed.code == 0, listed.err
    child = json.loads(recorded.read_text())
    assert child.get("SUPABASE_ACCESS_TOKEN") == others["SUPABASE_ACCESS_TOKEN"]  # the one secret of this call
    leaked = sorted(k for k in child if k.startswith("OPS_") or k == "PGPASSWORD")
    assert leaked == []
    assert "PATH" in child and "HOME" in child


@pytest.mark.parametrize(
    "db_url",
    ["postgresql://postgres@127.0.0.1:1/db?password=hunter2", "host=127.0.0.1 port=1 dbname=db password=hunter2"],
    ids=["url", "keywords"],
)
def test_password_in_db_url_is_refused_everywhere(project, db_url):
    project.envs["preprod"]["db_url"] = db_url
    result = project.run("envs")
    assert result.code == 2 and "OPS_PREPROD_DB_PASSWORD" in result.err
    assert "hunter2" not in result.out + result.err
