"""Records and locks at a backup target: where they live, and which are believed or stale."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from ops.backup import lock, records
from ops.config import BackupTarget, Environment


def target(prefix: str) -> BackupTarget:
    return BackupTarget("offsite", "ops-backups", prefix, Environment("offsite"))


@pytest.mark.parametrize(
    ("prefix", "series", "expected"),
    [
        ("nightly", "nightly/prod-ref/", "nightly/records/prod-ref/"),
        ("nightly", "nightly/full/prod-ref/", "nightly/records/full/prod-ref/"),
        ("", "full/prod-ref/", "records/full/prod-ref/"),
    ],
    ids=["storage-series", "full-series", "no-prefix"],
)
def test_records_live_beside_the_series_never_inside_a_backup(prefix, series, expected):
    assert records.records_base(target(prefix), series) == expected
    assert records.backup_records(target(prefix), f"{series}2026-12-07T02-17-03Z/") == (
        f"{expected}2026-12-07T02-17-03Z/"
    )


@pytest.mark.parametrize(
    ("name", "believed"),
    [
        ("2026-12-07T02-17-03Z-drill-ok.json", True),
        ("2026-12-07T02-17-03Z-1-verify-failed.json", True),
        ("2026-12-07T02-17-03Z-drill-maybe.json", False),
        ("latest-drill-ok.json", False),
        ("2026-12-07T02-17-03Z-restore-ok.json", False),
    ],
)
def test_only_record_names_of_ours_parse(name, believed):
    assert bool(records.NAME.match(name)) is believed


def test_a_lock_is_stale_after_its_age_or_when_its_process_here_is_gone():
    now = datetime.now(UTC)
    elsewhere = {"host": "ci-runner-7", "pid": 1}
    assert not lock.stale({**elsewhere, "time": (now - timedelta(minutes=29)).isoformat()}, now)
    assert lock.stale({**elsewhere, "time": (now - timedelta(minutes=31)).isoformat()}, now)
    assert not lock.stale({**elsewhere, "time": "not a time"}, now), "an unreadable lock is held until removed"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = {"host": socket.gethostname(), "time": now.isoformat()}
    assert lock.stale({**here, "pid": int(gone.stdout)}, now)
    assert not lock.stale({**here, "pid": os.getpid()}, now)


def test_a_lock_is_read_no_further_than_a_lock_can_be():
    """Anyone who can write to the target can make a lock object of any size: it is read up to the size
    a lock has, then judged by its headers alone."""
    from contextlib import contextmanager

    read = []

    class Huge:
        headers = {"last-modified": "Mon, 07 Dec 2026 10:00:00 GMT"}

        def iter_raw(self):
            for _ in range(1024):  # 1 GiB in 1 MiB chunks
                read.append(1)
                yield b"x" * (1 << 20)

    class Target:
        @contextmanager
        def get_object(self, bucket, key):
            yield Huge()

    target = BackupTarget("offsite", "ops-backups", "nightly", Environment("offsite"))
    data = lock.holder(Target(), target, "nightly/locks/prod-x/2026-12-07T10-00-00Z-a.json")
    assert len(read) == 1, f"{len(read)} MiB read of a forged lock"
    assert data == {"modified": datetime(2026, 12, 7, 10, 0, tzinfo=UTC)}
