"""The fields of a libpq connection string, as libpq reads them.

Every task checks every `db_url` of environments.ini when it loads it (no password in it, the
right project's host). libpq's own parser is the authority, but importing psycopg to reach it
costs each task about 70 ms. The plain form users paste from the dashboard,
`postgresql://user@host:port/dbname?sslmode=require`, with nothing percent-encoded and no
password, can be read one way only, so it is read here; anything else goes to libpq.
tests/unit/test_conninfo.py checks the two agree.
"""

from __future__ import annotations

import re

PLAIN_URI = re.compile(
    r"postgres(?:ql)?://(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]+))?"
    r"(?:/(?P<dbname>[A-Za-z0-9._-]*))?(?:\?(?P<query>[A-Za-z0-9._/=&-]*))?"
)
# Parameters that name no user, host or secret, so a plain URI may carry them.
PLAIN_PARAMETERS = {"sslmode", "sslrootcert", "connect_timeout", "application_name", "target_session_attrs"}


class InvalidConninfo(ValueError):
    """libpq refuses the string."""


def parse(text: str) -> dict[str, str]:
    """The fields the string sets (libpq's keywords), as libpq's PQconninfoParse reads them."""
    plain = read_plain(text)
    if plain is not None:
        return plain
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return {name: str(value) for name, value in conninfo_to_dict(text).items() if value is not None}
    except ProgrammingError:
        raise InvalidConninfo("not a valid PostgreSQL connection string") from None


def read_plain(text: str) -> dict[str, str] | None:
    """The fields of a plain URI (see the module's doc), or None for anything else."""
    match = PLAIN_URI.fullmatch(text)
    if not match:
        return None
    found = {name: match[name] for name in ("user", "host", "port", "dbname") if match[name]}
    for pair in (match["query"] or "").split("&") if match["query"] else []:
        name, equals, value = pair.partition("=")
        if not equals or "=" in value or not value or name not in PLAIN_PARAMETERS or name in found:
            return None
        found[name] = value
    return found
