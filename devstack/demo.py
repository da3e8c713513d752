"""`nox -s demo`: start the local environments of devstack/environments.ini and run the toolkit between them.

It starts one PostgreSQL cluster (a database per local environment), one S3 server per
environment and the Management API stand-in, applies the app's migrations to local-prod
with the real Supabase CLI and loads demo content there, then runs what a release person
would: status, the settings drift and a refused weakening promotion, `reset-env` local-prod -> local-preprod, sync-data again (nothing left to
change), backup and verify, status again. Everything is stopped at the end (devstack/stack.py
starts it; `nox -s stack` keeps it up instead).
"""

from __future__ import annotations

import os
import subprocess
import sys

from devstack import localstack, stack
from devstack.stack import Stack
from ops import config as ops_config
from ops.config import REPO_ROOT

PRICE_CHANGE = (
    "sql",
    "UPDATE public.plans SET description = 'For individual clients, now with coaching' WHERE key = 'pro'",
)  # a config change for the sync after the reset to carry
BAD_MIGRATION = ("sql", "UPDATE public.profiles SET full_name = NULL")  # recover-rows brings the names back
# local-prod's auth settings were changed by hand (devstack/stack.py): promoting local-preprod's
# would lower prod's password rule and turn its TOTP off, which is refused (exit 2).
REFUSED = ("promote-settings", "--from", "local-preprod", "--to", "local-prod", "--only", "auth")
NOTES = {
    "sync-data": "The `before/` folder named above is the undo snapshot: local-preprod's rows of the changed "
    "tables as they were just before this sync. The `undo:` line restores them.",
    "backup-storage": "Later backups hard-link unchanged objects from the previous one (each is complete, but "
    "costs only what changed); the off-site copy sends only what the remote lacks.",
    "recover-rows": "The names came back from local-prod-pitr (what a PITR restore would be); the `undo:` line "
    "puts local-prod back as it was before the recovery.",
}


def inv(stack: Stack, *args: str, expect: int = 0) -> int:
    print(f"\n$ inv {' '.join(args)}", flush=True)
    code = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **stack.environ, "HOME": str(stack.home)},
    ).returncode
    if code == expect != 0:
        print(f"# exit {code}, as expected: nothing was sent", flush=True)
        return 0
    if code == 0 and args[0] in NOTES and "--diff" not in args:
        print(f"# {NOTES[args[0]]}", flush=True)
    return code


def main() -> int:
    with stack.running() as local:
        prod = ops_config.load(local.ini).env("local-prod")
        steps = [
            ("doctor", "--env", "local-prod"),
            ("doctor", "--env", "local-preprod"),
            ("envs",),
            ("status", "--env", "local-prod,local-preprod"),
            ("settings", "--env", "local-prod,local-preprod", "--only", "auth,api,ssl,buckets"),
            REFUSED,
            ("reset-env", "--from", "local-prod", "--to", "local-preprod"),
            PRICE_CHANGE,
            ("sync-data", "--from", "local-prod", "--to", "local-preprod", "--tables", "plans", "--diff"),
            ("sync-data", "--from", "local-prod", "--to", "local-preprod", "--tables", "plans,programs,features"),
            ("smoke", "--env", "local-preprod"),
            ("backup-storage", "--env", "local-prod", "--copy-to", "offsite"),
            ("verify-backup", "--env", "local-prod"),
            ("verify-backup", "--backup", "offsite:latest", "--env", "local-prod"),
            BAD_MIGRATION,
            ("recover-rows", "--from", "local-prod-pitr", "--to", "local-prod", "--table", "public.profiles", "--yes"),
            ("status", "--env", "local-prod,local-preprod"),
            ("journal", "--last", "5"),
        ]
        for step in steps:
            if step in (PRICE_CHANGE, BAD_MIGRATION):
                print(f"\n# meanwhile, in local-prod: {step[1]}", flush=True)
                localstack.run_sql(prod.db_url, step[1])
                continue
            code = inv(local, *step, expect=2 if step == REFUSED else 0)
            if code != 0:
                print(f"demo step failed with exit code {code}", file=sys.stderr)
                return code
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.CalledProcessError, OSError) as failure:  # a service that would not start
        print(f"error: the demo could not start its services: {failure}", file=sys.stderr)
        sys.exit(1)
