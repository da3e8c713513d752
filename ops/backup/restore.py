"""restore-storage: a backup (local, or fetched from off-site) uploaded back, only what differs."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops import invocation
from ops.backup import verify
from ops.backup.paths import member
from ops.backup.store import METADATA_FILE, load_manifest, objects_by_bucket
from ops.config import Config, Environment
from ops.digest import file_digest
from ops.errors import OperationFailed, OpsError, UserError
from ops.report import Result, Table, progress
from ops.s3 import objects as s3objects
from ops.s3.base import OBJECT_HEADERS, ObjectInfo, ObjectList
from ops.s3.client import S3
from ops.safety import confirm_write
from ops.storage.parallel import NAMED, Failure, failure_report, run_parallel, until_intact
from ops.storage.sync import select_buckets


@dataclass
class RestoreResult(Result):
    backup: str
    target: str
    dry_run: bool
    buckets: list[dict] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    to_upload: list[str] = field(default_factory=list)  # a dry run names them all (the text, the first 50)
    rerun: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def rows(self) -> Table:
        return Table(list(self.buckets[0]) if self.buckets else ["bucket"], [list(b.values()) for b in self.buckets])

    def footer(self) -> str:
        lines = [f"  + {key}" for key in self.to_upload[:NAMED]]
        lines += [f"  + ... and {len(self.to_upload) - NAMED:,} more"] if len(self.to_upload) > NAMED else []
        return "\n".join([*lines, f"from {self.backup}"])

    def failure(self) -> OpsError | None:
        if not self.failures:
            return None
        return OperationFailed(failure_report(self.failures, rerun=self.rerun))


def restore_storage(
    config: Config,
    *,
    target: str | None,
    backup: str | None,
    env: str | None,
    buckets: list[str] | None,
    dry_run: bool,
    yes: bool,
    command: invocation.CommandLine | None = None,
) -> RestoreResult:
    """Upload a backup (a local one, or `TARGET:<time>` fetched from off-site first) into `target`;
    `command` is the command line a re-run hint is made from."""
    from ops.backup import offsite

    started = time.monotonic()
    if not target:
        raise UserError("name the environment to restore into with --to ENV")
    target_env = config.env(target)
    # A backup goes back where it came from unless --env says, on purpose, whose backup it is.
    source_env = config.env(env) if env else target_env
    with offsite.backup_folder(config, backup, source_env, dry_run=dry_run) as path:
        if offsite.parse(config, backup) and not dry_run:
            verify_fetched(path, str(backup))
        result = _restore(
            config,
            path,
            target_env,
            source_env,
            env_named=bool(env),
            buckets=buckets,
            dry_run=dry_run,
            yes=yes,
            started=started,
        )
    if result.failures:
        line = command or invocation.CommandLine("restore-storage", {"to": target_env.name})
        # The folder it used, so the re-run restores the same backup even after a newer one appears.
        result.rerun = line.rerun(drop=("backup",), add={"backup": result.backup})
    return result


def verify_fetched(folder: Path, label: str) -> None:
    """Every file of a fetched backup re-hashed against its manifest, before anything is restored from it."""
    checked = verify.verify_backup_folder(folder)
    if not checked.ok:
        raise OperationFailed(
            f"{label} does not match its manifest ({checked.verdict().replace(str(folder), label)}): nothing was "
            f"restored; `{invocation.program()} verify-backup --backup {label}` lists every file"
        )


def _restore(
    config: Config,
    path: Path,
    target_env: Environment,
    source_env: Environment,
    *,
    env_named: bool,
    buckets: list[str] | None,
    dry_run: bool,
    yes: bool,
    started: float,
) -> RestoreResult:
    metadata = load_manifest(path)
    recorded = (metadata.get("env"), metadata.get("ref"))
    if recorded[1] != source_env.ref:
        hint = (
            "" if env_named else f"; to restore another environment's backup into {target_env.name}, name it with --env"
        )
        raise UserError(
            f"{path} is a backup of {recorded[0]} ({recorded[1]}), not of {source_env.name} "
            f"({source_env.ref}){hint}. Nothing was restored."
        )
    if source_env.name != target_env.name:
        progress(
            f"restoring a backup of {source_env.name} ({source_env.ref}) into {target_env.name} ({target_env.ref})"
        )
    chosen = select_buckets(config, buckets)  # only the app's buckets, never whatever the manifest lists
    objects = {b: objs for b, objs in objects_by_bucket(metadata).items() if b in chosen}
    files = {
        b: {key: member(path, entry.get("path", ""), f"{METADATA_FILE} of {path.name}") for key, entry in objs.items()}
        for b, objs in objects.items()
    }
    action = "restore storage objects into it"
    s3 = s3objects.client(target_env, max_pool=config.storage.jobs * 2)
    missing = [b for b in objects if not s3objects.bucket_exists(s3, b)]
    if missing:
        raise UserError(f"bucket(s) missing in {target_env.name}: {', '.join(missing)}; push migrations first")
    result = RestoreResult(str(path), target_env.name, dry_run)
    uploads: list[tuple[str, ObjectList]] = []
    for bucket, entries in objects.items():
        present = s3objects.list_objects(s3, bucket)
        upload = [key for key, entry in entries.items() if not _restored(s3, bucket, present.get(key), entry)]
        result.buckets.append(
            {
                "bucket": bucket,
                "to upload" if dry_run else "uploaded": len(upload),
                "identical": len(entries) - len(upload),
                "bytes": sum(entries[k]["size"] for k in upload),
            }
        )
        uploads.append((bucket, ObjectList(ObjectInfo(k, entries[k]["size"], entries[k]["etag"]) for k in upload)))
    names = (f"{bucket}/{info.key}" for bucket, infos in uploads for info in infos)
    count = sum(len(infos) for _, infos in uploads)
    result.to_upload = list(names) if dry_run else []
    if not dry_run and count:  # the plan first, then the question; nothing to upload asks nothing
        plan = [f"plan for {target_env.name}: upload {count:,} object(s) from {path}"]
        plan += [f"  + {name}" for name in itertools.islice(names, NAMED)]
        plan += [f"  + ... and {count - NAMED:,} more"] if count > NAMED else []
        confirm_write(target_env, yes=yes, action=action, plan="\n".join(plan))
    if not dry_run:
        s3objects.abort_leftover_uploads(s3, target_env)

        def put(bucket: str, info: ObjectInfo) -> None:
            entry = objects[bucket][info.key]
            until_intact(lambda: _upload_file(s3, bucket, info.key, files[bucket][info.key], entry))

        result.failures = run_parallel(uploads, put, config.storage.jobs, f"restored ({target_env.name})")
        failed: dict[str, int] = {}
        for failure in result.failures:
            failed[failure.bucket] = failed.get(failure.bucket, 0) + 1
        for row in result.buckets:
            row["failed"] = failed.get(row["bucket"], 0)
            row["uploaded"] -= row["failed"]
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _restored(s3: S3, bucket: str, present: ObjectInfo | None, entry: dict) -> bool:
    if present is None or present.size != entry["size"]:
        return False
    return s3objects.content_md5(s3, bucket, present) == entry["md5"]


def _upload_file(s3: S3, bucket: str, key: str, file: Path, entry: dict) -> None:
    if file_digest(file) != entry["sha256"]:
        raise OperationFailed(f"{file} does not match its manifest: run {invocation.program()} verify-backup")
    upload_entry(s3, bucket, key, file, entry)


def upload_entry(s3: S3, bucket: str, key: str, file: Path, entry: dict) -> None:
    """A backed-up object's file (checked against `entry`, its manifest entry) uploaded as it was: its
    headers and metadata too."""
    headers = {kept.name: entry[kept.field] for kept in OBJECT_HEADERS if entry.get(kept.field)}
    got = s3objects.Content(entry["size"], entry["md5"], entry["sha256"], headers, entry.get("metadata", {}))
    with file.open("rb") as handle:
        s3objects.upload(s3, bucket, key, handle, got)
