"""For `inv status`: each environment's newest backup and newest successful drill, and how old each is.

Backups are read from this machine's series (full and storage-only), drills from this machine's
journal (a drill's line holds its verdict). A drill older than `[backup] drill_max_age_days`, or
none at all for an environment that has backups, is a warning: a backup nobody restored is a hope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ops.config import Config, Environment
from ops.report import Table

STAMP = "%Y-%m-%dT%H-%M-%SZ"


@dataclass
class Freshness:
    env: str
    backup: str | None = None  # UTC time (ISO) of the newest complete backup here
    drill: str | None = None  # UTC time (ISO) of the newest drill that said DRILL OK
    drill_into: str = ""


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
        found.append(Freshness(env.name, backup.isoformat(timespec="seconds") if backup else None, drill, into))
    return found


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
            [f.env, f.backup or "none here", age(f.backup, now), f.drill or "none", age(f.drill, now)]
            for f in found
            if f.backup or f.drill
        ],
    )


def warnings(found: list[Freshness], max_days: int, now: datetime) -> list[str]:
    lines = []
    for f in found:
        if f.drill is None and f.backup:
            lines.append(
                f"warning: {f.env}: no backup of it has been drilled (restored and checked) on this machine: "
                f"run inv drill --env {f.env} --into SCRATCH"
            )
        elif f.drill and (now - datetime.fromisoformat(f.drill)).total_seconds() > max_days * 86400:
            lines.append(
                f"warning: {f.env}: the newest successful drill is {age(f.drill, now)} old, more than "
                f"[backup] drill_max_age_days = {max_days}: run inv drill --env {f.env} --into "
                f"{f.drill_into or 'SCRATCH'}"
            )
    return lines
