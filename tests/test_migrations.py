"""`inv push-migrations` and `inv migration-status` with the real Supabase CLI and real databases."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import uuid

import pytest
from lib.db import sql
from lib.project import FAKE_DB_PASSWORD, REPO, Project

from devstack import localstack

EXTRA = "20250301000000_add_badges.sql"


@pytest.fixture
def three(tmp_path, pg) -> Project:
    """preprod, prod (protected) and sandbox: bootstrapped databases with no migration applied."""
    supabase = tmp_path / "app" / "supabase"
    shutil.copytree(REPO / "supabase", supabase, ignore=shutil.ignore_patterns(".temp"))
    (supabase / ".temp").mkdir()
    (supabase / ".temp" / "project-ref").write_text("cezlnvdjildzxpyxyabb")
    project = Project(tmp_path, supabase_dir=supabase)
    refs = {"preprod": "jtzcrirqflfnagceendt", "prod": "qfdztdgublwlmewobxmx", "sandbox": "cezlnvdjildzxpyxyabb"}
    for env, ref in refs.items():
        url = pg.create_database(f"{env}_{uuid.uuid4().hex[:8]}")
        project.envs[env] = {"ref": ref, "db_url": url, "protected": str(env == "prod").lower()}
    return project


def add_migration(project: Project, name: str = EXTRA, body: str = "CREATE TABLE public.badges (id int PRIMARY KEY);"):
    (project.supabase_dir / "migrations" / name).write_text(body)


def applied(project: Project, env: str) -> list[str]:
    rows = (
        sql(project.url(env), "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version")
        if sql(project.url(env), "SELECT to_regclass('supabase_migrations.schema_migrations')")[0][0]
        else []
    )
    return [r[0] for r in rows]


def cli_list(project: Project, env: str, cli) -> dict[str, str]:
    """What `supabase migration list --db-url` says: local version -> remote version ('' if pending)."""
    out = subprocess.run(
        [str(cli), "migration", "list", "--db-url", project.url(env), "--workdir", str(project.supabase_dir.parent)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        cells = [c.strip().strip("`").strip() for c in line.split("|")]
        if len(cells) == 3 and (cells[0].isdigit() or cells[1].isdigit()):
            rows[cells[0] or cells[1]] = cells[1]
    return rows


def test_push_one_env_and_status_agrees_with_the_cli(three, cli):
    result = three.run("push-migrations", "--env", "preprod")
    assert result.code == 0, result.err
    assert "20250101000000" in result.out and "pending version" in result.out
    assert applied(three, "preprod") == ["20250101000000", "20250102000000"]
    assert applied(three, "prod") == []
    add_migration(three)
    status = three.run("migration-status", "--envs", "preprod,prod", "--json")
    assert status.code == 0, status.err
    ours = {row["version"]: row for row in json.loads(status.out)["rows"]}
    assert ours["20250101000000"]["preprod"] == "applied" and ours["20250101000000"]["prod"] == "pending"
    assert ours["20250301000000"]["preprod"] == "pending"
    for env in ("preprod", "prod"):
        theirs = cli_list(three, env, cli)
        assert {v for v, remote in theirs.items() if remote} == {v for v, r in ours.items() if r[env] == "applied"}


def test_all_stops_at_the_failing_env(three):
    add_migration(three)
    sql(three.url("prod"), "CREATE TABLE public.badges (id int)")  # makes the new migration fail on prod only
    result = three.run("push-migrations", "--env", "all", "--yes", "--json")
    assert result.code == 1
    rows = {r["env"]: r for r in json.loads(result.out)["envs"]}
    assert rows["preprod"]["status"] == "done" and rows["preprod"]["applied"] == 3
    assert rows["prod"]["status"] == "failed" and "badges" in rows["prod"]["detail"]
    assert rows["prod"]["applied"] == 2 and rows["prod"]["pending"] == 1
    assert rows["sandbox"]["status"] == "not run"
    assert applied(three, "sandbox") == []
    assert applied(three, "prod") == ["20250101000000", "20250102000000"]


def test_remote_only_migration_is_refused(three):
    assert three.run("push-migrations", "--env", "preprod").code == 0
    sql(
        three.url("preprod"),
        "INSERT INTO supabase_migrations.schema_migrations (version, name) VALUES ('20240101000000', 'hotfix')",
    )
    add_migration(three)
    result = three.run("push-migrations", "--env", "preprod")
    assert result.code == 2
    assert "20240101000000" in result.err and "migration repair" in result.err
    assert "20250301000000" not in applied(three, "preprod")
    status = three.run("migration-status", "--envs", "preprod", "--json")
    remote_only = [r for r in json.loads(status.out)["rows"] if r["version"] == "20240101000000"]
    assert remote_only and remote_only[0]["preprod"] == "remote only"


def test_prod_needs_preprod_first(three):
    refused = three.run("push-migrations", "--env", "prod", "--yes")
    assert refused.code == 2
    assert "preprod" in refused.err and "--skip-preprod-check" in refused.err
    assert applied(three, "prod") == []
    assert three.run("push-migrations", "--env", "preprod").code == 0
    allowed = three.run("push-migrations", "--env", "prod", "--yes")
    assert allowed.code == 0, allowed.err
    assert applied(three, "prod") == applied(three, "preprod")


def test_protected_env_needs_yes(three):
    assert three.run("push-migrations", "--env", "preprod").code == 0
    refused = three.run("push-migrations", "--env", "prod")
    assert refused.code == 2 and "--yes" in refused.err
    assert applied(three, "prod") == []


def test_dry_run_applies_nothing(three):
    result = three.run("push-migrations", "--env", "all", "--dry-run", "--json")
    assert result.code == 0, result.err
    assert "would apply" in result.out
    assert [applied(three, env) for env in ("preprod", "prod", "sandbox")] == [[], [], []]


def test_bad_migration_name_is_refused(three):
    add_migration(three, "add_badges.sql")
    result = three.run("push-migrations", "--env", "preprod")
    assert result.code == 2 and "add_badges.sql" in result.err
    assert applied(three, "preprod") == []


def test_unreachable_env_does_not_hide_the_others(three, refused_port):
    three.envs["sandbox"]["db_url"] = f"postgresql://postgres@127.0.0.1:{refused_port()}/x?sslmode=disable"
    assert three.run("push-migrations", "--env", "preprod").code == 0
    result = three.run("migration-status", "--json")
    assert result.code == 1 and "could not read sandbox" in result.err  # what was not read is never an exit 0
    data = json.loads(result.out)
    assert "sandbox" in data["unreachable"]
    assert {r["preprod"] for r in data["rows"]} == {"applied"}
    assert {r["sandbox"] for r in data["rows"]} == {"unreachable"}


def test_password_goes_only_through_the_environment(three, tmp_path, cli):
    """The CLI gets PGPASSWORD in its environment, never in argv; the link file is left alone."""
    trusted_url = three.url("preprod")
    localstack.set_role_password(trusted_url, FAKE_DB_PASSWORD)
    three.envs["preprod"]["db_url"] = trusted_url.replace("postgres@", f"{localstack.PASSWORD_ROLE}@")
    log = tmp_path / "argv.log"
    wrapper = tmp_path / "supabase-wrapper"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {cli} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    link = (three.supabase_dir / ".temp" / "project-ref").read_bytes()
    refused = three.run("push-migrations", "--env", "preprod", env={"SUPABASE_CLI": str(wrapper)})
    assert refused.code == 2 and "OPS_PREPROD_DB_PASSWORD" in refused.err
    result = three.run(
        "push-migrations",
        "--env",
        "preprod",
        env={"SUPABASE_CLI": str(wrapper), "OPS_PREPROD_DB_PASSWORD": FAKE_DB_PASSWORD},
    )
    assert result.code == 0, result.err
    three.envs["preprod"]["db_url"] = trusted_url
    assert applied(three, "preprod") == ["20250101000000", "20250102000000"]
    assert "db push --db-url" in log.read_text()
    assert FAKE_DB_PASSWORD not in log.read_text() + result.out + result.err
    assert (three.supabase_dir / ".temp" / "project-ref").read_bytes() == link
    # Nothing link-related appears; the CLI may cache its own version check (cli-latest).
    assert set(os.listdir(three.supabase_dir / ".temp")) - {"cli-latest"} == {"project-ref"}
