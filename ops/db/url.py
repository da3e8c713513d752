"""How each client reaches an environment's database: TLS policy, poolers, and the connection string per tool.

Hosted Supabase serves databases on remote hosts, directly (`db.<ref>.supabase.co`, often
IPv6 only) or through the shared pooler (`postgres.<ref>@aws-0-<region>.pooler.supabase.com`,
port 5432 session mode, 6543 transaction mode). For any host that is not loopback the
connection is encrypted and never falls back to plaintext; every libpq parameter the user
wrote (`hostaddr`, `options`, `target_session_attrs`...) passes through untouched.
"""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlencode

from ops import conninfo
from ops.config import Environment
from ops.errors import UserError
from ops.report import progress

INSECURE_MODES = {"disable", "allow", "prefer"}
TRANSACTION_POOLER_PORT = "6543"
SESSION_POOLER_PORT = "5432"
SUPABASE_POOLER_SUFFIX = ".pooler.supabase.com"
SCRAM_LIBPQ = 160000  # libpq learnt require_auth in PostgreSQL 16


def is_local_host(host: str) -> bool:
    """One host (or hostaddr) that is loopback or a Unix socket folder."""
    if host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local(found: dict[str, str]) -> bool:
    """Plaintext is acceptable by default only where every place libpq may connect is this machine.

    Every host of a host list and every hostaddr counts (libpq tries them in turn and connects to
    the hostaddr, whatever the host says), and the host must be written in the file: without
    one, libpq takes PGHOST or a default from wherever the task runs.
    """
    hosts = [h.strip() for h in found.get("host", "").split(",")]
    addrs = [a.strip() for a in found.get("hostaddr", "").split(",") if a.strip()]
    if not found.get("host") or not all(hosts):
        return False
    return all(is_local_host(place) for place in hosts + addrs)


def describe_hosts(found: dict[str, str]) -> str:
    return found.get("hostaddr") or found.get("host") or "the host from PGHOST or libpq's default"


def params(env: Environment) -> dict[str, str]:
    """The environment's libpq parameters with the TLS policy applied (refusals are exit 2)."""
    found = conninfo.parse(env.require_db())
    if is_local(found):
        return found
    mode = found.get("sslmode")
    if mode in INSECURE_MODES and not env.insecure_tls:
        raise UserError(
            f"{env.name}: sslmode={mode} would let the connection to {describe_hosts(found)} go unencrypted; use "
            "sslmode=require or verify-full (the default), or set insecure_tls = true in its section if you must"
        )
    if mode is None:
        found["sslmode"] = "verify-full" if env.ssl_root_cert else "require"
    if env.ssl_root_cert:
        found.setdefault("sslrootcert", env.ssl_root_cert)
    return found


def password_rule(env: Environment, found: dict[str, str], client: str, cannot_refuse: str | None) -> dict[str, str]:
    """The one rule for every client that may send a password to a remote host.

    A client whose libpq knows `require_auth` (16+) sends it by SCRAM only, so a server asking for
    it in clear text gets nothing. A client that cannot refuse (`cannot_refuse` says why: an older
    libpq, the CLI's own driver) reaches a remote host only over a verified certificate
    (`verify-full`), so no one between can ask it. Loopback hosts and `insecure_tls` sections are
    left as they are, as is a `require_auth` the user wrote.
    """
    if is_local(found) or env.insecure_tls or "require_auth" in found:
        return found
    if cannot_refuse is None:
        return {**found, "require_auth": "scram-sha-256"}
    if found.get("sslmode") != "verify-full":
        raise UserError(
            f"{env.name}: {client} cannot refuse to send the password in clear text ({cannot_refuse}), so it "
            f"is given one for {describe_hosts(found)} only over a verified certificate: set ssl_root_cert "
            f"in [{env.name}] (the project's CA, for sslmode=verify-full)"
        )
    return found


def protection(env: Environment, found: dict[str, str], cannot_refuse: str | None) -> str:
    """How `password_rule` protects a client's password on the way to this environment (for inv doctor);
    raises as the rule does where the client would be refused."""
    if is_local(found):
        return "loopback"
    if env.insecure_tls:
        return "unprotected (insecure_tls)"
    if "require_auth" in found:
        return f"require_auth={found['require_auth']} (as written)"
    if cannot_refuse is None:
        return "SCRAM only (require_auth)"
    password_rule(env, found, "it", cannot_refuse)
    return "verified certificate (verify-full)"


def libpq_gap(version: int) -> str | None:
    """Why a libpq of this version cannot refuse a clear-text password request, or None if it can."""
    return None if version >= SCRAM_LIBPQ else f"libpq {version // 10000} has no require_auth; 16+ has"


@cache
def tool_libpq_gap(binary: str) -> str | None:
    """Whether a PostgreSQL client tool's libpq knows require_auth, asked of the tool itself: a libpq
    before 16 refuses the unknown option before it connects anywhere; a newer one then fails to
    reach a socket folder that does not exist."""
    import subprocess

    from ops.childenv import child_env

    probe = "require_auth=scram-sha-256 host=/nonexistent-ops-probe port=1 connect_timeout=2"
    try:
        answer = subprocess.run(
            [binary, "--dbname", probe, "--schema-only" if "pg_dump" in Path(binary).name else "--no-psqlrc"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
            env=child_env("postgres"),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"its libpq could not be asked: {error}"
    if 'invalid connection option "require_auth"' in answer.stderr:
        return f"{Path(binary).name}'s libpq is older than 16: no require_auth"
    return None


CLI_GAP = "its Go driver has no require_auth"


def for_psycopg(env: Environment) -> str:
    """psycopg's connection string, under the password rule (see `password_rule`)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**password_rule(env, params(env), "psycopg", libpq_gap(psycopg.pq.version())))


def is_transaction_pooler(found: dict[str, str]) -> bool:
    return found.get("port") == TRANSACTION_POOLER_PORT


def session_params(env: Environment, tool: str) -> dict[str, str]:
    """Parameters for a tool that needs a whole session (pg_dump, `supabase db push`).

    Supabase's transaction pooler (:6543) becomes its session pooler (:5432) on the same
    host; any other transaction-mode URL is refused.
    """
    found = params(env)
    if not is_transaction_pooler(found):
        return found
    if found.get("host", "").endswith(SUPABASE_POOLER_SUFFIX):
        progress(
            f"{env.name}: {tool} needs a session: using the session pooler (port {SESSION_POOLER_PORT}) "
            f"instead of the transaction pooler (port {TRANSACTION_POOLER_PORT})"
        )
        return {**found, "port": SESSION_POOLER_PORT}
    raise UserError(
        f"{env.name}: {tool} cannot work through a transaction-mode pooler (port {TRANSACTION_POOLER_PORT}): "
        "point db_url at the session pooler (port 5432) or the direct host db.<ref>.supabase.co"
    )


def for_pg_tool(env: Environment, binary: str) -> str:
    """The connection string for pg_dump or psql (`binary`, the path that will run), under the password rule."""
    from psycopg.conninfo import make_conninfo

    name = Path(binary).name
    found = session_params(env, name)
    return make_conninfo(**password_rule(env, found, name, None if is_local(found) else tool_libpq_gap(binary)))


def for_cli(env: Environment) -> str:
    """A postgresql:// URL for the Supabase CLI (it reads URLs, not key=value strings)."""
    found = password_rule(env, dict(session_params(env, "supabase db push")), "the Supabase CLI", CLI_GAP)
    user, host, port, dbname = (found.pop(k, "") for k in ("user", "host", "port", "dbname"))
    netloc = (quote(user, safe="") + "@" if user else "") + (f"[{host}]" if ":" in host else host)
    netloc += f":{port}" if port else ""
    query = urlencode(found, quote_via=quote)  # %20, not "+": libpq's own URI parser reads no "+" as a space
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")
