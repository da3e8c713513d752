"""The environment a child process (the Supabase CLI, pg_dump, git) gets: only what it needs.

Never the whole of ours, which holds every environment's `OPS_*` secrets: a child gets
the basics (PATH, HOME, locale, proxies, CA bundles), the non-secret settings of its own
tool, and the one secret of the call, passed in explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

BASICS = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "NO_COLOR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
}
PROXIES = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"}
TOOL_PREFIXES = {
    "supabase": ("SUPABASE_PROFILE", "SUPABASE_HOME", "XDG_CONFIG_HOME", "DO_NOT_TRACK"),
    "postgres": (
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGCONNECT_TIMEOUT",
        "PGAPPNAME",
        "PGSERVICEFILE",
        "PGSYSCONFDIR",
        "PGTZ",
        "PGCLIENTENCODING",
    ),
    "git": (
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_ASKPASS",
        "SSH_AUTH_SOCK",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "XDG_CONFIG_HOME",
    ),
}


def child_env(tool: str, secrets: dict[str, str | None] | None = None, *, keep: Iterable[str] = ()) -> dict[str, str]:
    """A minimal environment for `tool` (supabase, postgres or git), plus the given secrets that are set."""
    wanted = BASICS | PROXIES | {p.lower() for p in PROXIES} | set(TOOL_PREFIXES[tool]) | set(keep)
    env = {name: value for name, value in os.environ.items() if name in wanted or name.startswith("LC_")}
    env.update({name: value for name, value in (secrets or {}).items() if value})
    return env
