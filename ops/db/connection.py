"""Connect to an environment's database with psycopg; the password comes only from the environment."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ops.config import Environment
from ops.db import url as dburl
from ops.errors import OperationFailed, UserError, first_line
from ops.safety import ask

if TYPE_CHECKING:
    import psycopg

PASSWORD_HINTS = ("password authentication failed", "no password supplied", "password is required")
_prompted: dict[str, str] = {}  # passwords typed at a prompt, kept for this process only


def password_for(env: Environment) -> str | None:
    """The database password: its environment variable, else what the user typed this run."""
    return env.secret(env.db_password_var) or _prompted.get(env.name)


def connect(
    env: Environment, *, autocommit: bool = False, application: str = "ops", timeout: int = 15
) -> psycopg.Connection:
    import psycopg

    password = password_for(env)
    url = dburl.for_psycopg(env)
    for attempt in range(2):
        try:
            # No prepared statements: a transaction-mode pooler (Supabase's :6543) may hand each
            # transaction to another server connection, where the statement does not exist.
            conn = psycopg.connect(
                url,
                password=password,
                autocommit=autocommit,
                connect_timeout=timeout,
                application_name=application,
                prepare_threshold=None,
            )
            if password and not env.secret(env.db_password_var):
                _prompted[env.name] = password
            return conn
        except psycopg.OperationalError as error:
            asks_password = any(hint in str(error) for hint in PASSWORD_HINTS)
            if asks_password and password is None and attempt == 0:
                password = prompt_password(env)
                continue
            if asks_password:
                raise UserError(f"{env.name}: the database refused the password from {env.db_password_var}") from None
            raise OperationFailed(f"{env.name}: cannot connect to the database: {first_line(error)}") from None
    raise AssertionError("unreachable")


def prompt_password(env: Environment) -> str:
    if not sys.stdin.isatty():
        raise UserError(f"{env.name}: the database asks for a password: set {env.db_password_var}")
    return ask(f"Database password for {env.name} ({env.db_password_var}): ", hidden=True)
