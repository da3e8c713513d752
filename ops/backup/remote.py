"""Remote-first backups (`--to TARGET`): a sealed backup written straight to a backup target, no local series.

A CI runner starts empty: downloading every object each night to copy it off-site costs the whole
project each time. Here the target's newest sealed backup of the environment is the reference: an
object whose key, size and ETag its manifest records is unchanged, and the new manifest names the
blob the pool already holds (`ops.backup.pool`: no request at all); only new and changed objects
are read from the source, one temp file each, uploaded to the pool and removed. The database dump,
config export and secret names are written fresh into the backup's folder. The manifest goes last
and seals the backup; a backup without one is never `latest`, never a reference, and its keys are
removed by the next run, and then the blobs no sealed manifest names. Retention then applies to
the remote series alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.backup import buckets as storage
from ops.backup import manifest, pool, records
from ops.backup.buckets import BackupReport, BackupResult, Folders, _objects, _save_object, sealing_fields
from ops.backup.lock import Held
from ops.backup.offsite import (
    fetch_manifest,
    md5_of,
    remote_base,
    remote_names,
    remote_retention,
    remote_series,
    remote_series_bases,
    sealed_remote,
)
from ops.backup.paths import unsafe
from ops.backup.retention import newest_full, ours, policy_from
from ops.backup.store import LOCK_FILE, METADATA_FILE, WRITING_MARK, some_buckets_name
from ops.config import BackupTarget, Config, Environment, RetentionPolicy
from ops.errors import OperationFailed, UserError, first_line
from ops.report import Meter, progress
from ops.s3 import objects as s3objects
from ops.s3.base import ObjectInfo, S3Error, md5_of_etag
from ops.s3.client import S3
from ops.stamps import next_stamp, stamp_order, stamp_time
from ops.storage.parallel import Failure, failure_report, run_tasks
from ops.storage.sync import select_buckets

STAGING_PREFIX = "remote-backup-"
Extras = Callable[[Path], tuple[dict[str, str], dict[str, Any]]]


def chosen_target(config: Config, to: str | None, copy_to: str | None) -> BackupTarget | None:
    """The target of `--to` (None without it), refused with `--copy-to` or unknown before anything is read."""
    if to and copy_to:
        raise UserError(
            "--to and --copy-to together: give --to TARGET to back up straight to the target, "
            "or --copy-to TARGET to back up here and then copy it there"
        )
    if not to:
        return None
    target = config.target(to)
    s3objects.client(target.store)  # its keys, before any download
    return target


def backup_storage(
    config: Config,
    *,
    env: str | None,
    buckets: list[str] | None,
    keep: dict[str, int | None] | None = None,
    copy_to: str | None = None,
    to: str | None = None,
) -> BackupReport:
    """`backup-storage`: straight to the target `to` (no local series), else into the local series as
    `storage.backup_storage` makes it (then copied to `copy_to`)."""
    target = chosen_target(config, to, copy_to)
    if not target:
        return storage.backup_storage(config, env=env, buckets=buckets, keep=keep, copy_to=copy_to)
    policy = policy_from(config.backup.retention, **(keep or {}))
    chosen = select_buckets(config, buckets)
    envs = storage.storage_envs(config, env)
    return BackupReport([backup_to(config, each, target, chosen, policy, full=False) for each in envs])


def backup_to(
    config: Config,
    env: Environment,
    target: BackupTarget,
    buckets: list[str],
    policy: RetentionPolicy,
    *,
    full: bool,
    extras: Extras | None = None,
) -> BackupResult:
    """One environment's backup written to `target` under `<prefix>/[full/]<env>-<ref>/<time>/`, sealed last;
    then the remote series' retention."""
    from ops.backup import lock

    remote = s3objects.client(target.store, max_pool=config.storage.jobs * 2)
    with lock.held(remote, target, env) as holding:
        return locked_backup_to(config, env, target, remote, buckets, policy, full=full, extras=extras, holding=holding)


def locked_backup_to(
    config: Config,
    env: Environment,
    target: BackupTarget,
    remote: S3,
    buckets: list[str],
    policy: RetentionPolicy,
    *,
    full: bool,
    extras: Extras | None,
    holding: Held,
) -> BackupResult:
    started = time.monotonic()
    folder = env.folder
    if not full and set(buckets) != set(config.storage.buckets):
        folder = some_buckets_name(folder, buckets)
    base = remote_base(target, folder, full)
    names = set(remote_names(remote, target, base))
    name = next_stamp(names)
    interrupted = remove_unsealed(remote, target, base, names, name)
    sealed = [each for each in sealed_remote(remote, target, base) if ours(each)]
    reference = newest_full(remote_series(remote, target, base, env.name))
    scratch = config.root / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    remove_abandoned(scratch)
    # The pool is listed while the objects are gone through (listing 100,000 blobs takes as long as the
    # rest of the run): an unchanged object is named at once, and checked against the listing before
    # the seal.
    blobs = pool.Listing(remote, target, pool.pool_prefix(target, env))
    previous = sealed[-1] if sealed else None
    writing = Writing(config, env, remote, target, Spot(base, name, previous), scratch)
    try:
        result = write_objects(writing, env, buckets)
        lost = writing.lost(blobs.result())
        if lost:
            # A blob gone (a lifecycle rule, a hand): the objects are gone through again, each unchanged one
            # named only if its blob is there, else read from the source.
            progress(f"{target.name}: {lost:,} unchanged objects are gone from the pool; read from {env.name} again")
            writing.restart(blobs.result())
            result = write_objects(writing, env, buckets)
        artifacts, facts = extras(writing.staging) if extras else ({}, {})
        for relative in artifacts:
            writing.upload(relative, md5_of(writing.staging / relative))
        fields = sealing_fields(env, result, writing.written, started, previous, reference, artifacts, facts)
        writing.written.write({**fields, "layout": pool.LAYOUT})
        # Sealed last: only a remote backup with every file has a manifest.
        holding.confirm()  # a run whose lock was taken over may name blobs the other run swept
        seal(remote, target, writing.prefix, writing.staging / METADATA_FILE)
        remote.delete_object(target.bucket, writing.prefix + WRITING_MARK)
        records.note(remote, target, writing.prefix, "sealed", True, {"backup": name})
    finally:
        writing.close()
    holding.confirm()
    if not result.kept_because:
        result.removed, result.kept_because = remote_retention(remote, target, base, env.name, policy, name)
    if result.kept_because:
        progress(f"warning: {target.name}: no old remote backup removed: {result.kept_because}")
    if result.removed or interrupted:
        holding.confirm()
        sweep_pool(config, remote, target, env, f"{base}{name}/")
    progress(f"{target.name}: {name} sealed ({result.sent()} from {env.name})")
    return result


def seal(s3: S3, target: BackupTarget, prefix: str, path: Path) -> None:
    """Upload the manifest, streamed, and check the target stored what was written."""
    with path.open("rb") as handle:
        size = path.stat().st_size
        etag = s3.put_file(target.bucket, prefix + METADATA_FILE, handle, size, {"content-type": "application/json"})
    stored = md5_of_etag(etag)
    if stored and stored != md5_of(path):
        s3.delete_object(target.bucket, prefix + METADATA_FILE)
        raise OperationFailed(
            f"{target.name}: the manifest stored at {prefix}{METADATA_FILE} is not the one written (MD5 {stored}); "
            "the backup is not sealed and the next run removes it"
        )


def write_objects(writing: Writing, env: Environment, buckets: list[str]) -> BackupResult:
    """The objects, each bucket listed in S3's key order as it goes; listed whole first on a server that
    does not keep that order."""
    try:
        return writing.objects(env, buckets, in_order=True)
    except s3objects.OutOfOrder as disorder:
        progress(f"{env.name}: {disorder}: not S3's key order, so each bucket is listed whole first")
        writing.restart(writing.blobs)
        return writing.objects(env, buckets, in_order=False)


def remove_unsealed(s3: S3, target: BackupTarget, base: str, names: set[str], current: str) -> int:
    """Remove every key of an unsealed backup (no manifest) under `base` older than the run `current`:
    a run that was killed, or a removal cut short. How many were removed."""
    sealed = set(sealed_remote(s3, target, base))
    removed = 0
    for name in sorted(names - sealed, key=lambda n: stamp_order(Path(n))):
        if unsafe(name) or stamp_time(name) is None or stamp_order(Path(name)) >= stamp_order(Path(current)):
            continue  # only a run of ours (a time) that started before this one
        try:
            s3.head_object(target.bucket, f"{base}{name}/{METADATA_FILE}")
        except S3Error as error:
            if not error.missing:
                raise
        else:
            continue  # sealed after all: a listing that lags behind does not show its manifest yet
        progress(f"{target.name}: removing an unsealed backup (an interrupted run): {base}{name}/")
        records.remove(s3, target, f"{base}{name}/")
        keys = sorted(s3objects.list_objects(s3, target.bucket, f"{base}{name}/"))
        for start in range(0, len(keys), 1000):
            s3.delete_objects(target.bucket, keys[start : start + 1000])
        removed += 1
    return removed


def sweep_pool(config: Config, s3: S3, target: BackupTarget, env: Environment, sealed_now: str) -> None:
    """Remove the pool's blobs that no sealed manifest of `env` names (of any of its series), under the lock.
    Each folder's manifest is asked for by its key, and the one this run sealed (`sealed_now`, its prefix)
    always: a listing that lags behind may not show a manifest just written. A manifest that cannot be read
    stops the sweep: a blob kept too long costs bytes, one removed too soon costs a backup."""
    referenced: set[int] = set()
    scratch = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=config.root / "tmp"))
    try:
        folders = {sealed_now} | {
            f"{base}{name}/"
            for _, base in remote_series_bases(s3, target, env)
            for name in remote_names(s3, target, base)
            if not unsafe(name)
        }
        for number, prefix in enumerate(sorted(folders)):
            try:
                folder = fetch_manifest(s3, target, prefix + METADATA_FILE, scratch / str(number))
            except S3Error as error:
                if error.missing:
                    continue  # unsealed (a run killed on a clock ahead): it names nothing
                raise
            referenced.update(named_blobs(folder, prefix + METADATA_FILE))
            shutil.rmtree(folder)
    except (ValueError, TypeError, AttributeError, S3Error) as error:
        progress(f"warning: {target.name}: unused objects not removed this time: {first_line(error, typed=True)}")
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    removed = pool.sweep(s3, target, pool.pool_prefix(target, env), referenced)
    if removed:
        progress(f"{target.name}: {removed:,} objects no backup holds any more removed")


def named_blobs(folder: Path, key: str) -> set[int]:
    """The blobs (their `pool.short` forms) the manifest in `folder` names; ValueError for one that names
    other than the objects its first line counts (cut short at a line's end, every line left still reads)."""
    summary = manifest.summary(folder)
    if not pool.pooled(summary):
        return set()
    named: set[int] = set()
    found: dict[str, int] = {}
    for bucket, _, entry in manifest.objects(folder):
        found[bucket] = found.get(bucket, 0) + 1
        named.add(pool.short(entry.get("sha256", "")))
    counted = {bucket: sizes.get("objects") for bucket, sizes in summary.get("sizes", {}).items()}
    if any(found.get(bucket, 0) != count for bucket, count in counted.items()) or found.keys() - counted.keys():
        raise ValueError(f"{key} names {sum(found.values())} objects where its first line counts {counted}")
    return named


def remove_abandoned(scratch: Path) -> None:
    """Remove the staging folders of runs that were killed (no process holds their lock any more)."""
    for folder in scratch.glob(STAGING_PREFIX + "*"):
        try:
            handle = os.open(folder / LOCK_FILE, os.O_RDWR)
        except OSError:
            continue  # not ours, or a run that has not locked it yet
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a run under way
        finally:
            os.close(handle)  # the lock, if taken, goes with it; the folder is an orphan either way
        progress(f"removing the staging folder of an interrupted remote backup: {folder}")
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Spot:
    """Where a remote backup goes: its series' base, its name, and the sealed backup before it."""

    base: str
    name: str
    previous: str | None


class Writing:
    """The objects of one remote backup being written: named by their pool blob where unchanged since
    `previous` (copied into the pool server-side once, where `previous` was written before the pool),
    else fetched one file each into a staging folder of its own (under `scratch`), uploaded to the pool
    and removed. The staging folder also holds the spooled manifest and, for `inv backup`, the dump."""

    def __init__(
        self,
        config: Config,
        env: Environment,
        remote: S3,
        target: BackupTarget,
        spot: Spot,
        scratch: Path,
    ) -> None:
        self.config, self.remote, self.target = config, remote, target
        self.blobs: pool.Blobs | None = None  # the pool's listing, once known: until then, each named blob is noted
        self.source = s3objects.client(env, max_pool=config.storage.jobs * 2)
        self.prefix = f"{spot.base}{spot.name}/"
        self.previous_prefix = f"{spot.base}{spot.previous}/" if spot.previous else ""
        self.pool = pool.pool_prefix(target, env)
        self.staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=scratch))
        self.held = os.open(self.staging / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.held, fcntl.LOCK_EX)  # while this run lives: see remove_abandoned
        self.lock = threading.Lock()
        self.written = manifest.Writer(self.staging)
        self.folders = Folders(self.staging)
        self.named = pool.Named(self.staging / ".named")
        try:
            folder = self.staging / ".previous"
            if spot.previous:
                fetch_manifest(remote, target, self.previous_prefix + METADATA_FILE, folder)
            self.earlier = manifest.Index(folder if spot.previous else None)
            self.earlier_pooled = bool(spot.previous) and pool.pooled(manifest.summary(folder))
            remote.put_object(target.bucket, self.prefix + WRITING_MARK, b"", {})
        except BaseException:
            self.close()
            raise

    def restart(self, blobs: pool.Blobs | None) -> None:
        """A manifest and a staging layout of its own, anew (after a listing that was out of order, or
        with the pool's listing known)."""
        self.blobs = blobs
        self.named.close()
        self.named = pool.Named(self.staging / ".named")
        self.written.discard()
        self.written = manifest.Writer(self.staging)
        self.folders = Folders(self.staging)

    def close(self) -> None:
        if hasattr(self, "earlier"):
            self.earlier.close()
        self.named.close()
        self.written.discard()
        shutil.rmtree(self.staging, ignore_errors=True)
        os.close(self.held)

    def upload(self, relative: str, md5: str, key: str | None = None) -> None:
        path = self.staging / relative
        got = s3objects.Content(path.stat().st_size, md5, "", {}, {})
        with path.open("rb") as handle:
            s3objects.upload(self.remote, self.target.bucket, key or self.prefix + relative, handle, got)
        path.unlink()

    def unchanged(self, old: dict, info: ObjectInfo) -> str:
        """'there' when the previous backup's entry (same size and ETag) names a blob the pool holds (of
        that size and, as far as its listing tells, that MD5),
        'copied' when its file (a backup from before the pool) was copied into the pool server-side,
        else '' (read it from the source)."""
        if not (self.previous_prefix and old.get("size") == info.size and old.get("etag") == info.etag):
            return ""
        # The source's ETag is the object's own MD5 (uploaded whole): an entry whose MD5 differs names
        # other bytes, however well the pool's listing agrees with the entry.
        own_md5 = md5_of_etag(info.etag)
        if own_md5 is not None and old.get("md5") != own_md5:
            return ""
        sha256 = old.get("sha256")
        if self.earlier_pooled:
            if self.blobs is not None:
                return "there" if self.blobs.holds(sha256, info.size, old.get("md5")) else ""
            if not isinstance(sha256, str) or not pool.SHA256.fullmatch(sha256):
                return ""
            md5 = old.get("md5")
            self.named.add(
                pool.short(sha256),
                info.size,
                pool.short(md5) if isinstance(md5, str) and pool.MD5.fullmatch(md5) else -2,
            )
            return "there"
        path = old.get("path", "")
        if unsafe(path) or not old.get("md5") or not isinstance(sha256, str) or not pool.SHA256.fullmatch(sha256):
            return ""
        try:
            etag = self.remote.copy_object(
                self.target.bucket, pool.blob_key(self.pool, sha256), self.previous_prefix + path
            )
        except Exception:  # noqa: BLE001 (the previous backup lost it: read from the source instead)
            return ""
        copied = md5_of_etag(etag)
        return "copied" if copied is None or copied == old["md5"] else ""

    def lost(self, blobs: pool.Blobs) -> int:
        """How many of the blobs named unseen are not in the pool's listing `blobs`."""
        return self.named.lost(blobs)

    def kept(self, bucket: str, info: ObjectInfo, relative: str, found: tuple[dict, str] | None) -> str:
        """An unchanged object into the backup by its previous entry; how ('there', 'copied'), else ''."""
        how = self.unchanged(found[0], info) if found else ""
        if found and how:
            if found[1] and found[0].get("path") == relative:
                self.written.add_line(bucket, found[1], info.size)  # the very entry of the last backup
            else:
                self.written.add(bucket, info.key, {**found[0], "path": relative})
        return how

    def save(self, bucket: str, info: ObjectInfo, relative: str, found: tuple[dict, str] | None) -> str:
        """One object into the backup; how ('there', 'copied' or 'read')."""
        how = self.kept(bucket, info, relative, found)
        if how:
            return how
        entry, _ = _save_object(self.source, bucket, info, self.folders, relative, None, None)
        self.upload(relative, entry["md5"], pool.blob_key(self.pool, entry["sha256"]))
        self.written.add(bucket, info.key, entry)
        return "read"

    def objects(self, env: Environment, buckets: list[str], *, in_order: bool) -> BackupResult:
        result = BackupResult(env.name, f"{self.target.name}:{Path(self.prefix.rstrip('/')).name}")
        result.target = self.target.name
        present, listed = _objects(self.source, buckets, in_order=in_order)
        result.skipped_buckets = [b for b in buckets if b not in present]
        for bucket in present:
            self.written.bucket(bucket)

        def tally(how: str, size: int) -> None:
            with self.lock:
                result.already_there += how == "there"
                result.copied_server_side += how == "copied"
                result.downloaded += how == "read"
                result.downloaded_bytes += size if how == "read" else 0

        def save(bucket: str, task: tuple[ObjectInfo, str, tuple[dict, str] | None]) -> None:
            info, relative, found = task
            tally(self.save(bucket, info, relative, found), info.size)

        problems: list[Exception] = []
        failures: list[Failure] = []
        meter = Meter(f"backed up ({env.name} to {self.target.name})", 0, "objects", 0)

        def tasks() -> Iterator[tuple[str, tuple[ObjectInfo, str, tuple[dict, str] | None]]]:
            try:
                for bucket, info, relative in listed:
                    meter.expect(1, info.size)
                    found = self.earlier.get(bucket, info.key)
                    # An object named in the pool asks nothing of anyone: named here, not handed to a thread
                    # (99,000 hand-offs cost more than the naming).
                    if self.earlier_pooled and self.kept(bucket, info, relative, found):
                        tally("there", info.size)
                        meter.add(1, info.size)
                        continue
                    yield bucket, (info, relative, found)
            except Exception as error:  # noqa: BLE001 (raised below, once the objects under way are saved)
                problems.append(error)

        def outcome(bucket: str, task: tuple[ObjectInfo, str, Any], error: BaseException | None) -> None:
            if error is None:
                meter.add(1, task[0].size)
            else:
                failures.append(Failure(bucket, task[0].key, first_line(error, typed=True)))

        with meter:
            run_tasks(tasks(), save, self.config.storage.jobs, outcome)
        if problems:
            raise problems[0]
        if failures:
            raise OperationFailed(
                failure_report(
                    failures,
                    f"backup of {env.name} to {self.target.name} incomplete; it is not sealed there "
                    "(no manifest) and the next run removes it",
                )
            )
        return result
