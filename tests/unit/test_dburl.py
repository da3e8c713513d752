"""The connection string each tool gets: TLS policy, poolers, parameters kept (no services)."""

from __future__ import annotations

import shutil

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ops.config import Environment, session_pooler_url
from ops.db import url as dburl
from ops.errors import UserError

REF = "qfdztdgublwlmewobxmx"
POOLER = f"postgresql://postgres.{REF}@aws-0-eu-central-1.pooler.supabase.com"


def env(db_url: str, **kw) -> Environment:
    return Environment("prod", ref=REF, db_url=db_url, **kw)


def test_remote_hosts_require_tls_and_scram():
    got = conninfo_to_dict(dburl.for_psycopg(env(f"{POOLER}:5432/postgres")))
    assert got["sslmode"] == "require"
    if psycopg.pq.version() >= dburl.SCRAM_LIBPQ:
        assert got["require_auth"] == "scram-sha-256"


def test_a_root_certificate_means_verify_full(tmp_path):
    got = dburl.params(env(f"postgresql://postgres@db.{REF}.supabase.co:5432/postgres", ssl_root_cert="/ca.crt"))
    assert (got["sslmode"], got["sslrootcert"]) == ("verify-full", "/ca.crt")


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_plaintext_to_a_remote_host_is_refused_unless_allowed(mode):
    url = f"postgresql://postgres@db.example.org/postgres?sslmode={mode}"
    with pytest.raises(UserError, match="insecure_tls"):
        dburl.params(env(url))
    assert dburl.params(env(url, insecure_tls=True))["sslmode"] == mode


def test_loopback_is_left_alone_and_parameters_pass_through():
    assert "sslmode" not in dburl.params(env("postgresql://postgres@127.0.0.1:5/db"))
    url = (
        "postgresql://postgres@pg.example.org:5/db?hostaddr=127.0.0.1&options=-c%20search_path%3Dpublic"
        "&target_session_attrs=read-write&sslrootcert=/mine.crt"
    )
    got = dburl.params(env(url, ssl_root_cert="/other.crt"))
    assert got["hostaddr"] == "127.0.0.1" and got["options"] == "-c search_path=public"
    assert got["target_session_attrs"] == "read-write" and got["sslrootcert"] == "/mine.crt"


def test_session_tools_move_from_the_transaction_pooler_to_the_session_pooler():
    transaction = env(f"{POOLER}:6543/postgres", ssl_root_cert="/ca.crt")
    assert conninfo_to_dict(dburl.for_pg_tool(transaction, "pg_dump"))["port"] == "5432"
    assert dburl.for_cli(transaction) == f"{POOLER}:5432/postgres?sslmode=verify-full&sslrootcert=%2Fca.crt"
    assert conninfo_to_dict(dburl.for_psycopg(transaction))["port"] == "6543"  # psycopg works through it


def test_other_transaction_poolers_are_refused_for_session_tools():
    with pytest.raises(UserError, match="session pooler"):
        dburl.for_pg_tool(env("postgresql://postgres@127.0.0.1:6543/postgres"), "pg_dump")


@pytest.mark.parametrize("tool", ["pg_dump", "psql"])
def test_every_client_sends_a_password_by_scram_only_or_over_a_verified_certificate(tool):
    unverified, verified = env(f"{POOLER}:5432/postgres"), env(f"{POOLER}:5432/postgres", ssl_root_cert="/ca.crt")
    with pytest.raises(UserError, match=r"Supabase CLI cannot refuse .*clear text.*set ssl_root_cert in \[prod\]"):
        dburl.for_cli(unverified)  # its Go driver has no require_auth
    assert "sslmode=verify-full" in dburl.for_cli(verified)
    binary = shutil.which(tool)
    assert binary
    if dburl.tool_libpq_gap(binary) is None:  # libpq 16+: SCRAM only, whatever the certificate
        assert conninfo_to_dict(dburl.for_pg_tool(unverified, binary))["require_auth"] == "scram-sha-256"
    else:
        with pytest.raises(UserError, match=f"{tool} cannot refuse"):
            dburl.for_pg_tool(unverified, binary)
        assert "require_auth" not in conninfo_to_dict(dburl.for_pg_tool(verified, binary))
    local = env("postgresql://postgres@127.0.0.1:5/db")  # this machine: nothing between to ask
    assert "require_auth" not in dburl.for_cli(local) + dburl.for_pg_tool(local, binary)


def test_the_probe_reads_the_libpq_a_tool_runs_on(tmp_path):
    old = tmp_path / "old-pg_dump"
    old.write_text("#!/bin/sh\necho 'pg_dump: error: invalid connection option \"require_auth\"' >&2; exit 1\n")
    old.chmod(0o755)
    new = tmp_path / "new-pg_dump"
    new.write_text("#!/bin/sh\necho 'pg_dump: error: connection to server on socket failed' >&2; exit 1\n")
    new.chmod(0o755)
    assert "older than 16" in (dburl.tool_libpq_gap(str(old)) or "")
    assert dburl.tool_libpq_gap(str(new)) is None


def test_region_gives_the_session_pooler_url():
    assert session_pooler_url(REF, "eu-central-1") == f"{POOLER}:5432/postgres"


@pytest.mark.parametrize(
    "db_url",
    [
        "host=localhost hostaddr=203.0.113.5 dbname=postgres user=postgres",
        "host=/var/run/postgresql,203.0.113.5 dbname=postgres user=postgres",
        "postgresql://postgres@127.0.0.1,db.example.org/postgres",
        "dbname=postgres user=postgres",  # no host: libpq would take PGHOST from wherever the task runs
    ],
    ids=["hostaddr-remote", "socket-then-remote", "host-list", "no-host"],
)
def test_only_all_local_places_count_as_local(db_url, monkeypatch):
    monkeypatch.setenv("PGHOST", "203.0.113.5")
    got = dburl.params(env(db_url))
    assert got["sslmode"] == "require"
    with pytest.raises(UserError, match="unencrypted"):
        dburl.params(env(db_url + (" sslmode=prefer" if "://" not in db_url else "?sslmode=prefer")))


@pytest.mark.parametrize(
    "db_url",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "host=localhost hostaddr=127.0.0.1 dbname=postgres",
        "host=/var/run/postgresql,::1 dbname=postgres",
    ],
    ids=["loopback", "localhost-hostaddr-loopback", "socket-and-ipv6-loopback"],
)
def test_local_places_keep_their_plaintext(db_url):
    assert "sslmode" not in dburl.params(env(db_url))
