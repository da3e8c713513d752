"""`inv drill`: restore a full backup into a scratch environment and check it end to end.

A backup nobody has restored is a hope. The drill restores one (local, or fetched from a backup
target) into an environment marked `scratch = true`, the only kind it may wipe: the database with
restore-db, then every table's rows and every sequence's value compared with what the backup
recorded when it was taken; the storage into the scratch project's buckets (or, with no
storage_url, a temporary folder), every object read back and re-hashed against the manifest.
One verdict line says OK or names each difference, with the time it took: the recovery time a
restore of that backup can be planned with.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ops.backup import manifest, offsite
from ops.backup.drillcheck import Checked, check_database, rehash_buckets, rehash_in_folder, restore_from_target
from ops.backup.paths import member
from ops.backup.store import METADATA_FILE, load_manifest, objects_by_bucket
from ops.config import BackupTarget, Config, Environment
from ops.digest import file_digest
from ops.errors import OperationFailed, OpsError, UserError, first_line
from ops.report import Result, Table, progress

NAMED_IN_VERDICT = 10  # differences named on the verdict line; the lines above and --json have them all


@dataclass
class DrillResult(Result):
    env: str
    backup: str
    into: str
    tables: int = 0
    row_count: int = 0
    sequences: int = 0
    objects: int = 0
    bytes: int = 0
    storage_into: str = ""  # the scratch project's buckets, or a temporary folder
    seconds: float = 0.0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "verdict": self.verdict()}

    def rows(self) -> Table:
        return Table(
            ["backup of", "backup", "into", "tables", "rows", "sequences", "objects", "size", "time"],
            [
                [
                    self.env,
                    self.backup,
                    self.into,
                    self.tables,
                    self.row_count,
                    self.sequences,
                    self.objects,
                    size(self.bytes),
                    duration(self.seconds),
                ]
            ],
        )

    def verdict(self) -> str:
        done = (
            f"{self.tables:,} tables, {self.row_count:,} rows, {self.objects:,} objects ({size(self.bytes)}) "
            f"restored and checked in {duration(self.seconds)}"
        )
        if self.ok:
            return f"DRILL OK: {done}"
        named = "; ".join(self.differences[:NAMED_IN_VERDICT])
        more = len(self.differences) - NAMED_IN_VERDICT
        return f"DRILL FAILED: {named}{f'; and {more:,} more (above)' if more > 0 else ''} ({done})"

    def footer(self) -> str:
        lines = [f"  - {d}" for d in self.differences] if len(self.differences) > NAMED_IN_VERDICT else []
        return "\n".join([*lines, self.verdict()])

    def failure(self) -> OpsError | None:
        if self.ok:
            return None
        return OperationFailed(
            f"the drill of {self.env}'s backup {self.backup} found {len(self.differences)} difference(s) (above)"
        )


def size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} B"


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def scratch_env(config: Config, into: str | None, source: Environment) -> Environment:
    """The environment a drill may wipe: a section with scratch = true, never the backup's own."""
    if not into:
        raise UserError("name the scratch environment to restore into with --into ENV (a section with scratch = true)")
    target = config.env(into)
    if not target.scratch:
        marked = [name for name, env in config.environments.items() if env.scratch]
        raise UserError(
            f"'{target.name}' is not a scratch environment: a drill wipes the project it restores into, so "
            f"only a section with scratch = true may be one ({', '.join(marked) or 'none is marked'}). "
            "Nothing was changed."
        )
    if target.name == source.name:
        raise UserError(f"--env and --into are both '{source.name}': a drill restores into another (scratch) project")
    # A section copied from prod and marked scratch is prod under a second name: never wipe it.
    for other in config.environments.values():
        same = "" if other.name == target.name or other.scratch else shared_project(target, other)
        if same:
            raise UserError(
                f"[{target.name}] is marked scratch = true but has {same} of [{other.name}]: a drill would wipe "
                f"{other.name}. Give [{target.name}] a spare project's own ref, db_url and storage_url. "
                "Nothing was changed."
            )
    target.require_db()
    return target


def shared_project(scratch: Environment, other: Environment) -> str:
    """What `scratch` shares with `other` that makes them one project, in words ('' when nothing)."""
    from ops.config import db_endpoint

    if scratch.ref and scratch.ref == other.ref:
        return f"the ref ({scratch.ref})"
    mine_s3, theirs_s3 = storage_endpoint(scratch.storage_url), storage_endpoint(other.storage_url)
    if mine_s3 and theirs_s3 and mine_s3[1:] == theirs_s3[1:] and same_server(mine_s3[0], theirs_s3[0]):
        return "a storage_url that reaches the S3 endpoint"
    mine, theirs = db_endpoint(scratch), db_endpoint(other)
    if mine and theirs and mine[1:] == theirs[1:] and same_server(mine[0], theirs[0]):
        return "a db_url that reaches the database"
    return ""


def storage_endpoint(url: str) -> tuple[tuple[str, ...], int | None, str] | None:
    """An S3 endpoint as comparable as a URL allows: its host, port and path (None for no URL)."""
    from urllib.parse import urlsplit

    if not url:
        return None
    parts = urlsplit(url.strip())
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return ((parts.hostname or "").rstrip("."),), port, parts.path.rstrip("/")


def same_server(these: tuple[str, ...], those: tuple[str, ...]) -> bool:
    """Whether two host lists name one server: a name in common, or one loopback address under two
    names (`localhost`, `127.0.0.1`). Hosted names are never resolved to compare them: projects share
    addresses behind their proxies and are told apart by name."""
    import ipaddress
    import socket

    names = {host.lower().rstrip(".") for host in these}
    if names & {host.lower().rstrip(".") for host in those}:
        return True

    def loopback(hosts: tuple[str, ...]) -> set[str]:
        found: set[str] = set()
        for host in hosts:
            try:
                infos = socket.getaddrinfo(host, None)
            except (OSError, UnicodeError):
                continue
            found |= {str(info[4][0]) for info in infos if ipaddress.ip_address(str(info[4][0])).is_loopback}
        return found

    return bool(loopback(these) & loopback(those))


def reachable(scratch: Environment) -> None:
    """The scratch project's keys and database, checked before any backup is fetched or anything wiped."""
    from ops.db.connection import connect
    from ops.s3 import objects as s3objects

    if scratch.storage_url:
        s3objects.client(scratch)  # refuses missing S3 keys (exit 2)
    with connect(scratch, autocommit=True, application="ops drill"):
        pass


def drill(config: Config, *, env: str | None, backup: str | None, into: str | None, yes: bool) -> DrillResult:
    started, began = time.monotonic(), datetime.now(UTC)
    source = config.env(env or config.workflows.prod)
    scratch = scratch_env(config, into, source)
    reachable(scratch)
    backup = pinned(config, backup or "latest", source)
    try:
        with backup_copy(config, backup, source, objects=not scratch.storage_url) as (path, label, remote):
            result = restore_and_check(config, path, label, source, scratch, yes, remote)
        # A faithful restore of an emptied project's backup is no all-clear: say so, and name the one to drill.
        result.differences[:0] = not_full(config, label, source)
    except FetchFailed as error:
        result = DrillResult(source.name, backup, scratch.name)
        result.differences.append(f"backup not fetched, nothing restored: {error}")
    result.seconds = round(time.monotonic() - started, 3)
    record(config, backup, source, result, began)
    return result


def pinned(config: Config, backup: str, env: Environment) -> str:
    """`TARGET:latest` as the name of the newest full backup there, so the drill's record names the one drilled."""
    remote = offsite.parse(config, backup)
    if remote and remote[1] == "latest":
        return f"{remote[0].name}:{newest_full(config, remote[0], env)}"
    return backup


def record(config: Config, backup: str, env: Environment, result: DrillResult, began: datetime) -> None:
    """A drill of a remote backup leaves its verdict at the target beside it (`records`), where a
    laptop's `inv status` finds a drill that ran on a CI runner."""
    from ops.backup import records

    remote = offsite.parse(config, backup)
    if not remote:
        return
    try:
        s3, prefix = offsite.locate(config, remote[0], env, remote[1])
    except OpsError:
        return  # no such backup there: nothing to record against
    fields = {"into": result.into, "verdict": result.verdict(), "seconds": result.seconds}
    records.note(s3, remote[0], prefix, "drill", result.ok, fields, began)


def restore_and_check(
    config: Config,
    path: Path,
    label: str,
    source: Environment,
    scratch: Environment,
    yes: bool,
    remote: offsite.Remote | None = None,
) -> DrillResult:
    """`path`: the backup's folder; without its objects where they are read from `remote`, its target."""
    head = manifest.summary(path)
    if head.get("ref") != source.ref:
        raise UserError(
            f"{label} is a backup of {head.get('env')} ({head.get('ref')}), not of {source.name} ({source.ref}): "
            f"name its environment with --env. Nothing was changed."
        )
    recorded_rows, recorded_sequences = head.get("rows"), head.get("sequences")
    if not isinstance(recorded_rows, dict) or not isinstance(recorded_sequences, dict):
        raise UserError(
            f"{label} records no row counts or sequence values to check a restore against (it was made "
            f"before backups recorded them): make a new one with `inv backup --env {source.name}`. "
            "Nothing was changed."
        )
    result = DrillResult(source.name, label, scratch.name)
    damaged = damaged_files(path, head)
    result.differences += [f"{relative}: {what} in the backup" for relative, what in damaged.items()]
    # The database and the buckets are restored at once: neither waits on the other, and the
    # recovery time a drill reports is the one a user restoring both would see. Neither asks a
    # question (a scratch environment is never protected: the config refuses both at once).
    with ThreadPoolExecutor(1, thread_name_prefix="drill-database") as pool:
        database = (
            pool.submit(restore_database, config, path, source, scratch, recorded_rows, recorded_sequences, yes)
            if all(not relative.startswith("database/") for relative in damaged)
            else None
        )
        storage = (
            restore_storage_from(config, remote, path, scratch)
            if remote
            else restore_storage(config, path, source, scratch, yes)
        )
        if database:
            add(result, database.result())
        else:
            result.differences.append("database not restored: its dump does not match the manifest")
    add(result, storage)
    result.storage_into = "buckets" if scratch.storage_url else "a temporary folder"
    return result


def add(result: DrillResult, checked: Checked) -> None:
    result.tables += checked.tables
    result.row_count += checked.rows
    result.sequences += checked.sequences
    result.objects += checked.objects
    result.bytes += checked.bytes
    result.differences += checked.differences


def damaged_files(path: Path, head: dict) -> dict[str, str]:
    """The backup's files other than objects (the dump, the config export) that are missing or do not
    match the manifest; objects are checked as they are restored."""
    damaged = {}
    for relative, digest in head.get("artifacts", {}).items():
        file = member(path, relative, f"{METADATA_FILE} of {path.name}")
        if not file.is_file():
            damaged[relative] = "missing"
        elif file_digest(file) != digest:
            damaged[relative] = "corrupt"
    for name in ("roles.sql", "schema.sql", "data.sql"):
        if f"database/{name}" not in head.get("artifacts", {}):
            damaged[f"database/{name}"] = "not in the manifest"
    return damaged


def restore_database(
    config: Config,
    path: Path,
    source: Environment,
    scratch: Environment,
    rows: dict[str, int],
    sequences: dict[str, dict[str, Any]],
    yes: bool,
) -> Checked:
    from ops.backup import restore_db
    from ops.backup import scratch as wiping

    try:
        progress(f"{scratch.name}: dropping the app's schemas and emptying the rows the dump refills")
        wiping.wipe_database(scratch, list(rows))
        progress(f"{scratch.name}: restoring the database of {source.name} from {path.name}")
        restored = restore_db.restore_db(
            config, backup=str(path), target=scratch.name, env=source.name, force=True, yes=yes, verified=True
        )
    except OpsError as error:
        return Checked(differences=[f"database not restored: {first_line(error)}"])
    checked = check_database(scratch, rows, sequences)
    # restore-db's own comparison of the restored project, where it makes one.
    checked.differences += [f"restore-db: {d}" for d in getattr(restored, "differences", [])]
    return checked


def restore_storage(config: Config, path: Path, source: Environment, scratch: Environment, yes: bool) -> Checked:
    """Every object of the app's buckets restored (into emptied buckets, or a temporary folder) and re-hashed."""
    from ops.backup import restore
    from ops.backup import scratch as wiping

    held = objects_by_bucket(load_manifest(path))
    objects = {bucket: held[bucket] for bucket in config.storage.buckets if bucket in held}
    if not scratch.storage_url:
        folder = Path(tempfile.mkdtemp(prefix="drill-", dir=tmp_dir(config)))
        try:
            return rehash_in_folder(path, folder, objects, config.storage.jobs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    try:
        wiping.empty_buckets(scratch, list(objects), config.storage.jobs)
        progress(f"{scratch.name}: restoring {sum(len(o) for o in objects.values()):,} objects from {path.name}")
        uploaded = restore.restore_storage(
            config, target=scratch.name, backup=str(path), env=source.name, buckets=None, dry_run=False, yes=yes
        )
    except OpsError as error:
        return Checked(differences=[f"storage not restored: {first_line(error)}"])
    failed = {
        f"{f.bucket}/{f.key}": why_not_restored(path, objects[f.bucket][f.key], f.error) for f in uploaded.failures
    }
    checked = rehash_buckets(scratch, objects, config.storage.jobs, skip=set(failed))
    checked.differences[:0] = [f"{name}: not restored: {why}" for name, why in failed.items()]
    return checked


def restore_storage_from(config: Config, remote: offsite.Remote, path: Path, scratch: Environment) -> Checked:
    """Every object of the app's buckets restored from the backup target straight into the scratch
    project's emptied buckets, and re-hashed there (`drillcheck.restore_from_target`)."""
    from ops.backup import scratch as wiping

    held = objects_by_bucket(load_manifest(path))
    objects = {bucket: held[bucket] for bucket in config.storage.buckets if bucket in held}
    staging = Path(tempfile.mkdtemp(prefix="drill-", dir=tmp_dir(config)))
    try:
        wiping.empty_buckets(scratch, list(objects), config.storage.jobs)
        count = sum(len(o) for o in objects.values())
        progress(f"{scratch.name}: restoring {count:,} objects from {remote.target.name}:{remote.prefix}")
        return restore_from_target(remote, scratch, objects, staging, config.storage.jobs)
    except OpsError as error:
        return Checked(differences=[f"storage not restored: {first_line(error)}"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def why_not_restored(path: Path, entry: dict, error: str) -> str:
    """A failed upload's cause in a word where it lies in the backup itself (the file rotted or is gone)."""
    file = member(path, entry.get("path", ""), f"{METADATA_FILE} of {path.name}")
    if not file.is_file():
        return "missing in the backup"
    if file.stat().st_size != entry["size"] or file_digest(file) != entry["sha256"]:
        return "corrupt in the backup (it does not match the manifest)"
    return error


def tmp_dir(config: Config) -> Path:
    folder = config.root / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- the backup to restore


class FetchFailed(OperationFailed):
    """A remote backup that could not be fetched whole (or does not match its manifest): a drill's finding."""


@contextmanager
def backup_copy(
    config: Config, backup: str, env: Environment, *, objects: bool
) -> Iterator[tuple[Path, str, offsite.Remote | None]]:
    """The folder of a full backup, its name, and where its objects are read from when not in the folder:
    a local one as it is, a remote one (`TARGET:latest`, `TARGET:<time>`) fetched into tmp/ and removed
    after; without `objects`, all of it but its objects, which are then read from the target."""
    from ops.backup import restore_db

    remote = offsite.parse(config, backup)
    if not remote:
        path = restore_db.snapshot_folder(config, backup, env)
        yield path, str(path), None
        return
    target, when = remote
    s3, prefix = offsite.locate(config, target, env, newest_full(config, target, env) if when == "latest" else when)
    head = offsite.remote_summary(s3, target, prefix + METADATA_FILE)
    name = f"{target.name}:{prefix.rstrip('/').rsplit('/', 1)[-1]}"
    if "database/data.sql" not in head.get("artifacts", {}):
        raise UserError(
            f"{name} is a storage-only backup: a drill restores a full one (`inv backup --copy-to {target.name}`)"
        )
    when = prefix.rstrip("/").rsplit("/", 1)[-1]
    try:
        located = offsite.remote_backup(config, target, env, when)
        fetched = offsite.download(config, target, env, when, tmp_dir(config), objects=objects, remote=located)
    except OperationFailed as error:
        raise FetchFailed(f"{name}: {first_line(error)}") from None
    try:
        yield fetched, name, None if objects else located
    finally:
        shutil.rmtree(fetched, ignore_errors=True)


def newest_full(config: Config, target: BackupTarget, env: Environment) -> str:
    from ops.s3 import objects as s3objects

    s3 = s3objects.client(target.store, max_pool=config.storage.jobs * 2)
    names = offsite.sealed_remote(s3, target, offsite.remote_base(target, env.folder, True))
    if not names:
        raise UserError(
            f"no sealed full backup of {env.name} at {target.name}: make one with "
            f"`inv backup --env {env.name} --copy-to {target.name}`"
        )
    return names[-1]


def not_full(config: Config, label: str, source: Environment) -> list[str]:
    """Why the drilled backup is not full as retention judges it in its series (a backup of an emptied
    project, a bucket missing), naming the newest full one there; [] when it is full."""
    from ops.backup.retention import judge_series, newest_full
    from ops.backup.store import complete_backups

    remote = offsite.parse(config, label)
    if remote:
        target, name = remote
        s3, prefix = offsite.locate(config, target, source, name)
        base = prefix[: -len(name) - 1]
        judged = offsite.remote_series(s3, target, base, source.name)
        drill_it = f"--backup {target.name}:{{}}"
    else:
        name = Path(label).name
        judged = judge_series(
            source.name, [(p.name, manifest.summary(p)) for p in complete_backups(Path(label).parent)]
        )
        drill_it = f"--backup {Path(label).parent}/{{}}"
    this = next((each for each in judged if each.name == name), None)
    if this is None or this.full:
        return []
    good = newest_full(judged)
    instead = f"; the newest full backup is {good.name} (`inv drill {drill_it.format(good.name)}`)" if good else ""
    return [f"{label} is not full: {this.not_full_because} (a backup of an emptied or damaged project){instead}"]
