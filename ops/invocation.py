"""The command line of the running task, rebuilt from its flags: for resume and re-run hints that keep
every flag the person gave (`--dry-run`, `--yes`, `--jobs`...), not only the ones a hint thought of."""

from __future__ import annotations

import shlex
from typing import Any

_running: tuple[str, dict[str, Any]] | None = None  # one task per process


def record(task: str, flags: dict[str, Any]) -> None:
    global _running
    _running = (task, dict(flags))


def command(*, drop: tuple[str, ...] = (), add: dict[str, Any] | None = None, fallback: str = "") -> str:
    """`inv <task> <flags>` as this run was started, less `drop`, with `add` set; `fallback` outside a task."""
    if _running is None:
        return fallback
    task, flags = _running
    flags = {k.rstrip("_"): v for k, v in flags.items() if k.rstrip("_") not in drop} | (add or {})
    words = ["inv", task]
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value in (None, False, "", []):
            continue
        elif isinstance(value, list):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)
