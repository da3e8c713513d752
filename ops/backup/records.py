"""Records of what happened to a remote backup, kept at the backup target beside the series.

A drill run in CI leaves nothing on the runner; the laptop that runs `inv status` next must still
learn of it. So, like restic's `snapshots/` beside its data, each remote backup's events are small
JSON objects of their own under `<prefix>/records/[full/]<env>-<ref>/<backup>/`:
`<time>-sealed-ok.json` when it is sealed, `<time>-verify-ok|failed.json` after `verify-backup`,
`<time>-drill-ok|failed.json` after a drill. They live outside the backup's own prefix, so a
backup's files stay exactly those its manifest names (verify and restore refuse strays there).

A record is a claim, never data: nothing restores from one or prunes by one. It is shown only
when its name parses and its body is a small JSON object that agrees with the name, and only
for a backup whose manifest is there. Records hold names, times and verdicts, never keys or
connection strings. Retention removes a backup's records with it.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from ops.config import BackupTarget
from ops.errors import first_line
from ops.report import progress
from ops.s3 import objects as s3objects
from ops.s3.client import S3
from ops.stamps import stamp_time, utc_stamp

FOLDER = "records"
MAX_BYTES = 16 * 1024  # a record is a few hundred bytes; a larger one is not ours
NAME = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ(?:-\d+)?)-(?P<kind>sealed|verify|drill)-(?P<ok>ok|failed)\.json$"
)
CHECKS = ("verify", "drill")  # the kinds that say a backup was checked


@dataclass(frozen=True)
class Record:
    backup: str  # the backup's folder name (its time)
    kind: str
    ok: bool
    time: datetime
    key: str

    def when(self) -> str:
        return self.time.isoformat(timespec="seconds")


def records_base(target: BackupTarget, series_base: str) -> str:
    """`nightly/records/full/prod-ref/` for the series `nightly/full/prod-ref/` (`records` is no env-ref)."""
    inner = series_base[len(target.prefix) + 1 :] if target.prefix else series_base
    return "/".join(p for p in (target.prefix, FOLDER, inner.rstrip("/")) if p) + "/"


def backup_records(target: BackupTarget, backup_prefix: str) -> str:
    """The records prefix of one remote backup (`<series base><name>/`)."""
    base, name = backup_prefix.rstrip("/").rsplit("/", 1)
    return f"{records_base(target, base + '/')}{name}/"


def run_by() -> str:
    """Where a check ran, for the reader: the CI run when there is one, else the host (no user names, no paths)."""
    server, repo, run = (os.environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run:
        return f"{server}/{repo}/actions/runs/{run}"
    return socket.gethostname()


def write(
    s3: S3,
    target: BackupTarget,
    backup_prefix: str,
    kind: str,
    ok: bool,
    fields: dict[str, object],
    started: datetime | None = None,
) -> str:
    """Write one record of the backup at `backup_prefix`, after the event it records, named by the
    time the event started (a drill's, as its journal line is); its key."""
    stamp = started.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ") if started else utc_stamp()
    key = f"{backup_records(target, backup_prefix)}{stamp}-{kind}-{'ok' if ok else 'failed'}.json"
    made = stamp_time(stamp)
    body = {"kind": kind, "ok": ok, "time": made.isoformat() if made else stamp, "ran_on": run_by(), **fields}
    s3.put_object(target.bucket, key, json.dumps(body, sort_keys=True).encode(), {"content-type": "application/json"})
    return key


def note(
    s3: S3,
    target: BackupTarget,
    backup_prefix: str,
    kind: str,
    ok: bool,
    fields: dict[str, object],
    started: datetime | None = None,
) -> None:
    """`write`, a failure being a warning: the event happened whether or not its record could be kept."""
    try:
        write(s3, target, backup_prefix, kind, ok, fields, started)
    except Exception as error:  # noqa: BLE001 (the backup or check itself stands)
        progress(
            f"warning: {target.name}: could not record the {kind} of {backup_prefix}: {first_line(error, typed=True)}"
        )


def listed(s3: S3, target: BackupTarget, series_base: str) -> list[Record]:
    """The records of a series whose names parse, oldest first (bodies not read)."""
    base = records_base(target, series_base)
    found = []
    for key, info in s3objects.list_objects(s3, target.bucket, base).items():
        backup, _, file = key[len(base) :].partition("/")
        match = NAME.match(file)
        when = stamp_time(match["stamp"]) if match else None
        if match and when and "/" not in file and info.size <= MAX_BYTES:
            found.append(Record(backup, match["kind"], match["ok"] == "ok", when, key))
    return sorted(found, key=lambda r: (r.time, r.key))


def body(s3: S3, target: BackupTarget, record: Record) -> dict | None:
    """A record's body when it is a small JSON object agreeing with its name; None otherwise."""
    raw = bytearray()
    try:
        with s3.get_object(target.bucket, record.key) as response:
            for chunk in response.iter_raw():
                raw += chunk
                if len(raw) > MAX_BYTES:
                    return None  # grown since it was listed: not ours
        data = json.loads(bytes(raw))
    except Exception:  # noqa: BLE001 (an unreadable record is no record)
        return None
    if not isinstance(data, dict) or data.get("kind") != record.kind or data.get("ok") is not record.ok:
        return None
    return {k: v for k, v in data.items() if isinstance(v, str | int | float | bool)}


def newest_check(s3: S3, target: BackupTarget, records: list[Record], backup: str) -> dict | None:
    """The newest believable verify or drill record of `backup`: when, ok, and by what."""
    for record in reversed([r for r in records if r.backup == backup and r.kind in CHECKS]):
        data = body(s3, target, record)
        if data is not None:
            by = described(record.kind, data)
            return {"time": record.when(), "ok": record.ok, "by": by, "ran_on": str(data.get("ran_on", ""))[:200]}
    return None


def described(kind: str, data: dict) -> str:
    if kind == "drill":
        into = drilled_into(data)
        return f"drill into {into}" if into else "drill"
    return "verify-backup"


def drilled_into(data: dict) -> str:
    """The scratch environment a drill record names, when it is a plausible section name ('' otherwise):
    it is shown, and put in a suggested command."""
    into = str(data.get("into", ""))
    return into if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", into) else ""


def remove(s3: S3, target: BackupTarget, backup_prefix: str) -> None:
    """Remove a backup's records (with the backup)."""
    keys = sorted(s3objects.list_objects(s3, target.bucket, backup_records(target, backup_prefix)))
    for start in range(0, len(keys), 1000):
        s3.delete_objects(target.bucket, keys[start : start + 1000])
