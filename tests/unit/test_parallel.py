"""Copies on 2 x jobs workers, each downloading an object and then uploading it, without a server."""

from __future__ import annotations

import threading
import time

import pytest

from ops.s3.base import ObjectInfo, ObjectList
from ops.storage import copy as storage_copy


def objects(*keys: str) -> list[tuple[str, ObjectList]]:
    return [("bucket", ObjectList(ObjectInfo(key, 1, "") for key in keys))]


@pytest.fixture
def copy_with(monkeypatch):
    """copy_objects with the given download and upload in place of the S3 calls."""

    def run(download, upload, keys, jobs):
        monkeypatch.setattr(storage_copy, "fetch_object", lambda src, bucket, info: download(info))
        monkeypatch.setattr(storage_copy, "store_object", lambda src, dst, bucket, info, fetched: upload(fetched))
        return storage_copy.copy_objects(None, None, objects(*keys), jobs)

    return run


def test_the_next_download_runs_while_an_upload_waits(copy_with):
    second_started = threading.Event()

    def download(info: ObjectInfo) -> str:
        if info.key == "b":
            second_started.set()
        return info.key

    def upload(fetched: str) -> None:
        if fetched == "a" and not second_started.wait(5):
            raise AssertionError("b was not downloaded while a was being uploaded")

    assert copy_with(download, upload, ["a", "b"], 1) == []


def test_at_most_two_requests_per_job_are_in_flight(copy_with):
    lock, in_flight, peak = threading.Lock(), [0], [0]

    def request(fetched: str = "") -> str:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.005)
        with lock:
            in_flight[0] -= 1
        return fetched

    assert copy_with(lambda info: request(info.key), request, [f"k{i}" for i in range(40)], 2) == []
    assert peak[0] == 4


def test_failures_in_either_direction_are_named_and_the_rest_complete(copy_with):
    uploaded = []

    def download(info: ObjectInfo) -> str:
        if info.key == "bad-get":
            raise OSError("connection reset")
        return info.key

    def upload(fetched: str) -> None:
        if fetched == "bad-put":
            raise OSError("broken pipe")
        uploaded.append(fetched)

    failures = copy_with(download, upload, ["ok-1", "bad-get", "bad-put", "ok-2"], 2)
    assert sorted((f.key, f.error) for f in failures) == [
        ("bad-get", "OSError: connection reset"),
        ("bad-put", "OSError: broken pipe"),
    ]
    assert sorted(uploaded) == ["ok-1", "ok-2"]
