"""restore-db: a full backup's database dump restored into a project, then compared with its snapshot.

Refused before anything changes when the backup does not match its manifest, is of another
environment than named, or the target already has app tables (unless --force).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ops.backup.store import METADATA_FILE, complete_backups
from ops.backup.verify import verify_backup
from ops.config import Config, Environment
from ops.db import snapshot as dbsnapshot
from ops.db import url as dburl
from ops.db.dump import FILES, app_tables, copied_rows, restore, tool
from ops.errors import OperationFailed, UserError
from ops.invocation import program
from ops.report import Result, Table
from ops.safety import confirm_write


@dataclass
class RestoreDbResult(Result):
    backup: str
    target: str
    source: str
    tables: int = 0
    copied_rows: int = 0
    checked: bool = False
    differences: list[str] = field(default_factory=list)

    def footer(self) -> str:
        done = (
            f"restored {self.source}'s database from {self.backup} into {self.target}: roles, schema and "
            f"{self.copied_rows:,} rows in {self.tables} tables, in one transaction"
        )
        if not self.checked:
            return done + "\nNOT CHECKED: this backup holds no snapshot.json to compare the restored project with"
        if self.differences:
            named = "\n".join(f"  - {d}" for d in self.differences)
            return f"{done}\nDIFFERS from the backup's snapshot ({len(self.differences)}):\n{named}"
        return (
            f"{done}\nOK: row counts, RLS, policies, triggers, privileges, publications and extensions "
            "match the backup's snapshot"
        )

    def failure(self) -> OperationFailed | None:
        if not self.differences:
            return None
        return OperationFailed(
            f"{self.target}: the restored project differs from the backup in {len(self.differences)} way(s) "
            "(listed above); the restore was committed"
        )

    def rows(self) -> Table:
        return Table(
            ["backup", "from", "into", "tables", "rows"],
            [[self.backup, self.source, self.target, self.tables, self.copied_rows]],
        )


def snapshot_folder(config: Config, backup: str | None, env: Environment) -> Path:
    """A full backup holding a database dump: the folder given, or the newest of `env`'s."""
    if backup and backup != "latest":
        path = Path(backup).resolve()
        if not (path / METADATA_FILE).is_file():
            raise UserError(f"{path} is not a complete backup (no {METADATA_FILE})")
    else:
        series = config.backup.dir / env.folder
        found = [p for p in complete_backups(series) if (p / "database" / "data.sql").is_file()]
        if not found:
            raise UserError(
                f"no full backup with a database dump of {env.name} in {series}: run "
                f"`{program()} backup --env {env.name}` first, or name one with --backup"
            )
        path = found[-1]
    missing = [name for name in FILES if not (path / "database" / name).is_file()]
    if missing:
        raise UserError(
            f"{path} holds no database dump ({', '.join(missing)} missing); snapshots made before "
            "restore-db existed hold database.dump: restore that with pg_restore by hand"
        )
    return path


def restore_db(
    config: Config,
    *,
    backup: str | None,
    target: str | None,
    env: str | None,
    force: bool,
    yes: bool,
    verified: bool = False,
) -> RestoreDbResult:
    """`verified`: the caller has re-hashed the dump against the manifest (a drill, which names a
    corrupt storage object rather than refusing the whole backup for it)."""
    if not target:
        raise UserError("name the project to restore into with --to ENV")
    target_env = config.env(target)
    source_env = config.env(env) if env else target_env
    path = snapshot_folder(config, backup, source_env)
    recorded = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    if recorded.get("ref") != source_env.ref:
        hint = "" if env else f"; to restore another environment's backup into {target_env.name}, name it with --env"
        raise UserError(
            f"{path} is a backup of {recorded.get('env')} ({recorded.get('ref')}), not of {source_env.name} "
            f"({source_env.ref}){hint}. Nothing was restored."
        )
    checked = None if verified else verify_backup(config, backup=str(path), env=None)
    if checked and not checked.ok:
        raise UserError(
            f"{checked.verdict()}: it does not match its manifest ({program()} verify-backup --backup {path} "
            "lists every file). Nothing was restored."
        )
    dburl.for_pg_tool(target_env, tool("psql"))  # psql may be given the password: refused here, before any change
    present = app_tables(target_env)
    if present and not force:
        raise UserError(
            f"{target_env.name} already has app tables ({', '.join(present[:5])}"
            f"{', ...' if len(present) > 5 else ''}): restore-db fills a new project (or a PITR-restored "
            "one) whose public schema is empty. Pass --force to try anyway: the restore is one "
            "transaction and leaves the target as it was if anything clashes. Nothing was restored."
        )
    confirm_write(target_env, yes=yes, action=f"restore the database of {recorded.get('env')} into it")
    snapshot = dbsnapshot.load(path / "database" / dbsnapshot.SNAPSHOT_FILE)
    schemas = snapshot["schemas"] if snapshot else ["public"]
    restore(target_env, path / "database", schemas)
    counts = copied_rows(path / "database" / "data.sql")
    result = RestoreDbResult(str(path), target_env.name, str(recorded.get("env")))
    result.tables = len(counts)
    result.copied_rows = sum(counts.values())
    if snapshot:
        now = dbsnapshot.take(target_env, schemas, list(snapshot["rows"]))
        result.checked = True
        result.differences = dbsnapshot.differences(snapshot, now)
    return result
