"""What every bulk object job shares: choosing by name, running over objects in parallel, reporting failures."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ops import s3objects
from ops.errors import UserError
from ops.report import Meter
from ops.s3base import ObjectInfo, ObjectList

T = TypeVar("T")
NAMED = 50  # objects named per bucket and kind in text; --json has them all
REFETCHES = 4  # a body that arrives cut short or changed is fetched anew; the client retries everything else


def choose(requested: Iterable[str] | None, known: list[str], unknown: Callable[[list[str]], str]) -> list[str]:
    """The names asked for (each once, in order), or every known one; a name not known is refused
    with `unknown(names)`, before anything is read or written."""
    if not requested:
        return list(known)
    asked = list(dict.fromkeys(requested))
    strangers = [name for name in asked if name not in known]
    if strangers:
        raise UserError(unknown(strangers))
    return asked


def until_intact(work: Callable[[], T]) -> T:
    """Run `work` again when what it moved did not check out (a body cut short, an MD5 mismatch).

    Network failures, throttling and server errors are the client's to retry (`s3base.RetryPolicy`);
    only content that arrived wrong is fetched again here.
    """
    for attempt in range(REFETCHES):
        try:
            return work()
        except s3objects.ContentMismatch:
            if attempt == REFETCHES - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class Failure:
    bucket: str
    key: str
    error: str


def run_parallel(
    groups: list[tuple[str, ObjectList]], work: Callable[[str, ObjectInfo], Any], workers: int, label: str
) -> list[Failure]:
    """Run `work` over each bucket's objects (`groups`: bucket, objects) on `workers` threads; return what failed.

    The threads take the next object as they free up: nothing per pending object is made (a
    future per object would cost a kilobyte each, 100 MiB for a bucket of 100,000; even a
    (bucket, object) pair each, 7 MiB).
    """
    failures: list[Failure] = []
    count = sum(len(objects) for _, objects in groups)
    if not count:
        return failures
    pending = ((bucket, info) for bucket, objects in groups for info in objects)
    taking = threading.Lock()
    stop = threading.Event()
    done: queue.Queue[tuple[str, ObjectInfo, BaseException | None]] = queue.Queue()

    def run() -> None:
        while not stop.is_set():
            with taking:
                task = next(pending, None)
            if task is None:
                return
            bucket, info = task
            try:
                work(bucket, info)
                done.put((bucket, info, None))
            except Exception as error:  # noqa: BLE001 (a failed object is reported, the others go on)
                done.put((bucket, info, error))

    threads = [threading.Thread(target=run, name=f"objects-{n}", daemon=True) for n in range(max(1, workers))]
    total = sum(objects.total_size for _, objects in groups)
    with Meter(label, count, "objects", total or None) as meter:
        try:
            for thread in threads:
                thread.start()
            for _ in range(count):
                bucket, info, error = done.get()
                if error is None:
                    meter.add(1, info.size)
                else:
                    failures.append(Failure(bucket, info.key, s3objects.describe(error)))
        except KeyboardInterrupt:
            stop.set()  # the objects under way finish (never half-written); no new one starts
            for thread in threads:
                thread.join()
            raise
    for thread in threads:
        thread.join()
    return failures


def failure_report(failures: list[Failure], headline: str = "", rerun: str = "") -> str:
    """The objects that failed, each with its reason, and the command that retries them."""
    lines = [f"{headline + ': ' if headline else ''}{len(failures)} object(s) failed:"]
    lines += [f"  {f.bucket}/{f.key}: {f.error}" for f in failures[:NAMED]]
    if len(failures) > NAMED:
        lines.append(f"  ... and {len(failures) - NAMED} more")
    if rerun:
        lines.append(f"re-run: {rerun}")
    return "\n".join(lines)
