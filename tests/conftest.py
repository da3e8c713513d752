"""Real local services for the tests: PostgreSQL, the pinned Supabase CLI, S3 servers.

Each fixture starts what it needs itself and fails loudly when it cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from ops import config as ops_config
from ops import localstack, supabase_cli

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "app_template"
FAKE_DB_PASSWORD = "pw-Zq81-never-print-me"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The pinned real Supabase CLI (installed from npm on first use)."""
    return supabase_cli.install_pinned()


@pytest.fixture(scope="session")
def pg(cli):
    server = localstack.start_postgres()
    url = server.create_database(TEMPLATE_DB)
    localstack.push_migrations(url)
    yield server
    server.stop()
    shutil.rmtree(server.datadir, ignore_errors=True)


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
    argv = [pg_tool("pg_dump"), "--data-only", "--no-owner", "--schema=public", "-d", url.replace("?sslmode=disable", "")]
    for table in tables:
        argv += ["-t", table]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return "\n".join(sorted(
        line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict"))))


def pg_tool(name: str) -> str:
    """A client tool of the same PostgreSQL the fixtures run (system or embedded)."""
    candidate = localstack.postgres_bindir() / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    """A temporary environments file with real databases behind its environments."""

    root: Path
    envs: dict[str, dict] = field(default_factory=dict)
    extra: str = ""
    safe_extra: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def ini(self) -> Path:
        return self.root / "environments.ini"

    def url(self, env: str) -> str:
        return self.envs[env]["db_url"]

    def write(self) -> Path:
        repo = ops_config.load(REPO / "environments.ini")
        lines = ["[project]", f"supabase_dir = {REPO / 'supabase'}", ""]
        for name, values in self.envs.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {v}" for k, v in values.items()]
            lines.append("")
        lines += [
            "[sync-data]",
            "export_dir = tmp/data-sync",
            "safe_tables = " + " ".join(repo.sync_data.safe_tables + self.safe_extra),
            "blocked_tables = " + " ".join(repo.sync_data.blocked_tables),
        ]
        lines += [f"key.{table} = {cols}" for table, cols in self.keys.items()]
        lines.append(self.extra)
        self.ini.write_text("\n".join(lines) + "\n")
        return self.ini

    def run(self, *args: str, env: dict | None = None, stdin=subprocess.DEVNULL, timeout: float = 300) -> Result:
        self.write()
        environ = {**os.environ, "OPS_ENVIRONMENTS": str(self.ini), **(env or {})}
        completed = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
            cwd=self.root, env=environ, stdin=stdin, capture_output=True, text=True, timeout=timeout,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()]


@pytest.fixture
def project(tmp_path, pg) -> Project:
    """prod (protected, with the demo data) and preprod (migrated, empty)."""
    prod = new_database(pg, "prod")
    localstack.run_sql(prod, (REPO / "sql" / "demo_prod.sql").read_text())
    preprod = new_database(pg, "preprod")
    proj = Project(tmp_path)
    proj.envs = {
        "prod": {"ref": "qfdztdgublwlmewobxmx", "db_url": prod, "protected": "true"},
        "preprod": {"ref": "jtzcrirqflfnagceendt", "db_url": preprod, "protected": "false"},
    }
    return proj
