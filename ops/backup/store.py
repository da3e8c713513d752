"""The backup store: where backups live, how one is sealed, locked, found, read and pruned.

A backup is `<backup_dir>/<env>-<ref>/<UTC time>/<bucket>/<key>` plus `_backup_metadata.json`
(the manifest: size, ETag, sha256 and headers of every object). It is built in a hidden
`.partial-*` folder and renamed only when complete, so nothing incomplete looks like a
backup; one being removed is renamed out of sight first, so nothing half-deleted does either.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ops.backup import manifest
from ops.config import Config, Environment
from ops.errors import UserError
from ops.report import progress
from ops.stamps import stamp_order

METADATA_FILE = manifest.FILE
PARTIAL_PREFIX = ".partial-"
DELETING_PREFIX = ".deleting-"  # a backup being removed: renamed first, so no half-deleted one looks complete
LOCK_FILE = ".lock"
SHRINK_LIMIT = 0.5  # a backup with less than half the reference's objects or bytes is not full: it never prunes


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


def objects_by_bucket(metadata: dict) -> dict[str, dict[str, dict]]:
    return {bucket: data.get("manifest", {}) for bucket, data in metadata.get("buckets", {}).items()}


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
            raise UserError(
                f"another backup of {env.name} is running (it holds {folder / LOCK_FILE}); "
                "wait for it to finish, then run this again"
            ) from None
        # With the lock held no other run of this series is alive: its partial folders are orphans.
        for stale in folder.glob(PARTIAL_PREFIX + "*"):
            progress(f"removing an interrupted backup: {stale}")
            shutil.rmtree(stale, ignore_errors=True)
        clean_interrupted_removals(folder)
        yield
    finally:
        os.close(handle)  # closing releases the lock


@dataclass(frozen=True)
class BackupSize:
    objects: int
    bytes: int
    full: bool
    rows: dict[str, int] | None = None  # rows per table of the database dump (full backups)

    def covers(self, other: BackupSize) -> bool:
        return self.objects >= other.objects and self.bytes >= other.bytes


def backup_size(metadata: dict) -> BackupSize:
    """From a manifest's summary (format 2: its `sizes`) or a whole older manifest."""
    buckets = (metadata.get("sizes") or metadata.get("buckets", {})).values()
    # Manifests from before the `full` field: full unless a bucket was missing.
    full = metadata.get("full", not metadata.get("skipped_buckets"))
    rows = metadata.get("rows")
    return BackupSize(
        sum(b.get("objects", 0) for b in buckets),
        sum(b.get("bytes", 0) for b in buckets),
        bool(full),
        dict(rows) if isinstance(rows, dict) else None,
    )


def row_groups(rows: dict[str, int]) -> dict[str, int]:
    """Rows per schema, and auth.users alone: losing every user is a wipe however full the rest is."""
    groups: dict[str, int] = {"auth.users": rows.get("auth.users", 0)}
    for table, count in rows.items():
        schema = f"schema {table.split('.', 1)[0]}"
        groups[schema] = groups.get(schema, 0) + count
    return groups


def retention_blocked(
    env: str, made: BackupSize, skipped_buckets: list[str], reference: BackupSize | None, name: str
) -> str:
    """Why the backup just made is not full and must not prune ('' when it is full).

    It is compared with the newest *full* backup, never merely the previous run: otherwise the
    second backup of a wiped project would find no drop against the first, and prune every full one.
    """
    if skipped_buckets:
        return f"bucket(s) missing in {env}: {', '.join(skipped_buckets)}"
    if reference is None:
        return ""
    if reference.objects and made.objects < reference.objects * SHRINK_LIMIT:
        return f"{made.objects} objects where the last full backup ({name}) had {reference.objects}"
    if reference.bytes and made.bytes < reference.bytes * SHRINK_LIMIT:
        return f"{made.bytes:,} bytes where the last full backup ({name}) had {reference.bytes:,}"
    if made.rows is not None and reference.rows:
        now = row_groups(made.rows)
        for group, had in row_groups(reference.rows).items():
            if had and now.get(group, 0) < had * SHRINK_LIMIT:
                return f"{now.get(group, 0):,} rows in {group} where the last full backup ({name}) had {had:,}"
    return ""


@dataclass(frozen=True)
class Judged:
    """A backup of a series as retention sees it: its size, and why it is not full ('' when it is)."""

    name: str
    size: BackupSize
    not_full_because: str

    @property
    def full(self) -> bool:
        return not self.not_full_because


def judge_series(env: str, series: list[tuple[str, dict]]) -> list[Judged]:
    """Each backup of a series (name and manifest summary, oldest first), judged against the newest
    full one before it, whatever its manifest says: a copy made on a machine with no earlier backup
    (a fresh CI runner) called a wiped project's backup full, as it had nothing to compare with."""
    judged: list[Judged] = []
    reference: Judged | None = None
    for name, summary in series:
        size = backup_size(summary)
        why = "" if size.full else (summary.get("not_full_because") or "its manifest says it is not full")
        why = why or retention_blocked(
            env,
            size,
            list(summary.get("skipped_buckets") or []),
            reference.size if reference else None,
            reference.name if reference else "",
        )
        judged.append(Judged(name, size, why))
        if not why:
            reference = judged[-1]
    return judged


def newest_full(judged: list[Judged]) -> Judged | None:
    return next((j for j in reversed(judged) if j.full), None)


def retention(judged: list[Judged], keep: int) -> tuple[list[str], str]:
    """What retention removes from a series judged by `judge_series` (its newest, just made, last),
    and why it removes nothing when the newest is not full ('' otherwise).

    Keep the newest `keep` full backups, and the newest `keep` of the others; never the high-water
    mark: the newest full backup that holds at least as much as every earlier one. After a slow
    drain it still holds what the later, smaller ones lost, until a backup as large supersedes it.
    One home for local and remote series alike, each judged from its own contents.
    """
    if not judged:
        return [], ""
    if not judged[-1].full:
        return [], judged[-1].not_full_because
    high_water, largest = None, BackupSize(0, 0, True)
    for each in judged:
        if each.full and each.size.covers(largest):
            high_water, largest = each.name, each.size
        largest = BackupSize(max(largest.objects, each.size.objects), max(largest.bytes, each.size.bytes), True)
    doomed = []
    for full in (True, False):
        series = [j.name for j in judged if j.full is full]
        doomed += [name for name in series[: max(0, len(series) - keep)] if name != high_water]
    return [j.name for j in judged if j.name in doomed], ""


def seal_private(folder: Path) -> None:
    """Folders 0700 and files 0600 throughout, whatever wrote them (pg_dump, the umask)."""
    os.chmod(folder, 0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)


def prune_backups(env: str, folder: Path, keep: int) -> tuple[list[Path], str]:
    """Apply `retention` to a local series; what was removed, or why nothing was."""
    judged = judge_series(env, [(p.name, manifest.summary(p)) for p in complete_backups(folder)])
    doomed, blocked = retention(judged, keep)
    for name in doomed:
        remove_backup(folder / name)
    return [folder / name for name in doomed], blocked


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
        if (
            path.is_dir()
            and not path.name.startswith(".")
            and not (path / METADATA_FILE).exists()
            and stamp_order(path)[0].endswith("Z")
        ):
            hidden = path.with_name(DELETING_PREFIX + path.name)
            path.rename(hidden)
            leftovers.append(hidden)
    for path in leftovers:
        progress(f"removing what an interrupted run left half-deleted: {path}")
        shutil.rmtree(path, ignore_errors=True)


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
