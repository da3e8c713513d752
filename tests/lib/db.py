"""Databases for tests: clones of the migrated template, SQL, and dumps to compare."""

from __future__ import annotations

import subprocess
import uuid

import psycopg

from devstack import localstack

TEMPLATE_DB = "app_template"
TLS_HOST = "pg.ops-test.example"  # remote-looking: reached through hostaddr=127.0.0.1


def new_database(server: localstack.LocalPostgres, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    return server.url(name)


def sql(url: str, text: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else []


def dump(url: str, *tables: str) -> str:
    """The database's data as pg_dump prints it, lines sorted (physical row order may differ)."""
    argv = [
        pg_tool("pg_dump"),
        "--data-only",
        "--no-owner",
        "--schema=public",
        "-d",
        url.replace("?sslmode=disable", ""),
    ]
    for table in tables:
        argv += ["-t", table]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return "\n".join(
        sorted(line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))
    )


def pg_tool(name: str) -> str:
    """A client tool of the same PostgreSQL the fixtures run (system or embedded)."""
    candidate = localstack.postgres_bindir() / name
    return str(candidate) if candidate.exists() else name
