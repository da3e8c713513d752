"""`inv backup-storage`, `inv verify-backup` and `inv restore-storage` against a real S3 server."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from lib.db import sql
from lib.s3 import contents, fill

from devstack.faultproxy import FaultProxy


def backups(project, env: str = "prod") -> list[Path]:
    folder = project.root / "backups" / "storage" / f"{env}-qfdztdgublwlmewobxmx"
    return sorted(p for p in folder.iterdir() if p.name != ".lock") if folder.is_dir() else []


def complete(project) -> list[Path]:
    return [p for p in backups(project) if not p.name.startswith(".")]


def run_backup(project, *args):
    result = project.run("backup-storage", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)["backups"][0]


def test_backup_layout_and_manifest(project, storage):
    src = storage["prod"].client()
    fill(src, "avatars", 3)
    src.put_object(Bucket="email-assets", Key="logos/main logo.svg", Body=b"<svg/>", ContentType="image/svg+xml")
    made = run_backup(project)
    path = Path(made["path"])
    assert path.parent.name == "prod-qfdztdgublwlmewobxmx"
    assert (path / "avatars" / "bulk" / "0001.bin").read_bytes() == bytes([1]) * 1024
    metadata = json.loads((path / "_backup_metadata.json").read_text())
    assert metadata["env"] == "prod" and metadata["ref"] == "qfdztdgublwlmewobxmx"
    assert metadata["buckets"]["avatars"]["objects"] == 3
    entry = metadata["buckets"]["email-assets"]["manifest"]["logos/main logo.svg"]
    assert entry["size"] == 6 and entry["content_type"] == "image/svg+xml" and len(entry["sha256"]) == 64
    assert metadata["skipped_buckets"] == []  # empty buckets are backed up as empty, not skipped
    assert metadata["buckets"]["group-notes"]["objects"] == 0


def test_unchanged_objects_are_hard_linked(project, storage):
    src = storage["prod"].client()
    fill(src, "avatars", 10, size=8192)
    first = run_backup(project)
    assert first["downloaded"] == 10
    src.put_object(Bucket="avatars", Key="bulk/0003.bin", Body=b"changed" * 100)
    second = run_backup(project)
    assert (second["downloaded"], second["linked"]) == (1, 9)
    old, new = Path(first["path"]), Path(second["path"])
    assert os.stat(old / "avatars/bulk/0001.bin").st_ino == os.stat(new / "avatars/bulk/0001.bin").st_ino
    assert (new / "avatars/bulk/0003.bin").read_bytes() == b"changed" * 100
    assert (old / "avatars/bulk/0003.bin").read_bytes() == bytes([3]) * 8192


def test_retention_keeps_the_five_newest(project, storage):
    fill(storage["prod"].client(), "avatars", 2)
    made = [run_backup(project)["path"] for _ in range(7)]
    kept = [str(p) for p in complete(project)]
    assert kept == made[2:]
    assert len(run_backup(project, "--keep", "2")["removed"]) == 4
    assert len(complete(project)) == 2


def test_failed_backup_leaves_nothing_complete_looking(project, storage):
    fill(storage["prod"].client(), "avatars", 30)
    run_backup(project)
    proxy = FaultProxy(storage["prod"].port, rate=1.0, faults=("500",)).start()
    try:
        project.envs["prod"]["storage_url"] = proxy.url
        result = project.run("backup-storage")
    finally:
        proxy.stop()
    assert result.code == 1
    assert len(backups(project)) == 1, "no partial folder and no new backup"


def test_interrupted_backup_leaves_no_partial(project, storage):
    fill(storage["prod"].client(), "avatars", 40)
    proxy = FaultProxy(storage["prod"].port, delay=0.2).start()
    try:
        project.envs["prod"]["storage_url"] = proxy.url
        process = project.start("backup-storage")
        deadline = time.monotonic() + 30
        while not any(p.name.startswith(".partial-") for p in backups(project)):
            assert time.monotonic() < deadline, "the backup never started"
            time.sleep(0.1)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        proxy.stop()
    assert process.returncode != 0
    assert backups(project) == []
    assert not list(project.root.rglob("*.part"))


def test_verify_catches_a_flipped_byte(project, storage):
    fill(storage["prod"].client(), "avatars", 5)
    path = Path(run_backup(project)["path"])
    ok = project.run("verify-backup")
    assert ok.code == 0, ok.err + ok.out
    assert ok.out.strip().splitlines()[-1].startswith("OK: 5 files, 0.0 MiB, all match")
    victim = path / "avatars" / "bulk" / "0002.bin"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x01
    victim.write_bytes(bytes(data))
    (path / "avatars" / "stray.txt").write_text("not in the manifest")
    (path / "avatars" / "bulk" / "0004.bin").unlink()
    bad = project.run("verify-backup", "--backup", str(path), "--json")
    assert bad.code == 1
    report = json.loads(bad.out)
    assert report["corrupt"] == ["avatars/bulk/0002.bin"]
    assert report["missing"] == ["avatars/bulk/0004.bin"]
    assert report["extra"] == ["avatars/stray.txt"]
    text = project.run("verify-backup", "--backup", str(path))
    assert (
        text.out.strip()
        .splitlines()[-1]
        .startswith(
            "FAILED: 1 missing (avatars/bulk/0004.bin), 1 corrupt (avatars/bulk/0002.bin), 1 extra (avatars/stray.txt)"
        )
    )


def test_restore_round_trips_a_bucket(project, storage):
    src = storage["prod"].client()
    fill(src, "avatars", 6)
    src.put_object(Bucket="avatars", Key="ünï/cöde file.png", Body=b"png", ContentType="image/png")
    expected = contents(src, "avatars")
    run_backup(project)
    for key in list(expected)[:4]:
        src.delete_object(Bucket="avatars", Key=key)
    src.put_object(Bucket="avatars", Key="bulk/0005.bin", Body=b"damaged")
    dry = project.run("restore-storage", "--to", "prod", "--buckets", "avatars", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["buckets"][0]["to upload"] == 5
    refused = project.run("restore-storage", "--to", "prod", "--buckets", "avatars")
    assert refused.code == 2, "prod is protected"
    restored = project.run("restore-storage", "--to", "prod", "--buckets", "avatars", "--yes", "--json")
    assert restored.code == 0, restored.err
    assert contents(src, "avatars") == expected
    assert src.head_object(Bucket="avatars", Key="ünï/cöde file.png")["ContentType"] == "image/png"
    into_preprod = project.run("restore-storage", "--to", "preprod", "--env", "prod", "--json")
    assert into_preprod.code == 0, into_preprod.err
    assert contents(storage["preprod"].client(), "avatars") == expected


def test_backups_made_within_one_second_keep_their_order(tmp_path):
    from ops.backup.store import METADATA_FILE, complete_backups

    made = [
        "2026-01-01T10-00-59Z",
        "2026-01-01T10-01-00Z",
        "2026-01-01T10-01-00Z-1",
        "2026-01-01T10-01-00Z-2",
        "2026-01-01T10-01-00Z-10",
        "2026-01-01T10-01-01Z",
    ]
    for name in reversed(made):
        (tmp_path / name).mkdir()
        (tmp_path / name / METADATA_FILE).write_text("{}")
    (tmp_path / ".partial-2026-01-01T10-01-02Z").mkdir()
    assert [p.name for p in complete_backups(tmp_path)] == made


def test_a_wiped_project_never_prunes_the_last_full_backup(project, storage):
    src = storage["prod"].client()
    fill(src, "avatars", 12)
    full = Path(run_backup(project, "--keep", "2")["path"])
    for i in range(12):
        src.delete_object(Bucket="avatars", Key=f"bulk/{i:04d}.bin")
    for _ in range(5):  # a nightly job against a wiped project
        made = project.run("backup-storage", "--json", "--keep", "2")
        assert made.code == 0, made.err
        assert "warning" in made.err and "no old backup removed" in made.err
        record = json.loads(made.out)["backups"][0]
        assert record["removed"] == [] and "last full backup" in record["kept_because"]
    assert full.is_dir()
    assert project.run("verify-backup", "--backup", str(full)).code == 0
    fill(src, "avatars", 12)
    refilled = [run_backup(project, "--keep", "2")]
    assert full.is_dir(), "the first refilled backup must not prune the only other full one"
    refilled += [run_backup(project, "--keep", "2") for _ in range(2)]
    assert not full.exists(), "two newer full backups supersede it"
    kept_full = [p for p in complete(project) if json.loads((p / "_backup_metadata.json").read_text())["full"]]
    assert [str(p) for p in kept_full] == [r["path"] for r in refilled[1:]]


def test_a_removal_cut_short_is_finished_by_the_next_run(project, storage):
    fill(storage["prod"].client(), "avatars", 3)
    first = Path(run_backup(project)["path"])
    # What a kill leaves: one backup renamed for deletion, one in-place delete that took the manifest first.
    half_deleted = first.with_name(".deleting-2020-01-01T00-00-00Z")
    (half_deleted / "avatars").mkdir(parents=True)
    no_manifest = first.with_name("2020-01-01T00-00-01Z")
    (no_manifest / "avatars").mkdir(parents=True)
    (no_manifest / "avatars" / "x.bin").write_bytes(b"x")
    result = project.run("backup-storage", "--json")
    assert result.code == 0, result.err
    assert not half_deleted.exists() and not no_manifest.exists()
    assert "half-deleted" in result.err
    assert first.is_dir()


def test_a_wiped_database_never_prunes_the_last_dump_with_users(project, storage):
    """Storage unchanged, the users and the config tables gone: the dump that held them is kept."""
    fill(storage["prod"].client(), "avatars", 4)

    def full_backup():
        made = project.run("backup", "--env", "prod", "--keep", "2", "--json")
        assert made.code == 0, made.err
        return made, Path(json.loads(made.out)["steps"][0]["detail"].split(" (")[0])

    _, first = full_backup()
    recorded = json.loads((first / "_backup_metadata.json").read_text())
    users = sql(project.url("prod"), "SELECT count(*) FROM auth.users")[0][0]
    assert users > 0 and recorded["rows"]["auth.users"] == users
    assert recorded["rows"]["public.plans"] == sql(project.url("prod"), "SELECT count(*) FROM public.plans")[0][0]
    assert isinstance(recorded["sequences"], dict)
    sql(project.url("prod"), "TRUNCATE auth.users, public.plans, public.programs, public.system_settings CASCADE")
    for _ in range(3):
        made, path = full_backup()
        assert "no old backup removed" in made.err and "0 rows in auth.users" in made.err
        assert "no old backup removed" in made.out
        assert json.loads((path / "_backup_metadata.json").read_text())["rows"]["auth.users"] == 0
    assert first.is_dir(), "the only dump that held the users is kept"
    assert project.run("verify-backup", "--backup", str(first)).code == 0
