"""`nox -s bench`: our tasks against the reference tools, in the same run, on the same local services.

Prints one line per comparison with the ratio and its target (bench/targets.py), writes
bench/results.json, and exits 1 when a line missed its target.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)  # bench/ itself off the path: its modules are bench.*, shadowing no top-level name

from bench.backup import bench_remote
from bench.deploy import bench_deploy
from bench.harness import Bench, timed, write_ini
from bench.storage import bench_scale, bench_storage
from bench.sync_data import bench_sync_data
from bench.targets import print_table, verdict
from devstack import localstack
from devstack.mgmt_standin import ManagementAPI
from ops.platform import supabase_cli

KILLS_PER_TASK = 25  # 100 SIGKILLs over sync-data, sync-storage, backup-storage and restore-storage


def run_kill_loop() -> None:
    """The kill test of the suite at full size: every kill followed by its checks; fails the bench if one fails."""
    print(f"kill loop: {KILLS_PER_TASK} SIGKILLs per task at seeded random moments", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_kills.py"],
        cwd=REPO,
        check=True,
        env={**os.environ, "OPS_KILLS": str(KILLS_PER_TASK)},
    )


GROUPS = ("sync-data", "storage", "scale", "remote", "deploy", "list", "kills")


def main() -> int:
    unknown = sorted(set(sys.argv[1:]) - set(GROUPS))
    if unknown:
        print(f"bench: no group {', '.join(unknown)}; choose from {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    supabase_cli.install_pinned()
    # Our runs start as an installed package's do, from bytecode (pip compiles it at install): with
    # PYTHONDONTWRITEBYTECODE set, as on this machine, each run would compile ops/ again (15-20 ms).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "ops"), str(REPO / "tasks.py")], check=True)
    work = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    bench = Bench(work)
    pg: localstack.LocalPostgres | None = None
    servers: list[localstack.LocalS3] = []
    api = ManagementAPI(
        deploy_delay=1.0, projects={"benchdeployxxxxxxxxx", "benchdeployoursxxxxx", "benchdeployfailxxxxx"}
    )
    chosen = set(sys.argv[1:]) or set(GROUPS)  # `nox -s bench -- sync-data`
    ini = work / "environments.ini"
    write_ini(ini, {}, REPO / "supabase")
    bench.environ["OPS_ENVIRONMENTS"] = str(ini)
    try:
        if "sync-data" in chosen:
            pg = localstack.start_postgres()
            bench_sync_data(bench, pg)
            pg.stop()  # idle or vacuuming, it would take CPU from the groups after it
        if "storage" in chosen:
            bench_storage(bench, servers)
        if "scale" in chosen:
            bench_scale(bench, servers)
        if "remote" in chosen:
            pg = pg.start() if pg else localstack.start_postgres()
            bench_remote(bench, servers, pg)
            pg.stop()
        if "deploy" in chosen:
            bench_deploy(bench, api)
        if "list" in chosen:
            bench_list(bench)
        if "kills" in chosen:
            run_kill_loop()
    finally:
        api.stop()
        for server in servers:
            server.stop()
        if pg:
            pg.stop()
            shutil.rmtree(pg.datadir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    out = REPO / "bench" / "results.json"
    out.write_text(json.dumps({"results": bench.results}, indent=2) + "\n")
    print_table(bench.results)
    print(f"wrote {out}")
    return verdict(bench.results)


# ---------------------------------------------------------------- 8 inv --list


def bench_list(bench: Bench) -> None:
    bare = bench.work / "bare"
    bare.mkdir()
    (bare / "tasks.py").write_text('from invoke import task\n\n\n@task\ndef hello(c):\n    """Say hello."""\n')

    def best_of(cwd: Path, runs: int = 7) -> float:
        return min(
            timed([sys.executable, "-m", "invoke", "--list"], cwd=cwd, stdout=subprocess.DEVNULL) for _ in range(runs)
        )

    reference, ours = best_of(bare), best_of(REPO)
    bench.record("inv --list", "inv --list", ours, reference, "a bare invoke task file")


if __name__ == "__main__":
    sys.exit(main())
