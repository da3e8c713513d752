"""Databases the way hosted Supabase serves them: a transaction-mode pooler and TLS."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from urllib.parse import urlsplit

import psycopg
from lib.db import TLS_HOST, dump, sql
from lib.project import FAKE_DB_PASSWORD

from devstack import localstack
from ops import config as ops_config
from ops.db import dump as dbdump
from ops.db import url as dburl


def through(url: str, port: int) -> str:
    """The same database reached on another port (the pooler's)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()


def test_sync_and_status_work_through_a_transaction_pooler(project, pgbouncer):
    for env in ("prod", "preprod"):
        project.envs[env]["db_url"] = through(project.url(env), pgbouncer.port)
    first = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json")
    assert first.code == 0, first.err
    again = project.run("sync-data", "--from", "prod", "--to", "preprod", "--prune", "--json")
    assert again.code == 0, again.err
    assert {t["inserted"] + t["updated"] + t["deleted"] for t in json.loads(again.out)["tables"]} == {0}
    config_tables = ("public.plans", "public.programs", "public.assessment_questions", "public.email_templates")
    assert dump(project.url("prod"), *config_tables) == dump(project.url("preprod"), *config_tables)
    status = project.run("migration-status", "--envs", "prod,preprod", "--json")
    assert status.code == 0, status.err
    assert {row["preprod"] for row in json.loads(status.out)["rows"]} == {"applied"}
    overview = project.run("status", "--envs", "prod,preprod", "--json")
    assert overview.code == 0, overview.err
    tables = [e["tables"] for e in json.loads(overview.out)["envs"]]
    assert tables[0] == tables[1] and tables[0]


def test_session_tools_refuse_a_transaction_pooler_before_connecting(project):
    project.envs["preprod"]["db_url"] = "postgresql://postgres@127.0.0.1:6543/postgres"
    for args in (("push-migrations", "--env", "preprod"), ("backup", "--env", "preprod")):
        result = project.run(*args)
        assert result.code == 2 and "session pooler" in result.err, (args, result.err)


def tls_url(url: str, pg_port: int) -> str:
    """The database under a remote-looking name, as the password role (hosted projects use SCRAM)."""
    localstack.set_role_password(url, FAKE_DB_PASSWORD)
    database = urlsplit(url).path
    return f"postgresql://{localstack.PASSWORD_ROLE}@{TLS_HOST}:{pg_port}{database}?hostaddr=127.0.0.1"


def test_tls_with_the_right_ca_works_for_psycopg_and_pg_dump(project, pg, tls, tmp_path, monkeypatch):
    project.envs["prod"].update(db_url=tls_url(project.url("prod"), pg.port), ssl_root_cert=str(tls / "ca.crt"))
    project.secrets["OPS_PROD_DB_PASSWORD"] = FAKE_DB_PASSWORD
    exported = project.run("sync-data", "--from", "prod", "--export-only", "--tables", "plans", "--json")
    assert exported.code == 0, exported.err
    assert json.loads(exported.out)["tables"][0]["unchanged"] == 3
    env = ops_config.load(project.write()).env("prod")
    monkeypatch.setenv("OPS_PROD_DB_PASSWORD", FAKE_DB_PASSWORD)
    dbdump.dump_database(env, tmp_path / "db")
    assert "public.plans" in (tmp_path / "db" / "schema.sql").read_text()
    with psycopg.connect(dburl.for_psycopg(env), password=FAKE_DB_PASSWORD) as conn:  # the tasks' connection string
        with psycopg.connect(pg.admin_url()) as admin:  # only the superuser sees another role's TLS state
            ssl = admin.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = %s", (conn.info.backend_pid,)).fetchone()
        assert ssl == (True,)


def test_tls_with_the_wrong_ca_is_refused(project, pg, tls):
    project.envs["prod"].update(db_url=tls_url(project.url("prod"), pg.port), ssl_root_cert=str(tls / "other-ca.crt"))
    result = project.run(
        "sync-data",
        "--from",
        "prod",
        "--export-only",
        "--tables",
        "plans",
        env={"OPS_PROD_DB_PASSWORD": FAKE_DB_PASSWORD},
    )
    assert result.code == 1 and "certificate" in result.err


def test_no_password_goes_to_a_server_without_tls(project):
    """A remote host that answers 'no SSL' gets nothing but the SSL request: no startup, no password."""
    received = bytearray()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received.extend(conn.recv(8))
            conn.sendall(b"N")  # "this server does not do SSL"
            conn.settimeout(2)
            try:
                while chunk := conn.recv(4096):
                    received.extend(chunk)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    project.envs["prod"]["db_url"] = f"postgresql://postgres@{TLS_HOST}:{port}/postgres?hostaddr=127.0.0.1"
    result = project.run("sync-data", "--from", "prod", "--export-only", env={"OPS_PROD_DB_PASSWORD": FAKE_DB_PASSWORD})
    thread.join(timeout=5)
    listener.close()
    assert result.code == 1 and "SSL" in result.err
    assert bytes(received) == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # the SSLRequest packet, nothing else
    project.envs["prod"]["db_url"] += "&sslmode=disable"
    refused = project.run("sync-data", "--from", "prod", "--export-only")
    assert refused.code == 2 and "insecure_tls" in refused.err


def test_tasks_connect_as_a_non_superuser_that_owns_the_app(project, tmp_path, monkeypatch):
    """As on hosted projects: postgres owns the app's tables, RLS is on where the migrations turn it on,
    platform schemas are the superuser's and their tables the auth and storage services'."""
    url = project.url("prod")
    assert sql(url, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user") == [("postgres", False)]
    assert sql(url, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' GROUP BY 1") == [("postgres",)]
    assert sql(
        url,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
        "AND relrowsecurity ORDER BY 1",
    ) == [("notifications",), ("plans",), ("profiles",)]
    assert sql(
        url,
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname IN ('auth', 'storage', "
        "'supabase_migrations', 'vault') GROUP BY 1",
    ) == [("supabase_admin",)]
    assert sql(
        url, "SELECT tableowner FROM pg_tables WHERE schemaname IN ('auth', 'storage') GROUP BY 1 ORDER BY 1"
    ) == [
        ("supabase_auth_admin",),
        ("supabase_storage_admin",),
    ]
    env = ops_config.load(project.write()).env("prod")
    # The app's schemas and the auth and storage rows are dumped; vault (the platform's) is left out.
    dbdump.dump_database(env, tmp_path / "db")
    data = (tmp_path / "db" / "data.sql").read_text()
    assert "COPY auth.users" in data and "COPY public.plans" in data and "vault" not in data
    assert "CREATE TABLE auth.users" not in (tmp_path / "db" / "schema.sql").read_text()
    sync = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans,features")
    assert sync.code == 0, sync.err


def test_no_client_gives_its_password_to_a_server_that_asks_for_it_in_clear_text(project, pg, storage, tmp_path):
    """A man in the middle with any certificate: psycopg passes (SCRAM only); pg_dump, psql and the CLI,
    which cannot refuse a clear-text request here, are never started without a verified certificate."""
    import ssl

    import trustme

    from devstack.cleartextproxy import CleartextProxy

    made = project.run("backup", "--env", "prod", "--json")
    assert made.code == 0, made.err
    folder = json.loads(made.out)["steps"][0]["detail"].split(" (")[0]
    supabase = tmp_path / "app" / "supabase"
    shutil.copytree(project.supabase_dir, supabase, ignore=shutil.ignore_patterns(".temp"))
    (supabase / "migrations" / "20990101000000_pending.sql").write_text("CREATE TABLE public.pending (id int);")
    project.supabase_dir = supabase
    localstack.set_role_password(project.url("prod"), FAKE_DB_PASSWORD)
    # A remote host by name, reached on loopback (hostaddr): no traffic leaves this machine.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert(TLS_HOST).configure_cert(context)
    proxy = CleartextProxy(pg.port, context, host="127.0.0.1")
    database = urlsplit(project.url("prod")).path
    project.envs["prod"]["db_url"] = (
        f"postgresql://{localstack.PASSWORD_ROLE}@{TLS_HOST}:{proxy.port}{database}?hostaddr=127.0.0.1"
    )
    project.secrets["OPS_PROD_DB_PASSWORD"] = FAKE_DB_PASSWORD
    try:
        for args in (
            ("backup", "--env", "prod"),
            ("restore-db", "--backup", folder, "--env", "prod", "--to", "prod", "--force", "--yes"),
            ("push-migrations", "--env", "prod", "--skip-preprod-check", "--yes"),
        ):
            result = project.run(*args)
            assert not proxy.passwords, f"{args[0]} gave a password in clear text to {proxy.asked}"
            assert result.code == 2 and "set ssl_root_cert in [prod]" in result.err, (args, result.err)
    finally:
        proxy.stop()
    assert sql(pg.admin_url(database.lstrip("/")), "SELECT to_regclass('public.pending')") == [(None,)]
