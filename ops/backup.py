"""Local storage backups: incremental snapshots, retention, verification and restore.

A backup is `<backup_dir>/<env>-<ref>/<UTC time>/<bucket>/<key>` plus `_backup_metadata.json`
(the manifest: size, ETag, sha256 and headers of every object). It is built in a hidden
`.partial-*` folder and renamed only when complete, so nothing incomplete looks like a
backup. Objects unchanged since the previous backup are hard-linked from it, so each
backup is complete by itself but costs only the changed bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ops import s3 as s3ops
from ops.config import Config, Environment
from ops.errors import OperationFailed, UserError
from ops.report import progress
from ops.s3 import ObjectInfo
from ops.safety import confirm_write
from ops.storage import Failure, retrying, run_parallel, select_buckets
from ops.sync_data import utc_stamp

METADATA_FILE = "_backup_metadata.json"
PARTIAL_PREFIX = ".partial-"
HEADER_NAMES = {"ContentType": "content_type", "CacheControl": "cache_control",
                "ContentDisposition": "content_disposition", "ContentEncoding": "content_encoding",
                "ContentLanguage": "content_language"}


def env_folder(config: Config, env: Environment) -> Path:
    return config.storage.backup_dir / f"{env.name}-{env.ref}"


def complete_backups(folder: Path) -> list[Path]:
    """Complete backups, oldest first: visible folders that hold a manifest."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).is_file()),
                  key=_stamp_order)


def _stamp_order(path: Path) -> tuple[str, int]:
    # Names are UTC stamps, with -1, -2 ... for backups made within the same second.
    base, dash, n = path.name.rpartition("-")
    return (base, int(n)) if dash and n.isdigit() and base.endswith("Z") else (path.name, 0)


def load_manifest(backup: Path) -> dict:
    path = backup / METADATA_FILE
    if not path.is_file():
        raise UserError(f"{backup} is not a complete backup: it has no {METADATA_FILE}")
    return json.loads(path.read_text(encoding="utf-8"))


def object_path(bucket: str, key: str) -> str:
    """Where a key lives in the backup; segments a file system cannot hold are escaped."""
    escaped = {"": "%00", ".": "%2E", "..": "%2E%2E"}
    return "/".join([bucket, *(escaped.get(part, part) for part in key.split("/"))])


def collision_path(bucket: str, key: str) -> str:
    # S3 allows both `a` and `a/b`; a file system does not. The manifest maps keys to paths.
    return f"_collisions/{bucket}/{hashlib.sha256(key.encode()).hexdigest()}"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- backup

@dataclass
class BackupResult:
    env: str
    path: str
    objects: int = 0
    bytes: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0
    linked: int = 0
    removed: list[str] = field(default_factory=list)
    skipped_buckets: list[str] = field(default_factory=list)
    seconds: float = 0.0


def backup_env(config: Config, env: Environment, buckets: list[str], keep: int, *, series: Path | None = None,
               extras: Callable[[Path], dict[str, str]] | None = None) -> BackupResult:
    """Back up one environment's buckets into a new folder of `series` (default: its storage series).

    `extras` may write more files into the backup before it is sealed; it returns their
    paths (relative) with sha256, which the manifest records and verify-backup checks.
    """
    started = time.monotonic()
    s3 = s3ops.client(env, max_pool=config.storage.jobs * 2)
    folder = series or env_folder(config, env)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(PARTIAL_PREFIX + "*"):
        progress(f"removing an interrupted backup: {stale}")
        shutil.rmtree(stale, ignore_errors=True)
    history = complete_backups(folder)
    previous = history[-1] if history else None
    previous_objects = _objects_by_bucket(load_manifest(previous)) if previous else {}

    stamp = utc_stamp()
    final = folder / stamp
    for n in range(1, 1000):
        if not final.exists():
            break
        final = folder / f"{stamp}-{n}"
    partial = folder / f"{PARTIAL_PREFIX}{final.name}"
    partial.mkdir()
    result = BackupResult(env.name, str(final))
    manifest: dict[str, dict] = {}
    lock = threading.Lock()
    try:
        tasks = []
        for bucket in buckets:
            if not s3ops.bucket_exists(s3, bucket):
                result.skipped_buckets.append(bucket)
                continue
            listing = s3ops.list_objects(s3, bucket)
            if not listing:
                result.skipped_buckets.append(bucket)
                continue
            manifest[bucket] = {}
            tasks += [(bucket, info) for info in listing.values()]

        def save(bucket: str, info: ObjectInfo) -> None:
            old = previous_objects.get(bucket, {}).get(info.key)
            entry, linked = _save_object(s3, bucket, info, partial, previous, old)
            with lock:
                manifest[bucket][info.key] = entry
                result.linked += linked
                result.downloaded += not linked
                result.downloaded_bytes += 0 if linked else info.size

        failures = run_parallel(tasks, save, config.storage.jobs, f"backed up ({env.name})")
        if failures:
            raise OperationFailed(_failed_message(failures, f"backup of {env.name} incomplete; nothing was kept"))
        artifacts = extras(partial) if extras else {}
        result.objects = sum(len(objects) for objects in manifest.values())
        result.bytes = sum(e["size"] for objects in manifest.values() for e in objects.values())
        result.seconds = round(time.monotonic() - started, 3)
        metadata = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "env": env.name,
            "ref": env.ref,
            "duration_seconds": result.seconds,
            "previous": previous.name if previous else None,
            "buckets": {
                bucket: {"objects": len(objects), "bytes": sum(e["size"] for e in objects.values()), "manifest": objects}
                for bucket, objects in manifest.items()
            },
            "skipped_buckets": result.skipped_buckets,
            "artifacts": artifacts,
        }
        (partial / METADATA_FILE).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        partial.rename(final)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    result.removed = [str(p) for p in prune_backups(folder, keep, just_made=final)]
    return result


def _objects_by_bucket(metadata: dict) -> dict[str, dict[str, dict]]:
    return {bucket: data.get("manifest", {}) for bucket, data in metadata.get("buckets", {}).items()}


def _save_object(s3: Any, bucket: str, info: ObjectInfo, partial: Path, previous: Path | None,
                 old: dict | None) -> tuple[dict, bool]:
    relative = object_path(bucket, info.key)
    for candidate in (relative, collision_path(bucket, info.key)):
        target = partial / candidate
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if old and previous and old["size"] == info.size and old["etag"] == info.etag:
                source = previous / old["path"]
                if source.is_file():
                    os.link(source, target)
                    return {**old, "path": candidate}, True
            temporary = target.with_name(target.name + ".part")

            def fetch() -> s3ops.Download:
                with temporary.open("wb") as out:
                    return s3ops.download(s3, bucket, info.key, out, expected=info)

            got = retrying(fetch)
            temporary.rename(target)
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            continue
        entry = {"path": candidate, "size": got.size, "etag": info.etag, "md5": got.md5, "sha256": got.sha256,
                 "metadata": got.metadata}
        entry.update({HEADER_NAMES[h]: v for h, v in got.headers.items()})
        return entry, False
    raise OperationFailed(f"{bucket}/{info.key}: no place for it in the backup folder")


def prune_backups(folder: Path, keep: int, just_made: Path) -> list[Path]:
    backups = complete_backups(folder)
    doomed = [p for p in backups[:max(0, len(backups) - keep)] if p != just_made]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def backup_storage(config: Config, *, env: str | None, buckets: list[str] | None, keep: int | None) -> list[BackupResult]:
    keep = config.storage.keep if keep is None else keep
    if keep < 1:
        raise UserError("--keep must be at least 1 (the backup just made is always kept)")
    chosen = select_buckets(config, buckets)
    if env == "all":
        envs = [e for e in config.environments.values() if e.storage_url]
        if not envs:
            raise UserError("no environment has a storage_url")
    else:
        envs = [config.env(env or "prod")]
    for each in envs:  # refuse before any download if a later environment lacks keys
        s3ops.client(each)
    return [backup_env(config, each, chosen, keep) for each in envs]


def _failed_message(failures: list[Failure], headline: str) -> str:
    lines = [f"{headline}: {len(failures)} object(s) failed"]
    lines += [f"  {f.bucket}/{f.key}: {f.error}" for f in failures[:20]]
    return "\n".join(lines)


# ---------------------------------------------------------------- verify

@dataclass
class VerifyResult:
    path: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.extra)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def resolve_backup(config: Config, backup: str | None, env: str | None) -> Path:
    if backup and backup != "latest":
        path = Path(backup).resolve()
        if not (path / METADATA_FILE).is_file():
            raise UserError(f"{path} is not a complete backup (no {METADATA_FILE})")
        return path
    environment = config.env(env or "prod")
    series = [env_folder(config, environment), config.full_backup_dir / env_folder(config, environment).name]
    backups = sorted((b for folder in series for b in complete_backups(folder)), key=_stamp_order)
    if not backups:
        raise UserError(f"no complete backup of {environment.name} in {env_folder(config, environment)}: "
                        f"run `inv backup-storage --env {environment.name}` first")
    return backups[-1]


def verify_backup(config: Config, *, backup: str | None, env: str | None) -> VerifyResult:
    path = resolve_backup(config, backup, env)
    metadata = load_manifest(path)
    result = VerifyResult(str(path))
    expected = set()
    for bucket, objects in _objects_by_bucket(metadata).items():
        for key, entry in objects.items():
            file = path / entry["path"]
            expected.add(file)
            result.checked += 1
            if not file.is_file():
                result.missing.append(f"{bucket}/{key}")
            elif file.stat().st_size != entry["size"] or file_digest(file) != entry["sha256"]:
                result.corrupt.append(f"{bucket}/{key}")
    for relative, digest in metadata.get("artifacts", {}).items():
        file = path / relative
        expected.add(file)
        result.checked += 1
        if not file.is_file():
            result.missing.append(relative)
        elif file_digest(file) != digest:
            result.corrupt.append(relative)
    ignored = {path / METADATA_FILE}
    result.extra = sorted(str(p.relative_to(path)) for p in path.rglob("*")
                          if p.is_file() and p not in expected and p not in ignored)
    return result


# ---------------------------------------------------------------- restore

@dataclass
class RestoreResult:
    backup: str
    target: str
    dry_run: bool
    buckets: list[dict] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def to_dict(self) -> dict:
        return asdict(self)


def restore_storage(config: Config, *, target: str | None, backup: str | None, env: str | None,
                    buckets: list[str] | None, dry_run: bool, yes: bool) -> RestoreResult:
    started = time.monotonic()
    if not target:
        raise UserError("name the environment to restore into with --to ENV")
    target_env = config.env(target)
    path = resolve_backup(config, backup, env)
    objects = _objects_by_bucket(load_manifest(path))
    if buckets:
        chosen = select_buckets(config, buckets)
        objects = {b: objs for b, objs in objects.items() if b in chosen}
    if not dry_run:
        confirm_write(target_env, yes=yes, action="restore storage objects into it")
    s3 = s3ops.client(target_env, max_pool=config.storage.jobs * 2)
    missing = [b for b in objects if not s3ops.bucket_exists(s3, b)]
    if missing:
        raise UserError(f"bucket(s) missing in {target_env.name}: {', '.join(missing)}; push migrations first")
    result = RestoreResult(str(path), target_env.name, dry_run)
    tasks = []
    for bucket, entries in objects.items():
        present = s3ops.list_objects(s3, bucket)
        upload = [key for key, entry in entries.items() if not _restored(s3, bucket, present.get(key), entry)]
        result.buckets.append({"bucket": bucket, "to upload" if dry_run else "uploaded": len(upload),
                               "identical": len(entries) - len(upload),
                               "bytes": sum(entries[k]["size"] for k in upload)})
        tasks += [(bucket, ObjectInfo(key, entries[key]["size"], entries[key]["etag"])) for key in upload]
    if not dry_run:
        def put(bucket: str, info: ObjectInfo) -> None:
            entry = objects[bucket][info.key]
            retrying(lambda: _upload_file(s3, bucket, info.key, path / entry["path"], entry))

        result.failures = run_parallel(tasks, put, config.storage.jobs, f"restored ({target_env.name})")
        failed = {}
        for failure in result.failures:
            failed[failure.bucket] = failed.get(failure.bucket, 0) + 1
        for row in result.buckets:
            row["failed"] = failed.get(row["bucket"], 0)
            row["uploaded"] -= row["failed"]
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _restored(s3: Any, bucket: str, present: ObjectInfo | None, entry: dict) -> bool:
    if present is None or present.size != entry["size"]:
        return False
    return s3ops.content_md5(s3, bucket, present) == entry["md5"]


def _upload_file(s3: Any, bucket: str, key: str, file: Path, entry: dict) -> None:
    if file_digest(file) != entry["sha256"]:
        raise OperationFailed(f"{file} does not match its manifest: run inv verify-backup")
    headers = {header: entry[name] for header, name in HEADER_NAMES.items() if entry.get(name)}
    got = s3ops.Download(entry["size"], entry["md5"], entry["sha256"], headers, entry.get("metadata", {}))
    with file.open("rb") as handle:
        s3ops.upload(s3, bucket, key, handle, got)
