"""What a restored project must hold, recorded at backup time and compared after a restore.

`snapshot.json` beside the dump: per-table row counts, RLS state, policies and triggers (the
app's, on platform tables too), every privilege on the app's objects and the project roles' on the
platform's (auth, storage), publication membership,
the extensions the app created. After `restore-db` the same is read from the target and each
difference is named: a restore that exits 0 gave back what the backup held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ops.config import Environment
from ops.db.connection import connect

SNAPSHOT_FILE = "snapshot.json"
PLATFORM_TABLE_SCHEMAS = ("auth", "storage")
# Created by the platform in every new project: neither the app's nor the restore's to compare.
PLATFORM_EXTENSIONS = (
    "plpgsql",
    "uuid-ossp",
    "pgcrypto",
    "pgjwt",
    "pg_stat_statements",
    "pg_graphql",
    "supabase_vault",
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
# The project's own roles: those a backup recreates (every new project has the platform's).
PROJECT_ROLES_QUERY = (
    "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname !~ '^(pg_|supabase)' "
    "AND NOT rolsuper AND rolname <> ALL(%s) ORDER BY rolname"
)
# Grants to the project's roles on the platform's schemas and their tables and sequences.
PLATFORM_GRANTS_QUERY = """
SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END, n.nspname, c.relname, r.rolname,
       a.privilege_type, a.is_grantable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND r.rolname = ANY(%(roles)s)
UNION ALL
SELECT 'schema', n.nspname, NULL, r.rolname, a.privilege_type, a.is_grantable
FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE n.nspname = ANY(%(schemas)s) AND r.rolname = ANY(%(roles)s)
ORDER BY 1, 2, 3, 4, 5
"""


def platform_grants(conn: Any, project_roles: list[str]) -> list[tuple[str, str, str | None, str, str, bool]]:
    """(kind, schema, name or None for the schema, grantee, privilege, grantable) on auth and storage."""
    return conn.execute(
        PLATFORM_GRANTS_QUERY, {"schemas": list(PLATFORM_TABLE_SCHEMAS), "roles": project_roles}
    ).fetchall()


def take(env: Environment, app_schemas: list[str], counted: list[str]) -> dict[str, Any]:
    """The snapshot of `env` now: `app_schemas` are the restored schemas, `counted` the tables whose rows come back."""
    with connect(env, autocommit=True, application="ops snapshot") as conn:
        conn.execute("SELECT set_config('search_path', '', false)")  # definitions with every name qualified
        policy_schemas = [*app_schemas, *PLATFORM_TABLE_SCHEMAS]

        def rows(query: str, *params: object) -> list[tuple]:
            return conn.execute(query, params).fetchall()

        snapshot: dict[str, Any] = {
            "rows": {},
            "rls": {},
            "policies": {},
            "triggers": {},
            "acl": {},
            "publications": {},
            "extensions": {},
            "platform_grants": {},
        }
        from psycopg.sql import SQL, Identifier

        for table in counted:
            schema, name = table.split(".", 1)
            counted_rows = conn.execute(
                SQL("SELECT count(*) FROM {}.{}").format(Identifier(schema), Identifier(name))
            ).fetchall()
            snapshot["rows"][table] = counted_rows[0][0]
        for table, enabled, forced in rows(
            "SELECT format('%%s.%%s', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)",
            policy_schemas,
        ):
            snapshot["rls"][table] = "forced" if forced else "on" if enabled else "off"
        for table, name, permissive, roles, cmd, qual, check in rows(
            "SELECT schemaname || '.' || tablename, policyname, permissive, roles::text[], cmd, qual, with_check "
            "FROM pg_policies WHERE schemaname = ANY(%s)",
            policy_schemas,
        ):
            snapshot["policies"][f"{table}: {name}"] = [permissive, sorted(roles), cmd, qual, check]
        for table, name, definition in app_triggers(conn, app_schemas):
            snapshot["triggers"][f"{table}: {name}"] = definition
        for kind, name, owner, acl in rows(ACL_QUERY, app_schemas, app_schemas, app_schemas):
            snapshot["acl"][f"{kind} {name}"] = sorted(
                ("<owner>" if grantee == owner else grantee) + f"={privileges}" for grantee, privileges in acl_of(acl)
            )
        project_roles = [r[0] for r in rows(PROJECT_ROLES_QUERY, list(PLATFORM_ROLES))]
        for kind, schema, obj, grantee, privilege, grantable in platform_grants(conn, project_roles):
            on = f"{kind} {schema}" + (f".{obj}" if obj else "")
            snapshot["platform_grants"].setdefault(on, []).append(
                f"{grantee} {privilege}" + (" WITH GRANT OPTION" if grantable else "")
            )
        for pub, table in rows(
            "SELECT pubname, schemaname || '.' || tablename FROM pg_publication_tables ORDER BY 1, 2"
        ):
            snapshot["publications"].setdefault(pub, []).append(table)
        for name, schema in rows(
            "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        ):
            if name not in PLATFORM_EXTENSIONS:
                snapshot["extensions"][name] = schema
    return snapshot


# Tables, views, sequences, functions and types of the app's schemas, with their ACLs.
ACL_QUERY = """
SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
       ELSE 'table' END, format('%%s.%%s', n.nspname, c.relname), c.relowner::regrole::text,
       coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))::text[]
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname = ANY(%s)
UNION ALL
SELECT 'function', p.oid::regprocedure::text, p.proowner::regrole::text,
       coalesce(p.proacl, acldefault('f'::"char", p.proowner))::text[]
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%s) AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'schema', n.nspname, n.nspowner::regrole::text, coalesce(n.nspacl, acldefault('n'::"char", n.nspowner))::text[]
FROM pg_namespace n WHERE n.nspname = ANY(%s)
"""


def acl_of(acl: list[str]) -> list[tuple[str, str]]:
    """aclitems (`grantee=privileges/grantor`) as (grantee, privileges); the grantor differs after a restore."""
    items = []
    for item in acl:
        grantee, _, rest = item.rpartition("=")
        items.append((grantee.strip('"') or "PUBLIC", rest.split("/")[0]))
    return items


def app_triggers(conn: Any, app_schemas: list[str]) -> list[tuple[str, str, str]]:
    """User triggers on the app's tables and the app's triggers on platform tables (their function is the app's)."""
    return conn.execute(
        "SELECT format('%%s.%%s', tn.nspname, c.relname), t.tgname, pg_get_triggerdef(t.oid) "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace tn ON tn.oid = c.relnamespace "
        "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = p.pronamespace "
        "WHERE NOT t.tgisinternal AND (tn.nspname = ANY(%s) OR "
        "(tn.nspname = ANY(%s) AND fn.nspname = ANY(%s))) ORDER BY 1, 2",
        (app_schemas, list(PLATFORM_TABLE_SCHEMAS), app_schemas),
    ).fetchall()


def write(snapshot: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def differences(recorded: dict[str, Any], restored: dict[str, Any]) -> list[str]:
    """Each way `restored` differs from `recorded`, in a line."""
    found: list[str] = []
    for table, count in recorded["rows"].items():
        now = restored["rows"].get(table)
        if now != count:
            found.append(f"{table}: {now} rows, the backup had {count}")
    for section, what in (("rls", "row level security"), ("policies", "policy"), ("triggers", "trigger")):
        found += compare_map(recorded[section], restored[section], what)
    for name, acl in recorded["acl"].items():
        now = restored["acl"].get(name)
        if now is None:
            found.append(f"{name}: missing")
        elif now != acl:
            extra = sorted(set(now) - set(acl))
            lost = sorted(set(acl) - set(now))
            found.append(
                f"{name}: privileges differ"
                + (f"; granted now, not in the backup: {', '.join(extra)}" if extra else "")
                + (f"; in the backup, not granted now: {', '.join(lost)}" if lost else "")
            )
    for pub in sorted(set(recorded["publications"]) | set(restored["publications"])):
        before, after = set(recorded["publications"].get(pub, [])), set(restored["publications"].get(pub, []))
        found += [f"publication {pub}: {t} missing" for t in sorted(before - after)]
        found += [f"publication {pub}: {t} not in the backup" for t in sorted(after - before)]
    for on in sorted(set(recorded.get("platform_grants", {})) | set(restored.get("platform_grants", {}))):
        before = set(recorded.get("platform_grants", {}).get(on, []))
        after = set(restored.get("platform_grants", {}).get(on, []))
        found += [f"{on}: grant to {g} missing" for g in sorted(before - after)]
        found += [f"{on}: grant to {g} not in the backup" for g in sorted(after - before)]
    for name, schema in recorded["extensions"].items():
        if restored["extensions"].get(name) != schema:
            found.append(f"extension {name}: missing (the backup had it in schema {schema})")
    return found


def compare_map(recorded: dict[str, Any], restored: dict[str, Any], what: str) -> list[str]:
    found = []
    # RLS of tables the backup did not know (the platform's newer ones) is no difference.
    keys = set(recorded) if what == "row level security" else set(recorded) | set(restored)
    for key in sorted(keys):
        if key not in restored:
            found.append(f"{what} {key}: missing")
        elif key not in recorded:
            found.append(f"{what} {key}: not in the backup")
        elif recorded[key] != restored[key]:
            found.append(f"{what} {key}: {restored[key]}, the backup had {recorded[key]}")
    return found
