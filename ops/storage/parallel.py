"""What every bulk object job shares: choosing by name, running over objects in parallel, reporting failures."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ops.errors import first_line
from ops.report import Meter
from ops.s3 import objects as s3objects
from ops.s3.base import ObjectInfo, ObjectList

T = TypeVar("T")
NAMED = 50  # objects named per bucket and kind in text; --json has them all
REFETCHES = 4  # a body that arrives cut short or changed is fetched anew; the client retries everything else


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
    total = sum(objects.total_size for _, objects in groups)

    def outcome(bucket: str, info: ObjectInfo, error: BaseException | None) -> None:
        if error is None:
            meter.add(1, info.size)
        else:
            failures.append(Failure(bucket, info.key, first_line(error, typed=True)))

    with Meter(label, count, "objects", total or None) as meter:
        run_tasks(((bucket, info) for bucket, objects in groups for info in objects), work, workers, outcome)
    return failures


def run_tasks(
    tasks: Iterator[tuple[str, T]],
    work: Callable[[str, T], Any],
    workers: int,
    outcome: Callable[[str, T, BaseException | None], None],
    stop: threading.Event | None = None,
) -> None:
    """Run `work` over `tasks` on `workers` threads, each taking the next task as it frees up; report
    each task's end to `outcome` (on this thread) as it comes. `tasks` is advanced by one thread at a
    time and may block while it waits for more (a listing still under way); the threads stop when it
    is exhausted.

    On Ctrl-C the tasks under way finish (an object is never left half-written) and no new one starts;
    `stop` is set then, and `tasks`, where it waits, must watch it.
    """
    taking = threading.Lock()
    stop = stop or threading.Event()
    done: queue.Queue[tuple[str, T, BaseException | None] | None] = queue.Queue()

    def run() -> None:
        try:
            while not stop.is_set():
                with taking:
                    task = next(tasks, None)
                if task is None:
                    return
                bucket, info = task
                try:
                    work(bucket, info)
                    done.put((bucket, info, None))
                except Exception as error:  # noqa: BLE001 (a failed object is reported, the others go on)
                    done.put((bucket, info, error))
        finally:
            done.put(None)

    threads = [threading.Thread(target=run, name=f"objects-{n}", daemon=True) for n in range(max(1, workers))]
    try:
        for thread in threads:
            thread.start()
        running = len(threads)
        while running:
            ended = done.get()
            if ended is None:
                running -= 1
            else:
                outcome(*ended)
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
        raise


def failure_report(failures: list[Failure], headline: str = "", rerun: str = "") -> str:
    """The objects that failed, each with its reason, and the command that retries them."""
    lines = [f"{headline + ': ' if headline else ''}{len(failures)} object(s) failed:"]
    lines += [f"  {f.bucket}{'/' + f.key if f.key else ''}: {f.error}" for f in failures[:NAMED]]
    if len(failures) > NAMED:
        lines.append(f"  ... and {len(failures) - NAMED} more")
    if rerun:
        lines.append(f"re-run: {rerun}")
    return "\n".join(lines)
