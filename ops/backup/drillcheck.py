"""What a drill checks after restoring: the database against the figures the backup recorded when it
was taken (rows per table, each sequence's value), and every object re-hashed against the manifest,
read back from where it was restored (the scratch project's buckets, or a temporary folder)."""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ops.backup.offsite import Remote
from ops.backup.paths import member
from ops.config import Environment
from ops.db.connection import connect
from ops.digest import file_digest
from ops.errors import OperationFailed
from ops.s3 import objects as s3objects
from ops.s3.base import ObjectInfo, ObjectList
from ops.storage.parallel import Failure, run_parallel, until_intact


@dataclass
class Checked:
    """What one check found: how much matched, and each difference in words."""

    tables: int = 0
    rows: int = 0
    sequences: int = 0
    objects: int = 0
    bytes: int = 0
    differences: list[str] = field(default_factory=list)


def check_database(env: Environment, rows: dict[str, int], sequences: dict[str, dict[str, Any]]) -> Checked:
    """Every table's row count and every sequence's value in `env`, compared with what the backup recorded."""
    from psycopg.sql import SQL, Identifier

    checked = Checked()
    with connect(env, autocommit=True, application="ops drill") as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # every count from one moment

        def exists(name: str, kinds: str) -> bool:
            schema, _, relation = name.partition(".")
            return bool(
                conn.execute(
                    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = %s AND c.relkind = ANY(%s)",
                    (schema, relation, list(kinds)),
                ).fetchall()
            )

        for table, recorded in sorted(rows.items()):
            if not exists(table, "rp"):
                checked.differences.append(f"table {table} missing (the backup recorded {recorded:,} rows)")
                continue
            found = conn.execute(SQL("SELECT count(*) FROM {}").format(Identifier(*table.split(".", 1)))).fetchall()
            count = int(found[0][0])
            if count != recorded:
                checked.differences.append(f"table {table}: {count:,} rows, the backup recorded {recorded:,}")
            checked.tables += 1
            checked.rows += count
        for sequence, recorded_value in sorted(sequences.items()):
            if not exists(sequence, "S"):
                checked.differences.append(f"sequence {sequence} missing")
                continue
            value, called = conn.execute(
                SQL("SELECT last_value, is_called FROM {}").format(Identifier(*sequence.split(".", 1)))
            ).fetchall()[0]
            want = (int(recorded_value["value"]), bool(recorded_value["is_called"]))
            if (int(value), bool(called)) != want:
                checked.differences.append(
                    f"sequence {sequence}: {shown(int(value), called)}, the backup recorded {shown(*want)}"
                )
            checked.sequences += 1
    return checked


def shown(value: int, called: bool) -> str:
    return f"{value:,}" if called else f"{value:,} (not yet used)"


class Differs(OperationFailed):
    """An object read back from where it was restored is not the one the manifest describes."""


def rehash_buckets(env: Environment, objects: dict[str, dict[str, dict]], jobs: int, skip: set[str]) -> Checked:
    """Every object of `objects` (bucket -> key -> manifest entry) read back from `env`'s buckets and
    re-hashed; one missing, extra or different is named. `skip`: objects already named ("bucket/key")."""
    checked = Checked()
    s3 = s3objects.client(env, max_pool=jobs * 2)
    groups: list[tuple[str, ObjectList]] = []
    for bucket, entries in objects.items():
        present = s3objects.list_objects(s3, bucket)
        checked.differences += [
            f"{bucket}/{key}: missing after the restore"
            for key in entries
            if key not in present and f"{bucket}/{key}" not in skip
        ]
        checked.differences += [
            f"{bucket}/{key}: in {env.name} but not in the backup" for key in present if key not in entries
        ]
        groups.append((bucket, ObjectList(ObjectInfo(k, entries[k]["size"], "") for k in entries if k in present)))

    def rehash(bucket: str, info: ObjectInfo) -> None:
        with s3.get_object(bucket, info.key) as response:
            compare(objects[bucket][info.key], *hashed(response))

    failures = run_parallel(groups, rehash, jobs, f"re-hashed ({env.name})")
    return counted(checked, objects, failures, skip)


def restore_from_target(
    remote: Remote, env: Environment, objects: dict[str, dict[str, dict]], staging: Path, jobs: int
) -> Checked:
    """Every object of `objects` fetched from the backup target (`remote`), checked against the manifest,
    uploaded into `env`'s buckets and read back and re-hashed there, each object through all of it in turn:
    `jobs` objects under way at once, where fetching all, then uploading all, then reading all back
    waited on each step's slowest object three times. Then each bucket is listed: an object in it that
    the backup does not hold is named."""
    from ops.backup.restore import upload_entry

    s3 = s3objects.client(env, max_pool=jobs * 2)

    def restore(bucket: str, info: ObjectInfo) -> None:
        entry = objects[bucket][info.key]
        file = staging / f"{threading.get_ident()}.part"  # one a worker, written over by its next object
        with (
            file.open("wb") as out,
            remote.s3.get_object(remote.target.bucket, remote.sources[entry["path"]]) as response,
        ):
            fetched = hashed(response, out)
        if fetched != (entry["size"], entry["sha256"]):
            raise Differs("not restored: corrupt in the backup (it does not match the manifest)")
        until_intact(lambda: upload_entry(s3, bucket, info.key, file, entry))
        with s3.get_object(bucket, info.key) as response:
            compare(entry, *hashed(response))

    groups = [
        (b, ObjectList(ObjectInfo(k, e["size"], "") for k, e in entries.items())) for b, entries in objects.items()
    ]
    failures = run_parallel(groups, restore, jobs, f"restored and re-hashed ({env.name})")
    checked = Checked()
    for bucket, entries in objects.items():
        present = s3objects.list_objects(s3, bucket)
        checked.differences += [
            f"{bucket}/{key}: in {env.name} but not in the backup" for key in present if key not in entries
        ]
    return counted(checked, objects, failures, set())


def rehash_in_folder(backup: Path, folder: Path, objects: dict[str, dict[str, dict]], jobs: int) -> Checked:
    """Every object of the backup copied into `folder` (a scratch environment with no storage) and
    the copy re-hashed against the manifest."""
    checked = Checked()

    def restore(bucket: str, info: ObjectInfo) -> None:
        entry = objects[bucket][info.key]
        source = member(backup, entry.get("path", ""), f"the manifest of {backup.name}")
        if not source.is_file():
            raise Differs("missing in the backup")
        copy = member(folder, entry["path"], "the restore folder")
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        compare(entry, copy.stat().st_size, file_digest(copy))

    groups = [
        (b, ObjectList(ObjectInfo(k, e["size"], "") for k, e in entries.items())) for b, entries in objects.items()
    ]
    failures = run_parallel(groups, restore, jobs, "restored and re-hashed (temporary folder)")
    return counted(checked, objects, failures, set())


def hashed(response: Any, out: BinaryIO | None = None) -> tuple[int, str]:
    """The size and SHA-256 of an object's body as it is read (and written to `out`, if given)."""
    digest, size = hashlib.sha256(), 0
    for chunk in response.iter_raw():
        if out is not None:
            out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def compare(entry: dict, size: int, sha256: str) -> None:
    if size != entry["size"]:
        raise Differs(f"{size:,} bytes where the manifest says {entry['size']:,}")
    if sha256 != entry["sha256"]:
        raise Differs("content differs from the manifest (sha256)")


def counted(checked: Checked, objects: dict[str, dict[str, dict]], failures: list[Failure], skip: set[str]) -> Checked:
    checked.objects = sum(len(entries) for entries in objects.values())
    checked.bytes = sum(e["size"] for entries in objects.values() for e in entries.values())
    checked.differences += [
        f"{f.bucket}/{f.key}: {f.error.removeprefix('Differs: ')}"
        for f in failures
        if f"{f.bucket}/{f.key}" not in skip
    ]
    return checked
