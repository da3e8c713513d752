"""Wiping a scratch environment before a drill restores a backup into it.

As the Supabase CLI's remote `db reset` does: the app's own schemas are dropped (public is
emptied, not dropped: the platform owns it and its grants), and the platform's tables the dump
refills (auth users, storage rows, the migration history) are emptied; the platform's own
schemas and migration history stay. Then the buckets the restore writes are emptied, so every
object is uploaded again and nothing left over passes for restored. Only an environment with
`scratch = true` is ever handed here.
"""

from __future__ import annotations

from typing import Any

from ops.config import Environment
from ops.db.connection import connect
from ops.db.dump import HISTORY_TABLES, MANAGED_SCHEMAS
from ops.errors import OperationFailed
from ops.s3 import objects as s3objects

# What a schema holds, dropped in an order that leaves the fewest to cascade; extension members stay.
PUBLIC_OBJECTS = """
SELECT kind, name, args FROM (
  SELECT 1 AS step, 'ROUTINE' AS kind, p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args, p.oid
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
  UNION ALL
  SELECT CASE c.relkind WHEN 'v' THEN 2 WHEN 'm' THEN 3 WHEN 'S' THEN 5 ELSE 4 END,
         CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
              WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
         c.relname, NULL, c.oid
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
  UNION ALL
  SELECT 6, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.typname, NULL, t.oid
  FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
  WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('c', 'd', 'e', 'r')
    AND (t.typrelid = 0 OR c.relkind = 'c')
) o
WHERE NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = o.oid AND d.deptype = 'e')
ORDER BY step, name
"""
APP_SCHEMAS = """
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname <> 'public' AND n.nspname <> ALL(%s) AND n.nspname !~ '^(pg_|supabase_)'  -- as dbdump.MANAGED_PREFIXES
  AND pg_has_role(current_user, n.nspowner, 'MEMBER')
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = n.oid AND d.deptype = 'e')
ORDER BY 1
"""


def wipe_statements(conn: Any, refilled: list[str]) -> list[Any]:
    """The statements that empty the database for a restore; `refilled`: the platform tables
    ("schema.table") the dump holds rows for, emptied so its rows go back in without a clash."""
    from psycopg.sql import SQL, Identifier

    statements = [
        SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(name))
        for (name,) in conn.execute(APP_SCHEMAS, (list(MANAGED_SCHEMAS),)).fetchall()
    ]
    for kind, name, args in conn.execute(PUBLIC_OBJECTS).fetchall():
        target = SQL("{}({})").format(Identifier("public", name), SQL(args)) if args is not None else None
        statements.append(SQL("DROP {} IF EXISTS {} CASCADE").format(SQL(kind), target or Identifier("public", name)))
    platform = [
        table for table in refilled if table.split(".", 1)[0] in MANAGED_SCHEMAS and table not in HISTORY_TABLES
    ]
    present = [
        (schema, name)
        for schema, name in (table.split(".", 1) for table in platform)
        if conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
            (schema, name),
        ).fetchall()
    ]
    if present:
        statements.append(SQL("TRUNCATE {}").format(SQL(", ").join(Identifier(s, n) for s, n in present)))
    return statements


def wipe_database(env: Environment, refilled: list[str]) -> int:
    """Empty the scratch database for a restore, in one transaction; how many statements it took."""
    with connect(env, autocommit=True, application="ops drill") as conn, conn.transaction():
        statements = wipe_statements(conn, refilled)
        for statement in statements:
            conn.execute(statement)
    return len(statements)


def empty_buckets(env: Environment, buckets: list[str], jobs: int) -> int:
    """Delete every object of the scratch environment's `buckets` that exist; how many were deleted."""
    s3 = s3objects.client(env, max_pool=jobs * 2)
    deleted = 0
    for bucket in buckets:
        if not s3objects.bucket_exists(s3, bucket):
            continue  # the restore names a missing bucket
        keys = sorted(s3objects.list_objects(s3, bucket))
        for start in range(0, len(keys), 1000):
            errors = s3.delete_objects(bucket, keys[start : start + 1000])
            if errors:
                raise OperationFailed(
                    f"{env.name}: could not empty bucket {bucket}: {errors[0]['Key']}: {errors[0]['Code']}"
                )
        deleted += len(keys)
    return deleted
