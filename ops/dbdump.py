"""A project's database as Supabase's own `db dump` and migration guide take it, and its restore.

Three plain SQL files in `database/` of a full backup:
- `roles.sql`: the project's own roles (never the platform's), created only where missing;
- `schema.sql`: every schema but the ones the platform manages (auth, storage, extensions...);
- `data.sql`: the rows of every table the connecting role may read, the platform's auth and
  storage rows included (users come back with a restore), their migration history excluded.
Restored in that order in one transaction, the data under `session_replication_role = replica`
(no triggers, no foreign-key checks while rows arrive in dump order), as the guide does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ops import dburl
from ops.childenv import child_env
from ops.config import Config, Environment
from ops.db import connect, password_for
from ops.errors import OperationFailed, UserError
from ops.report import Result, Table

# Schemas the platform creates and migrates itself: never in schema.sql.
MANAGED_SCHEMAS = (
    "auth",
    "storage",
    "realtime",
    "_realtime",
    "extensions",
    "vault",
    "graphql",
    "graphql_public",
    "pgsodium",
    "pgsodium_masks",
    "pgbouncer",
    "cron",
    "net",
    "_analytics",
    "supabase_functions",
    "supabase_migrations",
    "information_schema",
)
MANAGED_PREFIXES = ("supabase_", "pg_")
# Their own migration history: the platform's, never restored over a new project's.
HISTORY_TABLES = ("auth.schema_migrations", "storage.migrations", "supabase_functions.migrations")
# Rows that are platform state, not the project's data.
NO_DATA_SCHEMAS = (
    "vault",
    "pgsodium",
    "realtime",
    "_realtime",
    "net",
    "cron",
    "_analytics",
    "graphql",
    "graphql_public",
    "extensions",
    "pgbouncer",
    "information_schema",
)
PLATFORM_ROLES = (
    "postgres",
    "anon",
    "authenticated",
    "service_role",
    "authenticator",
    "dashboard_user",
    "pgbouncer",
    "pgsodium_keyholder",
    "pgsodium_keyiduser",
    "pgsodium_keymaker",
)
FILES = ("roles.sql", "schema.sql", "data.sql")


def tool(name: str) -> str:
    found = os.environ.get(f"OPS_{name.upper()}") or shutil.which(name)
    if not found:
        raise OperationFailed(f"{name} not found: install PostgreSQL client tools or set OPS_{name.upper()}")
    return found


def run_tool(env: Environment, argv: list[str], what: str) -> str:
    environ = child_env("postgres", {"PGPASSWORD": password_for(env)})
    result = subprocess.run(argv, env=environ, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        # The error line first ("ERROR:", "error:"), not the details that follow it.
        lines = [line for line in result.stderr.splitlines() if "error:" in line.lower()]
        told = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        reason = lines[0].strip() if lines else told[-1]
        raise OperationFailed(f"{env.name}: {what} failed: {reason}")
    return result.stdout


@dataclass
class Layout:
    """What the connecting role sees: schemas to dump and tables it may not read."""

    schema_schemas: list[str] = field(default_factory=list)
    data_schemas: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    roles: list[tuple[str, bool, list[str]]] = field(default_factory=list)  # name, can login, member of


def read_layout(env: Environment) -> Layout:
    layout = Layout()
    with connect(env, autocommit=True, application="ops backup") as conn:
        schemas = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(oid, 'USAGE') ORDER BY nspname"
            ).fetchall()
        ]
        layout.schema_schemas = [s for s in schemas if s not in MANAGED_SCHEMAS and not s.startswith(MANAGED_PREFIXES)]
        layout.data_schemas = [
            s
            for s in schemas
            if s not in NO_DATA_SCHEMAS
            and not s.startswith("pg_")
            and (s not in MANAGED_SCHEMAS or s in ("auth", "storage", "supabase_migrations"))
        ]
        layout.unreadable = [
            f"{r[0]}.{r[1]}"
            for r in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) "
                "AND NOT has_table_privilege(c.oid, 'SELECT')",
                (layout.data_schemas,),
            ).fetchall()
        ]
        for name, login in conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname !~ '^(pg_|supabase)' "
            "AND NOT rolsuper AND rolname <> ALL(%s) ORDER BY rolname",
            (list(PLATFORM_ROLES),),
        ).fetchall():
            member_of = [
                r[0]
                for r in conn.execute(
                    "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                    "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s ORDER BY 1",
                    (name,),
                ).fetchall()
            ]
            layout.roles.append((name, login, member_of))
    return layout


def roles_sql(layout: Layout) -> str:
    """The project's own roles, created where missing (no passwords: those are never in a backup)."""
    from psycopg.sql import SQL, Identifier, Literal

    lines = ["-- The project's own roles (platform roles excluded); passwords are not backed up: set them again.\n"]
    for name, login, member_of in layout.roles:
        create = SQL("CREATE ROLE {} {}").format(Identifier(name), SQL("LOGIN" if login else "NOLOGIN"))
        lines.append(
            SQL("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) THEN {}; END IF; END $$;\n")
            .format(Literal(name), create)
            .as_string(None)
        )
        for group in member_of:
            lines.append(SQL("GRANT {} TO {};\n").format(Identifier(group), Identifier(name)).as_string(None))
    return "".join(lines)


def dump_database(env: Environment, folder: Path) -> list[Path]:
    """roles.sql, schema.sql and data.sql of the environment's database into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    layout = read_layout(env)
    target = dburl.for_pg_dump(env)
    pg_dump = tool("pg_dump")
    (folder / "roles.sql").write_text(roles_sql(layout), encoding="utf-8")
    schema_args = [f"--schema={s}" for s in layout.schema_schemas]
    run_tool(
        env,
        [
            pg_dump,
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            *schema_args,
            "--file",
            str(folder / "schema.sql"),
            "--dbname",
            target,
        ],
        "pg_dump (schema)",
    )
    fit_for_a_new_project(folder / "schema.sql")
    skipped = [f"--exclude-table-data={t}" for t in (*HISTORY_TABLES, *layout.unreadable)]
    data_args = [f"--schema={s}" for s in layout.data_schemas]
    run_tool(
        env,
        [
            pg_dump,
            "--data-only",
            "--no-owner",
            "--no-privileges",
            *data_args,
            *skipped,
            "--file",
            str(folder / "data.sql"),
            "--dbname",
            target,
        ],
        "pg_dump (data)",
    )
    return [folder / name for name in FILES]


HISTORY_SQL = """
-- The CLI's migration history, so `push-migrations` knows what the restored schema already has.
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text PRIMARY KEY, statements text[],
                                                                   name text);
"""


def fit_for_a_new_project(schema_file: Path) -> None:
    """As the CLI's `db dump` edits pg_dump's output: schemas a new project already has (public) are
    created only if missing, and the comment on public (owned by the platform) is left alone."""
    text = schema_file.read_text(encoding="utf-8")
    text = re.sub(r"^CREATE SCHEMA (?!IF NOT EXISTS)", "CREATE SCHEMA IF NOT EXISTS ", text, flags=re.M)
    text = re.sub(r"^COMMENT ON SCHEMA public IS .*\n", "", text, flags=re.M)
    schema_file.write_text(text + HISTORY_SQL, encoding="utf-8")


def app_tables(env: Environment) -> list[str]:
    """Tables in public: a project whose public schema holds any is no empty target."""
    with connect(env, autocommit=True, application="ops restore-db") as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1"
            ).fetchall()
        ]


def restore(env: Environment, folder: Path) -> None:
    """roles, schema, then data under session_replication_role = replica: one transaction, all or nothing."""
    argv = [
        tool("psql"),
        "--no-psqlrc",
        "--quiet",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-f",
        str(folder / "roles.sql"),
        "-f",
        str(folder / "schema.sql"),
        "-c",
        "SET session_replication_role = replica",
        "-f",
        str(folder / "data.sql"),
        "--dbname",
        dburl.for_pg_dump(env),
    ]
    run_tool(env, argv, "restoring the database (nothing was committed)")


@dataclass
class RestoreDbResult(Result):
    backup: str
    target: str
    source: str
    tables: int = 0
    copied_rows: int = 0

    def footer(self) -> str:
        return (
            f"restored {self.source}'s database from {self.backup} into {self.target}: roles, schema and "
            f"{self.copied_rows:,} rows in {self.tables} tables, in one transaction"
        )

    def rows(self) -> Table:
        return Table(
            ["backup", "from", "into", "tables", "rows"],
            [[self.backup, self.source, self.target, self.tables, self.copied_rows]],
        )


def snapshot_folder(config: Config, backup: str | None, env: Environment) -> Path:
    """A full backup holding a database dump: the folder given, or the newest of `env`'s."""
    from ops.backup.store import METADATA_FILE, complete_backups

    if backup and backup != "latest":
        path = Path(backup).resolve()
        if not (path / METADATA_FILE).is_file():
            raise UserError(f"{path} is not a complete backup (no {METADATA_FILE})")
    else:
        series = config.backup.dir / f"{env.name}-{env.ref}"
        found = [p for p in complete_backups(series) if (p / "database" / "data.sql").is_file()]
        if not found:
            raise UserError(
                f"no full backup with a database dump of {env.name} in {series}: run "
                f"`inv backup --env {env.name}` first, or name one with --backup"
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
    import json

    from ops.backup.store import METADATA_FILE
    from ops.backup.verify import verify_backup
    from ops.safety import confirm_write

    if not target:
        raise UserError("name the project to restore into with --to ENV")
    target_env = config.env(target)
    source_env = config.env(env) if env else target_env
    path = snapshot_folder(config, backup, source_env)
    recorded = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    checked = None if verified else verify_backup(config, backup=str(path), env=None)
    if checked and not checked.ok:
        raise UserError(
            f"{path} does not match its manifest ({len(checked.missing)} missing, "
            f"{len(checked.corrupt)} corrupt): run inv verify-backup --backup {path}. "
            "Nothing was restored."
        )
    present = app_tables(target_env)
    if present and not force:
        raise UserError(
            f"{target_env.name} already has app tables ({', '.join(present[:5])}"
            f"{', ...' if len(present) > 5 else ''}): restore-db fills a new project (or a PITR-restored "
            "one) whose public schema is empty. Pass --force to try anyway: the restore is one "
            "transaction and leaves the target as it was if anything clashes. Nothing was restored."
        )
    confirm_write(target_env, yes=yes, action=f"restore the database of {recorded.get('env')} into it")
    restore(target_env, path / "database")
    data = (path / "database" / "data.sql").read_text(encoding="utf-8")
    copies = data.split("\nCOPY ")[1:]
    result = RestoreDbResult(str(path), target_env.name, str(recorded.get("env")))
    result.tables = len(copies)
    result.copied_rows = sum(max(0, block.split("\n\\.\n")[0].count("\n")) for block in copies)
    return result
