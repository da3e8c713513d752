"""What every benchmark shares: the Bench (our tasks run as a user runs them, each line recorded
against bench/targets.py), wall time and peak memory of a command, environments files, tools.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.targets import line, result
from devstack import localstack
from ops import config as ops_config

REPO = Path(__file__).resolve().parent.parent


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.results: list[dict] = []
        self.environ = dict(os.environ)

    def record(
        self,
        target: str,
        what: str,
        ours: float,
        reference: float,
        reference_tool: str,
        unit: str = "s",
        also: bool = True,
    ) -> None:
        """One line against `target`, a key of bench/targets.py's TARGETS (`also`: its extra condition)."""
        self.results.append(result(target, what, ours, reference, reference_tool, unit, also))
        print(line(self.results[-1]), flush=True)

    def inv(self, *args: str) -> float:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
            cwd=self.work,
            env=self.environ,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"inv {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return elapsed

    def inv_measured(self, *args: str) -> tuple[float, float]:
        """Wall seconds and peak RSS (MiB) of one run, as a user would see it."""
        return measured(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=self.work, env=self.environ
        )

    def inv_peak_memory(self, *args: str) -> int:
        """Peak RSS (KiB) of one run."""
        return int(self.inv_measured(*args)[1] * 1024)


# The command runs under this small process: a child forked from the bench itself would count the
# bench's own memory, copied at fork, in its peak (ru_maxrss keeps the high-water mark across exec).
PEAK_OF = (
    "import os, sys; pid = os.spawnvp(os.P_NOWAIT, sys.argv[1], sys.argv[1:]); _, status, usage = os.wait4(pid, 0); "
    "print(f'peak-rss-kib={usage.ru_maxrss}', file=sys.stderr); sys.exit(os.waitstatus_to_exitcode(status))"
)


def measured(argv: list[str], **kwargs) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a command (its own process: servers are not counted)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        **kwargs,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} failed: {done.stderr[-2000:]}")
    peak = int(done.stderr.rsplit("peak-rss-kib=", 1)[1].strip())
    return elapsed, peak / 1024


def timed(argv, **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kwargs)
    return time.perf_counter() - started


def write_ini(path: Path, envs: dict[str, dict], supabase_dir: Path) -> None:
    base = ops_config.load(REPO / "environments.ini")
    lines = ["[project]", f"supabase_dir = {supabase_dir}", ""]
    for name, values in envs.items():
        lines += [f"[{name}]", *[f"{k} = {v}" for k, v in values.items()], ""]
    lines += [
        "[sync-data]",
        "safe_tables = " + " ".join(base.sync_data.safe_tables),
        "blocked_tables = " + " ".join(base.sync_data.blocked_tables),
        "",
        "[storage]",
        "buckets = " + " ".join(base.storage.buckets),
        "jobs = 4",
        "",
    ]
    path.write_text("\n".join(lines))


def plain(url: str) -> str:
    return url.replace("?sslmode=disable", "")


def tool(name: str) -> str:
    candidate = localstack.postgres_bindir() / name
    return str(candidate) if candidate.exists() else name


def du(path: Path) -> int:
    """Bytes on disk, counting each hard-linked file once (as `du` does)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])
