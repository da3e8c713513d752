"""`nox -s demo`: start the local environments of devstack/environments.ini and run the toolkit between them.

It starts one PostgreSQL cluster (a database per local environment), one S3 server per
environment and the Management API stand-in, applies the app's migrations to local-prod
with the real Supabase CLI and loads demo content there, then runs what a release person
would: status, the settings drift and a refused weakening promotion, `reset-env` local-prod ->
local-preprod, sync-data again (nothing left to change), backup and verify, status again.
Everything is stopped at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from devstack import localstack
from devstack.mgmt_standin import TOKEN, ManagementAPI
from devstack.webstub import WebStub
from ops import config as ops_config
from ops.config import REPO_ROOT

LOCAL_ENVS = ["local-prod", "local-preprod", "local-sandbox"]
PRICE_CHANGE = (
    "sql",
    "UPDATE public.plans SET description = 'For individual clients, now with coaching' WHERE key = 'pro'",
)  # a config change for the sync after the reset to carry
BAD_MIGRATION = ("sql", "UPDATE public.profiles SET full_name = NULL")  # recover-rows brings the names back
# Settings changed by hand in local-prod's dashboard, never in local-preprod's: `inv settings` shows
# the drift, and promoting local-preprod's settings would lower prod's password rule (refused).
PROD_AUTH = {
    "site_url": "https://app.innotrue.com",
    "password_min_length": 12,
    "mfa_totp_enroll_enabled": True,
    "mfa_totp_verify_enabled": True,
}
REFUSED = ("promote-settings", "--from", "local-preprod", "--to", "local-prod", "--only", "auth")
DEMO_INI = REPO_ROOT / "devstack" / "environments.ini"  # the repository's environments.ini is the user's
NOTES = {
    "sync-data": "The `before/` folder named above is the undo snapshot: local-preprod's rows of the changed "
    "tables as they were just before this sync. The `undo:` line restores them.",
    "backup-storage": "Later backups hard-link unchanged objects from the previous one (each is complete, but "
    "costs only what changed); the off-site copy sends only what the remote lacks.",
    "settings": "Auth settings changed by hand in local-prod's dashboard show as drift; site_url differs by "
    "design ([status] per_env) and secret fields are listed by name only, so neither counts.",
    "recover-rows": "The names came back from local-prod-pitr (what a PITR restore would be); the `undo:` line "
    "puts local-prod back as it was before the recovery.",
}


def inv(*args: str, expect: int = 0) -> int:
    print(f"\n$ inv {' '.join(args)}", flush=True)
    code = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "OPS_ENVIRONMENTS": str(DEMO_INI)},
    ).returncode
    if code == 0 and args[0] in NOTES and "--diff" not in args:
        print(f"# {NOTES[args[0]]}", flush=True)
    if expect and code == expect:
        print(f"# exit {code}, as it should: nothing was sent; the refused keys are named with their rule", flush=True)
        return 0
    return code


def start_management_api(workdir: Path) -> ManagementAPI:
    """The Supabase cloud stand-in; the real CLI reaches it through a profile file."""
    config = ops_config.load(DEMO_INI)
    api = ManagementAPI(projects={env.ref for env in config.environments.values()})
    api.auth[config.env("local-prod").ref] = {**PROD_AUTH, "smtp_pass": secrets.token_urlsafe(16)}
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HOME=str(home), SUPABASE_PROFILE=str(api.write_profile(workdir / "profile.yaml")), SUPABASE_ACCESS_TOKEN=TOKEN
    )
    return api


def start_storage(envs: list, buckets: list[str]) -> list[localstack.LocalS3]:
    """One S3 server per environment, with throwaway keys handed to the tasks like real ones."""
    servers = []
    for env in envs:
        key_id, secret = f"DEMO{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
        os.environ[env.s3_key_id_var], os.environ[env.s3_secret_var] = key_id, secret
        server = localstack.start_s3(key_id, secret, port=urlsplit(env.storage_url).port)
        server.create_buckets(buckets)
        servers.append(server)
    demo = servers[0].client()
    for i in range(12):
        demo.put_object(
            Bucket="program-logos",
            Key=f"programs/logo-{i:02d}.svg",
            Body=b"<svg>%d</svg>" % i,
            ContentType="image/svg+xml",
        )
    demo.put_object(Bucket="email-assets", Key="header banner.png", Body=os.urandom(256 << 10), ContentType="image/png")
    demo.put_object(
        Bucket="avatars",
        Key="00000000-0000-4000-8000-000000000001/avatar.png",
        Body=os.urandom(4096),
        ContentType="image/png",
    )
    return servers


def start_offsite(config: ops_config.Config) -> localstack.LocalS3:
    target = config.target("offsite")
    key_id, secret = f"DEMO{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
    os.environ[target.store.s3_key_id_var], os.environ[target.store.s3_secret_var] = key_id, secret
    server = localstack.start_s3(key_id, secret, port=urlsplit(target.store.storage_url).port)
    server.create_buckets([target.bucket])
    return server


def main() -> int:
    config = ops_config.load(DEMO_INI)
    envs = [config.env(name) for name in LOCAL_ENVS]
    port = urlsplit(envs[0].db_url).port
    wanted = [
        p
        for env in envs
        for p in (urlsplit(env.db_url).port, urlsplit(env.storage_url).port, urlsplit(env.frontend).port)
        if p
    ]
    wanted.append(urlsplit(config.target("offsite").store.storage_url).port or 0)
    busy = sorted({p for p in wanted if localstack.port_in_use(p)})
    if busy:
        print(
            f"error: port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use (another demo still running?); "
            "stop what listens there (e.g. `ss -ltnp`) and run the demo again. Nothing was started.",
            file=sys.stderr,
        )
        return 2
    print(f"starting PostgreSQL on 127.0.0.1:{port} for {', '.join(LOCAL_ENVS)}", flush=True)
    server = localstack.start_postgres(port=port)
    storage: list[localstack.LocalS3] = []
    workdir = Path(tempfile.mkdtemp(prefix="ops-demo-"))
    api = start_management_api(workdir)
    sites = [WebStub(port=urlsplit(env.frontend).port or 0) for env in envs]  # frontends and functions
    try:
        storage = start_storage(envs, config.storage.buckets)
        storage.append(start_offsite(config))
        print(f"S3 servers at {', '.join(s.url for s in storage)}; Management API stand-in at {api.url}", flush=True)
        for env in envs:
            server.create_database(urlsplit(env.db_url).path.lstrip("/"))
        localstack.push_migrations(envs[0].db_url)
        localstack.run_sql(envs[0].db_url, (REPO_ROOT / "sql" / "demo_prod.sql").read_text(encoding="utf-8"))
        server.copy_database("local_prod", "local_prod_pitr")  # the restore point of recover-rows
        print(
            "local-prod: migrations applied with the Supabase CLI, demo content loaded; "
            "local-preprod and local-sandbox: empty",
            flush=True,
        )
        steps = [
            ("doctor", "--env", "local-prod"),
            ("doctor", "--env", "local-preprod"),
            ("envs",),
            ("status", "--env", "local-prod,local-preprod"),
            ("reset-env", "--from", "local-prod", "--to", "local-preprod"),
            ("settings", "--env", "local-prod,local-preprod", "--only", "auth,api,ssl,buckets"),
            REFUSED,
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
                localstack.run_sql(envs[0].db_url, step[1])
                continue
            code = inv(*step, expect=2 if step == REFUSED else 0)
            if code != 0:
                print(f"demo step failed with exit code {code}", file=sys.stderr)
                return code
        return 0
    finally:
        api.stop()
        for site in sites:
            site.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        for s3_server in storage:
            s3_server.stop()
            shutil.rmtree(s3_server.root, ignore_errors=True)
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.CalledProcessError, OSError) as failure:  # a service that would not start
        print(f"error: the demo could not start its services: {failure}", file=sys.stderr)
        sys.exit(1)
