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


CLI_WRAPPER = Path(__file__).resolve().parent / "supabase-argv-recorder"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The pinned real Supabase CLI (installed from npm on first use)."""
    return supabase_cli.install_pinned()


@pytest.fixture(autouse=True)
def audit_secrets():
    """After every test: no known secret in the files its tasks wrote or the CLI argv they used."""
    PROJECTS.clear()
    yield
    for project in PROJECTS:
        project.audit()


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


SECRET_NAME_HINTS = ("PASSWORD", "SECRET", "TOKEN")
PROJECTS: list = []  # every Project of the running test, audited for leaked secrets afterwards


@dataclass
class Project:
    """A temporary environments file with real databases behind its environments.

    Every task runs with the real CLI behind a wrapper that records its argv; after each
    test the outputs, the files written and the recorded argv are searched for secrets.
    """

    root: Path
    envs: dict[str, dict] = field(default_factory=dict)
    extra: str = ""
    safe_extra: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    supabase_dir: Path = REPO / "supabase"

    def __post_init__(self) -> None:
        PROJECTS.append(self)

    @property
    def argv_log(self) -> Path:
        return self.root / "cli-argv.log"

    def known_secrets(self, env: dict | None = None) -> set[str]:
        values = {FAKE_DB_PASSWORD}
        for source in (self.secrets, env or {}):
            values |= {v for k, v in source.items() if any(h in k for h in SECRET_NAME_HINTS) and v}
        return values

    def audit(self) -> None:
        """No secret in any file we wrote (tmp/, backups/) nor in any argv the CLI was given."""
        secrets = [s.encode() for s in self.known_secrets()]
        written = [p for folder in ("tmp", "backups") for p in (self.root / folder).rglob("*") if p.is_file()]
        for path in [*written, self.argv_log]:
            if path.is_file():
                data = path.read_bytes()
                leaked = [s for s in secrets if s in data]
                assert not leaked, f"a secret leaked into {path}"

    @property
    def ini(self) -> Path:
        return self.root / "environments.ini"

    def url(self, env: str) -> str:
        return self.envs[env]["db_url"]

    def write(self) -> Path:
        repo = ops_config.load(REPO / "environments.ini")
        lines = ["[project]", f"supabase_dir = {self.supabase_dir}", ""]
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
        lines += ["", "[storage]", "backup_dir = backups/storage",
                  "buckets = " + " ".join(repo.storage.buckets)]
        lines.append(self.extra)
        self.ini.write_text("\n".join(lines) + "\n")
        return self.ini

    def run(self, *args: str, env: dict | None = None, stdin=subprocess.DEVNULL, timeout: float = 300) -> Result:
        self.write()
        environ = {**os.environ, "OPS_ENVIRONMENTS": str(self.ini), "SUPABASE_CLI": str(CLI_WRAPPER),
                   "OPS_TEST_ARGV_LOG": str(self.argv_log), **self.secrets, **(env or {})}
        completed = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
            cwd=self.root, env=environ, stdin=stdin, capture_output=True, text=True, timeout=timeout,
        )
        leaked = [s for s in self.known_secrets(env) if s in completed.stdout + completed.stderr]
        assert not leaked, f"inv {' '.join(args)} printed a secret"
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


S3_KEYS = {env: (f"AKIAOPSTEST{env.upper()}01", f"s3-secret-{env}-Vb93-never-print") for env in ("prod", "preprod")}


def s3_secrets(env: str, key_id: str, secret: str) -> dict[str, str]:
    prefix = "OPS_" + env.upper().replace("-", "_")
    return {f"{prefix}_S3_ACCESS_KEY_ID": key_id, f"{prefix}_S3_SECRET_ACCESS_KEY": secret}


@pytest.fixture
def storage(project, tmp_path):
    """One real S3 server (rclone serve s3) per environment, with every configured bucket."""
    buckets = ops_config.load(REPO / "environments.ini").storage.buckets
    servers = {}
    try:
        for env, (key_id, secret) in S3_KEYS.items():
            server = localstack.start_s3(key_id, secret, root=tmp_path / f"s3-{env}")
            servers[env] = server
            server.create_buckets(buckets)
            project.envs[env].update(storage_url=server.url, storage_region="us-east-1")
            project.secrets.update(s3_secrets(env, key_id, secret))
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def moto_port():
    """moto's S3 server: real multipart ETags, and no signature checks (for the path-prefix proxy)."""
    port = localstack.free_port()
    process = subprocess.Popen([localstack.tool("moto_server"), "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        localstack.wait_for_port(port, timeout=60)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
