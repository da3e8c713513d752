"""Running git: the one place that builds its argv and gives it a minimal environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ops.childenv import child_env


def run(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=child_env("git"),
        timeout=timeout,
    )


def run_bytes(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """For binary output (`git archive`)."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, env=child_env("git"), timeout=timeout
    )


def out(cwd: Path, *args: str) -> str:
    """git's output, stripped; '' when git fails or is missing (for records, never for decisions)."""
    try:
        result = run(cwd, *args, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def reason(stderr: str, default: str) -> str:
    """Why git failed: its first `fatal:` or `error:` line (the cause; the lines after it are advice
    such as "Please make sure you have the correct access rights"), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    return lines[-1] if lines else default
