"""Sync storage buckets between environments: plan per object, then copy in parallel.

An object is copied when it is new or its content differs; identical content is never
copied again, even when the two sides' ETags differ only because one was a multipart
upload. Copies stream through a spooled temp file, so memory stays bounded whatever the
object size, and the temp space disappears however the run ends.
"""

from __future__ import annotations

import io
import itertools
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from ops import invocation, s3objects
from ops.config import Config, Environment
from ops.errors import OperationFailed, OpsError, UserError
from ops.parallel import NAMED, REFETCHES, Failure, choose, failure_report, run_parallel, until_intact
from ops.report import Result, Table, progress
from ops.s3base import ObjectInfo, ObjectList
from ops.s3client import S3
from ops.safety import confirm_write, distinct

# Objects under 4 MiB wait in memory between download and upload, larger ones in an unnamed temp
# file, uploaded two at a time (s3objects.LARGE_UPLOADS): memory stays near rclone's whatever the sizes.
SPOOL_IN_MEMORY = s3objects.LARGE_UPLOAD
MIN_MAX_DELETE = 10


def select_buckets(config: Config, requested: list[str] | None) -> list[str]:
    known = config.storage.buckets
    return choose(
        requested,
        known,
        lambda unknown: (
            f"unknown bucket(s) {', '.join(unknown)}; known: {', '.join(known)} "
            "(add new ones to [storage] buckets in environments.ini)"
        ),
    )


# ---------------------------------------------------------------- planning

NO_TARGET = "missing in target"


@dataclass
class BucketPlan:
    bucket: str
    status: str = "ok"  # ok | empty | absent (in the source) | NO_TARGET
    copy: ObjectList = field(default_factory=ObjectList)
    new: int = 0
    changed: int = 0
    identical: int = 0
    delete: list[str] = field(default_factory=list)
    target_objects: int = 0
    read_to_compare: int = 0  # objects whose sameness needed a download (no MD5 recorded on one side)

    @property
    def copy_bytes(self) -> int:
        return self.copy.total_size


def same_content(src: S3, dst: S3, bucket: str, a: ObjectInfo, b: ObjectInfo, plan: BucketPlan) -> bool:
    if a.size != b.size:
        return False
    if a.etag == b.etag:
        # Equal ETags mean equal content: a plain MD5, or the same parts (Storage cuts every object
        # of 16 MiB and more into 16 MiB parts on both sides, so its `-N` ETags agree too).
        return True
    if a.md5 and b.md5:
        return False
    if not a.md5 and s3objects.copied_from(dst, bucket, b) == a.etag:
        return True  # this copy was made from this very source version: nothing read on either side
    # A multipart ETag is not an MD5: compare what each side recorded, reading only if we must.
    left, right = s3objects.recorded_md5(src, bucket, a), s3objects.recorded_md5(dst, bucket, b)
    if left is None or right is None:
        plan.read_to_compare += 1
        left = left or s3objects.read_md5(src, bucket, a.key)
        right = right or s3objects.read_md5(dst, bucket, b.key)
    return left == right


def plan_bucket(src: S3, dst: S3, bucket: str, *, force: bool, delete: bool) -> BucketPlan:
    """Both sides listed at once and compared as their pages arrive (S3 lists keys in order), so memory
    holds what is to copy, not the two listings; a server listing in another order is compared in memory."""
    try:
        return plan_streamed(src, dst, bucket, force=force, delete=delete)
    except s3objects.OutOfOrder as disorder:
        progress(f"{bucket}: {disorder}: not S3's key order, so both listings are compared in memory")
        return plan_in_memory(src, dst, bucket, force=force, delete=delete)


def plan_streamed(src: S3, dst: S3, bucket: str, *, force: bool, delete: bool) -> BucketPlan:
    plan = BucketPlan(bucket)
    # A missing bucket shows in its listing's answer: no round trip of its own to ask first.
    source, target = s3objects.Listing(src, bucket), s3objects.Listing(dst, bucket)
    sources, targets = iter(source), iter(target)
    only_in_target: list[str] = []
    here, there = next(sources, None), next(targets, None)
    while here or there:
        if here is not None and (there is None or here[0] < there[0]):
            plan.new += 1
            plan.copy.append(here[1])
            here = next(sources, None)
        elif there is not None and (here is None or there[0] < here[0]):
            if delete:
                only_in_target.append(there[1].key)
            there = next(targets, None)
        elif here is not None and there is not None:
            if force or not same_content(src, dst, bucket, here[1], there[1], plan):
                plan.changed += 1
                plan.copy.append(here[1])
            else:
                plan.identical += 1
            here, there = next(sources, None), next(targets, None)
    plan.target_objects = target.count
    if target.missing:
        return BucketPlan(bucket, status=NO_TARGET)  # plan_sync refuses the run
    if source.missing:
        # The deletes are recorded so that check_deletes can refuse them, never to act on.
        return BucketPlan(bucket, status="absent", delete=only_in_target, target_objects=target.count)
    if not source.count:
        plan.status = "empty"
    plan.delete = only_in_target
    return plan


def plan_in_memory(src: S3, dst: S3, bucket: str, *, force: bool, delete: bool) -> BucketPlan:
    plan = BucketPlan(bucket)
    with ThreadPoolExecutor(max_workers=1) as lister:  # both sides listed at once
        # A missing bucket shows in its listing's answer: no round trip of its own to ask first.
        listing = lister.submit(s3objects.list_objects_if_any, dst, bucket)
        found = s3objects.list_objects_if_any(src, bucket)
        target = listing.result()
    if target is None:
        plan.status = NO_TARGET  # plan_sync refuses the run
        return plan
    if found is None:
        plan.status = "absent"
        if delete:  # recorded so that check_deletes can refuse it, never to act on
            plan.delete = sorted(target)
            plan.target_objects = len(plan.delete)
        return plan
    source = found
    plan.target_objects = len(target)
    if not source:
        plan.status = "empty"
    for key, info in source.items():
        existing = target.get(key)
        if existing is None:
            plan.new += 1
            plan.copy.append(info)
        elif force or not same_content(src, dst, bucket, info, existing, plan):
            plan.changed += 1
            plan.copy.append(info)
        else:
            plan.identical += 1
    if delete:
        plan.delete = sorted(set(target) - set(source))
    return plan


# ---------------------------------------------------------------- copying


def fetch_object(src: S3, bucket: str, info: ObjectInfo) -> tuple[BinaryIO, s3objects.Content]:
    """Content into memory (small objects) or an unnamed temp file, checked whole."""
    if info.size < SPOOL_IN_MEMORY:
        spool = cast(BinaryIO, io.BytesIO())
    else:
        spool = cast(BinaryIO, tempfile.TemporaryFile())  # noqa: SIM115 (closed by store_object)

    def attempt() -> s3objects.Content:
        spool.seek(0)
        spool.truncate()
        return s3objects.download(src, bucket, info.key, spool, expected=info, sha256=False, trust_etag=True)

    try:
        got = until_intact(attempt)
    except BaseException:
        spool.close()
        raise
    if not info.md5:
        got.source_etag = info.etag
    return spool, got


def store_object(src: S3, dst: S3, bucket: str, info: ObjectInfo, fetched: tuple[BinaryIO, s3objects.Content]) -> None:
    """Upload what fetch_object got; when the target's MD5 shows the bytes changed, fetch and send again.

    Downloads trust the source's ETag (see `s3objects.download`), so a byte changed on either leg
    shows only here, and only a fresh download can repair it.
    """
    for attempt in range(REFETCHES):
        spool, got = fetched
        with spool:
            try:
                s3objects.upload(dst, bucket, info.key, spool, got)
                return
            except s3objects.ContentMismatch:
                if attempt == REFETCHES - 1:
                    raise
        fetched = fetch_object(src, bucket, info)


def copy_objects(src: S3, dst: S3, groups: list[tuple[str, ObjectList]], jobs: int) -> list[Failure]:
    """Copy objects on 2 x `jobs` workers, each downloading one object, then uploading it.

    At most 2 x `jobs` requests are in flight and as many objects held, as with `jobs` downloads
    beside `jobs` uploads (rclone's `--transfers` streams each download into its upload), but
    no worker is tied to one direction: over a link, downloads overlap uploads, so each object
    costs one round trip per direction; on a busy machine, the slower side gets the workers
    (measured: 8 % faster than fixed stages, where uploads were the bottleneck).
    """
    return run_parallel(
        groups, lambda b, info: store_object(src, dst, b, info, fetch_object(src, b, info)), 2 * jobs, "copied"
    )


# ---------------------------------------------------------------- the task


@dataclass
class BucketResult:
    bucket: str
    status: str
    copied: int = 0
    identical: int = 0
    deleted: int = 0
    failed: int = 0
    bytes: int = 0
    read_to_compare: int = 0
    to_copy: list[str] = field(default_factory=list)  # a dry run names them all (the text shows the first 50)
    to_delete: list[str] = field(default_factory=list)


def named(bucket: str, copy: Iterable[str], copies: int, delete: list[str]) -> list[str]:
    """rclone -v style: every object that would be copied (+) or deleted (-), the first NAMED of each."""
    lines = []
    for sign, keys, count in (("+", copy, copies), ("-", delete, len(delete))):
        lines += [f"  {sign} {bucket}/{key}" for key in itertools.islice(keys, NAMED)]
        if count > NAMED:
            lines.append(f"  {sign} ... and {count - NAMED:,} more in {bucket}")
    return lines


def plan_text(plans: list[BucketPlan], target: str) -> str:
    lines = [
        f"plan for {target}: copy {sum(len(p.copy) for p in plans):,} object(s) "
        f"({sum(p.copy_bytes for p in plans) / 2**20:,.1f} MiB), delete {sum(len(p.delete) for p in plans):,}"
    ]
    for plan in plans:
        lines += named(plan.bucket, (o.key for o in plan.copy), len(plan.copy), plan.delete)
    return "\n".join(lines)


@dataclass
class StorageResult(Result):
    source: str
    target: str
    dry_run: bool
    buckets: list[BucketResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    rerun: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def rows(self) -> Table:
        if self.dry_run:
            return Table(
                ["bucket", "status", "to copy", "identical", "to delete", "bytes to copy", "read to compare"],
                [
                    [b.bucket, b.status, b.copied, b.identical, b.deleted, b.bytes, b.read_to_compare]
                    for b in self.buckets
                ],
            )
        return Table(
            ["bucket", "status", "copied", "identical", "deleted", "failed", "bytes"],
            [[b.bucket, b.status, b.copied, b.identical, b.deleted, b.failed, b.bytes] for b in self.buckets],
        )

    def footer(self) -> str:
        lines = [line for b in self.buckets for line in named(b.bucket, b.to_copy, len(b.to_copy), b.to_delete)]
        return "\n".join([*lines, f"{'planned' if self.dry_run else 'done'} in {self.seconds:.1f}s"])

    def failure(self) -> OpsError | None:
        return OperationFailed(failure_report(self.failures, rerun=self.rerun)) if self.failures else None


def plan_sync(
    source: Environment, target: Environment, buckets: list[str], *, force: bool, delete: bool, jobs: int
) -> tuple[S3, S3, list[BucketPlan]]:
    src, dst = s3objects.client(source, max_pool=jobs * 2), s3objects.client(target, max_pool=jobs * 2)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        plans = list(pool.map(lambda b: plan_bucket(src, dst, b, force=force, delete=delete), buckets))
    missing = [p.bucket for p in plans if p.status == NO_TARGET]
    if missing:
        raise UserError(
            f"bucket(s) missing in {target.name}: {', '.join(missing)}. Buckets and their policies "
            "come from migrations: push migrations first. Nothing was copied."
        )
    return src, dst, plans


def default_max_delete(plans: list[BucketPlan]) -> int:
    """Deleting more than a quarter of the target (and more than 10 objects) needs --max-delete."""
    return max(MIN_MAX_DELETE, sum(p.target_objects for p in plans) // 4)


def check_deletes(plans: list[BucketPlan], source: str, max_delete: int | None) -> None:
    """Refuse, before any change, deletions that look like a wrong source rather than a cleanup."""
    hollow = [p for p in plans if p.delete and p.status in ("empty", "absent")]
    if hollow:
        names = ", ".join(f"{p.bucket} ({p.status} in {source}, {len(p.delete)} to delete)" for p in hollow)
        raise UserError(
            f"refusing --delete: the source lists no objects for {names}. An empty or unreadable "
            "source would empty the target; copy without --delete, or empty the target on purpose "
            "by hand. Nothing was changed."
        )
    planned = sum(len(p.delete) for p in plans)
    limit = default_max_delete(plans) if max_delete is None else max_delete
    if planned > limit:
        raise UserError(
            f"--delete would remove {planned} target objects, more than --max-delete {limit}"
            f"{' (default: a quarter of the target)' if max_delete is None else ''}; check the "
            "source, then pass a larger --max-delete. Nothing was changed."
        )


def sync_storage(
    config: Config,
    *,
    source: str | None,
    target: str | None,
    buckets: list[str] | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    delete: bool = False,
    force: bool = False,
    yes: bool = False,
    max_delete: int | None = None,
) -> StorageResult:
    started = time.monotonic()
    if not source or not target:
        raise UserError("name both sides: --from ENV --to ENV")
    source_env, target_env = config.env(source), config.env(target)
    distinct(source_env, target_env)
    chosen = select_buckets(config, buckets)
    jobs = config.storage.jobs if jobs is None else jobs
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    if max_delete is not None and (max_delete < 0 or not delete):
        raise UserError("--max-delete takes a number of objects >= 0, and only goes with --delete")
    src, dst, plans = plan_sync(source_env, target_env, chosen, force=force, delete=delete, jobs=jobs)
    if delete:
        check_deletes(plans, source, max_delete)
    result = StorageResult(source, target, dry_run)
    for status in ("empty", "absent"):
        skipped = [p.bucket for p in plans if p.status == status]
        if skipped:
            progress(
                f"skipped {len(skipped)} bucket(s) {'empty' if status == 'empty' else 'missing'} in "
                f"{source}: {', '.join(skipped)}"
            )
    unread = sum(p.read_to_compare for p in plans)
    if unread:
        progress(
            f"{unread} object(s) had no MD5 recorded on one side (a multipart ETag and no md5chksum): "
            "read on both sides to compare"
        )
    nothing = not any(p.copy or p.delete for p in plans)
    if dry_run or nothing:  # nothing to do: done, without asking
        result.buckets = [
            BucketResult(
                p.bucket,
                p.status,
                copied=len(p.copy),
                identical=p.identical,
                deleted=len(p.delete),
                bytes=p.copy_bytes,
                read_to_compare=p.read_to_compare,
                to_copy=[o.key for o in p.copy] if dry_run else [],
                to_delete=list(p.delete) if dry_run else [],
            )
            for p in plans
        ]
        result.seconds = round(time.monotonic() - started, 3)
        return result
    confirm_write(target_env, yes=yes, action="copy storage objects into it", plan=plan_text(plans, target_env.name))

    s3objects.abort_leftover_uploads(dst, target_env)
    failures = copy_objects(src, dst, [(p.bucket, p.copy) for p in plans], jobs)
    failed_keys = {(f.bucket, f.key) for f in failures}
    for plan in plans:
        failed = [i for i in plan.copy if (plan.bucket, i.key) in failed_keys] if failed_keys else []
        result.buckets.append(
            BucketResult(
                plan.bucket,
                plan.status,
                copied=len(plan.copy) - len(failed),
                identical=plan.identical,
                failed=len(failed),
                bytes=plan.copy_bytes - sum(i.size for i in failed),
            )
        )
    if not failures:
        for plan, bucket_result in zip(plans, result.buckets, strict=False):
            bucket_result.deleted = delete_objects(dst, plan.bucket, plan.delete)
    elif any(p.delete for p in plans):
        progress("some copies failed: no target object was deleted")
    result.failures = failures
    if failures:
        failed_buckets = ",".join(dict.fromkeys(f.bucket for f in failures))
        result.rerun = invocation.command(
            drop=("buckets",),
            add={"buckets": failed_buckets},
            fallback=f"inv sync-storage --from {source} --to {target} --buckets {failed_buckets}",
        )
    result.seconds = round(time.monotonic() - started, 3)
    return result


def delete_objects(s3: S3, bucket: str, keys: list[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        errors = s3.delete_objects(bucket, batch)
        if errors:
            raise OperationFailed(f"{bucket}: could not delete {len(errors)} object(s), e.g. {errors[0].get('Key')}")
        deleted += len(batch)
    return deleted
