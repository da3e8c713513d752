"""`inv doctor`: before anything runs, is every environment reachable and configured right?

Per environment, in parallel, each check with a short timeout: the config (refs), the
database (reachable, TLS, server version, role, pooler mode, pg_dump new enough), storage
(the keys work, every configured bucket exists), and the Management API (token accepted,
project visible); once: the Supabase CLI is the pinned version. Each failure comes with a
hint. Nothing here writes anything, and no secret is ever printed.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops import dburl, supabase_cli
from ops.childenv import child_env
from ops.config import Config, Environment, check_refs_of
from ops.errors import OperationFailed, OpsError, first_line, last_line
from ops.report import Result, Table

TIMEOUT = 10  # seconds per network check


@dataclass
class Check:
    env: str
    check: str
    ok: bool
    detail: str
    fix: str = ""
    seconds: float = 0.0


@dataclass
class DoctorReport(Result):
    checks: list[Check] = field(default_factory=list)

    def rows(self) -> Table:
        return Table(["env", "check", "status", "detail", "fix"],
                     [[c.env, c.check, "ok" if c.ok else "FAIL", c.detail, c.fix] for c in self.checks])

    def footer(self) -> str:
        failed = [c for c in self.checks if not c.ok]
        return f"{len(failed)} of {len(self.checks)} checks failed" if failed else f"all {len(self.checks)} checks ok"

    def failure(self) -> OpsError | None:
        failed = sorted({f"{c.env}: {c.check}" for c in self.checks if not c.ok})
        return OperationFailed("doctor found problems: " + "; ".join(failed)) if failed else None


def timed(env: str, name: str, work: Callable[[], str], fix: str) -> Check:
    """Run one check; any error becomes a failed check with its first line (never a traceback)."""
    started = time.monotonic()
    try:
        detail, ok = work(), True
    except Exception as error:  # noqa: BLE001 -- a doctor reports every failure, whatever its kind
        detail, ok = first_line(error), False
    return Check(env, name, ok, detail, "" if ok else fix, round(time.monotonic() - started, 2))


def config_check(config: Config, env: Environment) -> str:
    check_refs_of(env, config.path)
    return f"ref {env.ref or '(none)'}" + (", protected" if env.protected else "")


def database_checks(env: Environment) -> list[Check]:
    found: dict[str, str] = {}

    def connect() -> str:
        from ops.db import connect as open_db

        with open_db(env, autocommit=True, application="ops doctor", timeout=TIMEOUT) as conn:
            version, user, superuser = conn.execute(
                "SELECT current_setting('server_version_num'), current_user, "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)").fetchall()[0]
            found["major"] = str(int(version) // 10000)
            params = dburl.params(env)
            tls = "TLS verified" if params.get("sslmode") in ("verify-full", "verify-ca") and conn.pgconn.ssl_in_use \
                else "TLS (not verified)" if conn.pgconn.ssl_in_use else "no TLS (loopback)"
            mode = "transaction pooler" if dburl.is_transaction_pooler(params) else \
                "session pooler" if params.get("host", "").endswith(dburl.SUPABASE_POOLER_SUFFIX) else "direct"
            return (f"PostgreSQL {int(version) // 10000}, {tls}, {mode}, as {user}"
                    + (" (superuser)" if superuser else ""))

    def pg_dump() -> str:
        from ops.dbdump import tool

        binary = tool("pg_dump")
        text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", text)
        major = int(match[1]) if match else 0
        if "major" in found and major < int(found["major"]):
            raise OperationFailed(f"pg_dump {major} is older than the server ({found['major']})")
        return f"pg_dump {major}" + (f" >= server {found['major']}" if "major" in found else "")

    if not env.db_url:
        return [Check(env.name, "database", False, "no db_url", "add db_url (or ref and region) to its section")]
    database = timed(env.name, "database", connect,
                     f"check db_url, {env.db_password_var}, the network (IPv6-only direct hosts: use the session "
                     "pooler) and ssl_root_cert")
    tool = timed(env.name, "pg_dump", pg_dump,
                 "install PostgreSQL client tools of the server's major version or newer, or set OPS_PG_DUMP")
    return [database, tool]


def storage_check(config: Config, env: Environment) -> Check:
    def work() -> str:
        from ops import s3 as s3ops

        s3 = s3ops.client(env, timeout=TIMEOUT, attempts=2)
        missing = [b for b in config.storage.buckets if not s3ops.bucket_exists(s3, b)]
        if missing:
            raise OperationFailed(f"bucket(s) missing: {', '.join(missing)}")
        return f"{len(config.storage.buckets)} bucket(s) present"

    if not env.storage_url:
        return Check(env.name, "storage", False, "no storage_url", "add storage_url to its section")
    return timed(env.name, "storage", work,
                 f"check storage_url, {env.s3_key_id_var}, {env.s3_secret_var}, storage_region, and that "
                 "migrations created the buckets")


def api_check(config: Config, env: Environment) -> Check:
    def work() -> str:
        result = supabase_cli.run(["functions", "list", "--project-ref", env.ref, "-o", "json"],
                                  workdir=supabase_cli.cli_workdir(config), timeout=TIMEOUT * 3)
        if not result.ok:
            raise OperationFailed(last_line(result.stderr, f"exit {result.returncode}"))
        return f"project {env.ref} visible with the token"

    if not env.ref:
        return Check(env.name, "management api", False, "no ref", "add the project ref to its section")
    return timed(env.name, "management api", work,
                 "set SUPABASE_ACCESS_TOKEN (or run supabase login) with access to this project")


def cli_check() -> Check:
    def work() -> str:
        result = subprocess.run([supabase_cli.binary(), "--version"], capture_output=True, text=True,
                                timeout=TIMEOUT * 3, env=child_env("supabase"))
        version = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"
        if version != supabase_cli.PINNED_VERSION:
            raise OperationFailed(f"supabase {version}, expected {supabase_cli.PINNED_VERSION}")
        return f"supabase {version}"

    return timed("-", "supabase cli", work, "run `nox -s cli` (installs the pinned CLI) or set SUPABASE_CLI")


def examine(config: Config, env: Environment) -> list[Check]:
    checks = [timed(env.name, "config", lambda: config_check(config, env),
                    "point db_url and storage_url at this section's own project (or fix its ref)")]
    if not checks[0].ok:
        return checks  # never connect to a project the section does not name
    return [*checks, *database_checks(env), storage_check(config, env), api_check(config, env)]


def doctor(config: Config, env: str | None) -> DoctorReport:
    names = list(config.environments) if env == "all" else [config.env(env or config.workflows.prod).name]
    envs = [config.env(name) for name in names]
    with ThreadPoolExecutor(max_workers=len(envs) + 1) as pool:
        cli = pool.submit(cli_check)
        per_env = list(pool.map(lambda e: examine(config, e), envs))
    return DoctorReport([check for checks in per_env for check in checks] + [cli.result()])
