"""A project's database as Supabase's own `db dump` and migration guide take it, and its restore.

Plain SQL files in `database/` of a full backup:
- `roles.sql`: the project's own roles (never the platform's), created only where missing;
- `schema.sql`: every schema but the ones the platform manages (auth, storage, extensions...),
  with its privileges, led by the extensions the app created and followed by what the app put
  on platform objects (triggers on auth.users, policies on storage.objects, publication members);
- `data.sql`: the rows of every table the connecting role may read, the platform's auth and
  storage rows included (users come back with a restore), their migration history and the
  tables Supabase's backup guide excludes left out;
- `snapshot.json`: what the restored project must then hold (ops/db/snapshot.py).
Restored in that order in one transaction, the data under `session_replication_role = replica`
(no triggers, no foreign-key checks while rows arrive in dump order), as the guide does; then
materialized views are refreshed and the result compared with the snapshot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.childenv import child_env
from ops.config import Environment
from ops.db import url as dburl
from ops.db.connection import connect, password_for
from ops.db.snapshot import PLATFORM_ROLES, PROJECT_ROLES_QUERY, platform_grants
from ops.errors import OperationFailed

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
# Left out as Supabase's backup guide leaves them out (`db dump -x ...`): the platform's own
# state, which postgres may read but not write (a restore would fail on them).
GUIDE_EXCLUDED = ("storage.buckets_vectors", "storage.vector_indexes", "storage.buckets_analytics")
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
    role: str = "postgres"  # the connecting role: it owns what a restore creates
    excluded: list[str] = field(default_factory=list)

    @property
    def left_out(self) -> list[str]:
        return [*self.excluded, *self.unreadable]


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
        layout.role = conn.execute("SELECT current_user").fetchall()[0][0]
        layout.unreadable = [
            f"{r[0]}.{r[1]}"
            for r in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) "
                "AND NOT has_table_privilege(c.oid, 'SELECT') ORDER BY 1, 2",
                (layout.data_schemas,),
            ).fetchall()
        ]
        layout.excluded = [
            r[0]
            for r in conn.execute(
                "SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NOT NULL", (list(GUIDE_EXCLUDED),)
            ).fetchall()
        ]
        for name, login in conn.execute(PROJECT_ROLES_QUERY, (list(PLATFORM_ROLES),)).fetchall():
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
    """roles.sql, schema.sql, data.sql and snapshot.json of the environment's database into `folder`."""
    from ops.db import snapshot as dbsnapshot
    from ops.report import progress

    folder.mkdir(parents=True, exist_ok=True)
    layout = read_layout(env)
    pg_dump = tool("pg_dump")
    target = dburl.for_pg_tool(env, pg_dump)
    (folder / "roles.sql").write_text(roles_sql(layout), encoding="utf-8")
    schema_args = [f"--schema={s}" for s in layout.schema_schemas]
    run_tool(
        env,
        [
            pg_dump,
            "--schema-only",
            "--no-owner",
            *schema_args,
            "--file",
            str(folder / "schema.sql"),
            "--dbname",
            target,
        ],
        "pg_dump (schema)",
    )
    fit_for_a_new_project(folder / "schema.sql", layout.role)
    with connect(env, autocommit=True, application="ops backup") as conn:
        platform = platform_sql(conn, layout.schema_schemas, [name for name, _login, _groups in layout.roles])
        extensions = extensions_sql(conn)
    text = (folder / "schema.sql").read_text(encoding="utf-8")
    (folder / "schema.sql").write_text(
        extensions + exact_privileges_sql(layout.schema_schemas) + text + platform, encoding="utf-8"
    )
    skipped = [f"--exclude-table-data={t}" for t in (*HISTORY_TABLES, *layout.left_out)]
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
    reasons = []
    if layout.excluded:
        reasons.append(
            f"{', '.join(layout.excluded)} (the platform's own state, left out as Supabase's backup guide does)"
        )
    if layout.unreadable:
        reasons.append(f"{', '.join(layout.unreadable)} (not readable by {layout.role})")
    if reasons:
        progress(f"warning: {env.name}: rows not backed up: {'; '.join(reasons)}")
    snapshot = dbsnapshot.take(env, layout.schema_schemas, [])
    snapshot["rows"] = dict(copied_rows(folder / "data.sql"))
    snapshot["schemas"] = layout.schema_schemas
    snapshot["left_out"] = layout.left_out
    dbsnapshot.write(snapshot, folder / dbsnapshot.SNAPSHOT_FILE)
    return [folder / name for name in (*FILES, dbsnapshot.SNAPSHOT_FILE)]


def copied_rows(data_file: Path) -> dict[str, int]:
    """Rows per table as data.sql holds them (COPY blocks): what a restore gives back."""
    counts: dict[str, int] = {}
    table = None
    with data_file.open(encoding="utf-8") as lines:
        for line in lines:
            if table is None:
                if line.startswith("COPY "):
                    table = line[5:].split(" (")[0].split(" FROM")[0].replace('"', "")
                    counts[table] = 0
            elif line == "\\.\n":
                table = None
            else:
                counts[table] += 1
    return counts


HISTORY_SQL = """
-- The CLI's migration history, so `push-migrations` knows what the restored schema already has.
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text PRIMARY KEY, statements text[],
                                                                   name text);
"""


def fit_for_a_new_project(schema_file: Path, role: str) -> None:
    """As the CLI's `db dump` edits pg_dump's output: schemas a new project already has (public) are
    created only if missing, the comment on public (owned by the platform) is left alone, and only
    the connecting role's default privileges are kept (another role's are the platform's to set)."""
    text = schema_file.read_text(encoding="utf-8")
    text = re.sub(r"^CREATE SCHEMA (?!IF NOT EXISTS)", "CREATE SCHEMA IF NOT EXISTS ", text, flags=re.M)
    text = re.sub(r"^COMMENT ON SCHEMA public IS .*\n", "", text, flags=re.M)
    own = re.escape(role)
    text = re.sub(rf"^ALTER DEFAULT PRIVILEGES FOR ROLE (?!\"?{own}\"? ).*\n", "", text, flags=re.M)
    schema_file.write_text(text + HISTORY_SQL, encoding="utf-8")


def exact_privileges_sql(schemas: list[str]) -> str:
    """A new project grants the API roles everything on what postgres creates (default privileges); the
    dump's GRANTs only add to that. Without those defaults while the schema is restored, each object
    ends with the source's privileges exactly; the dump's own ALTER DEFAULT PRIVILEGES then put back
    the source's defaults."""
    names = text_array(schemas)
    return f"""
-- Restored objects get the source's privileges, not the new project's defaults.
DO $$
DECLARE d record;
BEGIN
  FOR d IN SELECT n.nspname, CASE a.objtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                  WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' END AS kind,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee
           FROM (SELECT defaclnamespace, defaclobjtype AS objtype, (aclexplode(defaclacl)).grantee
                 FROM pg_default_acl WHERE defaclrole = current_user::regrole) a
           JOIN pg_namespace n ON n.oid = a.defaclnamespace
           WHERE n.nspname = ANY({names}) AND a.grantee <> current_user::regrole
             AND a.objtype IN ('r', 'S', 'f', 'T')
  LOOP
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON %s FROM %s', d.nspname, d.kind, d.grantee);
  END LOOP;
END
$$;
"""


def extensions_sql(conn: Any) -> str:
    """The extensions the app created, where it created them; a new project has the platform's."""
    from ops.db.snapshot import PLATFORM_EXTENSIONS

    lines = ["-- Extensions the project uses (a new project has the platform's own already).\n"]
    for name, schema in conn.execute(
        "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname <> ALL(%s) ORDER BY 1",
        (list(PLATFORM_EXTENSIONS),),
    ).fetchall():
        lines.append(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)};\n")
        lines.append(f"CREATE EXTENSION IF NOT EXISTS {quoted(name)} WITH SCHEMA {quoted(schema)};\n")
    return "".join(lines)


def platform_sql(conn: Any, app_schemas: list[str], project_roles: list[str]) -> str:
    """What the app put on the platform's objects: pg_dump of the app's schemas has none of it."""
    from ops.db.snapshot import PLATFORM_TABLE_SCHEMAS, app_triggers

    conn.execute("SELECT set_config('search_path', '', false)")  # definitions with every name qualified
    lines = ["\n-- The app's triggers, policies and publication members on the platform's objects.\n"]
    for table, _name, definition in app_triggers(conn, app_schemas):
        if table.split(".")[0] in PLATFORM_TABLE_SCHEMAS:
            lines.append(re.sub(r"^CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", definition) + ";\n")
    for schema, table, name, permissive, roles, cmd, qual, check in conn.execute(
        "SELECT schemaname, tablename, policyname, permissive, roles::text[], cmd, qual, with_check "
        "FROM pg_policies WHERE schemaname = ANY(%s) ORDER BY 1, 2, 3",
        (list(PLATFORM_TABLE_SCHEMAS),),
    ).fetchall():
        target = f"{quoted(schema)}.{quoted(table)}"
        to = ", ".join("PUBLIC" if r == "public" else quoted(r) for r in roles)
        lines.append(f"DROP POLICY IF EXISTS {quoted(name)} ON {target};\n")
        lines.append(
            f"CREATE POLICY {quoted(name)} ON {target} AS {permissive} FOR {cmd} TO {to}"
            + (f" USING ({qual})" if qual else "")
            + (f" WITH CHECK ({check})" if check else "")
            + ";\n"
        )
    for pub, schema, table in conn.execute(
        "SELECT pubname, schemaname, tablename FROM pg_publication_tables ORDER BY 1, 2, 3"
    ).fetchall():
        if schema in app_schemas:
            lines.append(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = {literal(pub)}) THEN "
                f"CREATE PUBLICATION {quoted(pub)}; END IF; END $$;\n"
                f"ALTER PUBLICATION {quoted(pub)} ADD TABLE {quoted(schema)}.{quoted(table)};\n"
            )
    lines += [grant_sql(*grant) for grant in platform_grants(conn, project_roles)]
    conn.execute("RESET search_path")
    return "".join(lines)


def grant_sql(kind: str, schema: str, name: str | None, grantee: str, privilege: str, grantable: bool) -> str:
    """One grant to a project role on a platform object. A platform that refuses it (the project's
    owner role may lack the grant option) leaves a warning, and the snapshot names the difference."""
    on = f"SCHEMA {quoted(schema)}" if name is None else f"{kind.upper()} {quoted(schema)}.{quoted(name)}"
    grant = f"GRANT {privilege} ON {on} TO {quoted(grantee)}" + (" WITH GRANT OPTION" if grantable else "")
    return (
        f"DO $grant$ BEGIN {grant}; EXCEPTION WHEN insufficient_privilege THEN "
        f"RAISE WARNING '%', {literal('not restored: ' + grant)}; END $grant$;\n"
    )


def quoted(name: str) -> str:
    from psycopg.sql import Identifier

    return Identifier(name).as_string(None)


def text_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(literal(v) for v in values) + "]::text[]"


def literal(value: str) -> str:
    from psycopg.sql import Literal

    return Literal(value).as_string(None)


REFRESH_SQL = """
-- Materialized views are created empty (WITH NO DATA): fill them from the restored rows.
DO $$
DECLARE v record;
BEGIN
  FOR v IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'm' AND n.nspname = ANY(:schemas) ORDER BY c.oid
  LOOP
    EXECUTE format('REFRESH MATERIALIZED VIEW %s', v.name);
  END LOOP;
END
$$;
"""


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


def restore(env: Environment, folder: Path, schemas: list[str]) -> None:
    """roles, schema, then data under session_replication_role = replica, then materialized views
    refreshed: one transaction, all or nothing."""
    psql = tool("psql")
    argv = [
        psql,
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
        "-c",
        "SET session_replication_role = DEFAULT",
        "-c",
        REFRESH_SQL.replace(":schemas", text_array(schemas)),
        "--dbname",
        dburl.for_pg_tool(env, psql),
    ]
    run_tool(env, argv, "restoring the database (nothing was committed)")
