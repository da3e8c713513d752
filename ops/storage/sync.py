"""Sync storage buckets between environments: compare per object, copy what differs in parallel.

An object is copied when it is new or its content differs; identical content is never
copied again, even when the two sides' ETags differ only because one was a multipart
upload. Without --delete, a question to ask or --dry-run, copying starts as the listings
show what differs (`storage_copy.copy_while_listing`); otherwise the whole plan comes first.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops import invocation
from ops.config import Config, Environment
from ops.errors import OperationFailed, OpsError, UserError
from ops.report import Result, Table, progress
from ops.s3 import objects as s3objects
from ops.s3.client import S3
from ops.safety import confirm_write, distinct, will_ask
from ops.spelling import choose
from ops.storage.copy import LISTING, copy_objects, copy_while_listing
from ops.storage.parallel import Failure, failure_report
from ops.storage.plan import (
    NO_TARGET,
    BucketPlan,
    check_deletes,
    named,
    plan_bucket,
    plan_text,
    refuse_missing_targets,
)


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
    src: S3, dst: S3, target: Environment, buckets: list[str], *, force: bool, delete: bool, jobs: int
) -> list[BucketPlan]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        plans = list(pool.map(lambda b: plan_bucket(src, dst, b, force=force, delete=delete), buckets))
    refuse_missing_targets([p.bucket for p in plans if p.status == NO_TARGET], target.name)
    return plans


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
    command: invocation.CommandLine | None = None,
) -> StorageResult:
    """Copy what differs; `command` is the command line re-run hints are made from (in a workflow, the workflow's)."""
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
    src, dst = s3objects.client(source_env, max_pool=jobs * 2), s3objects.client(target_env, max_pool=jobs * 2)
    result = StorageResult(source, target, dry_run)
    if dry_run or delete or will_ask(target_env, yes=yes):
        # The whole plan first: to show, to ask about, or to check deletions against.
        sync_planned_first(
            src,
            dst,
            source,
            target_env,
            chosen,
            result,
            force=force,
            delete=delete,
            jobs=jobs,
            yes=yes,
            max_delete=max_delete,
        )
    else:
        sync_as_listed(src, dst, source, target_env, chosen, result, force=force, jobs=jobs)
    if result.failures:
        failed_buckets = ",".join(dict.fromkeys(f.bucket for f in result.failures))
        line = command or invocation.CommandLine("sync-storage", {"from": source, "to": target})
        result.rerun = line.rerun(drop=("buckets",), add={"buckets": failed_buckets})
    result.seconds = round(time.monotonic() - started, 3)
    return result


def sync_planned_first(
    src: S3,
    dst: S3,
    source: str,
    target: Environment,
    buckets: list[str],
    result: StorageResult,
    *,
    force: bool,
    delete: bool,
    jobs: int,
    yes: bool,
    max_delete: int | None,
) -> None:
    """Plan every bucket, then show the plan (a dry run), or ask and copy it, into `result`."""
    plans = plan_sync(src, dst, target, buckets, force=force, delete=delete, jobs=jobs)
    if delete:
        check_deletes(plans, source, max_delete)
    said_what_was_read(plans, source)
    result.failures += [failure for plan in plans for failure in plan.unread]
    dry_run = result.dry_run
    if dry_run or not any(p.copies or p.delete for p in plans):  # nothing to do: done, without asking
        result.buckets = [
            BucketResult(
                p.bucket,
                p.status,
                copied=p.copies,
                identical=p.identical,
                deleted=len(p.delete),
                bytes=p.copy_bytes,
                read_to_compare=p.read_to_compare,
                to_copy=[o.key for o in p.copy] if dry_run else [],
                to_delete=list(p.delete) if dry_run else [],
            )
            for p in plans
        ]
    else:
        confirm_write(target, yes=yes, action="copy storage objects into it", plan=plan_text(plans, target.name))
        copy_planned(src, dst, target, plans, jobs, result)


def sync_as_listed(
    src: S3,
    dst: S3,
    source: str,
    target: Environment,
    buckets: list[str],
    result: StorageResult,
    *,
    force: bool,
    jobs: int,
) -> None:
    """Copy what differs as the listings show it, into `result`."""
    plans, outcomes = copy_while_listing(
        src,
        dst,
        buckets,
        target=target.name,
        force=force,
        jobs=jobs,
        before_copying=lambda: s3objects.abort_leftover_uploads(dst, target),
    )
    said_what_was_read(plans, source)
    for plan in plans:
        done = outcomes[plan.bucket]
        result.buckets.append(
            BucketResult(
                plan.bucket,
                plan.status,
                copied=done.copied,
                identical=plan.identical,
                failed=sum(1 for f in done.failures if f.key != LISTING),
                bytes=done.bytes,
                read_to_compare=plan.read_to_compare,
            )
        )
        result.failures += done.failures


def said_what_was_read(plans: list[BucketPlan], source: str) -> None:
    """Buckets with nothing to read in the source, and objects read only to compare them."""
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


def copy_planned(
    src: S3, dst: S3, target: Environment, plans: list[BucketPlan], jobs: int, result: StorageResult
) -> None:
    """Copy what the plans hold, then, if every copy succeeded, delete what they hold."""
    s3objects.abort_leftover_uploads(dst, target)
    failures = copy_objects(src, dst, [(p.bucket, p.copy) for p in plans], jobs)
    failed_keys = {(f.bucket, f.key) for f in failures}
    for plan in plans:
        failed = [i for i in plan.copy if (plan.bucket, i.key) in failed_keys] if failed_keys else []
        result.buckets.append(
            BucketResult(
                plan.bucket,
                plan.status,
                copied=plan.copies - len(failed),
                identical=plan.identical,
                failed=len(failed),
                bytes=plan.copy_bytes - sum(i.size for i in failed),
                read_to_compare=plan.read_to_compare,
            )
        )
    if not failures:
        for plan, bucket_result in zip(plans, result.buckets, strict=False):
            bucket_result.deleted = delete_objects(dst, plan.bucket, plan.delete)
    elif any(p.delete for p in plans):
        progress("some copies failed: no target object was deleted")
    result.failures = failures


def delete_objects(s3: S3, bucket: str, keys: list[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        errors = s3.delete_objects(bucket, batch)
        if errors:
            raise OperationFailed(f"{bucket}: could not delete {len(errors)} object(s), e.g. {errors[0].get('Key')}")
        deleted += len(batch)
    return deleted
