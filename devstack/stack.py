"""The local prod/preprod/sandbox stack of devstack/environments.ini: start it, hand out its keys, stop it.

`nox -s stack` keeps it up until Ctrl-C, for trying tasks by hand; `nox -s demo` runs the toolkit
through it; `nox -s wheel` runs the installed wheel against it. One PostgreSQL cluster (a database
per environment), one S3 server per environment plus the off-site target, a web server per
environment (frontend and functions) and the Management API stand-in. local-prod gets the app's
migrations (with the real Supabase CLI) and demo content; local-prod-pitr is a copy of it;
local-scratch (a database and an S3 server, both empty) is the spare project `drill` restores into.

The file's ports are the ones used when they are free. A busy one (or every one, with
`free_ports`) is replaced by a free port in a copy of the file, and `moved` says which.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from devstack import localstack
from devstack.mgmt_standin import TOKEN, ManagementAPI
from devstack.webstub import WebStub
from ops import config as ops_config
from ops.config import REPO_ROOT

LOCAL_ENVS = ["local-prod", "local-preprod", "local-sandbox"]
SCRATCH_ENV = "local-scratch"  # scratch = true: the one section a drill may wipe
DEMO_INI = REPO_ROOT / "devstack" / "environments.ini"  # the repository's environments.ini is the user's
LOCAL_PORT = re.compile(r"(?<=127\.0\.0\.1:)(\d+)")
# Settings changed by hand in local-prod's dashboard, never in local-preprod's: `inv settings` shows the
# drift, and promoting local-preprod's settings would weaken prod's (the demo shows it refused).
PROD_AUTH = {
    "site_url": "https://app.innotrue.com",
    "password_min_length": 12,
    "mfa_totp_enroll_enabled": True,
    "mfa_totp_verify_enabled": True,
}
RELATIVE_PATH = re.compile(r"^(\s*\w+\s*=\s*)(\.\./\S*)$", re.M)


@dataclass
class Stack:
    ini: Path  # the environments file to point the tasks at (OPS_ENVIRONMENTS)
    keys: dict[str, str]  # the S3 keys of every server, as the OPS_<ENV>_S3_* variables the tasks read
    cli_env: dict[str, str]  # where the Supabase CLI finds the Management API stand-in, and its token
    moved: dict[int, int] = field(default_factory=dict)  # busy port of the file -> the free one used instead
    home: Path | None = None  # a throwaway HOME for the CLI in scripted runs (never the user's)

    @property
    def environ(self) -> dict[str, str]:
        """Everything a task run against the stack needs in its environment."""
        return {"OPS_ENVIRONMENTS": str(self.ini), **self.keys, **self.cli_env}

    def export_line(self) -> str:
        return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in self.environ.items())


def local_file(workdir: Path, free_ports: bool, scratch: bool) -> tuple[Path, dict[int, int]]:
    """DEMO_INI itself when its ports are free, else a copy in `workdir` with free ones in their place
    (and, with `scratch`, what the tasks write kept in `workdir` too)."""
    text = DEMO_INI.read_text(encoding="utf-8")
    ports = sorted({int(port) for port in LOCAL_PORT.findall(text)})
    moved = {port: localstack.free_port() for port in ports if free_ports or localstack.port_in_use(port)}
    if not moved and not scratch:
        return DEMO_INI, {}
    text = LOCAL_PORT.sub(lambda m: str(moved.get(int(m[1]), m[1])), text)
    if scratch:
        text = text.replace("../tmp/demo/", f"{workdir}/")
    # The copy lives elsewhere: its relative paths are made absolute, so they still mean the same folders.
    text = RELATIVE_PATH.sub(lambda m: m[1] + str((DEMO_INI.parent / m[2]).resolve()), text)
    copy = workdir / "environments.ini"
    copy.write_text(text, encoding="utf-8")
    return copy, moved


def port_of(url: str) -> int:
    port = urlsplit(url).port
    if not port:
        raise RuntimeError(f"{DEMO_INI}: {url} has no port")
    return port


def fill_demo_buckets(server: localstack.LocalS3) -> None:
    demo = server.client()
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


def start_s3(stack: Stack, resources: ExitStack, store: ops_config.Environment, buckets: list[str]) -> None:
    """An S3 server for one section, with throwaway keys handed to the tasks like real ones."""
    key_id, secret = f"DEMO{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
    stack.keys.update({store.s3_key_id_var: key_id, store.s3_secret_var: secret})
    server = localstack.start_s3(key_id, secret, port=port_of(store.storage_url))
    resources.callback(shutil.rmtree, server.root, ignore_errors=True)
    resources.callback(server.stop)
    server.create_buckets(buckets)
    if store.name == LOCAL_ENVS[0]:
        fill_demo_buckets(server)


@contextmanager
def running(*, free_ports: bool = False, scratch: bool = False, say: bool = True) -> Iterator[Stack]:
    """The whole stack, up while the `with` block runs; everything is stopped and removed after it.

    `free_ports`: none of the file's ports (runs beside another stack); `scratch`: backups, exports and
    the journal in the stack's temporary folder, removed with it."""
    for attempt in range(3):
        with ExitStack() as resources:
            try:
                stack = started(resources, free_ports=free_ports, scratch=scratch, say=say)
            except OSError as error:
                # The file's ports lie in the kernel's ephemeral range: one found free can be taken by
                # another program's connection before it is bound. Started again, that port is moved.
                if error.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                print(f"a port was taken while the stack started ({error.strerror}); starting again", flush=True)
                continue
            yield stack
            return


def started(resources: ExitStack, *, free_ports: bool, scratch: bool, say: bool) -> Stack:
    """Everything of `running`, each stop and removal registered with `resources`."""
    workdir = Path(tempfile.mkdtemp(prefix="ops-stack-"))
    resources.callback(shutil.rmtree, workdir, ignore_errors=True)
    ini, moved = local_file(workdir, free_ports, scratch)
    config = ops_config.load(ini)
    envs = [config.env(name) for name in LOCAL_ENVS]
    scratch_env = config.env(SCRATCH_ENV)
    offsite = config.target("offsite")

    api = ManagementAPI(projects={env.ref for env in config.environments.values()})
    resources.callback(api.stop)
    api.auth[config.env("local-prod").ref] = {**PROD_AUTH, "smtp_pass": secrets.token_urlsafe(16)}
    home = workdir / "home"
    home.mkdir()
    profile = api.write_profile(workdir / "profile.yaml")
    stack = Stack(ini, {}, {"SUPABASE_PROFILE": str(profile), "SUPABASE_ACCESS_TOKEN": TOKEN}, moved, home)
    if say and moved and not free_ports:
        changes = ", ".join(f"{old} -> {new}" for old, new in moved.items())
        print(f"port(s) of {DEMO_INI.name} in use, free ones used instead: {changes} (in {ini})", flush=True)

    port = port_of(envs[0].db_url)
    if say:
        print(f"starting PostgreSQL on 127.0.0.1:{port} for {', '.join(LOCAL_ENVS)}", flush=True)
    server = localstack.start_postgres(port=port)
    resources.callback(shutil.rmtree, server.datadir, ignore_errors=True)
    resources.callback(server.stop)
    for env in envs:
        site = WebStub(port=port_of(env.frontend))  # its frontend and functions, for `smoke`
        resources.callback(site.stop)
        start_s3(stack, resources, env, config.storage.buckets)
    start_s3(stack, resources, scratch_env, config.storage.buckets)
    start_s3(stack, resources, offsite.store, [offsite.bucket])
    if say:
        servers = ", ".join(e.storage_url for e in [*envs, scratch_env, offsite.store])
        print(f"S3 servers at {servers}; Management API stand-in at {api.url}", flush=True)

    for env in [*envs, scratch_env]:
        server.create_database(urlsplit(env.db_url).path.lstrip("/"))
    saved = {name: os.environ.get(name) for name in ("HOME", *stack.cli_env)}
    os.environ.update(HOME=str(home), **stack.cli_env)  # the CLI pushing migrations finds the stand-in
    try:
        localstack.push_migrations(envs[0].db_url)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    localstack.run_sql(envs[0].db_url, (REPO_ROOT / "sql" / "demo_prod.sql").read_text(encoding="utf-8"))
    server.copy_database("local_prod", "local_prod_pitr")  # the restore point of recover-rows
    if say:
        print(
            "local-prod: migrations applied with the Supabase CLI, demo content loaded; "
            "local-preprod, local-sandbox and local-scratch: empty",
            flush=True,
        )
    return stack


TRY = """\
Paste this line into another terminal, then try the tasks there (Ctrl-C here stops everything):

{export}

  {ops} doctor --env local-prod          (or `inv ...` from the checkout)
  {ops} status --env local-prod,local-preprod
  {ops} sync-data --from local-prod --to local-preprod --tables plans --diff
  {ops} reset-env --from local-prod --to local-preprod
  {ops} backup --env local-prod
  {ops} verify-backup --env local-prod
  {ops} drill --env local-prod --into local-scratch
  {ops} journal --last 5

local-prod is protected (it asks for its name); the keys above are this stack's own, made up at start.
"""


def program() -> str:
    """This virtualenv's `supabase-ops` by its path: another terminal does not have nox's venv on PATH."""
    return shlex.quote(str(Path(sys.executable).parent / "supabase-ops"))


def main() -> int:
    """`nox -s stack`: start the stack, print how to reach it, keep it up until Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped by nox or kill: clean up as for Ctrl-C
    with running() as stack:
        print("\n" + TRY.format(export=stack.export_line(), ops=program()), flush=True)
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:
            print("\nstopping the local stack", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # while starting: what had started is stopped already
        print("\ninterrupted; the local stack is stopped", file=sys.stderr)
        sys.exit(130)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as failure:
        print(f"error: the local stack could not start: {failure}", file=sys.stderr)
        sys.exit(1)
