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
from pathlib import Path

from ops.backup import manifest
from ops.config import Config, Environment, RetentionPolicy
from ops.errors import UserError
from ops.invocation import program
from ops.report import progress
from ops.stamps import stamp_order, stamp_time

METADATA_FILE = manifest.FILE
PARTIAL_PREFIX = ".partial-"
DELETING_PREFIX = ".deleting-"  # a backup being removed: renamed first, so no half-deleted one looks complete
LOCK_FILE = ".lock"
WRITING_MARK = "_writing"  # a remote backup under way: a killed run leaves a folder the next one finds


def env_folder(config: Config, env: Environment) -> Path:
    return config.storage.backup_dir / env.folder


def some_buckets_folder(folder: Path, buckets: list[str]) -> Path:
    """The series of a backup of only some buckets, beside `folder` (all buckets): `<env>-<ref>+avatars`.
    A series of its own, so such a backup never counts against (nor prunes) the backups of all buckets."""
    return folder.with_name(some_buckets_name(folder.name, buckets))


def some_buckets_name(folder: str, buckets: list[str]) -> str:
    """`<env>-<ref>+<b1>+<b2>`, one name per selection: a bucket whose name holds `+` (`a+b` against `a`
    and `b`) or `/` (a folder elsewhere) would share another's, so it is refused as a selection."""
    for bucket in buckets:
        if "+" in bucket or "/" in bucket or bucket in ("", ".", ".."):
            raise UserError(
                f"bucket {bucket!r} cannot be backed up on its own (a series of some buckets is named "
                "<env>-<ref>+<bucket>+...): back it up with all buckets (no --buckets)"
            )
    return folder + "+" + "+".join(sorted(buckets))


def some_buckets_series(folder: Path) -> list[tuple[str, Path]]:
    """Each series of some buckets beside `folder`: its buckets (joined by '+') and its folder."""
    if not folder.parent.is_dir():
        return []
    prefix = folder.name + "+"
    return sorted(
        (path.name.removeprefix(prefix), path)
        for path in folder.parent.iterdir()
        if path.name.startswith(prefix) and path.is_dir()
    )


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


def prune_backups(env: str, folder: Path, policy: RetentionPolicy, made: str) -> tuple[list[Path], str]:
    """Apply the retention rules to a local series after the backup `made`; what was removed, or why nothing was."""
    from ops.backup.retention import judge_series, retention

    judged = judge_series(env, [(p.name, manifest.summary(p)) for p in complete_backups(folder)])
    doomed, blocked = retention(judged, policy, made)
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
    # A name that is no time was not made by this tool: never `latest`.
    backups = sorted((b for folder in series for b in complete_backups(folder) if stamp_time(b.name)), key=stamp_order)
    if not backups:
        raise UserError(
            f"no complete backup of {environment.name} in {env_folder(config, environment)}: "
            f"run `{program()} backup-storage --env {environment.name}` first"
        )
    return backups[-1]
