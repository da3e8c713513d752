"""Sync storage buckets between environments: plan per object, then copy in parallel.

An object is copied when it is new or its content differs; identical content is never
copied again, even when the two sides' ETags differ only because one was a multipart
upload. Copies stream through a spooled temp file, so memory stays bounded whatever the
object size, and the temp space disappears however the run ends.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from ops import s3 as s3ops
from ops.config import Config, Environment
from ops.errors import OperationFailed, UserError, first_line
from ops.report import progress
from ops.s3 import ObjectInfo
from ops.safety import confirm_write, distinct

SPOOL_IN_MEMORY = 16 << 20  # per job: larger objects spill to an unnamed temp file
T = TypeVar("T")
ATTEMPTS = 4


def select_buckets(config: Config, requested: list[str] | None) -> list[str]:
    known = config.storage.buckets
    if not requested:
        return list(known)
    unknown = [b for b in requested if b not in known]
    if unknown:
        raise UserError(
            f"unknown bucket(s) {', '.join(unknown)}; known: {', '.join(known)} "
            "(add new ones to [storage] buckets in environments.ini)"
        )
    return list(dict.fromkeys(requested))


# ---------------------------------------------------------------- planning

@dataclass
class BucketPlan:
    bucket: str
    status: str = "ok"  # ok | empty | absent
    copy: list[ObjectInfo] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    identical: int = 0
    delete: list[str] = field(default_factory=list)

    @property
    def copy_bytes(self) -> int:
        return sum(o.size for o in self.copy)


def same_content(src: Any, dst: Any, bucket: str, a: ObjectInfo, b: ObjectInfo) -> bool:
    if a.size != b.size:
        return False
    if a.simple_md5 and b.simple_md5:
        return a.simple_md5 == b.simple_md5
    # A multipart ETag is not an MD5: compare what each side knows, reading only if we must.
    return s3ops.content_md5(src, bucket, a) == s3ops.content_md5(dst, bucket, b)


def plan_bucket(src: Any, dst: Any, bucket: str, *, force: bool, delete: bool) -> BucketPlan:
    plan = BucketPlan(bucket)
    if not s3ops.bucket_exists(src, bucket):
        plan.status = "absent"
        return plan
    source = s3ops.list_objects(src, bucket)
    target = s3ops.list_objects(dst, bucket)
    if not source:
        plan.status = "empty"
    for key, info in source.items():
        existing = target.get(key)
        if existing is None:
            plan.new += 1
            plan.copy.append(info)
        elif force or not same_content(src, dst, bucket, info, existing):
            plan.changed += 1
            plan.copy.append(info)
        else:
            plan.identical += 1
    if delete and plan.status != "absent":
        plan.delete = sorted(set(target) - set(source))
    return plan


# ---------------------------------------------------------------- copying

class Progress:
    """Objects and bytes done, on stderr at most once a second."""

    def __init__(self, objects: int, size: int, label: str) -> None:
        self.total_objects, self.total_bytes, self.label = objects, size, label
        self.objects = self.bytes = 0
        self.lock = threading.Lock()
        self.last = 0.0

    def add(self, size: int) -> None:
        with self.lock:
            self.objects += 1
            self.bytes += size
            now = time.monotonic()
            if now - self.last >= 1 or self.objects == self.total_objects:
                self.last = now
                progress(f"{self.label} {self.objects:,}/{self.total_objects:,} objects, "
                         f"{self.bytes / 2**20:,.1f}/{self.total_bytes / 2**20:,.1f} MiB")


def retrying(work: Callable[[], T]) -> T:
    """Retry what S3's own retries do not cover: a body cut mid-stream, a bad checksum."""
    for attempt in range(ATTEMPTS):
        try:
            return work()
        except (UserError, KeyboardInterrupt):
            raise
        except Exception:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def copy_object(src: Any, dst: Any, bucket: str, info: ObjectInfo) -> None:
    def attempt() -> None:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            got = s3ops.download(src, bucket, info.key, spool, expected=info, sha256=False)
            s3ops.upload(dst, bucket, info.key, spool, got)

    retrying(attempt)


@dataclass
class Failure:
    bucket: str
    key: str
    error: str


def run_parallel(tasks: list[tuple[str, ObjectInfo]], work: Callable[[str, ObjectInfo], None], jobs: int,
                 label: str) -> list[Failure]:
    """Run `work` over (bucket, object) pairs in a thread pool; return what failed."""
    failures: list[Failure] = []
    meter = Progress(len(tasks), sum(o.size for _, o in tasks), label)
    if not tasks:
        return failures
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(work, bucket, info): (bucket, info) for bucket, info in tasks}
        for future in as_completed(futures):
            bucket, info = futures[future]
            error = future.exception()
            if error is None:
                meter.add(info.size)
            else:
                failures.append(Failure(bucket, info.key, _describe(error)))
    except KeyboardInterrupt:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return failures


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"


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


@dataclass
class StorageResult:
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

    def to_dict(self) -> dict:
        return asdict(self)


def plan_sync(source: Environment, target: Environment, buckets: list[str], *,
              force: bool, delete: bool, jobs: int) -> tuple[Any, Any, list[BucketPlan]]:
    src, dst = s3ops.client(source, max_pool=jobs * 2), s3ops.client(target, max_pool=jobs * 2)
    missing = [b for b in buckets if not s3ops.bucket_exists(dst, b)]
    if missing:
        raise UserError(
            f"bucket(s) missing in {target.name}: {', '.join(missing)}. Buckets and their policies "
            "come from migrations: push migrations first. Nothing was copied."
        )
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        plans = list(pool.map(lambda b: plan_bucket(src, dst, b, force=force, delete=delete), buckets))
    return src, dst, plans


def sync_storage(config: Config, *, source: str | None, target: str | None, buckets: list[str] | None = None,
                 dry_run: bool = False, jobs: int | None = None, delete: bool = False, force: bool = False,
                 yes: bool = False) -> StorageResult:
    started = time.monotonic()
    if not source or not target:
        raise UserError("name both sides: --from ENV --to ENV")
    source_env, target_env = config.env(source), config.env(target)
    distinct(source_env, target_env)
    chosen = select_buckets(config, buckets)
    jobs = config.storage.jobs if jobs is None else jobs
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    if not dry_run:
        confirm_write(target_env, yes=yes, action="copy storage objects into it")
    src, dst, plans = plan_sync(source_env, target_env, chosen, force=force, delete=delete, jobs=jobs)
    result = StorageResult(source, target, dry_run)
    for status in ("empty", "absent"):
        skipped = [p.bucket for p in plans if p.status == status]
        if skipped:
            progress(f"skipped {len(skipped)} bucket(s) {'empty' if status == 'empty' else 'missing'} in "
                     f"{source}: {', '.join(skipped)}")
    if dry_run:
        result.buckets = [BucketResult(p.bucket, p.status, copied=len(p.copy), identical=p.identical,
                                       deleted=len(p.delete), bytes=p.copy_bytes) for p in plans]
        result.seconds = round(time.monotonic() - started, 3)
        return result

    tasks = [(p.bucket, info) for p in plans for info in p.copy]
    failures = run_parallel(tasks, lambda b, info: copy_object(src, dst, b, info), jobs, "copied")
    failed_keys = {(f.bucket, f.key) for f in failures}
    for plan in plans:
        failed = [i for i in plan.copy if (plan.bucket, i.key) in failed_keys]
        copied = [i for i in plan.copy if (plan.bucket, i.key) not in failed_keys]
        result.buckets.append(BucketResult(plan.bucket, plan.status, copied=len(copied), identical=plan.identical,
                                           failed=len(failed), bytes=sum(i.size for i in copied)))
    if not failures:
        for plan, bucket_result in zip(plans, result.buckets):
            bucket_result.deleted = delete_objects(dst, plan.bucket, plan.delete)
    elif any(p.delete for p in plans):
        progress("some copies failed: no target object was deleted")
    result.failures = failures
    if failures:
        failed_buckets = ",".join(dict.fromkeys(f.bucket for f in failures))
        result.rerun = f"inv sync-storage --from {source} --to {target} --buckets {failed_buckets}"
    result.seconds = round(time.monotonic() - started, 3)
    return result


def delete_objects(s3: Any, bucket: str, keys: list[str]) -> int:
    deleted = 0
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = response.get("Errors", [])
        if errors:
            raise OperationFailed(f"{bucket}: could not delete {len(errors)} object(s), e.g. {errors[0].get('Key')}")
        deleted += len(batch)
    return deleted


def summary_rows(result: StorageResult) -> tuple[list[str], list[list]]:
    if result.dry_run:
        return (["bucket", "status", "to copy", "identical", "to delete", "bytes to copy"],
                [[b.bucket, b.status, b.copied, b.identical, b.deleted, b.bytes] for b in result.buckets])
    return (["bucket", "status", "copied", "identical", "deleted", "failed", "bytes"],
            [[b.bucket, b.status, b.copied, b.identical, b.deleted, b.failed, b.bytes] for b in result.buckets])


def failure_report(failures: list[Failure], rerun: str) -> str:
    lines = [f"{len(failures)} object(s) failed:"]
    lines += [f"  {f.bucket}/{f.key}: {f.error}" for f in failures[:50]]
    if len(failures) > 50:
        lines.append(f"  ... and {len(failures) - 50} more")
    lines.append(f"re-run: {rerun}")
    return "\n".join(lines)

