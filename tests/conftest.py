"""Real local services for the tests: PostgreSQL, the pinned Supabase CLI, S3 servers.

Each fixture starts what it needs itself and fails loudly when it cannot. tests/unit loads this
file too, with only the package and pytest installed (`nox -s unit`): the test group's packages
(boto3, moto, trustme) are imported inside the fixtures that use them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from lib.db import TEMPLATE_DB, TLS_HOST, new_database
from lib.project import PROJECTS, REPO, Project

from devstack import localstack
from ops import config as ops_config
from ops.platform import supabase_cli

# The tasks' output is checked as a pipe sees it, with no width: pytest-xdist's workers export
# COLUMNS=80, which would fold every wide table into blocks.
for variable in ("COLUMNS", "LINES"):
    os.environ.pop(variable, None)


@pytest.fixture(scope="session")
def cli() -> Path:
    """The pinned real Supabase CLI (installed from npm on first use)."""
    return supabase_cli.install_pinned()


@pytest.fixture(autouse=True)
def audit_secrets():
    """After every test: no known secret in the files its tasks wrote or the CLI argv they used."""
    PROJECTS.clear()
    yield
    for project in PROJECTS:
        project.audit()


@pytest.fixture(scope="session")
def pg(cli):
    server = localstack.start_postgres()
    url = server.create_database(TEMPLATE_DB)
    localstack.push_migrations(url)
    yield server
    server.stop()
    shutil.rmtree(server.datadir, ignore_errors=True)


@pytest.fixture
def project(tmp_path, pg) -> Project:
    """prod (protected, with the demo data) and preprod (migrated, empty)."""
    prod = new_database(pg, "prod")
    localstack.run_sql(prod, (REPO / "sql" / "demo_prod.sql").read_text())
    preprod = new_database(pg, "preprod")
    proj = Project(tmp_path)
    proj.envs = {
        "prod": {"ref": "qfdztdgublwlmewobxmx", "db_url": prod, "protected": "true"},
        "preprod": {"ref": "jtzcrirqflfnagceendt", "db_url": preprod, "protected": "false"},
    }
    return proj


OFFSITE_KEYS = ("AKIAOFFSITE0000001", "offsite-secret-Qw3-never-print")


@pytest.fixture
def offsite(project, storage, tmp_path):
    """A backup target, [offsite], on its own real S3 server (rclone serve s3)."""
    from lib.s3 import s3_secrets

    server = localstack.start_s3(*OFFSITE_KEYS, root=tmp_path / "s3-offsite")
    server.create_buckets(["ops-backups"])
    project.extra += f"\n[offsite]\nstorage_url = {server.url}\nbucket = ops-backups\nprefix = nightly\n"
    project.secrets.update(s3_secrets("offsite", *OFFSITE_KEYS))
    yield server
    server.stop()


@pytest.fixture
def storage(project, tmp_path):
    """One real S3 server (rclone serve s3) per environment, with every configured bucket."""
    from lib.s3 import S3_KEYS, s3_secrets

    buckets = ops_config.load(REPO / "environments.ini").storage.buckets
    servers = {}
    try:
        for env, (key_id, secret) in S3_KEYS.items():
            server = localstack.start_s3(key_id, secret, root=tmp_path / f"s3-{env}")
            servers[env] = server
            server.create_buckets(buckets)
            project.envs[env].update(storage_url=server.url, storage_region="us-east-1")
            project.secrets.update(s3_secrets(env, key_id, secret))
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def moto_port():
    """moto's S3 server: real multipart ETags, and no signature checks (for the path-prefix proxy)."""
    port = localstack.free_port()
    process = subprocess.Popen(
        [localstack.tool("moto_server"), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        localstack.wait_for_port(port, timeout=60)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def pgbouncer(pg):
    """PgBouncer in transaction mode in front of the session's PostgreSQL (Supabase's :6543 pooler)."""
    bouncer = localstack.LocalPgBouncer(pg.port, Path(tempfile.mkdtemp(prefix="ops-pgb-"))).start()
    yield bouncer
    bouncer.stop()
    shutil.rmtree(bouncer.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def tls(pg, tmp_path_factory):
    """TLS on the session's PostgreSQL with a CA the test makes, for a remote-looking host name."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(TLS_HOST)
    pg.enable_tls(cert.cert_chain_pems[0].bytes(), cert.private_key_pem.bytes())
    folder = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(folder / "ca.crt"))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.crt"))
    return folder


@pytest.fixture
def refused_port():
    """A port where a connection is refused for the whole test: bound and never listening, so no server of
    another test (pytest-xdist runs several at once) can take it, as one merely found free can be."""
    held: list[socket.socket] = []

    def port() -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
        return sock.getsockname()[1]

    yield port
    for sock in held:
        sock.close()
