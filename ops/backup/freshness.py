"""For `inv status`: each environment's newest backup and newest successful drill, and how old each is.

Backups are read from this machine's series (full and storage-only) and from the records each
backup target keeps beside its series (`records`: a backup sealed there, a drill of one, wherever
it ran); drills also from this machine's journal (a drill's line holds its verdict). A drill
older than `[backup] drill_max_age_days`, or none at all for an environment that has backups,
is a warning: a backup nobody restored is a hope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ops.config import BackupTarget, Config, Environment
from ops.errors import first_line
from ops.report import Table

if TYPE_CHECKING:
    from ops.s3.client import S3

STAMP = "%Y-%m-%dT%H-%M-%SZ"


@dataclass
class Freshness:
    env: str
    backup: str | None = None  # UTC time (ISO) of the newest complete backup here
    drill: str | None = None  # UTC time (ISO) of the newest drill that said DRILL OK
    drill_into: str = ""
    backup_at: str = ""  # "this machine" or the backup target that holds it
    unread: str = ""  # a backup target that could not be read, and why


def stamp_time(name: str) -> datetime | None:
    try:
        return datetime.strptime(name.split("Z")[0] + "Z", STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def newest_backup(config: Config, env: Environment) -> datetime | None:
    from ops.backup.store import complete_backups, env_folder

    folder = env_folder(config, env).name
    found = [
        stamp_time(p.name)
        for series in (config.storage.backup_dir / folder, config.backup.dir / folder)
        for p in complete_backups(series)
    ]
    return max((t for t in found if t), default=None)


def read(config: Config, envs: list[Environment]) -> list[Freshness]:
    from ops import journal

    drills: dict[str, tuple[str, str]] = {}
    for entry in reversed(journal.read(config.journal_path, task="drill", last=10**9).entries):  # oldest first
        if entry.get("exit_code") == 0 and str(entry.get("outcome", "")).startswith("DRILL OK"):
            flags = entry.get("flags", {})
            drills[str(flags.get("env") or config.workflows.prod)] = (str(entry["time"]), str(flags.get("into", "")))
    found = []
    for env in envs:
        backup = newest_backup(config, env)
        drill, into = drills.get(env.name, (None, ""))
        fresh = Freshness(env.name, backup.isoformat(timespec="seconds") if backup else None, drill, into)
        fresh.backup_at = "this machine" if backup else ""
        for target in config.backup_targets.values():
            at_target(config, target, env, fresh)
        found.append(fresh)
    return found


def at_target(config: Config, target: BackupTarget, env: Environment, fresh: Freshness) -> None:
    """Newer backups and good drills recorded at `target` than those known so far, into `fresh`; a
    target that cannot be read is named, never fatal (status reads, it does not back up)."""
    from ops.backup import offsite, records
    from ops.s3 import objects as s3objects
    from ops.s3.base import GLANCE

    try:
        s3 = s3objects.client(target.store, max_pool=4, retry=GLANCE)
        for full in (False, True):
            base = offsite.remote_base(target, env.folder, full)
            found = records.listed(s3, target, base)
            made = {r.backup: stamp_time(r.backup) for r in found if r.kind == "sealed"}  # a backup's name is its time
            for name, moment in sorted(((n, t) for n, t in made.items() if t), key=lambda item: item[1], reverse=True):
                if not newer(moment.isoformat(), fresh.backup):
                    break
                if sealed(s3, target, f"{base}{name}/"):
                    fresh.backup, fresh.backup_at = moment.isoformat(timespec="seconds"), target.name
                    break
            for record in reversed([r for r in found if r.kind == "drill" and r.ok and newer(r.when(), fresh.drill)]):
                data = records.body(s3, target, record) if sealed(s3, target, f"{base}{record.backup}/") else None
                if data is not None:
                    fresh.drill, fresh.drill_into = record.when(), records.drilled_into(data)
                    break
    except Exception as error:  # noqa: BLE001 (named in the status footer)
        fresh.unread = f"{target.name}: {first_line(error, typed=True)}"


def sealed(s3: S3, target: BackupTarget, prefix: str) -> bool:
    """Whether the backup at `prefix` still has its manifest: a record alone proves nothing."""
    from ops.backup.store import METADATA_FILE
    from ops.s3 import objects as s3objects

    return f"{prefix}{METADATA_FILE}" in s3objects.list_objects(s3, target.bucket, f"{prefix}{METADATA_FILE}")


def newer(moment: str, than: str | None) -> bool:
    return than is None or datetime.fromisoformat(moment) > datetime.fromisoformat(than)


def age(moment: str | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = max(0, int((now - datetime.fromisoformat(moment)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


def table(found: list[Freshness], now: datetime) -> Table:
    return Table(
        ["env", "newest backup", "age", "newest good drill", "age"],
        [
            [
                f.env,
                f"{f.backup} ({f.backup_at})" if f.backup else "none",
                age(f.backup, now),
                f.drill or "none",
                age(f.drill, now),
            ]
            for f in found
            if f.backup or f.drill
        ],
    )


def warnings(found: list[Freshness], max_days: int, now: datetime) -> list[str]:
    lines = []
    for f in found:
        if f.unread:
            lines.append(f"warning: {f.env}: backups and drills at {f.unread} could not be read")
        if f.drill is None and f.backup:
            lines.append(
                f"warning: {f.env}: no backup of it has been drilled (restored and checked) here or at a backup "
                f"target: run inv drill --env {f.env} --into SCRATCH"
            )
        elif f.drill and (now - datetime.fromisoformat(f.drill)).total_seconds() > max_days * 86400:
            lines.append(
                f"warning: {f.env}: the newest successful drill is {age(f.drill, now)} old, more than "
                f"[backup] drill_max_age_days = {max_days}: run inv drill --env {f.env} --into "
                f"{f.drill_into or 'SCRATCH'}"
            )
    return lines
