"""`inv doctor`: before anything runs, is every environment reachable and configured right?

Per environment, in parallel, each check with a short timeout: the config (refs), the
database (reachable, TLS, server version, role, pooler mode, pg_dump new enough, how each
client's password is protected), storage
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

from ops.childenv import child_env
from ops.config import Config, Environment, check_refs_of
from ops.db import url as dburl
from ops.errors import NotConfigured, OperationFailed, OpsError, UserError, first_line
from ops.platform import supabase_cli
from ops.report import Result, Table, printable

TIMEOUT = 10  # seconds per network check


@dataclass
class Check:
    env: str
    check: str
    ok: bool
    detail: str
    fix: str = ""
    seconds: float = 0.0
    skipped: bool = False  # not configured (no URL, no token): not checked, and not a failure

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped


MARKS = {"ok": ("✓", "ok"), "failed": ("✗", "FAIL"), "skipped": ("–", "-"), "arrow": ("→", "->")}


def marks() -> dict[str, str]:
    """✓ ✗ – → where the output can show them, plain ASCII where it cannot."""
    return {name: printable(fancy, plain) for name, (fancy, plain) in MARKS.items()}


@dataclass
class DoctorReport(Result):
    checks: list[Check] = field(default_factory=list)
    verbose: bool = False

    def rows(self) -> Table:
        return Table(
            ["env", "check", "status", "detail", "fix"],
            [
                [c.env, c.check, "ok" if c.ok else "skipped" if c.skipped else "FAIL", c.detail, c.fix]
                for c in self.checks
            ],
        )

    def text(self) -> str:
        """One line per check, grouped per environment, wrapped to the terminal (like `flutter doctor`)."""
        import shutil
        import textwrap

        mark = marks()
        width = max(60, shutil.get_terminal_size((100, 24)).columns)
        env_width = max(len(c.env) for c in self.checks) if self.checks else 0
        check_width = max(len(c.check) for c in self.checks) if self.checks else 0
        lines, last_env = [], None
        for c in self.checks:
            if last_env is not None and c.env != last_env:
                lines.append("")
            last_env = c.env
            state = "ok" if c.ok else "skipped" if c.skipped else "failed"
            said = c.detail.removeprefix(f"{c.env}: ") + (f" {mark['arrow']} {c.fix}" if c.fix and not c.ok else "")
            said += f" ({c.seconds:.2f} s)" if self.verbose else ""
            head = f"{mark[state]} {c.env:<{env_width}}  {c.check:<{check_width}}  "
            lines += textwrap.wrap(said, width=width, initial_indent=head, subsequent_indent=" " * len(head)) or [head]
        return "\n".join(lines)

    def footer(self) -> str:
        failed = [c for c in self.checks if c.failed]
        skipped = [c for c in self.checks if c.skipped]
        note = f", {len(skipped)} not configured" if skipped else ""
        checked = len(self.checks) - len(skipped)
        return f"{len(failed)} of {checked} checks failed{note}" if failed else f"all {checked} checks ok{note}"

    def failure(self) -> OpsError | None:
        failed = [c for c in self.checks if c.failed]
        where = ", ".join(dict.fromkeys(c.env for c in failed))
        return OperationFailed(f"doctor: {len(failed)} check(s) failed ({where})") if failed else None


def timed(env: str, name: str, work: Callable[[], str], fix: str) -> Check:
    """Run one check; any error becomes a failed check with its first line (never a traceback)."""
    started = time.monotonic()
    skipped = False
    try:
        detail, ok = work(), True
    except NotConfigured as error:
        detail, ok, skipped, fix = f"not configured: {error}", False, True, error.fix
    except Exception as error:  # noqa: BLE001 -- a doctor reports every failure, whatever its kind
        detail, ok = first_line(error), False
    return Check(env, name, ok, detail, "" if ok else fix, round(time.monotonic() - started, 2), skipped)


def config_check(config: Config, env: Environment) -> str:
    check_refs_of(env, config.path)
    return f"ref {env.ref or '(none)'}" + (", protected" if env.protected else "")


def database_checks(env: Environment) -> list[Check]:
    """Reachable (TLS, version, role, pooler mode), pg_dump new enough for that server, passwords protected."""
    if not env.db_url:
        return [
            Check(
                env.name,
                "database",
                False,
                "not configured",
                "add db_url (or ref and region) to its section",
                skipped=True,
            )
        ]
    found: dict[str, str] = {}  # the server's major version, once connected: pg_dump is checked against it
    database = timed(
        env.name,
        "database",
        lambda: database_connection(env, found),
        f"check db_url, {env.db_password_var}, the network (IPv6-only direct hosts: use the session "
        "pooler) and ssl_root_cert",
    )
    tool = timed(
        env.name,
        "pg_dump",
        lambda: pg_dump_version(found),
        "install PostgreSQL client tools of the server's major version or newer, or set OPS_PG_DUMP",
    )
    password = timed(
        env.name,
        "passwords",
        lambda: password_protection(env),
        f"set ssl_root_cert in [{env.name}] (the project's CA: sslmode=verify-full), or use PostgreSQL 16+ tools",
    )
    return [database, tool, password]


def database_connection(env: Environment, found: dict[str, str]) -> str:
    """Connect once: server version, TLS, pooler mode and role; the major version goes into `found`."""
    from ops.db.connection import connect as open_db

    with open_db(env, autocommit=True, application="ops doctor", timeout=TIMEOUT) as conn:
        version, user, superuser = conn.execute(
            "SELECT current_setting('server_version_num'), current_user, "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchall()[0]
        found["major"] = str(int(version) // 10000)
        params = dburl.params(env)
        tls = (
            "TLS verified"
            if params.get("sslmode") in ("verify-full", "verify-ca") and conn.pgconn.ssl_in_use
            else "TLS (not verified)"
            if conn.pgconn.ssl_in_use
            else "no TLS (loopback)"
        )
        mode = (
            "transaction pooler"
            if dburl.is_transaction_pooler(params)
            else "session pooler"
            if params.get("host", "").endswith(dburl.SUPABASE_POOLER_SUFFIX)
            else "direct"
        )
        return f"PostgreSQL {int(version) // 10000}, {tls}, {mode}, as {user}" + (" (superuser)" if superuser else "")


def pg_dump_version(found: dict[str, str]) -> str:
    """pg_dump's major version, refused when older than the server's (in `found`, if it was reached)."""
    from ops.db.dump import tool

    binary = tool("pg_dump")
    text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", text)
    major = int(match[1]) if match else 0
    if "major" in found and major < int(found["major"]):
        raise OperationFailed(f"pg_dump {major} is older than the server ({found['major']})")
    return f"pg_dump {major}" + (f" >= server {found['major']}" if "major" in found else "")


def password_protection(env: Environment) -> str:
    """How each client's password is protected; failed when a client's would be refused."""
    import psycopg

    from ops.db.dump import tool

    params = dburl.params(env)
    clients = {
        "psycopg": lambda: dburl.libpq_gap(psycopg.pq.version()),
        "pg_dump": lambda: dburl.tool_libpq_gap(tool("pg_dump")),
        "psql": lambda: dburl.tool_libpq_gap(tool("psql")),
        "Supabase CLI": lambda: dburl.CLI_GAP,
    }
    shown, refused = [], []
    for name, gap in clients.items():
        try:
            shown.append(f"{name}: {dburl.protection(env, params, None if dburl.is_local(params) else gap())}")
        except UserError:  # the rule's refusal; a missing tool fails the check as itself
            refused.append(name)
    if refused:
        raise OperationFailed(
            f"{', '.join(refused)} cannot refuse a clear-text password request and the certificate is not "
            f"verified: they would be refused ({'; '.join(shown) or 'no client protected'})"
        )
    return "; ".join(shown)


def storage_check(config: Config, env: Environment) -> Check:
    def work() -> str:
        from ops.s3 import objects as s3objects
        from ops.s3.base import GLANCE

        unset = [var for var in (env.s3_key_id_var, env.s3_secret_var) if not env.secret(var)]
        if unset:  # storage_url is set: storage is configured, and cannot be checked without its keys
            raise OperationFailed(f"{' and '.join(unset)} not set (the dashboard's S3 access keys)")
        s3 = s3objects.client(env, retry=GLANCE)
        missing = [b for b in config.storage.buckets if not s3objects.bucket_exists(s3, b)]
        if missing:
            raise OperationFailed(f"bucket(s) missing: {', '.join(missing)}")
        return f"{len(config.storage.buckets)} bucket(s) present"

    if not env.storage_url:
        return Check(env.name, "storage", False, "not configured", "add storage_url to its section", skipped=True)
    return timed(
        env.name,
        "storage",
        work,
        f"check storage_url, {env.s3_key_id_var}, {env.s3_secret_var}, storage_region, and that "
        "migrations created the buckets",
    )


def api_check(config: Config, env: Environment) -> Check:
    def work() -> str:
        try:
            supabase_cli.binary()
        except OpsError:
            raise NotConfigured("needs the Supabase CLI", "see the supabase cli line") from None
        result = supabase_cli.list_functions(config, env, timeout=TIMEOUT * 3).result
        if not result.ok and result.token_problem == "missing":
            raise NotConfigured("no access token", "set SUPABASE_ACCESS_TOKEN (sbp_...) or run supabase login")
        if not result.ok and result.token_problem:  # a token is set, but malformed or refused: a failure
            raise OperationFailed(supabase_cli.token_error(result, env.name))
        if not result.ok:
            raise OperationFailed(result.reason)
        return f"project {env.ref} visible with the token"

    if not env.ref:
        return Check(
            env.name, "management api", False, "not configured", "add the project ref to its section", skipped=True
        )
    return timed(
        env.name,
        "management api",
        work,
        "set SUPABASE_ACCESS_TOKEN (or run supabase login) with access to this project",
    )


def cli_check() -> Check:
    def work() -> str:
        try:
            binary = supabase_cli.binary()
        except OpsError:
            raise OperationFailed("not installed") from None
        result = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT * 3, env=child_env("supabase")
        )
        version = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"
        if version != supabase_cli.PINNED_VERSION:
            raise OperationFailed(f"supabase {version}, expected {supabase_cli.PINNED_VERSION}")
        return f"supabase {version}"

    return timed("-", "supabase cli", work, "run `nox -s cli` (installs the pinned CLI) or set SUPABASE_CLI")


def examine(config: Config, env: Environment) -> list[Check]:
    checks = [
        timed(
            env.name,
            "config",
            lambda: config_check(config, env),
            "point db_url and storage_url at this section's own project (or fix its ref)",
        )
    ]
    if not checks[0].ok:
        return checks  # never connect to a project the section does not name
    return [*checks, *database_checks(env), storage_check(config, env), api_check(config, env)]


def doctor(config: Config, env: str | None, verbose: bool = False) -> DoctorReport:
    envs = config.envs_named(env, default=[config.workflows.prod])
    with ThreadPoolExecutor(max_workers=len(envs) + 1) as pool:
        cli = pool.submit(cli_check)
        per_env = list(pool.map(lambda e: examine(config, e), envs))
    return DoctorReport([check for checks in per_env for check in checks] + [cli.result()], verbose)
