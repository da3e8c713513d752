"""Multipart uploads this toolkit has open on a target, so a killed run's are found and aborted later.

Storage keeps the parts of an upload that was never completed nor aborted (and hosted S3 bills
them). ListMultipartUploads would show everybody's uploads, the app's own in-progress ones
too; this ledger knows exactly ours: one small file per open upload, written when it is
created and removed when it is completed or aborted. A file whose writer is gone is a leftover.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ops import owner


@dataclass(frozen=True)
class OpenUpload:
    bucket: str
    key: str
    upload_id: str
    path: Path


class UploadLedger:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, upload_id: str) -> Path:
        return self.folder / (hashlib.sha256(upload_id.encode()).hexdigest()[:32] + ".json")

    def started(self, bucket: str, key: str, upload_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {**owner.stamp(), "bucket": bucket, "key": key, "upload_id": upload_id}
        handle = os.open(self._path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(record))

    def finished(self, upload_id: str) -> None:
        self._path(upload_id).unlink(missing_ok=True)

    def leftovers(self) -> list[OpenUpload]:
        """Open uploads of runs that are no longer running."""
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # cut off while written: its upload id never got out
                continue
            if not owner.alive(record):
                found.append(OpenUpload(record["bucket"], record["key"], record["upload_id"], path))
        return found
