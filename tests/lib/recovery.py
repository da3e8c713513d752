"""A PITR-restored copy of prod for recover-rows, and the conditions that must never write."""

from __future__ import annotations

import subprocess
import uuid
from urllib.parse import urlsplit

import psycopg

from lib.db import pg_tool

GRACE = "00000000-0000-4000-8000-000000000002"


def restored_copy(project, pg) -> str:
    """A PITR restore of prod as it is now (a copy of its database), as the section prod-pitr."""
    name = f"pitr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{urlsplit(project.url("prod")).path.lstrip("/")}"')
    project.envs["prod-pitr"] = {"ref": "pitrrestoredxxxxxxxx", "db_url": pg.url(name), "restored_from": "prod"}
    return pg.url(name)


def everything(url: str) -> str:
    """Every schema's data, sequences and large objects as pg_dump prints them (lines sorted)."""
    admin = url.replace("?sslmode=disable", "").replace("//postgres@", "//supabase_admin@")  # reads every schema
    argv = [pg_tool("pg_dump"), "--data-only", "--no-owner", "-d", admin]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return "\n".join(
        sorted(line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))
    )


DELETE_ALL = "DELETE FROM public.profiles"
HOSTILE = {
    "the reported exploit": "id::text = E'\\'')) r; COMMIT; DELETE FROM public.profiles; --'",
    "second statement": f"true; {DELETE_ALL}",
    "rollback then delete": f"true)) r; ROLLBACK; {DELETE_ALL}; --",
    "newlines and comment": f"true)) r\n;\n{DELETE_ALL}\n--",
    "E string backslash quote": f"full_name = E'\\'' )) k; {DELETE_ALL}; SELECT ((true",
    "dollar quoting": f"full_name = $$it's$$)) r; {DELETE_ALL}; SELECT (($$x$$",
    "tagged dollar quoting": f"full_name = $q$'$q$)) r; COMMIT; {DELETE_ALL}; SELECT (($q$x$q$",
    "unicode escapes": f"full_name = U&'\\0027')) r; {DELETE_ALL}; SELECT ((U&'x'",
    "nested comments": f"true /* /* */ */)) r; {DELETE_ALL}; SELECT ((true",
    "comment hides the closing": f"true /* )) r; */)) r; {DELETE_ALL}; --",
    "percent placeholders": f"full_name LIKE '%s%%')) r; {DELETE_ALL}; --",
    "a parameter": "id = $1",
    "data-modifying CTE": f"id IN (WITH d AS ({DELETE_ALL} RETURNING id) SELECT id FROM d)",
    "DELETE in a subquery": f"(SELECT count(*) FROM ({DELETE_ALL} RETURNING 1) d) > 0",
    "row locks": "true)) r FOR UPDATE; --",
    "select into": "true)) r INTO TEMP stolen; --",
    "nextval writes": "nextval('public.audit_log_id_seq') > 0",
    "large object import": "lo_import('/etc/hostname') > 0",
    "read-write from inside": "set_config('transaction_read_only', 'off', true) = 'off'",
    "session default read-write": "set_config('default_transaction_read_only', 'off', false) = 'off'",
    "advisory lock": "pg_advisory_lock(29) IS NULL",
    "terminate itself": "pg_terminate_backend(pg_backend_pid())",
    "dblink": f"dblink_exec('dbname=postgres', '{DELETE_ALL}') = 'OK'",
    "not boolean": "full_name",
    "knows the wrapper": f"true\n)) k; COMMIT; {DELETE_ALL}; SELECT ((true",
    "a stable function that writes": "public.sneaky()",
    "a stable function that turns read-write": "public.sneaky_rw()",
    "a view that calls a volatile function": "EXISTS (SELECT 1 FROM public.locker)",
}
