"""The ops journal: who changed which environment, when, with what result.

Every task that writes appends one JSON line to `[journal] path` (default
`ops-journal.jsonl` beside environments.ini): UTC time, user, host, task and flags (never a
secret: secrets are never flags), environments and refs, the git commit of the working tree
(and whether it was dirty), exit code, a one-line outcome, duration, and the run folder or
backup it produced. A line is written even when the task fails or is interrupted; each line
goes out in one `write` on a file opened for appending, under an exclusive lock, so lines
never interleave or break. Failing to write the journal only warns: it never hides the
task's own result.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops import git as gitrepo
from ops.errors import UserError
from ops.report import Renderable, Result, Table

ENV_FLAGS = ("env", "from_", "to", "into", "sandbox", "preprod", "prod", "envs")
PATH_KEYS = ("run_dir", "path", "backup")
DEFAULT_NAME = "ops-journal.jsonl"


@dataclass
class Entry:
    task: str
    flags: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    outcome: str = ""
    produced: list[str] = field(default_factory=list)
    deployed_commit: str | None = None


def begin(task: str, flags: dict[str, Any]) -> Entry:
    """The line of a task run starting now, with the flags it was given."""
    return Entry(task, {k.rstrip("_"): v for k, v in flags.items() if v not in (None, False, [], "")})


def note(entry: Entry, result: Renderable) -> None:
    """Take the outcome and the folders a result produced for the task's line."""
    data = result.to_dict()
    lines = [line for line in result.footer().splitlines() if line.strip()]
    entry.outcome = lines[-1] if lines else summarize(data)
    entry.produced = sorted(set(found_paths(data)))
    entry.deployed_commit = data.get("commit") or entry.deployed_commit


def summarize(data: dict[str, Any]) -> str:
    """A one-line account from a result's counts (for results without a footer)."""
    counts = {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}
    for key in ("steps", "tables", "buckets", "backups", "envs", "functions", "checks"):
        if isinstance(data.get(key), list):
            counts.setdefault(key, len(data[key]))
    return ", ".join(f"{k} {v}" for k, v in counts.items())[:200]


def found_paths(data: Any) -> list[str]:
    if isinstance(data, dict):
        own = [str(v) for k, v in data.items() if k in PATH_KEYS and isinstance(v, str) and v.startswith("/")]
        return own + [p for v in data.values() for p in found_paths(v)]
    if isinstance(data, list):
        return [p for item in data for p in found_paths(item)]
    return []


def finish(entry: Entry, exit_code: int, failure: str = "") -> None:
    """Append the task's line; on any trouble, warn on stderr and carry on."""
    try:
        from ops import config as ops_config

        try:
            path, refs = journal_path(), {}
        except UserError:
            return  # no environments file, so no project folder: the task was refused before it began
        try:
            loaded = ops_config.load(check_refs=False)
            path = loaded.journal_path
            refs = {name: env.ref for name, env in loaded.environments.items()}
        except Exception:  # noqa: BLE001 -- a broken environments file still gets its line, at the default path
            pass
        envs = [
            name
            for key in ENV_FLAGS
            for value in _as_list(entry.flags.get(key.rstrip("_")))
            for name in re.split(r"[\s,]+", value)
            if name
        ]
        commit, dirty = working_tree(path.parent)
        line = {
            "time": entry.time,
            "user": user(path.parent),
            "host": socket.gethostname(),
            "task": entry.task,
            "flags": entry.flags,
            "dry_run": bool(entry.flags.get("dry_run")),
            "envs": envs,
            "refs": {name: refs[name] for name in envs if name in refs},
            "commit": commit,
            "dirty": dirty,
            "deployed_commit": entry.deployed_commit,
            "exit_code": exit_code,
            "outcome": (failure or entry.outcome or ("done" if exit_code == 0 else "failed")).splitlines()[0][:300],
            "seconds": round(time.monotonic() - entry.started, 3),
            "produced": entry.produced,
        }
        append(path, json.dumps(line, ensure_ascii=False, default=str) + "\n")
    except Exception as error:  # noqa: BLE001 -- the journal never hides the task's own result
        print(f"warning: could not write the ops journal: {error}", file=sys.stderr)


def _as_list(value: Any) -> list[str]:
    if value in (None, False, True):
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def journal_path() -> Path:
    from ops.config import config_path

    return config_path().parent / DEFAULT_NAME


def append(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # [journal] path may name a folder not made yet
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        # A flag that is not UTF-8 (argv bytes, kept as surrogates) is written as its escape.
        os.write(handle, line.encode("utf-8", "backslashreplace"))
    finally:
        os.close(handle)


def working_tree(folder: Path) -> tuple[str | None, bool | None]:
    commit = gitrepo.out(folder, "rev-parse", "HEAD")
    return (commit, bool(gitrepo.out(folder, "status", "--porcelain"))) if commit else (None, None)


def user(folder: Path) -> str:
    return gitrepo.out(folder, "config", "user.email") or getpass.getuser()


# ---------------------------------------------------------------- reading


@dataclass
class JournalReport(Result):
    entries: list[dict[str, Any]]
    damaged: int = 0  # lines that are not a journal entry (cut short, edited, not UTF-8)

    def rows(self) -> Table:
        def task(entry: dict[str, Any]) -> str:
            return str(entry.get("task", "")) + (" (dry run)" if entry.get("dry_run") else "")

        return Table(
            ["time", "user", "task", "envs", "exit", "outcome", "seconds"],
            [
                [
                    e.get("time"),
                    e.get("user"),
                    task(e),
                    ",".join(e.get("envs", [])),
                    e.get("exit_code"),
                    e.get("outcome"),
                    e.get("seconds"),
                ]
                for e in self.entries
            ],
        )

    def footer(self) -> str:
        notes = [] if self.entries else ["no journal entries match"]
        if self.damaged:
            notes.append(f"{self.damaged} damaged line{'s' if self.damaged != 1 else ''} skipped")
        return "\n".join(notes)


def parse_since(value: str) -> datetime:
    """`7d`, `24h`, `30m`, or an ISO date/time (UTC)."""
    match = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(match[1])})
    try:
        return aware(datetime.fromisoformat(value))
    except ValueError:
        raise UserError(f"--since takes 7d, 24h, 30m or a date like 2026-11-01, not {value!r}") from None


def aware(moment: datetime) -> datetime:
    """A time written without a zone is UTC, as the journal writes every time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def entry_of(raw: bytes) -> dict[str, Any] | None:
    """One line as a journal entry, or None when it is damaged."""
    try:
        entry = json.loads(raw.decode("utf-8"))
        if not isinstance(entry, dict):
            return None
        entry["_time"] = aware(datetime.fromisoformat(str(entry.get("time", ""))))
        envs = entry.get("envs", [])
        if not isinstance(envs, list):
            return None
        return entry
    except (UnicodeDecodeError, ValueError, TypeError):
        return None


def read(
    path: Path,
    *,
    env: str | None = None,
    task: str | None = None,
    since: str | None = None,
    last: int | None = None,
) -> JournalReport:
    """The matching lines, newest first (the `last` 20 unless told); a damaged line is skipped and
    counted, never fatal."""
    last = 20 if last is None else last
    if last < 1:
        raise UserError(f"--last takes how many runs to show, 1 or more, not {last}")
    start = parse_since(since) if since else None
    entries, damaged = [], 0
    if path.is_file():
        for raw in path.read_bytes().splitlines():
            if not raw.strip():
                continue
            entry = entry_of(raw)
            if entry is None:
                damaged += 1
                continue
            moment = entry.pop("_time")
            if env and env not in [str(name) for name in entry["envs"]]:  # exact names, never substrings
                continue
            if task and entry.get("task") != task:
                continue
            if start and moment < start:
                continue
            entries.append(entry)
    return JournalReport(list(reversed(entries))[:last], damaged)
