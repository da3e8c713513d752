"""Local storage backups: incremental snapshots, retention, verification and restore.

A backup is `<backup_dir>/<env>-<ref>/<UTC time>/<bucket>/<key>` plus `_backup_metadata.json`
(the manifest: size, ETag, sha256 and headers of every object). It is built in a hidden
`.partial-*` folder and renamed only when complete, so nothing incomplete looks like a
backup. Objects unchanged since the previous backup are hard-linked from it, so each
backup is complete by itself but costs only the changed bytes.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops import invocation, s3objects
from ops.backup_paths import member, object_paths
from ops.config import Config, Environment
from ops.digest import file_digest
from ops.errors import OperationFailed, OpsError, UserError
from ops.parallel import NAMED, Failure, failure_report, run_parallel, until_intact
from ops.report import Result, Table, progress
from ops.s3objects import ObjectInfo
from ops.safety import confirm_write
from ops.stamps import stamp_order, unused_name
from ops.storage import select_buckets

METADATA_FILE = "_backup_metadata.json"
PARTIAL_PREFIX = ".partial-"
DELETING_PREFIX = ".deleting-"  # a backup being removed: renamed first, so no half-deleted one looks complete
LOCK_FILE = ".lock"
SHRINK_LIMIT = 0.5  # a backup with less than half the reference's objects or bytes is not full: it never prunes
HEADER_NAMES = {
    "ContentType": "content_type",
    "CacheControl": "cache_control",
    "ContentDisposition": "content_disposition",
    "ContentEncoding": "content_encoding",
    "ContentLanguage": "content_language",
}


def env_folder(config: Config, env: Environment) -> Path:
    return config.storage.backup_dir / f"{env.name}-{env.ref}"


def complete_backups(folder: Path) -> list[Path]:
    """Complete backups, oldest first: visible folders that hold a manifest."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / METADATA_FILE).is_file()),
        key=stamp_order,
    )


def load_manifest(backup: Path) -> dict:
    path = backup / METADATA_FILE
    if not path.is_file():
        raise UserError(f"{backup} is not a complete backup: it has no {METADATA_FILE}")
    return json.loads(path.read_text(encoding="utf-8"))


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
    kept_because: str = ""  # why retention deleted nothing
    seconds: float = 0.0
    offsite: dict | None = None  # the off-site copy (--copy-to): where, and what was sent


def backup_env(
    config: Config,
    env: Environment,
    buckets: list[str],
    keep: int,
    *,
    series: Path | None = None,
    extras: Callable[[Path], dict[str, str]] | None = None,
) -> BackupResult:
    """Back up one environment's buckets into a new folder of `series` (default: its storage series).

    `extras` may write more files into the backup before it is sealed; it returns their
    paths (relative) with sha256, which the manifest records and verify-backup checks.
    A backup of only some buckets is a series of its own, so it never counts against
    (nor prunes) the full backups.
    """
    started = time.monotonic()
    s3 = s3objects.client(env, max_pool=config.storage.jobs * 2)
    folder = series or env_folder(config, env)
    if set(buckets) != set(config.storage.buckets):
        folder = folder.with_name(folder.name + "+" + "+".join(sorted(buckets)))
    private_dir(folder)
    with series_lock(folder, env):
        return _backup_locked(config, env, s3, folder, buckets, keep, extras, started)


def private_dir(folder: Path) -> None:
    """Backups hold user files: every folder on the way is ours alone (whatever the umask)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    os.chmod(folder.parent, 0o700)


@contextmanager
def series_lock(folder: Path, env: Environment) -> Iterator[None]:
    """One backup per series at a time: a second run is refused while the first holds the lock."""
    handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another backup of {env.name} is running (it holds {folder / LOCK_FILE}); "
                            "wait for it to finish, then run this again") from None
        # With the lock held no other run of this series is alive: its partial folders are orphans.
        for stale in folder.glob(PARTIAL_PREFIX + "*"):
            progress(f"removing an interrupted backup: {stale}")
            shutil.rmtree(stale, ignore_errors=True)
        clean_interrupted_removals(folder)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _backup_locked(config: Config, env: Environment, s3: Any, folder: Path, buckets: list[str], keep: int,
                   extras: Callable[[Path], dict[str, str]] | None, started: float) -> BackupResult:
    history = complete_backups(folder)
    previous = history[-1] if history else None
    previous_metadata = load_manifest(previous) if previous else {}
    previous_objects = _objects_by_bucket(previous_metadata)
    sizes = {path: backup_size(load_manifest(path)) for path in history}
    reference = next((p for p in reversed(history) if sizes[p].full), None)

    final = folder / unused_name(folder, also=PARTIAL_PREFIX)
    partial = folder / f"{PARTIAL_PREFIX}{final.name}"
    partial.mkdir(mode=0o700)
    result = BackupResult(env.name, str(final))
    manifest: dict[str, dict] = {}
    paths: dict[str, dict[str, str]] = {}
    lock = threading.Lock()
    folders = Folders(partial)
    try:
        tasks = []
        with ThreadPoolExecutor(max_workers=max(1, min(len(buckets), config.storage.jobs))) as pool:
            # Every bucket listed at once; a missing one shows in its listing's answer.
            listings = list(pool.map(lambda b: s3objects.list_objects_if_any(s3, b), buckets))
        for bucket, listing in zip(buckets, listings, strict=True):
            if listing is None:
                result.skipped_buckets.append(bucket)
                continue
            manifest[bucket] = {}
            paths[bucket] = object_paths(bucket, listing)
            tasks += [(bucket, info) for info in listing.values()]

        def save(bucket: str, info: ObjectInfo, link_from: Path | None = None) -> None:
            old = previous_objects.get(bucket, {}).get(info.key)
            entry, linked = _save_object(s3, bucket, info, folders, paths[bucket][info.key], link_from, old)
            with lock:
                manifest[bucket][info.key] = entry
                result.linked += linked
                result.downloaded += not linked
                result.downloaded_bytes += 0 if linked else info.size

        # Unchanged objects are hard links to the previous backup: made here, no thread or network needed.
        to_fetch = []
        for bucket, info in tasks:
            source = _linkable(previous, previous_objects.get(bucket, {}).get(info.key), info)
            if source:
                save(bucket, info, source)
            else:
                to_fetch.append((bucket, info))
        failures = run_parallel(to_fetch, save, config.storage.jobs, f"backed up ({env.name})")
        if failures:
            raise OperationFailed(failure_report(failures, f"backup of {env.name} incomplete; nothing was kept"))
        artifacts = extras(partial) if extras else {}
        result.objects = sum(len(objects) for objects in manifest.values())
        result.bytes = sum(e["size"] for objects in manifest.values() for e in objects.values())
        result.seconds = round(time.monotonic() - started, 3)
        result.kept_because = retention_blocked(result, sizes[reference] if reference else None,
                                                reference.name if reference else "")
        metadata = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "env": env.name,
            "ref": env.ref,
            "duration_seconds": result.seconds,
            "previous": previous.name if previous else None,
            # A full backup may prune older ones; one that lacks a bucket or shrank far below the
            # last full one (a wiped project?) never does, and never becomes the reference.
            "full": not result.kept_because,
            "not_full_because": result.kept_because or None,
            "buckets": {
                bucket: {
                    "objects": len(objects),
                    "bytes": sum(e["size"] for e in objects.values()),
                    "manifest": objects,
                }
                for bucket, objects in manifest.items()
            },
            "skipped_buckets": result.skipped_buckets,
            "artifacts": artifacts,
        }
        write_private(partial / METADATA_FILE, json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        seal_private(partial)
        partial.rename(final)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    if result.kept_because:
        progress(f"warning: {env.name}: no old backup removed: {result.kept_because}")
    else:
        sizes[final] = BackupSize(result.objects, result.bytes, True)
        result.removed = [str(p) for p in prune_backups(folder, keep, sizes)]
    return result


@dataclass(frozen=True)
class BackupSize:
    objects: int
    bytes: int
    full: bool

    def covers(self, other: BackupSize) -> bool:
        return self.objects >= other.objects and self.bytes >= other.bytes


def backup_size(metadata: dict) -> BackupSize:
    buckets = metadata.get("buckets", {}).values()
    # Manifests from before the `full` field: full unless a bucket was missing.
    full = metadata.get("full", not metadata.get("skipped_buckets"))
    return BackupSize(sum(b.get("objects", 0) for b in buckets), sum(b.get("bytes", 0) for b in buckets), bool(full))


def retention_blocked(made: BackupResult, reference: BackupSize | None, name: str) -> str:
    """Why the backup just made is not full and must not prune ('' when it is full).

    It is compared with the newest *full* backup, never merely the previous run: otherwise the
    second backup of a wiped project would find no drop against the first, and prune every full one.
    """
    if made.skipped_buckets:
        return f"bucket(s) missing in {made.env}: {', '.join(made.skipped_buckets)}"
    if reference is None:
        return ""
    if reference.objects and made.objects < reference.objects * SHRINK_LIMIT:
        return f"{made.objects} objects where the last full backup ({name}) had {reference.objects}"
    if reference.bytes and made.bytes < reference.bytes * SHRINK_LIMIT:
        return f"{made.bytes:,} bytes where the last full backup ({name}) had {reference.bytes:,}"
    return ""


def write_private(path: Path, text: str) -> None:
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)


def seal_private(folder: Path) -> None:
    """Folders 0700 and files 0600 throughout, whatever wrote them (pg_dump, the umask)."""
    os.chmod(folder, 0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def _objects_by_bucket(metadata: dict) -> dict[str, dict[str, dict]]:
    return {bucket: data.get("manifest", {}) for bucket, data in metadata.get("buckets", {}).items()}


def _linkable(previous: Path | None, old: dict | None, info: ObjectInfo) -> Path | None:
    """The previous backup's file of this very object (same size and ETag), if it is still there."""
    if not (old and previous and old["size"] == info.size and old["etag"] == info.etag):
        return None
    source = member(previous, old.get("path", ""), f"{METADATA_FILE} of {previous.name}")
    return source if source.is_file() else None


class Folders:
    """The folders of a backup being written, each made once, when its first object needs it."""

    def __init__(self, root: Path) -> None:
        self.root, self.made, self.lock = root, {""}, threading.Lock()

    def make_parents(self, relative: str) -> None:
        missing, parent = [], os.path.dirname(relative)
        with self.lock:
            while parent not in self.made:
                missing.append(parent)
                parent = os.path.dirname(parent)
            for folder in reversed(missing):
                try:
                    os.mkdir(self.root / folder, 0o700)
                except FileExistsError:
                    pass
                self.made.add(folder)


def _save_object(
    s3: Any, bucket: str, info: ObjectInfo, folders: Folders, relative: str, link_from: Path | None, old: dict | None
) -> tuple[dict, bool]:
    """Hard-link the object from the previous backup (`link_from`, see _linkable), else download it."""
    target = folders.root / relative
    folders.make_parents(relative)
    if link_from and old:
        os.link(link_from, target)  # fails if the path exists: never overwrites
        return {**old, "path": relative}, True
    # Created exclusively: a second key can never land on this file.
    with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:

        def fetch() -> s3objects.Content:
            out.seek(0)
            out.truncate()
            return s3objects.download(s3, bucket, info.key, out, expected=info)

        got = until_intact(fetch)
    entry = {
        "path": relative,
        "size": got.size,
        "etag": info.etag,
        "md5": got.md5,
        "sha256": got.sha256,
        "metadata": got.metadata,
    }
    entry.update({HEADER_NAMES[h]: v for h, v in got.headers.items()})
    return entry, False


def prune_backups(folder: Path, keep: int, sizes: dict[Path, BackupSize]) -> list[Path]:
    """Keep the newest `keep` full backups, and the newest `keep` of the others; never the high-water mark.

    The high-water mark is the newest backup that holds at least as much as every earlier one:
    after a slow drain it still holds what the later, smaller ones lost, until a backup as large
    supersedes it.
    """
    backups = [p for p in complete_backups(folder) if p in sizes]
    high_water, largest = None, BackupSize(0, 0, True)
    for path in backups:
        if sizes[path].full and sizes[path].covers(largest):
            high_water, largest = path, sizes[path]
        largest = BackupSize(max(largest.objects, sizes[path].objects), max(largest.bytes, sizes[path].bytes), True)
    doomed = []
    for full in (True, False):
        series = [p for p in backups if sizes[p].full is full]
        doomed += [p for p in series[: max(0, len(series) - keep)] if p != high_water]
    for path in sorted(doomed, key=stamp_order):
        remove_backup(path)
    return doomed


def remove_backup(path: Path) -> None:
    """Renamed out of sight first (one atomic step), then deleted: a kill midway leaves a hidden
    leftover that the next run removes, never a complete-looking backup missing files."""
    hidden = path.with_name(DELETING_PREFIX + path.name)
    path.rename(hidden)
    shutil.rmtree(hidden)


def clean_interrupted_removals(folder: Path) -> None:
    """Finish removals a kill cut short; a visible folder without a manifest is one of those too
    (older versions deleted in place), or a backup that never sealed."""
    leftovers = list(folder.glob(DELETING_PREFIX + "*"))
    for path in folder.iterdir():
        if path.is_dir() and not path.name.startswith(".") and not (path / METADATA_FILE).exists() \
                and stamp_order(path)[0].endswith("Z"):
            hidden = path.with_name(DELETING_PREFIX + path.name)
            path.rename(hidden)
            leftovers.append(hidden)
    for path in leftovers:
        progress(f"removing what an interrupted run left half-deleted: {path}")
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class BackupReport(Result):
    backups: list[BackupResult]

    def rows(self) -> Table:
        return Table(
            ["env", "objects", "bytes", "downloaded", "hard-linked", "old removed", "path"],
            [[r.env, r.objects, r.bytes, r.downloaded, r.linked, len(r.removed), r.path] for r in self.backups],
        )

    def footer(self) -> str:
        notes = [f"{r.env}: no old backup removed ({r.kept_because})" for r in self.backups if r.kept_because]
        made = [f"{r.env}: {r.objects} objects ({r.downloaded} downloaded, {r.linked} hard-linked) in {r.path}"
                for r in self.backups]
        return "\n".join(notes + made)


def backup_storage(config: Config, *, env: str | None, buckets: list[str] | None, keep: int | None,
                   copy_to: str | None = None) -> BackupReport:
    keep = config.storage.keep if keep is None else keep
    target = config.target(copy_to) if copy_to else None  # an unknown target is refused before any download
    if keep < 1:
        raise UserError("--keep must be at least 1 (the backup just made is always kept)")
    chosen = select_buckets(config, buckets)
    envs = config.envs_named(env, default=[config.workflows.prod], having=lambda e: bool(e.storage_url),
                             needs="a storage_url")
    for each in envs:  # refuse before any download if a later environment lacks keys
        s3objects.client(each)
    if target:
        s3objects.client(target.store)
    made = []
    for each in envs:
        result = backup_env(config, each, chosen, keep)
        if target:
            from ops import offsite

            result.offsite = asdict(offsite.copy_backup(config, target, Path(result.path), full=False))
        made.append(result)
    return BackupReport(made)


# ---------------------------------------------------------------- verify


@dataclass
class VerifyResult(Result):
    path: str
    checked: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.extra)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def rows(self) -> Table:
        return Table(["checked", "MiB", "missing", "corrupt", "extra"],
                     [[self.checked, f"{self.bytes / 2**20:,.1f}", len(self.missing), len(self.corrupt),
                       len(self.extra)]])

    def footer(self) -> str:
        """The problems, then one closing line a person (or grep) reads: OK or FAILED."""
        problems = [f"{kind}: {item}" for kind in ("missing", "corrupt", "extra") for item in getattr(self, kind)]
        lines = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
        if self.ok:
            lines.append(f"OK: {self.checked:,} files, {self.bytes / 2**20:,.1f} MiB, all match ({self.path})")
        else:
            counts = ", ".join(f"{len(getattr(self, kind))} {kind} ({', '.join(getattr(self, kind)[:3])}"
                               f"{', ...' if len(getattr(self, kind)) > 3 else ''})"
                               for kind in ("missing", "corrupt", "extra") if getattr(self, kind))
            lines.append(f"FAILED: {counts} in {self.path}")
        return "\n".join(lines)

    def failure(self) -> OpsError | None:
        return None if self.ok else OperationFailed(f"backup {self.path} does not match its manifest")


def resolve_backup(config: Config, backup: str | None, env: str | None) -> Path:
    if backup and backup != "latest":
        path = Path(backup).resolve()
        if not (path / METADATA_FILE).is_file():
            raise UserError(f"{path} is not a complete backup (no {METADATA_FILE})")
        return path
    environment = config.env(env or config.workflows.prod)
    series = [env_folder(config, environment), config.backup.dir / env_folder(config, environment).name]
    backups = sorted((b for folder in series for b in complete_backups(folder)), key=stamp_order)
    if not backups:
        raise UserError(
            f"no complete backup of {environment.name} in {env_folder(config, environment)}: "
            f"run `inv backup-storage --env {environment.name}` first"
        )
    return backups[-1]


def verify_backup(config: Config, *, backup: str | None, env: str | None) -> VerifyResult:
    from ops import offsite

    remote = offsite.parse(config, backup)
    if remote:
        return offsite.verify_remote(config, remote[0], config.env(env or config.workflows.prod), remote[1])
    path = resolve_backup(config, backup, env)
    metadata = load_manifest(path)
    result = VerifyResult(str(path))
    expected = set()
    what = f"{METADATA_FILE} of {path.name}"
    for bucket, objects in _objects_by_bucket(metadata).items():
        for key, entry in objects.items():
            file = member(path, entry.get("path", ""), what)
            expected.add(file)
            result.checked += 1
            result.bytes += entry["size"]
            if not file.is_file():
                result.missing.append(f"{bucket}/{key}")
            elif file.stat().st_size != entry["size"] or file_digest(file) != entry["sha256"]:
                result.corrupt.append(f"{bucket}/{key}")
    for relative, digest in metadata.get("artifacts", {}).items():
        file = member(path, relative, what)
        expected.add(file)
        result.checked += 1
        if not file.is_file():
            result.missing.append(relative)
        elif file_digest(file) != digest:
            result.corrupt.append(relative)
    ignored = {path / METADATA_FILE}
    result.extra = sorted(
        str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p not in expected and p not in ignored
    )
    return result


# ---------------------------------------------------------------- restore


@dataclass
class RestoreResult(Result):
    backup: str
    target: str
    dry_run: bool
    buckets: list[dict] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    to_upload: list[str] = field(default_factory=list)  # a dry run names them all (the text, the first 50)

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
        rerun = invocation.command(drop=("backup",), add={"backup": self.backup},
                                   fallback=f"inv restore-storage --to {self.target} --backup {self.backup}")
        return OperationFailed(failure_report(self.failures, rerun=rerun))


def restore_storage(
    config: Config,
    *,
    target: str | None,
    backup: str | None,
    env: str | None,
    buckets: list[str] | None,
    dry_run: bool,
    yes: bool,
) -> RestoreResult:
    """Upload a backup (a local one, or `TARGET:<time>` fetched from off-site first) into `target`."""
    from ops import offsite

    started = time.monotonic()
    if not target:
        raise UserError("name the environment to restore into with --to ENV")
    target_env = config.env(target)
    # A backup goes back where it came from unless --env says, on purpose, whose backup it is.
    source_env = config.env(env) if env else target_env
    with offsite.backup_folder(config, backup, source_env) as path:
        return _restore(config, path, target_env, source_env, env_named=bool(env), buckets=buckets,
                        dry_run=dry_run, yes=yes, started=started)


def _restore(config: Config, path: Path, target_env: Environment, source_env: Environment, *, env_named: bool,
             buckets: list[str] | None, dry_run: bool, yes: bool, started: float) -> RestoreResult:
    metadata = load_manifest(path)
    recorded = (metadata.get("env"), metadata.get("ref"))
    if recorded[1] != source_env.ref:
        hint = "" if env_named else f"; to restore another environment's backup into {target_env.name}, name it " \
            "with --env"
        raise UserError(f"{path} is a backup of {recorded[0]} ({recorded[1]}), not of {source_env.name} "
                        f"({source_env.ref}){hint}. Nothing was restored.")
    if source_env.name != target_env.name:
        progress(f"restoring a backup of {source_env.name} ({source_env.ref}) into {target_env.name} "
                 f"({target_env.ref})")
    chosen = select_buckets(config, buckets)  # only the app's buckets, never whatever the manifest lists
    objects = {b: objs for b, objs in _objects_by_bucket(metadata).items() if b in chosen}
    files = {b: {key: member(path, entry.get("path", ""), f"{METADATA_FILE} of {path.name}")
                 for key, entry in objs.items()} for b, objs in objects.items()}
    action = "restore storage objects into it"
    s3 = s3objects.client(target_env, max_pool=config.storage.jobs * 2)
    missing = [b for b in objects if not s3objects.bucket_exists(s3, b)]
    if missing:
        raise UserError(f"bucket(s) missing in {target_env.name}: {', '.join(missing)}; push migrations first")
    result = RestoreResult(str(path), target_env.name, dry_run)
    tasks = []
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
        tasks += [(bucket, ObjectInfo(key, entries[key]["size"], entries[key]["etag"])) for key in upload]
    result.to_upload = [f"{bucket}/{info.key}" for bucket, info in tasks] if dry_run else []
    if not dry_run and tasks:  # the plan first, then the question; nothing to upload asks nothing
        plan = [f"plan for {target_env.name}: upload {len(tasks):,} object(s) from {path}"]
        plan += [f"  + {bucket}/{info.key}" for bucket, info in tasks[:NAMED]]
        plan += [f"  + ... and {len(tasks) - NAMED:,} more"] if len(tasks) > NAMED else []
        confirm_write(target_env, yes=yes, action=action, plan="\n".join(plan))
    if not dry_run:
        s3objects.abort_leftover_uploads(s3, target_env)

        def put(bucket: str, info: ObjectInfo) -> None:
            entry = objects[bucket][info.key]
            until_intact(lambda: _upload_file(s3, bucket, info.key, files[bucket][info.key], entry))

        result.failures = run_parallel(tasks, put, config.storage.jobs, f"restored ({target_env.name})")
        failed: dict[str, int] = {}
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
    return s3objects.content_md5(s3, bucket, present) == entry["md5"]


def _upload_file(s3: Any, bucket: str, key: str, file: Path, entry: dict) -> None:
    if file_digest(file) != entry["sha256"]:
        raise OperationFailed(f"{file} does not match its manifest: run inv verify-backup")
    headers = {header: entry[name] for header, name in HEADER_NAMES.items() if entry.get(name)}
    got = s3objects.Content(entry["size"], entry["md5"], entry["sha256"], headers, entry.get("metadata", {}))
    with file.open("rb") as handle:
        s3objects.upload(s3, bucket, key, handle, got)
