"""`nox -s wheel`: what `pip install supabase-ops` gives a user, through real backups, verifies, restores and a drill.

Every test runs the checkout (an editable install), so a module the wheel leaves out goes unseen
there. This runs the `supabase-ops` script of a virtualenv that holds only the built wheel, from a
folder outside the checkout, against the local stack (devstack/stack.py, on free ports).

    python -m devstack.wheelcheck VENV   # VENV: a virtualenv with the wheel installed, not editable
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack import localstack, stack
from ops import config as ops_config
from ops.platform import supabase_cli


class Failed(Exception):
    pass


def installed_from(venv: Path) -> Path:
    """Where the venv imports `ops` from: its own site-packages, never the checkout."""
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ops; print(ops.__file__)"],
        cwd=tempfile.gettempdir(),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = Path(found).resolve()
    if venv not in path.parents or "site-packages" not in path.parts:
        raise Failed(f"the venv imports ops from {path}, not from an installed wheel (an editable install?)")
    return path.parent


def check(venv: Path) -> None:
    program = venv / "bin" / "supabase-ops"
    print(f"ops installed at {installed_from(venv)}", flush=True)
    with (
        stack.running(free_ports=True, scratch=True, say=False) as local,
        tempfile.TemporaryDirectory(prefix="ops-wheel-") as here,
    ):
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | local.environ
        environ["HOME"] = str(local.home)
        # The CLI as a user has it, on PATH (the pinned copy); nothing else comes from the checkout.
        environ["PATH"] = f"{supabase_cli.PINNED_DIR / 'node_modules' / '.bin'}{os.pathsep}{environ['PATH']}"

        def run(*args: str) -> str:
            print(f"$ supabase-ops {' '.join(args)}", flush=True)
            done = subprocess.run(
                [str(program), *args], cwd=here, env=environ, stdin=subprocess.DEVNULL, capture_output=True, text=True
            )
            if done.returncode != 0 or "Traceback" in done.stderr:
                raise Failed(f"supabase-ops {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
            return done.stdout

        run("--version")
        made = json.loads(run("backup", "--env", "local-prod", "--copy-to", "offsite", "--json"))
        folder = made["steps"][0]["detail"].split(" (")[0]
        print(f"  {made['steps'][0]['detail']}", flush=True)
        run("verify-backup", "--backup", folder)
        run("verify-backup", "--backup", "offsite:latest", "--env", "local-prod")
        run("restore-db", "--backup", folder, "--to", "local-sandbox", "--env", "local-prod", "--json")
        run("restore-storage", "--backup", folder, "--to", "local-sandbox", "--env", "local-prod", "--json")
        config = ops_config.load(local.ini)
        prod, sandbox = config.env("local-prod"), config.env("local-sandbox")
        for table in ("public.plans", "public.profiles", "auth.users"):
            if count_rows(prod.db_url, table) != count_rows(sandbox.db_url, table):
                raise Failed(f"{table}: local-sandbox's rows differ from local-prod's after restore-db")
        if objects(local, prod) != objects(local, sandbox):
            raise Failed("local-sandbox's program-logos differ from local-prod's after restore-storage")
        remote_first(run, local, config)


def remote_first(run: Callable[..., str], local: stack.Stack, config: ops_config.Config) -> None:
    """A backup straight to the target (one new object read; the rest copied into the target's pool
    server-side from the off-site copy above, which predates the pool), listed as sealed, verified, and
    drilled into local-scratch."""
    prod, scratch = config.env("local-prod"), config.env(stack.SCRATCH_ENV)
    s3(local, prod).put_object(Bucket="program-logos", Key="programs/logo-new.svg", Body=b"<svg>new</svg>")
    made = json.loads(run("backup", "--env", "local-prod", "--to", "offsite", "--yes", "--json"))
    detail = made["steps"][0]["detail"]
    print(f"  {detail}", flush=True)
    name = detail.split(" (")[0].split(":")[-1]
    if not detail.startswith("offsite:") or not re.search(
        r"\b1 read, 0 already there, [1-9]\d* copied server-side", detail
    ):
        raise Failed(f"backup --to offsite: expected the one new object read, the rest copied server-side: {detail}")

    listed = json.loads(run("backups", "--env", "local-prod", "--target", "offsite", "--json"))["backups"]
    states = [b["state"] for b in listed if b["series"] == "full" and b["name"] == name]
    if len(states) != 1 or not states[0].startswith("sealed"):
        raise Failed(f"backups --target offsite: {name} is not listed once as sealed: {listed}")

    verified = run("verify-backup", "--backup", "offsite:latest", "--env", "local-prod")
    if name not in verified or not verified.strip().splitlines()[-1].startswith("OK: "):
        raise Failed(f"verify-backup --backup offsite:latest: not an OK of {name}:\n{verified}")

    drilled = run("drill", "--env", "local-prod", "--backup", "offsite:latest", "--into", stack.SCRATCH_ENV, "--yes")
    verdict = drilled.strip().splitlines()[-1]
    stored = sum(len(objects(local, prod, bucket)) for bucket in config.storage.buckets)
    if not re.match(rf"DRILL OK: .* rows, {stored:,} objects \(", verdict):
        raise Failed(f"drill: expected DRILL OK with {stored:,} objects:\n{drilled}")
    print(f"  {verdict}", flush=True)
    for table in ("public.plans", "public.profiles", "auth.users"):
        if count_rows(prod.db_url, table) != count_rows(scratch.db_url, table):
            raise Failed(f"{table}: {scratch.name}'s rows differ from local-prod's after the drill said OK")
    if objects(local, prod) != objects(local, scratch):
        raise Failed(f"{scratch.name}'s program-logos differ from local-prod's after the drill said OK")


def count_rows(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def s3(local: stack.Stack, env: ops_config.Environment) -> Any:
    port = stack.port_of(env.storage_url)
    return localstack.LocalS3(Path(), port, local.keys[env.s3_key_id_var], local.keys[env.s3_secret_var]).client()


def objects(local: stack.Stack, env: ops_config.Environment, bucket: str = "program-logos") -> list[str]:
    return sorted(item["Key"] for item in s3(local, env).list_objects_v2(Bucket=bucket).get("Contents", []))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devstack.wheelcheck VENV", file=sys.stderr)
        return 2
    try:
        check(Path(argv[0]).resolve())
    except Failed as failure:
        print(f"error: the installed wheel failed: {failure}", file=sys.stderr)
        return 1
    print(
        "the installed wheel backed up (locally and straight off-site), verified, restored and drilled local-prod",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
