"""backup-storage: one environment's buckets into a new backup, unchanged objects hard-linked from the last.

Objects unchanged since the previous backup are hard-linked from it, so each backup is
complete by itself but costs only the changed bytes.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops.backup import manifest
from ops.backup.paths import ObjectPaths, paths_in_order, within
from ops.backup.retention import (
    BackupSize,
    Judged,
    judge_series,
    newest_full,
    ours,
    policy_from,
    retention_blocked,
)
from ops.backup.store import (
    METADATA_FILE,
    PARTIAL_PREFIX,
    complete_backups,
    env_folder,
    private_dir,
    prune_backups,
    series_lock,
    some_buckets_folder,
)
from ops.config import Config, Environment, RetentionPolicy
from ops.errors import OperationFailed, first_line
from ops.report import Meter, Result, Table, progress
from ops.s3 import objects as s3objects
from ops.s3.base import OBJECT_HEADERS, ObjectInfo
from ops.s3.client import S3
from ops.stamps import seal_private, unused_name
from ops.storage.parallel import Failure, failure_report, run_tasks, until_intact
from ops.storage.sync import select_buckets

ObjectAndPath = tuple[ObjectInfo, str]  # an object and its path in the backup


@dataclass
class BackupResult:
    env: str
    path: str
    objects: int = 0
    bytes: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0
    linked: int = 0
    target: str = ""  # a backup straight to this backup target (--to), no local series
    already_there: int = 0  # ... of which the unchanged objects, already in the target's pool (named, not sent)
    copied_server_side: int = 0  # ... or copied into the pool server-side from a backup written before it
    removed: list[str] = field(default_factory=list)
    skipped_buckets: list[str] = field(default_factory=list)
    kept_because: str = ""  # why retention deleted nothing
    seconds: float = 0.0
    offsite: dict | None = None  # the off-site copy (--copy-to): where, and what was sent

    def sent(self) -> str:
        """What a backup straight to a target (--to) moved: `1 read, 8 already there`."""
        copied = f", {self.copied_server_side} copied server-side" if self.copied_server_side else ""
        return f"{self.downloaded} read, {self.already_there} already there{copied}"


def backup_env(
    config: Config,
    env: Environment,
    buckets: list[str],
    policy: RetentionPolicy,
    *,
    series: Path | None = None,
    extras: Callable[[Path], tuple[dict[str, str], dict[str, Any]]] | None = None,
) -> BackupResult:
    """Back up one environment's buckets into a new folder of `series` (default: its storage series).

    `extras` may write more files into the backup before it is sealed; it returns their
    paths (relative) with sha256, which the manifest records and verify-backup checks, and
    more fields for the manifest (the dump's row counts, which retention compares).
    A backup of only some buckets is a series of its own, so it never counts against
    (nor prunes) the full backups.
    """
    started = time.monotonic()
    s3 = s3objects.client(env, max_pool=config.storage.jobs * 2)
    folder = series or env_folder(config, env)
    if set(buckets) != set(config.storage.buckets):
        folder = some_buckets_folder(folder, buckets)
    private_dir(folder)
    with series_lock(folder, env):
        try:
            return _backup_locked(config, env, s3, folder, buckets, policy, extras, started, in_order=True)
        except s3objects.OutOfOrder as disorder:
            progress(f"{env.name}: {disorder}: not S3's key order, so each bucket is listed whole first")
            return _backup_locked(config, env, s3, folder, buckets, policy, extras, started, in_order=False)


def _objects(s3: S3, buckets: list[str], *, in_order: bool) -> tuple[list[str], Iterator[tuple[str, ObjectInfo, str]]]:
    """The buckets that exist, and then each of their objects with its path in the backup.

    In S3's key order, objects come as the listing goes (memory holds a few pages, whatever the
    bucket's size); raises s3objects.OutOfOrder if a server lists otherwise. Else each bucket is
    listed whole first, for ObjectPaths.
    """
    if in_order:
        listings = {bucket: s3objects.Listing(s3, bucket) for bucket in buckets}  # all listed at once
        for listing in listings.values():
            listing.wait_answered()
            if listing.failed:
                for each in listings.values():
                    each.close()
                raise listing.failed

        def listed() -> Iterator[tuple[str, ObjectInfo, str]]:
            try:
                for bucket, listing in listings.items():
                    for info, relative in paths_in_order(bucket, iter(listing), key_of):
                        yield bucket, info, relative
            finally:
                for listing in listings.values():
                    listing.close()

        return [b for b, listing in listings.items() if not listing.missing], listed()
    with ThreadPoolExecutor(max_workers=max(1, len(buckets))) as pool:
        # Every bucket listed at once; a missing one shows in its listing's answer.
        whole = dict(zip(buckets, pool.map(lambda b: s3objects.listed_if_any(s3, b), buckets), strict=True))

    def held() -> Iterator[tuple[str, ObjectInfo, str]]:
        for bucket in list(whole):
            objects = whole.pop(bucket)  # what is still to give out, and no more
            if objects is not None:
                paths = ObjectPaths(bucket, (info.key for info in objects))
                for info in objects:
                    yield bucket, info, paths[info.key]

    return [b for b, objects in whole.items() if objects is not None], held()


def key_of(info: ObjectInfo) -> str:
    return info.key


def _backup_locked(
    config: Config,
    env: Environment,
    s3: S3,
    folder: Path,
    buckets: list[str],
    policy: RetentionPolicy,
    extras: Callable[[Path], tuple[dict[str, str], dict[str, Any]]] | None,
    started: float,
    *,
    in_order: bool,
) -> BackupResult:
    history = complete_backups(folder)
    previous = next((p for p in reversed(history) if ours(p.name)), None)
    reference = newest_full(judge_series(env.name, [(p.name, manifest.summary(p)) for p in history]))

    final = folder / unused_name(folder, also=PARTIAL_PREFIX)
    partial = folder / f"{PARTIAL_PREFIX}{final.name}"
    partial.mkdir(mode=0o700)
    result = BackupResult(env.name, str(final))
    written = manifest.Writer(partial)
    saver = ObjectSaver(s3, partial, previous, written, result, f"backed up ({env.name})")
    try:
        present, objects = _objects(s3, buckets, in_order=in_order)
        result.skipped_buckets = [b for b in buckets if b not in present]
        for bucket in present:
            written.bucket(bucket)
        saver.save_all(objects, config.storage.jobs, f"backup of {env.name} incomplete; nothing was kept")
        artifacts, facts = extras(partial) if extras else ({}, {})
        written.write(
            sealing_fields(
                env, result, written, started, previous.name if previous else None, reference, artifacts, facts
            )
        )
        seal_private(partial)
        partial.rename(final)
    finally:
        saver.close()
        written.discard()
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    if not result.kept_because:
        removed, result.kept_because = prune_backups(env.name, folder, policy, final.name)
        result.removed = [str(p) for p in removed]
    if result.kept_because:
        progress(f"warning: {env.name}: no old backup removed: {result.kept_because}")
    return result


class ObjectSaver:
    """Saves a backup's objects into its folder as they are listed: unchanged ones hard-linked
    from the previous backup on the way (no network, nothing for a worker to wait for), the
    rest downloaded by workers; the counts go into `result`, the entries into `written`."""

    def __init__(
        self,
        s3: S3,
        partial: Path,
        previous: Path | None,
        written: manifest.Writer,
        result: BackupResult,
        label: str,
    ) -> None:
        self.s3, self.previous, self.written, self.result = s3, previous, written, result
        self.lock = threading.Lock()
        self.folders = Folders(partial)
        self.earlier = manifest.Index(previous)
        self.meter = Meter(label, 0, "objects", 0)
        self.problems: list[Exception] = []  # the listing's own failure, raised once the saves under way end
        self.failures: list[Failure] = []

    def save_all(self, objects: Iterator[tuple[str, ObjectInfo, str]], jobs: int, headline: str) -> None:
        """Save every object on `jobs` workers; raise if the listing failed or any object did."""
        with self.meter:
            run_tasks(self.to_fetch(objects), self.save, jobs, self.outcome)
        if self.problems:
            raise self.problems[0]
        if self.failures:
            raise OperationFailed(failure_report(self.failures, headline))

    def to_fetch(self, objects: Iterator[tuple[str, ObjectInfo, str]]) -> Iterator[tuple[str, ObjectAndPath]]:
        """Each object to download, as listed; unchanged ones are hard-linked here instead."""
        try:
            for bucket, info, relative in objects:
                found = self.earlier.get(bucket, info.key) if self.previous else None
                source = _linkable(self.previous, found[0] if found else None, info)
                if source:
                    self.save(bucket, (info, relative), source, found)
                else:
                    self.meter.expect(1, info.size)
                    yield bucket, (info, relative)
        except Exception as error:  # noqa: BLE001 (raised by save_all, once the objects under way are saved)
            self.problems.append(error)

    def save(
        self, bucket: str, task: ObjectAndPath, link_from: str | None = None, found: tuple[dict, str] | None = None
    ) -> None:
        info, relative = task
        entry, linked = _save_object(
            self.s3, bucket, info, self.folders, relative, link_from, found[0] if found else None
        )
        if linked and found and found[1] and found[0].get("path") == relative:
            self.written.add_line(bucket, found[1], info.size)  # the very entry of the last backup
        else:
            self.written.add(bucket, info.key, entry)
        with self.lock:
            self.result.linked += linked
            self.result.downloaded += not linked
            self.result.downloaded_bytes += 0 if linked else info.size

    def outcome(self, bucket: str, task: ObjectAndPath, error: BaseException | None) -> None:
        if error is None:
            self.meter.add(1, task[0].size)
        else:
            self.failures.append(Failure(bucket, task[0].key, first_line(error, typed=True)))

    def close(self) -> None:
        self.earlier.close()


def sealing_fields(
    env: Environment,
    result: BackupResult,
    written: manifest.Writer,
    started: float,
    previous: str | None,
    reference: Judged | None,
    artifacts: dict[str, str],
    facts: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's fields of a backup about to be sealed (its objects all in `written`); fills in
    `result`'s sizes, time and whether it is full."""
    result.objects, result.bytes = written.objects, written.bytes
    result.seconds = round(time.monotonic() - started, 3)
    result.kept_because = retention_blocked(
        env.name,
        BackupSize(result.objects, result.bytes, True, facts.get("rows")),
        result.skipped_buckets,
        reference.size if reference else None,
        reference.name if reference else "",
    )
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "env": env.name,
        "ref": env.ref,
        "duration_seconds": result.seconds,
        "previous": previous,
        # A full backup may prune older ones; one that lacks a bucket or shrank far below the
        # last full one (a wiped project?) never does, and never becomes the reference.
        "full": not result.kept_because,
        "not_full_because": result.kept_because or None,
        "skipped_buckets": result.skipped_buckets,
        "artifacts": artifacts,
        **facts,
    }


def _linkable(previous: Path | None, old: dict | None, info: ObjectInfo) -> str | None:
    """The previous backup's file of this very object (same size and ETag), as its manifest names it.

    Not looked at here: the link itself finds out (a stat per object would cost a second per
    100,000), and it never follows a symlink; verify-backup checks every path of the backup made.
    """
    if not (old and previous and old["size"] == info.size and old["etag"] == info.etag):
        return None
    return within(previous, old.get("path", ""), f"{METADATA_FILE} of {previous.name}")


class Folders:
    """The folders of a backup being written, each made once, when its first object needs it."""

    def __init__(self, root: Path) -> None:
        self.root, self.made, self.lock = str(root), {""}, threading.Lock()

    def make_parents(self, relative: str) -> None:
        missing, parent = [], os.path.dirname(relative)
        with self.lock:
            while parent not in self.made:
                missing.append(parent)
                parent = os.path.dirname(parent)
            for folder in reversed(missing):
                try:
                    os.mkdir(os.path.join(self.root, folder), 0o700)
                except FileExistsError:
                    pass
                self.made.add(folder)


def _save_object(
    s3: S3, bucket: str, info: ObjectInfo, folders: Folders, relative: str, link_from: str | None, old: dict | None
) -> tuple[dict, bool]:
    """Hard-link the object from the previous backup (`link_from`, see _linkable), else download it."""
    target = os.path.join(folders.root, relative)  # text, not Path: 100,000 of them
    folders.make_parents(relative)
    if link_from and old:
        try:
            os.link(link_from, target, follow_symlinks=False)  # fails if the path exists: never overwrites
            return {**old, "path": relative}, True
        except FileNotFoundError:
            pass  # the previous backup lost this file: downloaded instead
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
    entry.update({kept.field: got.headers[kept.name] for kept in OBJECT_HEADERS if kept.name in got.headers})
    return entry, False


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
        made = [
            f"{r.env}: {r.objects} objects ("
            + (f"{r.sent()})" if r.target else f"{r.downloaded} downloaded, {r.linked} hard-linked)")
            + f" in {r.path}"
            for r in self.backups
        ]
        return "\n".join(notes + made)


def storage_envs(config: Config, env: str | None) -> list[Environment]:
    """The environments `--env` names for a storage backup, each refused before any download if it lacks keys."""
    envs = config.envs_named(
        env, default=[config.workflows.prod], having=lambda e: bool(e.storage_url), needs="a storage_url"
    )
    for each in envs:
        s3objects.client(each)
    return envs


def backup_storage(
    config: Config,
    *,
    env: str | None,
    buckets: list[str] | None,
    keep: dict[str, int | None] | None = None,
    copy_to: str | None = None,
) -> BackupReport:
    """`keep`: the retention flags given (last, daily, weekly, monthly), each in place of its [backup] setting."""
    policy = policy_from(config.backup.retention, **(keep or {}))
    target = config.target(copy_to) if copy_to else None  # an unknown target is refused before any download
    chosen = select_buckets(config, buckets)
    envs = storage_envs(config, env)
    if target:
        s3objects.client(target.store)
    made = []
    for each in envs:
        result = backup_env(config, each, chosen, policy)
        if target:
            from ops.backup import offsite

            sent = offsite.copy_backup(config, target, Path(result.path), env=each, full=False, policy=policy)
            result.offsite = asdict(sent)
        made.append(result)
    return BackupReport(made)
