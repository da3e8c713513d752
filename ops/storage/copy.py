"""Copying objects between two environments' buckets: each checked end to end, many at once.

Copies stream through memory (small objects) or an unnamed temp file, so memory stays bounded
whatever the object size, and the temp space disappears however the run ends.
"""

from __future__ import annotations

import collections
import io
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from ops.errors import first_line
from ops.report import Meter, progress
from ops.s3 import objects as s3objects
from ops.s3.base import ObjectInfo, ObjectList
from ops.s3.client import S3
from ops.storage.parallel import REFETCHES, Failure, run_parallel, run_tasks, until_intact
from ops.storage.plan import BucketListings, BucketPlan, plan_in_memory, refuse_missing_targets

# Objects under 4 MiB wait in memory between download and upload, larger ones in an unnamed temp
# file, uploaded two at a time (s3objects.LARGE_UPLOADS): memory stays near rclone's whatever the sizes.
SPOOL_IN_MEMORY = s3objects.LARGE_UPLOAD
# Copies found by the listings and not yet taken by a worker: a page's worth, whatever the bucket's size.
QUEUED = 1000
LISTING = ""  # a Failure's key when the listing itself failed


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
    costs one round trip per direction; on a busy machine, the slower side gets the workers,
    where fixed stages would leave the faster side's workers idle.
    """
    return run_parallel(
        groups, lambda b, info: store_object(src, dst, b, info, fetch_object(src, b, info)), 2 * jobs, "copied"
    )


@dataclass
class Copied:
    """What became of one bucket's copies."""

    copied: int = 0
    bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    ended: int = 0  # copies handed to a worker that have ended, either way
    handed: int = 0  # copies handed to the workers


class WakingStop(threading.Event):
    """The run's stop flag; setting it (`run_tasks` does, on Ctrl-C) also wakes whoever waits on `wakes`."""

    def __init__(self, *wakes: threading.Condition) -> None:
        super().__init__()
        self.wakes = wakes

    def set(self) -> None:
        super().set()
        for each in self.wakes:
            with each:
                each.notify_all()


class CopyFeed:
    """The copies the listings found, waiting for a copy worker, and what became of each bucket's.

    At most QUEUED copies wait at a time, so memory holds a page's worth however long the listing.
    Every side blocks on a condition, never polls: a comparer for room, a worker for the next copy
    (the two share one lock, as in `queue.Queue`), a bucket compared again for its copies so far to
    end (a lock of its own, so counting copies never holds up the hand-off); `stop` wakes them all.
    """

    def __init__(self, buckets: list[str], meter: Meter) -> None:
        self.outcomes = {bucket: Copied() for bucket in buckets}
        handing = threading.Lock()
        self.room, self.arrived, self.settled = (
            threading.Condition(handing),
            threading.Condition(handing),
            threading.Condition(),
        )
        self.stop = WakingStop(self.room, self.arrived, self.settled)
        self.meter = meter
        self.waiting: collections.deque[tuple[str, ObjectInfo]] = collections.deque()
        self.listing = len(buckets)  # comparers not yet ended

    def hand_on(self, bucket: str, info: ObjectInfo) -> bool:
        """Queue one copy, waiting for room; False when the run stopped first."""
        self.outcomes[bucket].handed += 1
        self.meter.expect(1, info.size)
        with self.room:
            self.room.wait_for(lambda: self.stop.is_set() or len(self.waiting) < QUEUED)
            if self.stop.is_set():
                return False
            self.waiting.append((bucket, info))
            self.arrived.notify()
            return True

    def listing_ended(self, bucket: str, unread: list[Failure]) -> None:
        """A comparer is done; `unread` are the objects it could not read to compare."""
        with self.settled:
            self.outcomes[bucket].failures += unread
        with self.arrived:
            self.listing -= 1
            self.arrived.notify_all()

    def copies(self) -> Iterator[tuple[str, ObjectInfo]]:
        """The queued copies, each once, until every listing has ended and none waits, or the run stops."""
        while True:
            with self.arrived:
                self.arrived.wait_for(lambda: self.stop.is_set() or self.waiting or not self.listing)
                if self.stop.is_set() or not self.waiting:
                    return
                item = self.waiting.popleft()
                self.room.notify()
            yield item

    def ended(self, bucket: str, info: ObjectInfo, error: BaseException | None) -> None:
        """Count one copy's end, either way."""
        done = self.outcomes[bucket]
        with self.settled:
            if error is None:
                done.copied += 1
                done.bytes += info.size
                self.meter.add(1, info.size)
            else:
                done.failures.append(Failure(bucket, info.key, first_line(error, typed=True)))
            done.ended += 1
            self.settled.notify_all()

    def drained(self, bucket: str) -> None:
        """Wait until every copy handed on for `bucket` has ended (or the run stopped)."""
        done = self.outcomes[bucket]
        with self.settled:
            self.settled.wait_for(lambda: self.stop.is_set() or done.ended == done.handed)

    def replanned(self, bucket: str, plan: BucketPlan) -> None:
        """`bucket` was planned again from whole listings, after its copies so far had ended."""
        done = self.outcomes[bucket]
        with self.settled:
            plan.identical = max(0, plan.identical - done.copied)  # this run's own copies
            done.failures.clear()  # each is planned again, and tried again


class CopyWhileListing:
    """One run of `copy_while_listing`: a comparer thread per bucket, feeding 2 x `jobs` copy workers."""

    def __init__(self, src: S3, dst: S3, listings: list[BucketListings], *, force: bool, jobs: int) -> None:
        self.src, self.dst, self.listings, self.force, self.jobs = src, dst, listings, force, jobs
        self.plans = {each.bucket: BucketPlan(each.bucket) for each in listings}
        self.meter = Meter("copied", 0, "objects", 0)
        self.feed = CopyFeed([each.bucket for each in listings], self.meter)

    def run(self) -> None:
        comparers = [
            threading.Thread(target=self.compare, args=(each,), daemon=True, name=f"compare {each.bucket}")
            for each in self.listings
        ]
        with self.meter:
            try:
                for thread in comparers:
                    thread.start()
                run_tasks(self.feed.copies(), self.copy, 2 * self.jobs, self.feed.ended, self.feed.stop)
            finally:
                self.feed.stop.set()

    def copy(self, bucket: str, info: ObjectInfo) -> None:
        store_object(self.src, self.dst, bucket, info, fetch_object(self.src, bucket, info))

    def hand_on(self, bucket: str, found: Iterable[ObjectInfo]) -> bool:
        """Queue each copy found; False when the run stopped first."""
        return all(self.feed.hand_on(bucket, info) for info in found)

    def compare(self, listing: BucketListings) -> None:
        """Hand on what `listing` finds to copy; if it fails, its bucket ends failed and the copies found go on."""
        bucket = listing.bucket
        try:
            try:
                self.hand_on(bucket, listing.compare(self.plans[bucket], force=self.force, delete=False))
            except s3objects.OutOfOrder as disorder:
                self.compare_in_memory(listing, disorder)
        except Exception as error:  # noqa: BLE001 (the copies found so far go on; the bucket ends failed)
            self.plans[bucket].status = "listing failed"
            failed = Failure(
                bucket, LISTING, f"listing failed: {first_line(error, typed=True)}; the rest was not compared"
            )
            with self.feed.settled:
                self.feed.outcomes[bucket].failures.append(failed)
        finally:
            listing.close()
            self.feed.listing_ended(bucket, self.plans[bucket].unread)

    def compare_in_memory(self, listing: BucketListings, disorder: s3objects.OutOfOrder) -> None:
        """The listing is not in S3's key order: list both sides whole, and compare them in memory."""
        bucket = listing.bucket
        progress(f"{bucket}: {disorder}: not S3's key order, so both listings are compared in memory")
        listing.close()
        self.feed.drained(bucket)  # what was copied so far is on the target when it is listed again
        again = plan_in_memory(self.src, self.dst, bucket, force=self.force, delete=False)
        self.feed.replanned(bucket, again)
        self.plans[bucket], copies, again.copy = again, again.copy, ObjectList()
        self.hand_on(bucket, copies)


def copy_while_listing(
    src: S3,
    dst: S3,
    buckets: list[str],
    *,
    target: str,
    force: bool,
    jobs: int,
    before_copying: Callable[[], object] = lambda: None,
) -> tuple[list[BucketPlan], dict[str, Copied]]:
    """Copy each object as soon as the listings show it differs, as rclone does, on 2 x `jobs` workers.

    Nothing is copied before every bucket's first pages are in: a bucket missing in the target
    refuses the run untouched. Memory holds a page's worth of pending copies, however long the
    listing. A listing that fails part way ends its bucket as a failure once the copies already
    found are done: what was copied is reported, nothing is called done that was not.
    """
    listings = [BucketListings(src, dst, bucket) for bucket in buckets]
    try:
        refuse_missing_targets([each.bucket for each in listings if each.target_missing()], target)
        before_copying()
    except BaseException:
        for each in listings:
            each.close()
        raise
    run = CopyWhileListing(src, dst, listings, force=force, jobs=jobs)
    run.run()
    return [run.plans[bucket] for bucket in buckets], run.feed.outcomes
