"""Faults and bad input for every mutating task: the target is left as it was, the exit code says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from lib.db import dump, sql
from lib.project import REPO
from lib.s3 import contents, fill

from devstack.faultproxy import FaultProxy
from devstack.tcpproxy import CuttingProxy

BULK_MODULES = """
INSERT INTO public.program_modules (program_id, module_type, title, content, order_index)
SELECT '30000000-0000-4000-8000-000000000001', 'reading', 'Bulk module ' || g, repeat('lorem ipsum ', 40), g
FROM generate_series(1, 4000) g;
"""


def via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


def test_target_connection_cut_mid_import_leaves_target_unchanged(project):
    sql(project.url("prod"), BULK_MODULES)
    assert project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans").code == 0
    before = dump(project.url("preprod"))
    proxy = CuttingProxy(urlsplit(project.url("preprod")).port, cut_upstream_after=600_000)
    try:
        project.envs["preprod"]["db_url"] = via(project.url("preprod"), proxy.port)
        result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    finally:
        proxy.close()
    assert proxy.cuts >= 1, "the proxy never cut: the import was smaller than expected"
    assert result.code == 1
    assert "unchanged" in result.err
    project.envs["preprod"]["db_url"] = via(project.url("preprod"), urlsplit(project.url("prod")).port)
    assert dump(project.url("preprod")) == before


def test_statement_timeout_rolls_back(project):
    sql(
        project.url("preprod"),
        """
        CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
        CREATE TRIGGER slow BEFORE INSERT ON public.assessment_questions FOR EACH STATEMENT EXECUTE FUNCTION public.slow();""",
    )
    name = urlsplit(project.url("preprod")).path.lstrip("/")
    sql(project.url("preprod"), f"ALTER DATABASE \"{name}\" SET statement_timeout = '1s'")
    before = dump(project.url("preprod"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    assert result.code == 1
    assert "statement timeout" in result.err and "public.assessment_questions" in result.err
    assert dump(project.url("preprod")) == before


def test_source_connection_cut_mid_export_applies_nothing(project):
    sql(project.url("prod"), BULK_MODULES)
    before = dump(project.url("preprod"))
    proxy = CuttingProxy(urlsplit(project.url("prod")).port, cut_downstream_after=300_000)
    try:
        project.envs["prod"]["db_url"] = via(project.url("prod"), proxy.port)
        result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert result.code == 1
    assert "reading prod failed" in result.err
    assert dump(project.url("preprod")) == before
    assert not list(project.root.rglob("import.sql")), "no import may be written from a broken export"
    assert not list(project.root.rglob("manifest.json")), "a broken export must not look complete"


def test_storage_faults_on_both_sides(project, storage):
    src, dst = storage["prod"].client(), storage["preprod"].client()
    fill(src, "avatars", 50, size=8192)
    fill(src, "resource-library", 30, size=30000)
    faults = ("500", "slowdown", "reset", "truncate")
    source_proxy = FaultProxy(storage["prod"].port, rate=0.2, seed=3, faults=faults).start()
    target_proxy = FaultProxy(storage["preprod"].port, rate=0.2, seed=5, faults=faults).start()
    try:
        project.envs["prod"]["storage_url"] = source_proxy.url
        project.envs["preprod"]["storage_url"] = target_proxy.url
        result = project.run(
            "sync-storage", "--from", "prod", "--to", "preprod", "--json", "--buckets", "avatars,resource-library"
        )
    finally:
        source_proxy.stop()
        target_proxy.stop()
    assert source_proxy.injected.get("truncate") and target_proxy.injected.get("reset"), (
        source_proxy.injected,
        target_proxy.injected,
    )
    data = json.loads(result.out)
    failed = {(f["bucket"], f["key"]) for f in data["failures"]}
    assert result.code == (1 if failed else 0)
    for bucket in ("avatars", "resource-library"):
        source, target = contents(src, bucket), contents(dst, bucket)
        for key, digest in target.items():
            assert source[key] == digest, f"{bucket}/{key} differs from its source"
        assert {k for k in source if k not in target} <= {k for b, k in failed if b == bucket}


def test_sigint_mid_sync_leaves_no_temp_files(project, storage, tmp_path):
    fill(storage["prod"].client(), "resource-library", 6, size=17 << 20)  # over the in-memory spool size
    proxy = FaultProxy(storage["preprod"].port, delay=1.0).start()  # keeps the copy running past the signal
    scratch = tmp_path / "scratch-tmp"
    scratch.mkdir()
    try:
        project.envs["preprod"]["storage_url"] = proxy.url
        process = project.start(
            "sync-storage",
            "--from",
            "prod",
            "--to",
            "preprod",
            "--buckets",
            "resource-library",
            env={"TMPDIR": str(scratch)},
        )
        time.sleep(3)
        if process.poll() is not None:
            pytest.fail(f"the sync ended before it could be interrupted: {process.communicate()[1]}")
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=120)
    finally:
        proxy.stop()
    assert process.returncode != 0
    assert list(scratch.iterdir()) == []


# ---------------------------------------------------------------- the bad-input catalogue


def state(project, storage) -> tuple:
    return (
        dump(project.url("preprod")),
        dump(project.url("prod")),
        contents(storage["preprod"].client(), "avatars"),
        contents(storage["prod"].client(), "avatars"),
    )


CATALOGUE = {
    "unknown-env": (["sync-data", "--from", "prod", "--to", "qa"], "unknown environment"),
    "same-env": (["sync-storage", "--from", "preprod", "--to", "preprod"], "two different"),
    "blocked-table": (["sync-data", "--from", "prod", "--to", "preprod", "--tables", "user_roles"], "user data"),
    "unknown-table": (["sync-data", "--from", "prod", "--to", "preprod", "--tables", "coupons"], "safe_tables"),
    "unknown-bucket": (["sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "selfies"], "selfies"),
    "protected-no-yes": (["sync-data", "--from", "preprod", "--to", "prod", "--prune"], "--yes"),
    "protected-storage": (["sync-storage", "--from", "preprod", "--to", "prod"], "--yes"),
    "unknown-function": (["deploy-functions", "--env", "preprod", "--only", "nope"], "nope"),
    "missing-s3-secret": (["sync-storage", "--from", "prod", "--to", "preprod"], "OPS_PREPROD_S3_SECRET_ACCESS_KEY"),
    "bad-jobs": (["sync-storage", "--from", "prod", "--to", "preprod", "--jobs", "0"], "--jobs"),
    "jobs-not-a-number": (["deploy-functions", "--env", "preprod", "--jobs", "four"], "whole number"),
}


@pytest.mark.parametrize("case", list(CATALOGUE), ids=list(CATALOGUE))
def test_bad_input_exits_2_and_changes_nothing(project, storage, case):
    args, message = CATALOGUE[case]
    fill(storage["preprod"].client(), "avatars", 2)
    if case == "missing-s3-secret":
        del project.secrets["OPS_PREPROD_S3_SECRET_ACCESS_KEY"]
    before = state(project, storage)
    result = project.run(*args)
    assert result.code == 2, result.err
    assert message in result.err
    assert state(project, storage) == before


@pytest.mark.parametrize(
    "ini, message",
    [
        ("[prod\nref = x\n", "malformed"),
        ("[prod]\nref = x\ndb_url = postgresql://postgres:hunter2@db.example.com/postgres\n", "password"),
        ("[prod]\nref = x\ndb_password = hunter2\n", "holds a secret"),
        ("[prod]\nref = x\nprotected = maybe\n", "true or false"),
        ("[prod]\nref = x\ncolour = blue\n", "unknown keys"),
    ],
    ids=["syntax", "password-in-url", "password-key", "bad-boolean", "unknown-key"],
)
def test_bad_environments_file_is_refused(tmp_path, ini, message):
    path = tmp_path / "environments.ini"
    path.write_text(ini)
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "envs"],
        cwd=tmp_path,
        env={**os.environ, "OPS_ENVIRONMENTS": str(path)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


AT_COMMIT = """
CREATE FUNCTION public.at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('application_name') = 'ops sync-data import' THEN PERFORM {action}; END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT OR UPDATE ON public.plans
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.at_commit();
"""


def before_dirs(project) -> list:
    return sorted(project.root.glob("tmp/data-sync/*/*/before"))


def test_a_connection_lost_during_commit_keeps_the_undo_and_says_so(project):
    # The deferred trigger runs inside COMMIT: the server ends the session there, as a network cut would.
    sql(project.url("preprod"), AT_COMMIT.format(action="pg_terminate_backend(pg_backend_pid())"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    assert result.code == 1
    assert "may or may not have been committed" in result.err and "--from-export" in result.err
    assert "Nothing was committed" not in result.err
    [before] = before_dirs(project)
    assert (before / "manifest.json").is_file() and not list(before.glob("UNCOMMITTED")) + list(
        before.glob("COMMITTING")
    ), "a kept undo carries no marker"


def test_a_sync_killed_before_its_commit_leaves_no_undo_that_looks_real(project):
    sql(
        project.url("preprod"),
        """
        CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$;
        CREATE TRIGGER slow BEFORE INSERT ON public.plans FOR EACH ROW EXECUTE FUNCTION public.slow();""",
    )
    before_rows = dump(project.url("preprod"))
    process = project.start("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    deadline = time.monotonic() + 30
    while not [b for b in before_dirs(project) if (b / "manifest.json").is_file()] and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL: no handler runs
    process.communicate(timeout=30)
    [before] = before_dirs(project)
    assert (before / "manifest.json").is_file() and (before / "UNCOMMITTED").is_file()
    refused = project.run("sync-data", "--from-export", str(before), "--to", "preprod")
    assert refused.code == 2 and "never committed" in refused.err
    time.sleep(1)  # the killed client's session ends on the server
    assert dump(project.url("preprod")) == before_rows
    again = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "features", "--dry-run")
    assert again.code == 0, again.err
    assert not before.exists() and "cut off before their COMMIT" in again.err


def test_a_sync_killed_while_committing_keeps_its_undo(project):
    sql(project.url("preprod"), AT_COMMIT.format(action="pg_sleep(3)"))
    process = project.start("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    deadline = time.monotonic() + 30
    while not [b for b in before_dirs(project) if (b / "COMMITTING").is_file()] and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.communicate(timeout=30)
    [before] = before_dirs(project)
    assert (before / "COMMITTING").is_file()
    time.sleep(4)  # the server finishes the COMMIT it was sent
    again = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "features", "--dry-run")
    assert again.code == 0, again.err
    assert (before / "manifest.json").is_file() and not (before / "COMMITTING").exists()
    undo = project.run("sync-data", "--from-export", str(before), "--to", "preprod", "--prune", "--yes")
    assert undo.code == 0, undo.err
    assert sql(project.url("preprod"), "SELECT count(*) FROM public.plans") == [(0,)]
