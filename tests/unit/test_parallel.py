"""Object work in two stages (download, then upload), without a server."""

from __future__ import annotations

import threading

from ops.s3 import ObjectInfo
from ops.storage import run_parallel


def objects(*keys: str) -> list[tuple[str, ObjectInfo]]:
    return [("bucket", ObjectInfo(key, 1, "")) for key in keys]


def test_the_next_download_runs_while_an_upload_waits():
    second_started = threading.Event()

    def download(bucket: str, info: ObjectInfo) -> str:
        if info.key == "b":
            second_started.set()
        return info.key

    def upload(bucket: str, info: ObjectInfo, fetched: str) -> None:
        if fetched == "a" and not second_started.wait(5):
            raise AssertionError("b was not downloaded while a was being uploaded")

    assert run_parallel(objects("a", "b"), download, 1, "copied", then=upload) == []


def test_failures_in_either_stage_are_named_and_the_rest_complete():
    uploaded = []

    def download(bucket: str, info: ObjectInfo) -> str:
        if info.key == "bad-get":
            raise OSError("connection reset")
        return info.key

    def upload(bucket: str, info: ObjectInfo, fetched: str) -> None:
        if fetched == "bad-put":
            raise OSError("broken pipe")
        uploaded.append(fetched)

    failures = run_parallel(objects("ok-1", "bad-get", "bad-put", "ok-2"), download, 2, "copied", then=upload)
    assert sorted((f.key, f.error) for f in failures) == [("bad-get", "OSError: connection reset"),
                                                         ("bad-put", "OSError: broken pipe")]
    assert sorted(uploaded) == ["ok-1", "ok-2"]
