"""A temporary project: an environments file over real services, and `inv` run against it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ops import config as ops_config

REPO = Path(__file__).resolve().parents[2]
FAKE_DB_PASSWORD = "pw-Zq81-never-print-me"


@dataclass
class Result:
    code: int
    out: str
    err: str


SECRET_NAME_HINTS = ("PASSWORD", "SECRET", "TOKEN")
PROJECTS: list = []  # every Project of the running test, audited for leaked secrets afterwards


@dataclass
class Project:
    """A temporary environments file with real databases behind its environments.

    Every task runs with the real CLI behind a wrapper that records its argv; after each
    test the outputs, the files written and the recorded argv are searched for secrets.
    """

    root: Path
    envs: dict[str, dict] = field(default_factory=dict)
    extra: str = ""
    safe_extra: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    supabase_dir: Path = REPO / "supabase"

    def __post_init__(self) -> None:
        PROJECTS.append(self)

    @property
    def argv_log(self) -> Path:
        return self.root / "cli-argv.log"

    def known_secrets(self, env: dict | None = None) -> set[str]:
        values = {FAKE_DB_PASSWORD}
        for source in (self.secrets, env or {}):
            values |= {v for k, v in source.items() if any(h in k for h in SECRET_NAME_HINTS) and v}
        return values

    def audit(self) -> None:
        """No secret in any file we wrote (tmp/, backups/) nor in any argv the CLI was given."""
        secrets = [s.encode() for s in self.known_secrets()]
        written = [p for folder in ("tmp", "backups") for p in (self.root / folder).rglob("*") if p.is_file()]
        for path in [*written, self.argv_log]:
            if path.is_file():
                data = path.read_bytes()
                leaked = [s for s in secrets if s in data]
                assert not leaked, f"a secret leaked into {path}"

    def cli_recorder(self) -> Path:
        """The real CLI behind a script that records every argv (paths baked in: the CLI gets a minimal env)."""
        script = self.root / "supabase-argv-recorder"
        real = REPO / ".tools" / "supabase-cli" / "node_modules" / ".bin" / "supabase"
        script.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "$*" >> "{self.argv_log}"\nexec "{real}" "$@"\n')
        script.chmod(0o755)
        return script

    @property
    def ini(self) -> Path:
        return self.root / "environments.ini"

    def url(self, env: str) -> str:
        return self.envs[env]["db_url"]

    def write(self) -> Path:
        repo = ops_config.load(REPO / "environments.ini")
        lines = ["[project]", f"supabase_dir = {self.supabase_dir}", ""]
        for name, values in self.envs.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {v}" for k, v in values.items()]
            lines.append("")
        lines += [
            "[sync-data]",
            "export_dir = tmp/data-sync",
            "safe_tables = " + " ".join(repo.sync_data.safe_tables + self.safe_extra),
            "blocked_tables = " + " ".join(repo.sync_data.blocked_tables),
        ]
        lines += [f"key.{table} = {cols}" for table, cols in self.keys.items()]
        lines += ["", "[storage]", "backup_dir = backups/storage", "buckets = " + " ".join(repo.storage.buckets)]
        lines.append(self.extra)
        self.ini.write_text("\n".join(lines) + "\n")
        return self.ini

    def run(self, *args: str, env: dict | None = None, stdin=subprocess.DEVNULL, timeout: float = 300) -> Result:
        self.write()
        environ = {
            **os.environ,
            "OPS_ENVIRONMENTS": str(self.ini),
            "SUPABASE_CLI": str(self.cli_recorder()),
            **self.secrets,
            **(env or {}),
        }
        completed = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
            cwd=self.root,
            env=environ,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        leaked = [s for s in self.known_secrets(env) if s in completed.stdout + completed.stderr]
        assert not leaked, f"inv {' '.join(args)} printed a secret"
        # Every run of every test, failures included: a routine failure is one line, never a traceback.
        assert "Traceback" not in completed.stderr, f"inv {' '.join(args)} printed a traceback:\n{completed.stderr}"
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def start(self, *args: str, env: dict | None = None, stderr: int = subprocess.PIPE) -> subprocess.Popen:
        """`inv ARGS` in the background (for interrupts and races); Ctrl-C reaches it as KeyboardInterrupt."""
        self.write()
        environ = {
            **os.environ,
            "OPS_ENVIRONMENTS": str(self.ini),
            "SUPABASE_CLI": str(self.cli_recorder()),
            **self.secrets,
            **(env or {}),
        }
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
            cwd=self.root,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=interruptible,
        )

    def files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()]


def interruptible() -> None:
    """In a child: Ctrl-C raises KeyboardInterrupt even when the test run itself ignores SIGINT
    (a shell's background job does), so interrupt tests test the code, not how pytest was started."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def at_a_terminal(project, *args: str, typed: bytes):
    """Run a task with standard input on a terminal where a person types `typed`."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, typed)
        return project.run(*args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
