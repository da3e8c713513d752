"""SIGKILL at random moments of the four writing tasks: nothing half-done may look done.

After every kill: each sealed backup verifies, each target object and table is the old or the
new content, and the next run succeeds and leaves no leftovers. A seeded loop, small here
(OPS_KILLS per task, default 3); `nox -s bench -- kills` runs it at full size.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from lib.db import dump, sql
from lib.s3 import contents, fill

KILLS = int(os.environ.get("OPS_KILLS", "3"))
CONFIG_TABLES = ("public.plans", "public.features", "public.programs", "public.program_modules")
MODULES = """
INSERT INTO public.program_modules (program_id, module_type, title, content, order_index)
SELECT '30000000-0000-4000-8000-000000000001', 'reading', 'Bulk module ' || g, repeat('lorem ipsum ', 40), g
FROM generate_series(1, 3000) g;
"""


def moments(seed: int, latest: float) -> list[float]:
    """When to kill: seeded, from just after start-up to past the usual end of the run."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.4, latest), 2) for _ in range(KILLS)]


def kill_after(project, seconds: float, *args: str) -> None:
    process = project.start(*args)
    time.sleep(seconds)
    process.kill()
    process.communicate(timeout=60)


def storage_objects(client, bucket: str, count: int, big: int = 2) -> None:
    fill(client, bucket, count, size=64 << 10)
    for i in range(big):  # multipart uploads at the target
        client.put_object(Bucket=bucket, Key=f"big/{i}.bin", Body=bytes([i + 7]) * (17 << 20))


def assert_each_object_is_old_or_new(target: dict, source: dict, old: dict) -> None:
    for key, digest in target.items():
        assert digest in (source.get(key), old.get(key)), f"{key} is neither the old nor the new content"


def sealed_backups(project) -> list[Path]:
    return [
        p
        for p in (project.root / "backups").rglob("_backup_metadata.json")
        if not any(part.startswith(".") for part in p.parent.relative_to(project.root).parts)
    ]


def assert_no_leftovers(project) -> None:
    hidden = [p for p in (project.root / "backups").rglob(".*") if p.name != ".lock"]
    assert not hidden, f"leftovers of killed runs: {hidden}"
    assert not list(project.root.glob(".ops/multipart/*/*.json")), "an open multipart upload is still noted"
    assert not list(project.root.glob("tmp/data-sync/*/*/before/UNCOMMITTED"))


@pytest.mark.slow
def test_sync_data_killed_anywhere(project):
    sql(project.url("prod"), MODULES)
    old, new = dump(project.url("preprod"), *CONFIG_TABLES), dump(project.url("prod"), *CONFIG_TABLES)
    for moment in moments(18, 3.0):
        kill_after(project, moment, "sync-data", "--from", "prod", "--to", "preprod")
        time.sleep(0.5)  # the killed session ends on the server
        assert dump(project.url("preprod"), *CONFIG_TABLES) in (old, new), f"killed at {moment}s: half a sync"
        for before in project.root.glob("tmp/data-sync/*/*/before"):
            markers = {p.name for p in before.iterdir()} & {"UNCOMMITTED", "COMMITTING"}
            assert markers or dump(project.url("preprod"), *CONFIG_TABLES) == new, (
                f"{before} looks like a real undo, but nothing was committed"
            )
    done = project.run("sync-data", "--from", "prod", "--to", "preprod")
    assert done.code == 0, done.err
    assert dump(project.url("preprod"), *CONFIG_TABLES) == new
    assert_no_leftovers(project)


@pytest.mark.slow
def test_sync_storage_killed_anywhere(project, storage):
    src, dst = storage["prod"].client(), storage["preprod"].client()
    storage_objects(src, "avatars", 60)
    old, source = contents(dst, "avatars"), contents(src, "avatars")
    for moment in moments(19, 2.5):
        kill_after(project, moment, "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
        assert_each_object_is_old_or_new(contents(dst, "avatars"), source, old)
    done = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    assert done.code == 0, done.err
    assert contents(dst, "avatars") == source
    assert_no_leftovers(project)


@pytest.mark.slow
def test_backup_storage_killed_anywhere(project, storage):
    src = storage["prod"].client()
    storage_objects(src, "avatars", 60)
    for _ in range(2):
        assert project.run("backup-storage", "--keep", "1").code == 0
    for moment in moments(20, 2.5):
        src.put_object(Bucket="avatars", Key=f"new/{moment}.bin", Body=os.urandom(4096))  # something to download
        kill_after(project, moment, "backup-storage", "--keep", "1")
        for manifest in sealed_backups(project):
            checked = project.run("verify-backup", "--backup", str(manifest.parent))
            assert checked.code == 0, f"killed at {moment}s: a sealed backup does not verify: {checked.out}"
    done = project.run("backup-storage", "--keep", "1", "--json")
    assert done.code == 0, done.err
    assert_no_leftovers(project)
    assert len(sealed_backups(project)) == 1


@pytest.mark.slow
def test_restore_storage_killed_anywhere(project, storage):
    src = storage["prod"].client()
    storage_objects(src, "avatars", 60)
    made = project.run("backup-storage", "--json")
    assert made.code == 0, made.err
    backup = json.loads(made.out)["backups"][0]["path"]
    saved = contents(src, "avatars")
    for key in list(saved)[::2]:
        src.delete_object(Bucket="avatars", Key=key)
    for moment in moments(21, 2.5):
        kill_after(
            project, moment, "restore-storage", "--to", "prod", "--backup", backup, "--buckets", "avatars", "--yes"
        )
        assert_each_object_is_old_or_new(contents(src, "avatars"), saved, {})
    done = project.run("restore-storage", "--to", "prod", "--backup", backup, "--buckets", "avatars", "--yes")
    assert done.code == 0, done.err
    assert contents(src, "avatars") == saved
    assert_no_leftovers(project)
