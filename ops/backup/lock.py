"""One remote-first backup of an environment to a target at a time: a lock object at the target.

Two `--to` runs of the same environment to the same target (two CI jobs, a laptop and CI) would
read each other's unsealed backups as interrupted ones and remove them. As restic does, a run
writes its own lock object (`<prefix>/locks/<env>-<ref>/<time>-<id>.json`: host, pid, time),
then lists the locks: when another live one is there it removes its own and stops with a line
naming the holder; of two runs that see each other, the one whose lock sorts first waits a moment
for the other to back off, so exactly one goes on. A lock is refreshed while its run lives. It is
stale, and taken over (removed), after `STALE_AFTER` without a refresh (a run killed on a machine
that is gone, a CI runner), or at once when it names a process of this host that is gone.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from ops.config import BackupTarget, Environment
from ops.errors import OperationFailed, UserError, first_line
from ops.report import progress
from ops.s3 import objects as s3objects
from ops.s3.base import S3Error
from ops.s3.client import S3
from ops.stamps import utc_stamp

STALE_AFTER = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)
SETTLE = timedelta(seconds=2)  # far longer than a run takes from listing the locks to removing its own
MAX_BYTES = 4096


def locks_prefix(target: BackupTarget, env: Environment) -> str:
    return "/".join(p for p in (target.prefix, "locks", env.folder) if p) + "/"


def body() -> bytes:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": now}).encode()


def holder(s3: S3, target: BackupTarget, key: str) -> dict | None:
    """A lock's host, pid and time, and when the target last had it written (`modified`, by the
    target's own clock); None when it is gone (removed by its run since the listing)."""
    from email.utils import parsedate_to_datetime

    try:
        with s3.get_object(target.bucket, key) as response:
            raw = bytearray()
            for chunk in response.iter_raw():
                raw += chunk
                if len(raw) > MAX_BYTES:
                    break  # no lock is this large: its headers alone are read
            modified = response.headers.get("last-modified", "")
    except Exception:  # noqa: BLE001 (gone: its run finished)
        return None
    try:
        data = json.loads(raw) if len(raw) <= MAX_BYTES else {}
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    try:
        data["modified"] = parsedate_to_datetime(modified)
    except (TypeError, ValueError):
        data.pop("modified", None)
    return data


def stale(data: dict, now: datetime) -> bool:
    """Not refreshed for `STALE_AFTER`, or held by a process of this host that is gone (a killed run).

    A refresh rewrites the lock, so the target's own Last-Modified says when it was last refreshed,
    whatever the writer's clock or the body say; the body's time is the fallback of a target that
    gives none."""
    if data.get("host") == socket.gethostname() and isinstance(data.get("pid"), int) and not alive(data["pid"]):
        return True
    written = data.get("modified")
    if not isinstance(written, datetime):
        try:
            written = datetime.fromisoformat(str(data.get("time")))
        except ValueError:
            return False  # no time at all: held until removed by hand (the refusal says how)
    return written.tzinfo is not None and now - written > STALE_AFTER


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # there, another user's
    return True


def described(data: dict) -> str:
    # Anyone who can write to the target wrote these: no escape sequences or line breaks reach the terminal.
    host, pid, when = (
        "".join(c if c.isprintable() else "?" for c in str(data.get(k, "?"))[:100]) for k in ("host", "pid", "time")
    )
    return f"host {host} pid {pid} since {when}"


def others(s3: S3, target: BackupTarget, prefix: str, own: str) -> dict[str, dict]:
    """The live locks of other runs (stale ones taken over on the way)."""
    live = {}
    for key in sorted(s3objects.list_objects(s3, target.bucket, prefix)):
        data = None if key == own else holder(s3, target, key)
        if data is None:
            continue
        if stale(data, datetime.now(UTC)):
            progress(f"{target.name}: taking over a stale lock ({described(data)}): {key}")
            s3.delete_object(target.bucket, key)
        else:
            live[key] = data
    return live


def refused(target: BackupTarget, env: Environment, key: str, data: dict) -> UserError:
    return UserError(
        f"another backup of {env.name} to {target.name} is running ({described(data)}; lock "
        f"{target.bucket}/{key}): wait for it, or if that run is gone delete that key (a lock is "
        f"stale after {int(STALE_AFTER.total_seconds() // 60)} minutes without a refresh and is then taken over)"
    )


class Held:
    """The lock a run holds. A run that stalled past `STALE_AFTER` (a machine asleep or cut off) may have
    had it taken over: `confirm` before each step that must not run beside another run (sealing, pruning,
    sweeping) stops it then, as restic stops a run whose lock went."""

    def __init__(self, s3: S3, target: BackupTarget, key: str) -> None:
        self.s3, self.target, self.key = s3, target, key
        self.lost = False

    def present(self) -> bool:
        try:
            self.s3.head_object(self.target.bucket, self.key)
        except S3Error as error:
            if error.missing:
                return False
            raise
        return True

    def confirm(self) -> None:
        if self.lost or not self.present():
            self.lost = True
            raise OperationFailed(
                f"{self.target.name}: this run's lock {self.target.bucket}/{self.key} was taken over by another "
                f"run (it went {int(STALE_AFTER.total_seconds() // 60)} minutes without a refresh: a machine "
                "asleep or cut off?); this run stopped there: a backup it sealed stays, one it left unsealed the "
                "next run removes"
            )


@contextmanager
def held(s3: S3, target: BackupTarget, env: Environment) -> Iterator[Held]:
    """The lock of `env`'s backups at `target` for the body of the `with`, refused (exit 2) while another holds it."""
    prefix = locks_prefix(target, env)
    own = f"{prefix}{utc_stamp()}-{uuid.uuid4().hex[:12]}.json"
    s3.put_object(target.bucket, own, body(), {"content-type": "application/json"})
    try:
        live = others(s3, target, prefix, own)
        older = [key for key in live if key < own]
        if older:
            raise refused(target, env, older[0], live[older[0]])
        if live:
            # Newer by name: a run that saw ours and backs off, or one that started first by a clock
            # running ahead and goes on. Which, the listing says once the first kind has removed its lock.
            time.sleep(SETTLE.total_seconds())
            live = others(s3, target, prefix, own)
            if live:
                key = next(iter(live))
                raise refused(target, env, key, live[key])
    except BaseException:
        s3.delete_object(target.bucket, own)
        raise
    done = threading.Event()
    holding = Held(s3, target, own)

    def refresh() -> None:
        while not done.wait(REFRESH_EVERY.total_seconds()):
            try:
                if not holding.present():  # taken over: written again, it would hide this run from the other
                    holding.lost = True
                    progress(f"warning: {target.name}: the lock {own} was taken over by another run")
                    return
                s3.put_object(target.bucket, own, body(), {"content-type": "application/json"})
            except Exception as error:  # noqa: BLE001 (the next refresh tries again)
                progress(f"warning: {target.name}: could not refresh the lock {own}: {first_line(error, typed=True)}")

    refresher = threading.Thread(target=refresh, name="lock-refresh", daemon=True)
    refresher.start()
    try:
        yield holding
    finally:
        done.set()
        refresher.join()
        s3.delete_object(target.bucket, own)
