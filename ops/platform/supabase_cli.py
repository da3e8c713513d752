"""The one place that runs the Supabase CLI: argv lists, secrets only in the child's environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ops.childenv import child_env
from ops.config import REPO_ROOT, Config, Environment
from ops.errors import UserError, last_line

PINNED_VERSION = "2.117.0"
PINNED_DIR = REPO_ROOT / ".tools" / "supabase-cli"


def binary() -> str:
    """SUPABASE_CLI, else the pinned copy the noxfile installs, else `supabase` on PATH."""
    explicit = os.environ.get("SUPABASE_CLI")
    if explicit:
        return explicit
    pinned = PINNED_DIR / "node_modules" / ".bin" / "supabase"
    if pinned.exists():
        return str(pinned)
    found = shutil.which("supabase")
    if found:
        return found
    if (REPO_ROOT / "noxfile.py").is_file():  # run from the checkout
        how = f"run `nox -s cli` (installs the pinned supabase@{PINNED_VERSION})"
    else:  # installed from the wheel: no noxfile beside it
        how = f"install it (`npm install --global supabase@{PINNED_VERSION}`)"
    raise UserError(f"Supabase CLI not found: {how}, or set SUPABASE_CLI to its path")


def install_pinned(folder: Path = PINNED_DIR) -> Path:
    """Install the pinned CLI from npm into a folder we own (idempotent)."""
    exe = folder / "node_modules" / ".bin" / "supabase"
    package = folder / "node_modules" / "supabase" / "package.json"
    if exe.exists() and f'"version": "{PINNED_VERSION}"' in package.read_text(encoding="utf-8"):
        return exe
    folder.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if not npm:
        raise UserError("npm is needed to install the Supabase CLI: install Node.js 18+")
    subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(folder),
            "--no-audit",
            "--no-fund",
            "--save-exact",
            f"supabase@{PINNED_VERSION}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return exe


def api_url() -> str:
    """The Management API the CLI talks to: its profile's api_url (SUPABASE_PROFILE), else the platform's."""
    profile = os.environ.get("SUPABASE_PROFILE")
    if profile and Path(profile).is_file():
        for line in Path(profile).read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "api_url" and value.strip():
                return value.strip().strip("'\"").rstrip("/")
    return "https://api.supabase.com"


def cli_workdir(config: Config) -> Path:
    """The CLI looks for `<workdir>/supabase`; our supabase_dir is that folder."""
    if config.supabase_dir.name != "supabase":
        raise UserError(f"the Supabase CLI needs the project folder to be named 'supabase': {config.supabase_dir}")
    return config.supabase_dir.parent


@dataclass
class CliResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """The CLI's own reason for failing: its last line that says something."""
        return last_line(self.stderr or self.stdout, f"exit {self.returncode}")

    @property
    def token_problem(self) -> str:
        """'missing', 'malformed' or 'rejected' when the failure is the access token's ('' otherwise)."""
        return token_problem(self.stderr or self.stdout)


def token_problem(text: str) -> str:
    lowered = text.lower()
    if "invalid access token format" in lowered:
        # The CLI says the same of no token at all when SUPABASE_ACCESS_TOKEN is unset and nobody logged in.
        return "malformed" if os.environ.get("SUPABASE_ACCESS_TOKEN") else "missing"
    if "access token not provided" in lowered:
        return "missing"
    if "status 401" in lowered or "unauthorized" in lowered:
        return "rejected"
    return ""


def token_error(result: CliResult, env_name: str) -> str:
    """One line for a missing or refused token, with the fix."""
    if result.token_problem == "missing":
        return (
            f"{env_name}: SUPABASE_ACCESS_TOKEN is missing ({result.reason}); set it to a personal access "
            "token (sbp_...) or run `supabase login`"
        )
    if result.token_problem == "malformed":
        return (
            f"{env_name}: SUPABASE_ACCESS_TOKEN is malformed ({result.reason}); set it to a personal access "
            "token (sbp_ and 40 hex digits) from the dashboard's Access Tokens page"
        )
    return (
        f"{env_name}: SUPABASE_ACCESS_TOKEN is rejected ({result.reason}); check that the token is current "
        "and has access to this project"
    )


def run(
    args: list[str],
    *,
    workdir: Path,
    db_password: str | None = None,
    access_token: str | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
) -> CliResult:
    """Run `supabase ARGS --workdir DIR`; secrets travel only through the child's environment.

    With `on_line`, stderr is merged into stdout and every line is passed on as it comes.
    """
    argv = [binary(), *args, "--workdir", str(workdir)]
    # The password of this one database, or the token for Management API calls: never both, never others.
    secrets: dict[str, str | None] = (
        {"PGPASSWORD": db_password}
        if db_password
        else {"SUPABASE_ACCESS_TOKEN": access_token or os.environ.get("SUPABASE_ACCESS_TOKEN")}
    )
    env = {"DO_NOT_TRACK": "1", **child_env("supabase", secrets)}
    if on_line is None:
        completed = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        return CliResult(argv, completed.returncode, completed.stdout, completed.stderr)
    lines = []
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
        returncode = process.wait(timeout=timeout)
    return CliResult(argv, returncode, "".join(lines), "")


@dataclass
class FunctionList:
    """`supabase functions list` of one project: the CLI's answer, and slug -> version when it gave a list."""

    result: CliResult
    versions: dict[str, int] | None


def list_functions(config: Config, env: Environment, *, timeout: float = 60) -> FunctionList:
    """The project's deployed functions, asked once the same way by every task that needs them."""
    import json

    result = run(
        ["functions", "list", "--project-ref", env.ref, "-o", "json"], workdir=cli_workdir(config), timeout=timeout
    )
    versions = None
    if result.ok:
        try:
            versions = {f["slug"]: int(f.get("version") or 0) for f in json.loads(result.stdout)}
        except (ValueError, KeyError, TypeError):
            versions = None
    return FunctionList(result, versions)
