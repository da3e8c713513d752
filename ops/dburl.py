"""How each client reaches an environment's database: TLS policy, poolers, and the connection string per tool.

Hosted Supabase serves databases on remote hosts, directly (`db.<ref>.supabase.co`, often
IPv6 only) or through the shared pooler (`postgres.<ref>@aws-0-<region>.pooler.supabase.com`,
port 5432 session mode, 6543 transaction mode). For any host that is not loopback the
connection is encrypted and never falls back to plaintext; every libpq parameter the user
wrote (`hostaddr`, `options`, `target_session_attrs`...) passes through untouched.
"""

from __future__ import annotations

import ipaddress
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


def for_psycopg(env: Environment) -> str:
    """psycopg's connection string; with a new enough libpq, a password never goes out in clear text."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    found = params(env)
    remote = not is_local(found)
    if remote and not env.insecure_tls and "require_auth" not in found and psycopg.pq.version() >= SCRAM_LIBPQ:
        found["require_auth"] = "scram-sha-256"
    return make_conninfo(**found)


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


def for_pg_dump(env: Environment) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**session_params(env, "pg_dump"))


def for_cli(env: Environment) -> str:
    """A postgresql:// URL for the Supabase CLI (it reads URLs, not key=value strings)."""
    found = dict(session_params(env, "supabase db push"))
    user, host, port, dbname = (found.pop(k, "") for k in ("user", "host", "port", "dbname"))
    netloc = (quote(user, safe="") + "@" if user else "") + (f"[{host}]" if ":" in host else host)
    netloc += f":{port}" if port else ""
    query = urlencode(found, quote_via=quote)  # %20, not "+": libpq's own URI parser reads no "+" as a space
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")
