"""The workflow tasks against local services: every step's resulting state, and stops mid-way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from lib.db import dump, new_database, pg_tool, sql
from lib.project import REPO, Project, at_a_terminal
from lib.s3 import contents, fill, s3_secrets

from devstack import localstack
from devstack.mgmt_standin import TOKEN, ManagementAPI
from devstack.webstub import WebStub
from ops import config as ops_config

REFS = {"prod": "qfdztdgublwlmewobxmx", "preprod": "jtzcrirqflfnagceendt", "sandbox": "cezlnvdjildzxpyxyabb"}
FUNCTIONS = sorted(p.name for p in (REPO / "supabase" / "functions").iterdir() if (p / "index.ts").exists())


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def world(tmp_path, pg, cli):
    """prod (migrated, demo data, files), preprod and sandbox (bootstrapped, empty): each with a
    database, an S3 server and a project at the Management API stand-in; the app is a git
    checkout whose `lovable` remote is a local bare repository."""
    app = tmp_path / "app"
    shutil.copytree(REPO / "supabase", app / "supabase", ignore=shutil.ignore_patterns(".temp"))
    (app / "src").mkdir()
    (app / "src" / "App.tsx").write_text("export const App = () => 'v1';\n")
    git(app, "init", "-q", "-b", "main")
    git(app, "config", "user.email", "release@example.com")
    git(app, "config", "user.name", "Release person")
    git(app, "add", "-A")
    git(app, "commit", "-qm", "app v1")
    lovable = tmp_path / "lovable.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(lovable))
    git(app, "remote", "add", "lovable", str(lovable))
    git(app, "push", "-q", "lovable", "main")

    api = ManagementAPI(projects=set(REFS.values()))
    web = WebStub()  # every environment's frontend and functions answer here (for the release's smoke step)
    home = tmp_path / "home"
    home.mkdir()
    project = Project(tmp_path, supabase_dir=app / "supabase")
    project.extra = "[lovable]\nremote = lovable\nbranch = main\npaths = src supabase/functions\n"
    project.secrets = {
        "HOME": str(home),
        "SUPABASE_PROFILE": str(api.write_profile(tmp_path / "profile.yaml")),
        "SUPABASE_ACCESS_TOKEN": TOKEN,
    }
    buckets = ops_config.load(REPO / "environments.ini").storage.buckets
    servers = []
    try:
        for env, ref in REFS.items():
            if env == "prod":
                url = new_database(pg, "prod")
                localstack.run_sql(url, (REPO / "sql" / "demo_prod.sql").read_text())
            else:
                url = pg.create_database(f"{env}_{uuid.uuid4().hex[:8]}")
            key_id, secret = f"AKIAWORLD{env.upper()}0001", f"world-secret-{env}-4711"
            server = localstack.start_s3(key_id, secret, root=tmp_path / f"s3-{env}")
            servers.append(server)
            server.create_buckets(buckets)
            project.envs[env] = {
                "ref": ref,
                "db_url": url,
                "storage_url": server.url,
                "storage_region": "us-east-1",
                "protected": str(env == "prod").lower(),
                "frontend": f"{web.url}/{env}/",
                "functions_url": f"{web.url}/{env}/functions/v1",
            }
            project.secrets.update(s3_secrets(env, key_id, secret))
        prod_s3 = servers[0].client()
        fill(prod_s3, "program-logos", 5)
        fill(prod_s3, "avatars", 3)
        prod_s3.put_object(Bucket="email-assets", Key="banner.png", Body=b"png" * 100, ContentType="image/png")
        api.functions[REFS["prod"]] = {}
        project.api = api
        project.s3 = dict(zip(REFS, servers, strict=False))
        project.app = app
        project.web = web
        yield project
    finally:
        api.stop()
        web.stop()
        for server in servers:
            server.stop()


def steps(result) -> dict[str, str]:
    return {s["step"]: s["status"] for s in json.loads(result.out)["steps"]}


def applied(world, env) -> int:
    if not sql(world.url(env), "SELECT to_regclass('supabase_migrations.schema_migrations')")[0][0]:
        return 0
    return sql(world.url(env), "SELECT count(*) FROM supabase_migrations.schema_migrations")[0][0]


CONFIG_TABLES = ("public.plans", "public.programs", "public.assessment_questions")


def test_release_pushes_migrations_then_deploys(world):
    result = world.run("release", "--env", "preprod", "--json")
    assert result.code == 0, result.err
    assert steps(result) == {"migrations": "done", "functions": "done", "smoke": "done"}
    assert applied(world, "preprod") == 2
    assert world.api.deployed(REFS["preprod"]) == FUNCTIONS
    assert ("OPTIONS", "/preprod/functions/v1/calcom-webhook") in world.web.seen
    assert ("GET", "/preprod/") in world.web.seen
    head = git(world.app, "rev-parse", "HEAD")
    assert json.loads(result.out)["commit"] == head
    (line,) = [json.loads(x) for x in (world.root / "ops-journal.jsonl").read_text().splitlines()]
    assert line["task"] == "release" and line["deployed_commit"] == head and line["exit_code"] == 0


def test_release_fails_when_the_environment_does_not_serve(world):
    world.web.routes["OPTIONS /preprod/functions/v1/stripe-webhook"] = 503
    result = world.run("release", "--env", "preprod", "--json")
    assert result.code == 1
    assert steps(result) == {"migrations": "done", "functions": "done", "smoke": "failed"}
    assert "function stripe-webhook" in result.err
    skipped = world.run("release", "--env", "preprod", "--no-smoke", "--json")
    assert skipped.code == 0 and "smoke" not in steps(skipped)


def test_release_to_prod_refuses_when_preprod_is_behind(world):
    add = world.supabase_dir / "migrations" / "20250301000000_badges.sql"
    add.write_text("CREATE TABLE public.badges (id int PRIMARY KEY);")
    result = world.run("release", "--env", "prod", "--yes", "--only", "calcom-webhook", "--json")
    assert result.code == 2
    assert steps(result) == {
        "preprod-first": "failed",
        "migrations": "not run",
        "functions": "not run",
        "smoke": "not run",
    }
    assert world.api.requests == []
    assert "20250301000000" in result.err


def test_release_stops_after_a_failed_migration(world):
    (world.supabase_dir / "migrations" / "20250301000000_broken.sql").write_text("CREATE TABLE oops (;")
    result = world.run("release", "--env", "preprod", "--json")
    assert result.code == 1
    assert steps(result) == {"migrations": "failed", "functions": "not run", "smoke": "not run"}
    assert "inv release --env preprod --json --resume-at migrations" in result.out
    assert world.api.deployed() == []


def test_reset_env_runs_every_step(world):
    before = world.run("status", "--envs", "prod,preprod", "--json")
    assert before.code == 0, before.err
    report = {e["env"]: e for e in json.loads(before.out)["envs"]}
    assert report["preprod"]["pending"] == 2
    result = world.run("reset-env", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 0, result.err
    assert steps(result) == {"migrations": "done", "config-data": "done", "storage": "done", "functions": "done"}
    assert applied(world, "preprod") == 2
    assert dump(world.url("prod"), *CONFIG_TABLES) == dump(world.url("preprod"), *CONFIG_TABLES)
    assert sql(world.url("preprod"), "SELECT count(*) FROM public.profiles") == [(0,)]
    for bucket in ("program-logos", "avatars", "email-assets"):
        assert contents(world.s3["prod"].client(), bucket) == contents(world.s3["preprod"].client(), bucket)
    assert world.api.deployed(REFS["preprod"]) == FUNCTIONS
    after = world.run("status", "--envs", "prod,preprod")
    assert after.code == 0, after.err
    assert "all match" in after.out
    lines = {line.split("|")[1].strip(): line for line in after.out.splitlines() if line.startswith("| pr")}
    assert "0 deployed (reference)" in lines["prod"]  # prod's functions are the reference, not the repo's
    assert f"{len(FUNCTIONS)} deployed, also " in lines["preprod"]


def test_reset_env_stops_at_storage_and_resumes(world):
    world.s3["preprod"].client().delete_bucket(Bucket="client-badges")
    dry = world.run("reset-env", "--from", "prod", "--to", "preprod", "--dry-run")
    assert dry.code != 0 and "resume with: inv reset-env --from prod --to preprod --dry-run --resume-at " in dry.out, (
        "a dry run's resume hint stays a dry run"
    )
    result = world.run("reset-env", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 1
    assert steps(result) == {"migrations": "done", "config-data": "done", "storage": "failed", "functions": "not run"}
    assert world.api.deployed() == []
    assert contents(world.s3["preprod"].client(), "program-logos") == {}
    resume = json.loads(result.out)["resume"]
    assert resume == "inv reset-env --from prod --to preprod --json --resume-at storage"  # every flag kept
    world.s3["preprod"].client().create_bucket(Bucket="client-badges")
    resumed = world.run(*resume.split()[1:])
    assert resumed.code == 0, resumed.err
    assert steps(resumed) == {"migrations": "skipped", "config-data": "skipped", "storage": "done", "functions": "done"}
    assert world.api.deployed(REFS["preprod"]) == FUNCTIONS


def test_a_failed_function_in_a_workflow_is_re_run_by_the_workflows_own_flags(world):
    world.api.fail_slugs = {"stripe-webhook"}
    result = world.run("reset-env", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 1
    summary = json.loads(result.out)
    detail = next(s["detail"] for s in summary["steps"] if s["step"] == "functions")
    assert detail.startswith("1 function(s) failed: stripe-webhook"), detail
    assert "re-run" not in detail, "the re-run is said once, as the workflow's resume"
    assert summary["resume"] == "inv reset-env --from prod --to preprod --json --resume-at functions"
    assert "re-run: inv reset-env --from prod --to preprod --json --resume-at functions" in result.err
    assert "--only" not in result.err, "reset-env has no --only flag"


def test_a_dry_run_plans_config_data_as_after_the_migrations_it_would_push(world):
    dry = world.run("reset-env", "--from", "prod", "--to", "preprod", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert steps(dry) == {
        "migrations": "done",
        "config-data": "planned in part",
        "storage": "done",
        "functions": "done",
    }
    config_data = next(s["detail"] for s in json.loads(dry.out)["steps"] if s["step"] == "config-data")
    assert "2 migration(s) for preprod" in config_data
    assert applied(world, "preprod") == 0, "a dry run changes nothing"
    text = world.run("reset-env", "--from", "prod", "--to", "preprod", "--dry-run")
    assert text.code == 0 and "planned in part: config-data" in text.out, text.out


def test_a_dry_run_of_promote_config_says_the_prod_step_reads_what_the_first_would_write(world):
    for env in ("sandbox", "preprod"):
        assert world.run("push-migrations", "--env", env).code == 0
    for env in ("sandbox", "preprod"):
        assert world.run("sync-data", "--from", "prod", "--to", env, "--tables", "programs").code == 0
    sql(world.url("sandbox"), "UPDATE public.programs SET name = 'Lovable edit' WHERE slug = 'leadership-101'")
    dry = world.run("promote-config", "--tables", "programs", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert steps(dry) == {"sandbox-to-preprod": "done", "preprod-to-prod": "planned in part"}
    second = json.loads(dry.out)["steps"][1]["detail"]
    assert "step sandbox-to-preprod would write 1 row(s) into it first" in second, second


def lovable_clone(world, tmp_path) -> Path:
    clone = tmp_path / "lovable-work"
    git(tmp_path, "clone", "-q", str(tmp_path / "lovable.git"), str(clone))
    return clone


def test_refresh_sandbox_runs_every_step(world, tmp_path):
    git(world.app, "commit", "-q", "--allow-empty", "-m", "main moves on")
    result = world.run("refresh-sandbox", "--json")
    assert result.code == 0, result.err
    assert steps(result) == {"code": "done", "migrations": "done", "config-data": "done", "storage": "done"}
    assert (
        git(tmp_path, "--git-dir", str(tmp_path / "lovable.git"), "log", "-1", "--format=%s", "main") == "main moves on"
    )
    assert applied(world, "sandbox") == 2
    assert dump(world.url("prod"), *CONFIG_TABLES) == dump(world.url("sandbox"), *CONFIG_TABLES)
    sandbox = world.s3["sandbox"].client()
    assert contents(sandbox, "program-logos") == contents(world.s3["prod"].client(), "program-logos")
    assert list(contents(sandbox, "email-assets")) == ["banner.png"]
    assert contents(sandbox, "avatars") == {}, "only logos and email assets go to the sandbox"


def test_refresh_sandbox_stops_when_config_data_fails(world):
    sql(world.url("prod"), "UPDATE public.programs SET created_by = '00000000-0000-4000-8000-000000000001'")
    result = world.run("refresh-sandbox", "--json")
    assert result.code == 1
    assert steps(result) == {"code": "done", "migrations": "done", "config-data": "failed", "storage": "not run"}
    assert contents(world.s3["sandbox"].client(), "program-logos") == {}
    assert sql(world.url("sandbox"), "SELECT count(*) FROM public.programs") == [(0,)]


def test_promote_config_goes_through_preprod(world):
    for env in ("sandbox", "preprod"):
        assert world.run("push-migrations", "--env", env).code == 0
    assert world.run("sync-data", "--from", "prod", "--to", "sandbox", "--tables", "programs,module_types").code == 0
    sql(world.url("sandbox"), "UPDATE public.programs SET name = 'Lovable edit' WHERE slug = 'leadership-101'")
    refused = world.run("promote-config", "--tables", "programs")
    assert refused.code == 2 and "--yes" in refused.err
    assert sql(world.url("preprod"), "SELECT count(*) FROM public.programs") == [(0,)]
    result = world.run("promote-config", "--tables", "programs", "--yes", "--json")
    assert result.code == 0, result.err
    assert steps(result) == {"sandbox-to-preprod": "done", "preprod-to-prod": "done"}
    for env in ("preprod", "prod"):
        assert sql(world.url(env), "SELECT name FROM public.programs WHERE slug = 'leadership-101'") == [
            ("Lovable edit",)
        ]


def step_cells(text: str, step: str) -> tuple[str, str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {step} "))
    _, status, detail = (cell.strip() for cell in line.strip("|").split("|"))
    return status, detail


def test_promote_config_at_a_terminal_applies_the_plan_it_showed(world):
    """The plan lists each step's plan before the one question; the same steps then apply."""
    for env in ("sandbox", "preprod"):
        assert world.run("push-migrations", "--env", env).code == 0
    assert world.run("sync-data", "--from", "prod", "--to", "sandbox", "--tables", "programs").code == 0
    sql(world.url("sandbox"), "UPDATE public.programs SET name = 'Lovable edit' WHERE slug = 'leadership-101'")
    result = at_a_terminal(world, "promote-config", "--tables", "programs", typed=b"prod\n")
    assert result.code == 0, result.err
    assert result.out.count("Type its name") == 1
    shown, applied = result.out.split("Type its name")
    shown = shown[shown.index("plan (promote-config --dry-run)") :]
    assert step_cells(shown, "sandbox-to-preprod") == ("done", "1 tables sandbox -> preprod: would insert 2, updated 0")
    status, detail = step_cells(shown, "preprod-to-prod")
    assert status == "planned in part" and "step sandbox-to-preprod would write 2 row(s) into it first" in detail
    assert step_cells(applied, "sandbox-to-preprod") == ("done", "1 tables sandbox -> preprod: inserted 2, updated 0")
    assert step_cells(applied, "preprod-to-prod") == ("done", "1 tables preprod -> prod: inserted 0, updated 1")
    assert sql(world.url("prod"), "SELECT name FROM public.programs WHERE slug = 'leadership-101'") == [
        ("Lovable edit",)
    ]


def test_promote_config_stops_before_prod_when_preprod_fails(world):
    for env in ("sandbox", "preprod"):
        assert world.run("push-migrations", "--env", env).code == 0
    assert world.run("sync-data", "--from", "prod", "--to", "sandbox", "--tables", "programs").code == 0
    sql(world.url("sandbox"), "UPDATE public.programs SET name = 'Lovable edit'")
    sql(world.url("preprod"), "ALTER TABLE public.programs ADD CONSTRAINT no_edits CHECK (name <> 'Lovable edit')")
    prod_before = dump(world.url("prod"), "public.programs")
    result = world.run("promote-config", "--tables", "programs", "--yes", "--json")
    assert result.code == 1
    assert steps(result) == {"sandbox-to-preprod": "failed", "preprod-to-prod": "not run"}
    assert dump(world.url("prod"), "public.programs") == prod_before


def test_resume_at_the_prod_step_still_asks_for_prod(world):
    """The command printed after a failure at the prod step must not skip the confirmation."""
    for env in ("sandbox", "preprod", "prod"):
        assert world.run("push-migrations", "--env", env, "--yes", "--skip-preprod-check").code == 0
    assert world.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "programs").code == 0
    sql(world.url("preprod"), "UPDATE public.programs SET name = 'Preprod edit'")
    prod_before = dump(world.url("prod"), "public.programs")
    args = ("promote-config", "--tables", "programs", "--resume-at", "preprod-to-prod")
    no_terminal = world.run(*args)
    assert no_terminal.code == 2 and "--yes" in no_terminal.err
    controller, terminal = os.openpty()  # a person at a terminal types the wrong name
    try:
        os.write(controller, b"preprod\n")
        typed_wrong = world.run(*args, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert typed_wrong.code == 2 and "not confirmed" in typed_wrong.err
    # The plan (the workflow as a dry run) comes before the question.
    assert (
        typed_wrong.out.index("plan (promote-config --dry-run)")
        < typed_wrong.out.index("preprod-to-prod")
        < typed_wrong.out.index("Type its name")
    )
    # ... and the rows it would change in prod, cell by cell, as sync-data --diff shows them.
    assert (
        typed_wrong.out.index("config data preprod -> prod:")
        < typed_wrong.out.index("~ programs[")
        < typed_wrong.out.index("].name: ")
        < typed_wrong.out.index("Type its name")
    )
    assert dump(world.url("prod"), "public.programs") == prod_before
    same = world.run("promote-config", "--tables", "programs", "--sandbox", "preprod", "--yes")
    assert same.code == 2 and "three different" in same.err


def test_backup_snapshot_holds_everything_and_verifies(world):
    world.api.secrets = {REFS["prod"]: {"STRIPE_SECRET_KEY": "e" * 64}}
    result = world.run("backup", "--json")
    assert result.code == 0, result.err
    folder = Path(json.loads(result.out)["steps"][0]["detail"].split(" (")[0])
    assert (folder / "program-logos" / "bulk" / "0001.bin").is_file()
    assert (folder / "config" / "public.plans.json").is_file()
    names = json.loads((folder / "secrets.json").read_text())["names"]
    assert "STRIPE_SECRET_KEY" in names and "SUPABASE_SERVICE_ROLE_KEY" in names
    assert json.loads((folder / "functions.json").read_text())["commit"] == git(world.app, "rev-parse", "HEAD")
    assert "COPY public.profiles" in (folder / "database" / "data.sql").read_text()
    ok = world.run("verify-backup", "--backup", str(folder))
    assert ok.code == 0, ok.out + ok.err
    data = bytearray((folder / "database" / "data.sql").read_bytes())
    data[-10] ^= 0xFF
    (folder / "database" / "data.sql").write_bytes(bytes(data))
    bad = world.run("verify-backup", "--backup", str(folder), "--json")
    assert bad.code == 1 and json.loads(bad.out)["corrupt"] == ["database/data.sql"]


def rows_of(url: str) -> str:
    """Every row of every schema a restore brings back (public, auth, storage, migration history), sorted."""
    argv = [
        pg_tool("pg_dump"),
        "--data-only",
        "--no-owner",
        "--schema=public",
        "--schema=auth",
        "--schema=storage",
        "--schema=supabase_migrations",
        "-d",
        url.replace("?sslmode=disable", ""),
    ]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return "\n".join(
        sorted(line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))
    )


def test_a_backup_restores_into_a_new_project(world):
    prod = world.url("prod")
    sql(prod, "INSERT INTO public.profiles (id, full_name) SELECT id, email FROM auth.users ON CONFLICT DO NOTHING")
    sql(
        prod,
        "INSERT INTO public.audit_log (actor_id, action) SELECT id, 'login' FROM auth.users, generate_series(1, 20)",
    )
    top = sql(prod, "SELECT max(id) FROM public.audit_log")[0][0]
    assert top >= 40
    made = world.run("backup", "--env", "prod", "--json")
    assert made.code == 0, made.err
    folder = Path(json.loads(made.out)["steps"][0]["detail"].split(" (")[0])
    fresh = world.url("preprod")  # bootstrapped as the platform makes a new project; no migrations
    assert sql(fresh, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == [(0,)]
    unnamed = world.run("restore-db", "--backup", str(folder), "--to", "preprod")
    assert unnamed.code == 2 and "name it with --env" in unnamed.err, "another environment's backup needs --env"
    assert sql(fresh, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == [(0,)]
    restored = world.run("restore-db", "--backup", str(folder), "--env", "prod", "--to", "preprod", "--json")
    assert restored.code == 0, restored.err
    assert rows_of(fresh) == rows_of(prod)
    assert sql(fresh, "SELECT count(*) FROM auth.users") == [(2,)]
    sql(fresh, "INSERT INTO public.audit_log (action) VALUES ('after restore')")
    assert sql(fresh, "SELECT max(id) FROM public.audit_log")[0][0] == top + 1, "sequences continue"
    assert applied(world, "preprod") == applied(world, "prod"), "the migration history came along"
    assert world.run("verify-backup", "--backup", str(folder)).code == 0
    again = world.run("restore-db", "--backup", str(folder), "--env", "prod", "--to", "preprod")
    assert again.code == 2 and "already has app tables" in again.err
    forced = world.run("restore-db", "--backup", str(folder), "--env", "prod", "--to", "preprod", "--force")
    assert forced.code == 1 and "nothing was committed" in forced.err
    assert rows_of(fresh) != rows_of(prod) and "after restore" in rows_of(fresh), "a failed restore changed nothing"


def test_backup_all_stops_at_the_first_failing_env(world, refused_port):
    world.envs["preprod"]["db_url"] = f"postgresql://postgres@127.0.0.1:{refused_port()}/x?sslmode=disable"
    result = world.run("backup", "--env", "all", "--json")
    assert result.code == 1
    assert steps(result) == {"prod": "done", "preprod": "failed", "sandbox": "not run"}
    full = world.root / "backups" / "full"
    assert sorted(p.name for p in full.iterdir()) == ["preprod-jtzcrirqflfnagceendt", "prod-qfdztdgublwlmewobxmx"]
    left = [p.name for p in (full / "preprod-jtzcrirqflfnagceendt").iterdir()]
    assert left in ([], [".lock"]), "no partial snapshot is left"


def test_sync_lovable_diff_then_merge(world, tmp_path):
    clone = lovable_clone(world, tmp_path)
    (clone / "src" / "App.tsx").write_text("export const App = () => 'from lovable';\n")
    (clone / "src" / "New.tsx").write_text("export const New = 1;\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "lovable edit")
    git(clone, "push", "-q", "origin", "main")
    head = git(world.app, "rev-parse", "HEAD")
    diff = world.run("sync-lovable", "--diff-only", "--json")
    assert diff.code == 0, diff.err
    assert {(f["status"], f["path"]) for f in json.loads(diff.out)["files"]} == {
        ("M", "src/App.tsx"),
        ("A", "src/New.tsx"),
    }
    assert git(world.app, "rev-parse", "HEAD") == head
    merged = world.run("sync-lovable")
    assert merged.code == 0, merged.err
    assert (world.app / "src" / "New.tsx").is_file()
    assert "from lovable" in (world.app / "src" / "App.tsx").read_text()


def test_lovable_conflicts_leave_everything_as_it_was(world, tmp_path):
    clone = lovable_clone(world, tmp_path)
    (clone / "src" / "App.tsx").write_text("export const App = () => 'lovable';\n")
    git(clone, "commit", "-qam", "lovable edit")
    git(clone, "push", "-q", "origin", "main")
    (world.app / "src" / "App.tsx").write_text("export const App = () => 'ours';\n")
    git(world.app, "commit", "-qam", "our edit")
    head = git(world.app, "rev-parse", "HEAD")
    remote_head = git(clone, "rev-parse", "HEAD")
    merged = world.run("sync-lovable")
    assert merged.code == 1 and "src/App.tsx" in merged.err
    assert git(world.app, "rev-parse", "HEAD") == head
    assert git(world.app, "status", "--porcelain") == ""
    pushed = world.run("update-lovable")
    assert pushed.code == 1 and "src/App.tsx" in pushed.err
    assert git(tmp_path, "--git-dir", str(tmp_path / "lovable.git"), "rev-parse", "main") == remote_head
    assert git(world.app, "worktree", "list").count("\n") == 0, "the scratch worktree is gone"


def test_status_shows_an_unreachable_env_as_unknown_and_fails(world, refused_port):
    world.envs["sandbox"]["db_url"] = f"postgresql://postgres@127.0.0.1:{refused_port()}/x?sslmode=disable"
    world.envs["sandbox"]["storage_url"] = f"http://127.0.0.1:{refused_port()}"
    result = world.run("status")
    assert result.code == 1, result.err
    overview = next(line for line in result.out.splitlines() if line.startswith("| sandbox"))
    assert "unknown" in overview and "all match" not in overview
    assert "INCOMPLETE: could not read sandbox (migrations" in result.out
    assert "status is incomplete" in result.err
    prod_line = next(line for line in result.out.splitlines() if line.startswith("| prod "))
    assert "2 applied" in prod_line
    migrations = world.run("migration-status")
    assert migrations.code == 1 and "sandbox: unreachable" in migrations.out


def test_status_never_says_all_match_when_the_reference_was_not_read(world, refused_port):
    world.envs["prod"]["db_url"] = f"postgresql://postgres@127.0.0.1:{refused_port()}/x?sslmode=disable"
    result = world.run("status", "--envs", "prod,preprod")
    assert result.code == 1
    preprod_line = next(line for line in result.out.splitlines() if line.startswith("| preprod"))
    assert "unknown (prod not read)" in preprod_line and "all match" not in result.out


def test_status_shows_settings_drift_and_never_a_secret(world):
    for env, public in (("prod", "false"), ("preprod", "true")):
        sql(
            world.url(env),
            f"INSERT INTO storage.buckets (id, name, public, file_size_limit) "
            f"VALUES ('avatars', 'avatars', {public}, 5242880)",
        )
    # Secrets under names no pattern foresees (sms_test_otp: phone numbers with fixed login codes) too.
    world.api.auth[REFS["prod"]] = {
        "site_url": "https://app.innotrue.com",
        "external_google_secret": "g-secret-1",
        "sms_test_otp": "15550001111=424242",
        "hook_custom_access_token_uri": "pg-functions://postgres/public/hook-same",
    }
    world.api.auth[REFS["preprod"]] = {
        "site_url": "https://preprod.example.com",
        "external_google_enabled": True,
        "external_google_secret": "g-secret-2",
        "sms_test_otp": "15550002222=515151",
        "hook_custom_access_token_uri": "pg-functions://postgres/public/hook-same",
    }
    result = world.run("status", "--env", "prod,preprod", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["settings_drift"] == [
        "auth external_google_enabled",
        "auth external_google_secret",
        "auth sms_test_otp",
        "bucket avatars: public",
    ]  # hidden settings are compared (by digest): the equal hook is no drift
    assert report["settings_per_env"] == ["auth site_url"]
    text = world.run("status", "--env", "prod,preprod")
    assert "settings drift: 4 setting(s) differ" in text.out and "auth site_url (per environment)" in text.out
    otp_row = next(line for line in text.out.splitlines() if "auth sms_test_otp" in line)
    assert otp_row.count("differs") == 2, otp_row
    for value in ("g-secret", "424242", "515151", "15550001111", "hook-same"):
        assert value not in result.out + text.out, value


def test_status_json_settings_are_structured(world):
    for env in ("prod", "preprod"):
        sql(
            world.url(env),
            "INSERT INTO storage.buckets (id, name, public, file_size_limit, allowed_mime_types) "
            "VALUES ('avatars', 'avatars', false, 5242880, ARRAY['image/png', 'image/jpeg'])",
        )
    world.api.auth[REFS["prod"]] = {"site_url": "https://app.innotrue.com", "jwt_exp": 3600}
    result = world.run("status", "--env", "prod,preprod", "--json")
    assert result.code == 0, result.err
    settings = {e["env"]: e["settings"] for e in json.loads(result.out)["envs"]}
    assert settings["prod"]["buckets"]["avatars"] == {
        "public": False,
        "file_size_limit": 5242880,
        "allowed_mime_types": ["image/jpeg", "image/png"],
    }
    auth = settings["prod"]["auth"]
    assert (auth["site_url"], auth["jwt_exp"], auth["disable_signup"]) == ("https://app.innotrue.com", 3600, False)
    text = world.run("status", "--env", "prod,preprod")
    assert text.code == 0 and "image/png" not in text.out, "equal everywhere: no drift row"
