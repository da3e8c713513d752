"""What a storage sync would do, bucket by bucket: which objects to copy, which are identical, which to delete.

Nothing here writes. Both sides are listed at once and compared as their pages arrive, so a
plan can be acted on while the listing goes on (`storage_copy.copy_while_listing`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops.errors import OperationFailed, UserError, first_line
from ops.report import progress
from ops.s3 import objects as s3objects
from ops.s3.base import ObjectInfo, ObjectList
from ops.s3.client import S3
from ops.storage.parallel import NAMED, Failure

NO_TARGET = "missing in target"
MIN_MAX_DELETE = 10


@dataclass
class BucketPlan:
    bucket: str
    status: str = "ok"  # ok | empty | absent (in the source) | NO_TARGET | listing failed (copy_while_listing)
    copy: ObjectList = field(default_factory=ObjectList)  # empty where the copies were handed on as found
    new: int = 0
    changed: int = 0
    identical: int = 0
    delete: list[str] = field(default_factory=list)
    target_objects: int = 0
    read_to_compare: int = 0  # objects whose sameness needed a download (no MD5 recorded on one side)
    copy_bytes: int = 0
    unread: list[Failure] = field(default_factory=list)  # objects that could not be read to compare them

    @property
    def copies(self) -> int:
        return self.new + self.changed

    def to_copy(self, info: ObjectInfo, *, new: bool) -> ObjectInfo:
        if new:
            self.new += 1
        else:
            self.changed += 1
        self.copy_bytes += info.size
        return info


class Unread(OperationFailed):
    """An object could not be read to compare it: it is neither copied nor called identical."""


def differs(src: S3, dst: S3, bucket: str, a: ObjectInfo, b: ObjectInfo, plan: BucketPlan, force: bool) -> bool:
    """Whether `a` is to be copied over `b`; raises Unread (recorded in `plan.unread`) when reading them
    to compare failed: the request that failed is named, not the listing that found them."""
    if force:
        return True
    try:
        return not same_content(src, dst, bucket, a, b, plan)
    except OperationFailed as error:
        why = f"read to compare: {first_line(error, typed=True)}"
        plan.unread.append(Failure(bucket, a.key, why))
        raise Unread(why) from None


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


class BucketListings:
    """Both sides of one bucket, listed at once on threads of their own from the moment this is made."""

    def __init__(self, src: S3, dst: S3, bucket: str) -> None:
        self.src, self.dst, self.bucket = src, dst, bucket
        self.source, self.target = s3objects.Listing(src, bucket), s3objects.Listing(dst, bucket)

    def first_answers(self) -> None:
        """Until both sides' first pages are in; a side that could not be listed raises its error here."""
        for side in (self.source, self.target):
            side.wait_answered()
        for side in (self.source, self.target):
            if side.failed:
                raise side.failed

    def target_missing(self) -> bool:
        self.first_answers()
        return self.target.missing

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def compare(self, plan: BucketPlan, *, force: bool, delete: bool) -> Iterator[ObjectInfo]:
        """Yield each object to copy as the pages arrive; everything else is counted in `plan`.

        Raises s3objects.OutOfOrder when a side does not list in S3's key order (then only a
        comparison in memory, `plan_in_memory`, can tell what differs).
        """
        src, dst, bucket = self.src, self.dst, self.bucket
        sources, targets = iter(self.source), iter(self.target)
        only_in_target: list[str] = []
        here, there = next(sources, None), next(targets, None)
        if self.target.missing:
            plan.status = NO_TARGET  # the run is refused: nothing more to read
            return
        while here or there:
            if here is not None and (there is None or here[0] < there[0]):
                yield plan.to_copy(here[1], new=True)
                here = next(sources, None)
            elif there is not None and (here is None or there[0] < here[0]):
                if delete:
                    only_in_target.append(there[1].key)
                there = next(targets, None)
            elif here is not None and there is not None:
                try:
                    if differs(src, dst, bucket, here[1], there[1], plan, force):
                        yield plan.to_copy(here[1], new=False)
                    else:
                        plan.identical += 1
                except Unread:
                    pass  # in plan.unread; the rest is still compared
                here, there = next(sources, None), next(targets, None)
        plan.target_objects = self.target.count
        if self.source.missing:
            plan.status = "absent"  # its deletes are recorded so that check_deletes can refuse them, never to act on
            plan.delete = only_in_target
        else:
            plan.status = "ok" if self.source.count else "empty"
            plan.delete = only_in_target


def plan_bucket(src: S3, dst: S3, bucket: str, *, force: bool, delete: bool) -> BucketPlan:
    """Both sides listed at once and compared as their pages arrive (S3 lists keys in order), so memory
    holds what is to copy, not the two listings; a server listing in another order is compared in memory."""
    plan = BucketPlan(bucket)
    listings = BucketListings(src, dst, bucket)
    try:
        for info in listings.compare(plan, force=force, delete=delete):
            plan.copy.append(info)
    except s3objects.OutOfOrder as disorder:
        progress(f"{bucket}: {disorder}: not S3's key order, so both listings are compared in memory")
        return plan_in_memory(src, dst, bucket, force=force, delete=delete)
    finally:
        listings.close()
    return plan


def plan_in_memory(src: S3, dst: S3, bucket: str, *, force: bool, delete: bool) -> BucketPlan:
    plan = BucketPlan(bucket)
    with ThreadPoolExecutor(max_workers=1) as lister:  # both sides listed at once
        # A missing bucket shows in its listing's answer: no round trip of its own to ask first.
        listing = lister.submit(s3objects.list_objects_if_any, dst, bucket)
        found = s3objects.list_objects_if_any(src, bucket)
        target = listing.result()
    if target is None:
        plan.status = NO_TARGET  # the run is refused
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
            plan.copy.append(plan.to_copy(info, new=True))
            continue
        try:
            if differs(src, dst, bucket, info, existing, plan, force):
                plan.copy.append(plan.to_copy(info, new=False))
            else:
                plan.identical += 1
        except Unread:
            pass  # in plan.unread; the rest is still compared
    if delete:
        plan.delete = sorted(set(target) - set(source))
    return plan


def refuse_missing_targets(missing: list[str], target: str) -> None:
    if missing:
        raise UserError(
            f"bucket(s) missing in {target}: {', '.join(missing)}. Buckets and their policies "
            "come from migrations: push migrations first. Nothing was copied."
        )


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
        f"plan for {target}: copy {sum(p.copies for p in plans):,} object(s) "
        f"({sum(p.copy_bytes for p in plans) / 2**20:,.1f} MiB), delete {sum(len(p.delete) for p in plans):,}"
    ]
    for plan in plans:
        lines += named(plan.bucket, (o.key for o in plan.copy), plan.copies, plan.delete)
    return "\n".join(lines)


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
