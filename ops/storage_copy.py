"""Copying objects between two environments' buckets: each checked end to end, many at once.

Copies stream through memory (small objects) or an unnamed temp file, so memory stays bounded
whatever the object size, and the temp space disappears however the run ends.
"""

from __future__ import annotations

import io
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from ops import s3objects
from ops.errors import first_line
from ops.parallel import REFETCHES, Failure, run_parallel, run_tasks, until_intact
from ops.report import Meter, progress
from ops.s3base import ObjectInfo, ObjectList
from ops.s3client import S3
from ops.storage_plan import BucketListings, BucketPlan, plan_in_memory, refuse_missing_targets

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
    costs one round trip per direction; on a busy machine, the slower side gets the workers
    (measured: 8 % faster than fixed stages, where uploads were the bottleneck).
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
    plans = {bucket: BucketPlan(bucket) for bucket in buckets}
    outcomes = {bucket: Copied() for bucket in buckets}
    found: queue.Queue[tuple[str, ObjectInfo] | None] = queue.Queue(maxsize=QUEUED)
    stop = threading.Event()
    ended = threading.Condition()
    meter = Meter("copied", 0, "objects", 0)

    def hand_on(item: tuple[str, ObjectInfo] | None) -> bool:
        if item is not None:
            outcomes[item[0]].handed += 1
            meter.expect(1, item[1].size)
        while not stop.is_set():
            try:
                found.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def drained(bucket: str) -> None:
        with ended:
            ended.wait_for(lambda: stop.is_set() or outcomes[bucket].ended == outcomes[bucket].handed)

    def compare(listing: BucketListings) -> None:
        bucket = listing.bucket
        try:
            try:
                for info in listing.compare(plans[bucket], force=force, delete=False):
                    if not hand_on((bucket, info)):
                        return
            except s3objects.OutOfOrder as disorder:
                progress(f"{bucket}: {disorder}: not S3's key order, so both listings are compared in memory")
                listing.close()
                drained(bucket)  # what was copied so far is on the target when it is listed again
                again = plan_in_memory(src, dst, bucket, force=force, delete=False)
                done = outcomes[bucket]
                with ended:
                    again.identical = max(0, again.identical - done.copied)  # this run's own copies
                    done.failures.clear()  # each is planned again, and tried again
                plans[bucket], copies, again.copy = again, again.copy, ObjectList()
                for info in copies:
                    if not hand_on((bucket, info)):
                        return
        except Exception as error:  # noqa: BLE001 (the copies found so far go on; the bucket ends failed)
            plans[bucket].status = "listing failed"
            outcomes[bucket].failures.append(
                Failure(bucket, LISTING, f"listing failed: {first_line(error, typed=True)}; the rest was not compared")
            )
        finally:
            listing.close()
            with ended:
                outcomes[bucket].failures += plans[bucket].unread  # objects that could not be read to compare
            hand_on(None)

    def tasks() -> Iterator[tuple[str, ObjectInfo]]:
        comparing = len(listings)
        while comparing:
            try:
                item = found.get(timeout=0.2)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is None:
                comparing -= 1
            else:
                yield item

    def outcome(bucket: str, info: ObjectInfo, error: BaseException | None) -> None:
        done = outcomes[bucket]
        with ended:
            if error is None:
                done.copied += 1
                done.bytes += info.size
                meter.add(1, info.size)
            else:
                done.failures.append(Failure(bucket, info.key, first_line(error, typed=True)))
            done.ended += 1
            ended.notify_all()

    comparers = [
        threading.Thread(target=compare, args=(each,), daemon=True, name=f"compare {each.bucket}") for each in listings
    ]
    with meter:
        try:
            for thread in comparers:
                thread.start()
            run_tasks(
                tasks(),
                lambda b, info: store_object(src, dst, b, info, fetch_object(src, b, info)),
                2 * jobs,
                outcome,
                stop,
            )
        finally:
            stop.set()
            with ended:
                ended.notify_all()
    return [plans[bucket] for bucket in buckets], outcomes
