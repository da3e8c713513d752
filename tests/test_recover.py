"""`inv recover-rows`: rows back from a PITR-restored project, with an undo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from lib.db import sql
from lib.project import REPO, at_a_terminal
from lib.recovery import GRACE, HOSTILE, everything, restored_copy

USERS = ("auth.users", "public.profiles")
TABLES = "auth.users,public.profiles"


def rows(url: str) -> dict[str, list]:
    return {
        t: sql(url, f"SELECT to_jsonb(x)::text FROM {t} x ORDER BY 1")
        for t in (*USERS, "public.plans", "public.features")
    }


def test_recover_rows_brings_back_exactly_the_damaged_rows_and_undoes(project, pg):
    prod = project.url("prod")
    sql(
        prod,
        """
        INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-000000000003', 'linus@example.com');
        INSERT INTO public.profiles (id, full_name) SELECT id, initcap(split_part(email, '@', 1)) FROM auth.users
        ON CONFLICT (id) DO UPDATE SET full_name = EXCLUDED.full_name;""",
    )
    # The PITR restore: a new project holding prod as it was (here, a copy of its database).
    name = f"pitr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{urlsplit(prod).path.lstrip("/")}"')
    project.envs["prod-pitr"] = {"ref": "pitrrestoredxxxxxxxx", "db_url": pg.url(name), "restored_from": "prod"}
    restored = rows(pg.url(name))
    # The bad migration: a user deleted (its profile with it), a column corrupted; then a new user signs up.
    sql(
        prod,
        """
        DELETE FROM auth.users WHERE email = 'grace@example.com';
        UPDATE public.profiles SET full_name = NULL;
        INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-000000000009', 'new@example.com');
        INSERT INTO public.profiles (id, full_name) VALUES ('00000000-0000-4000-8000-000000000009', 'New');""",
    )
    damaged = rows(prod)

    refused = project.run("recover-rows", "--from", "preprod", "--to", "prod", "--table", TABLES, "--yes")
    assert refused.code == 2 and "not a restore of prod" in refused.err
    injected = project.run(
        "recover-rows",
        "--from",
        "prod-pitr",
        "--to",
        "prod",
        "--table",
        "public.profiles",
        "--where",
        "true; DELETE FROM public.plans",
        "--yes",
    )
    assert injected.code == 2 and "one SQL condition" in injected.err
    nowhere = project.run("recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", "public.nope", "--yes")
    assert nowhere.code == 2 and "is not in prod-pitr and prod" in nowhere.err
    assert rows(prod) == damaged

    planned = project.run("recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", TABLES, "--dry-run")
    assert planned.code == 0, planned.err
    assert "+ auth.users[" in planned.out and "~ profiles[" in planned.out and ".full_name: NULL → " in planned.out
    assert rows(prod) == damaged

    done = project.run("recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", TABLES, "--yes", "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)
    counts = {t["table"]: (t["inserted"], t["updated"], t["deleted"]) for t in report["tables"]}
    assert counts == {"auth.users": (1, 0, 0), "public.profiles": (1, 2, 0)}
    after = rows(prod)
    new_user = [r for r in damaged["auth.users"] if "new@example.com" in r[0]]
    assert after["auth.users"] == sorted(restored["auth.users"] + new_user)  # the new sign-up stays
    assert after["public.plans"] == damaged["public.plans"] and after["public.features"] == damaged["public.features"]
    recovered_profiles = {json.loads(r[0])["id"]: json.loads(r[0])["full_name"] for r in after["public.profiles"]}
    assert recovered_profiles["00000000-0000-4000-8000-000000000002"] == "Grace"
    assert recovered_profiles["00000000-0000-4000-8000-000000000009"] == "New"

    before = Path(report["run_dir"]) / "before"
    assert all(p.stat().st_mode & 0o077 == 0 for p in [before, *before.iterdir()]), "user rows: private files"
    undo = project.run(
        "recover-rows",
        "--from-export",
        str(Path(report["run_dir"]) / "before"),
        "--to",
        "prod",
        "--table",
        TABLES,
        "--yes",
    )
    assert undo.code == 0, undo.err
    assert rows(prod) == damaged, "the undo puts back the state the recovery replaced"


NEW_USER = "00000000-0000-4000-8000-0000000000aa"


def test_where_only_ever_selects_rows(project, pg):
    """A hostile --where: both databases byte-identical afterwards, exit 1 or 2 with one line."""
    sql(project.url("prod"), f"INSERT INTO public.profiles (id, full_name) VALUES ('{GRACE}', 'Grace')")
    prod, pitr = project.url("prod"), restored_copy(project, pg)
    sql(
        pitr.replace("//postgres@", "//supabase_admin@"),
        """
        CREATE FUNCTION public.sneaky() RETURNS boolean LANGUAGE plpgsql STABLE
        AS $$ BEGIN PERFORM nextval('public.audit_log_id_seq'); RETURN true; END $$;
        CREATE FUNCTION public.sneaky_rw() RETURNS boolean LANGUAGE plpgsql STABLE AS $$ BEGIN
          PERFORM set_config('transaction_read_only', 'off', true);
          DELETE FROM public.profiles; RETURN true; END $$;
        CREATE VIEW public.locker AS SELECT pg_advisory_lock(29) IS NULL AS locked;""",
    )
    before = {prod: everything(prod), pitr: everything(pitr)}
    failures = []
    for name, condition in HOSTILE.items():
        for mode in ("--dry-run", "--yes"):
            args = (
                "recover-rows",
                "--from",
                "prod-pitr",
                "--to",
                "prod",
                "--table",
                "public.profiles",
                "--where",
                condition,
            )
            result = project.run(*args, mode)
            reason = [line for line in result.err.splitlines() if line.strip()]
            if result.code not in (1, 2) or len(reason) != 1:
                failures.append(f"{name} {mode}: exit {result.code}, {result.err.strip()!r}, {result.out[-200:]!r}")
            for url, dumped in before.items():
                if everything(url) != dumped:
                    failures.append(
                        f"{name} {mode}: {'prod' if url == prod else 'prod-pitr'} changed"
                    )  # later cases judged alone
                    before[url] = everything(url)
    assert not failures, "\n".join(failures)

    # One boolean expression, OR included, is what --where is for.
    sql(prod, "UPDATE public.profiles SET full_name = NULL")
    fine = project.run(
        "recover-rows",
        "--from",
        "prod-pitr",
        "--to",
        "prod",
        "--table",
        "public.profiles",
        "--dry-run",
        "--where",
        f"id = '{GRACE}' OR full_name LIKE 'A%'",
    )
    assert fine.code == 0, fine.err
    assert f"~ profiles[{GRACE}].full_name: NULL → Grace" in fine.out and "full_name: NULL → Ada" in fine.out


def test_keys_take_the_column_name_and_refuse_keys_found_nowhere(project, pg):
    prod = project.url("prod")
    sql(prod, f"INSERT INTO public.profiles (id, full_name) VALUES ('{GRACE}', 'Grace')")
    restored_copy(project, pg)
    sql(prod, f"DELETE FROM auth.users WHERE id = '{GRACE}'")
    damaged = everything(prod)
    planned = project.run(
        "recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", TABLES, "--dry-run", "--keys", f"id={GRACE}"
    )
    assert planned.code == 0, planned.err
    assert f"+ auth.users[{GRACE}]" in planned.out and f"+ profiles[{GRACE}]" in planned.out

    unknown = "00000000-0000-4000-8000-00000000dead"
    for keys in (f"id={GRACE},{unknown}", f"id={unknown}", f"email={GRACE}"):
        refused = project.run(
            "recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", TABLES, "--yes", "--keys", keys
        )
        assert refused.code == 2, (keys, refused.err)
        assert ("in neither" in refused.err or "not the key" in refused.err) and keys.split(",")[-1] in refused.err
    assert everything(prod) == damaged

    # The undo of a recovery deletes the rows it inserted: what has pointed at them since is shown first.
    done = project.run(
        "recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", TABLES, "--keys", GRACE, "--yes", "--json"
    )
    assert done.code == 0, done.err
    sql(prod, f"INSERT INTO public.user_roles VALUES ('{GRACE}', 'coach')")
    before = Path(json.loads(done.out)["run_dir"]) / "before"
    undo = project.run("recover-rows", "--from-export", str(before), "--to", "prod", "--table", TABLES, "--dry-run")
    assert undo.code == 0, undo.err
    assert f"- user_roles[{GRACE},coach]" in undo.out and "ON DELETE CASCADE from auth.users" in undo.out


def test_prune_shows_exports_and_undoes_every_row_a_cascade_touches(project, pg):
    prod = project.url("prod")
    # One ON DELETE SET NULL among the cascades (the audit log keeps its rows, without the actor).
    sql(
        prod,
        "ALTER TABLE public.audit_log DROP CONSTRAINT audit_log_actor_id_fkey, ADD CONSTRAINT audit_log_actor_id_fkey "
        "FOREIGN KEY (actor_id) REFERENCES auth.users (id) ON DELETE SET NULL",
    )
    restored_copy(project, pg)
    # A sign-up after the restore point, with rows in several tables, one two levels down.
    sql(
        prod,
        f"""
        INSERT INTO auth.users (id, email) VALUES ('{NEW_USER}', 'late@example.com');
        INSERT INTO public.profiles (id, full_name) VALUES ('{NEW_USER}', 'Late');
        INSERT INTO public.user_roles VALUES ('{NEW_USER}', 'client'), ('{NEW_USER}', 'coach');
        INSERT INTO public.user_credit_balances VALUES ('{NEW_USER}', 40);
        INSERT INTO public.client_enrollments (id, user_id, program_id)
        VALUES ('50000000-0000-4000-8000-000000000001', '{NEW_USER}', '30000000-0000-4000-8000-000000000001');
        INSERT INTO public.module_progress (enrollment_id, module_id, notes)
        SELECT '50000000-0000-4000-8000-000000000001', id, 'done' FROM public.program_modules LIMIT 2;
        INSERT INTO public.audit_log (actor_id, action) VALUES ('{NEW_USER}', 'signed up'), (NULL, 'cron');""",
    )
    before = everything(prod)

    planned = project.run(
        "recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", "auth.users", "--prune", "--dry-run"
    )
    assert planned.code == 0, planned.err
    for shown in (
        f"- auth.users[{NEW_USER}]",
        f"- profiles[{NEW_USER}]",
        f"- user_roles[{NEW_USER},client]",
        f"- user_roles[{NEW_USER},coach]",
        f"- user_credit_balances[{NEW_USER}]",
        "- client_enrollments[50000000-0000-4000-8000-000000000001]",
        "- module_progress[",
        f".actor_id: {NEW_USER} → NULL",
    ):
        assert shown in planned.out, shown
    assert everything(prod) == before

    asked = at_a_terminal(
        project,
        "recover-rows",
        "--from",
        "prod-pitr",
        "--to",
        "prod",
        "--table",
        "auth.users",
        "--prune",
        typed=b"no\n",
    )
    assert asked.code == 2
    question = asked.out.index("Type its name")
    for counted in ("public.module_progress", "public.audit_log", "public.user_roles"):
        assert asked.out.index(counted) < question, counted
    assert everything(prod) == before

    done = project.run(
        "recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", "auth.users", "--prune", "--yes", "--json"
    )
    assert done.code == 0, done.err
    report = json.loads(done.out)
    touched = {t["table"]: (t["updated"], t["deleted"]) for t in report["tables"]}
    assert touched == {
        "auth.users": (0, 1),
        "public.profiles": (0, 1),
        "public.user_roles": (0, 2),
        "public.user_credit_balances": (0, 1),
        "public.client_enrollments": (0, 1),
        "public.module_progress": (0, 2),
        "public.audit_log": (1, 0),
    }
    assert sql(prod, f"SELECT count(*) FROM auth.users WHERE id = '{NEW_USER}'") == [(0,)]
    exported = Path(report["run_dir"]) / "before"
    held = {e["table"]: e["rows"] for e in json.loads((exported / "manifest.json").read_text())["tables"]}
    assert held == {table: updated + deleted for table, (updated, deleted) in touched.items()}

    undo = project.run(
        "recover-rows", "--from-export", str(exported), "--to", "prod", "--table", ",".join(touched), "--yes"
    )
    assert undo.code == 0, undo.err
    assert everything(prod) == before, "the undo puts back every row the prune and its cascades touched"


def test_prune_changes_nothing_when_what_it_reaches_changed_after_the_plan(project, pg):
    """Between the plan and the typed name a new row comes to point at a pruned user: nothing is deleted."""
    prod = project.url("prod")
    restored_copy(project, pg)
    sql(
        prod,
        f"""
        INSERT INTO auth.users (id, email) VALUES ('{NEW_USER}', 'late@example.com');
        INSERT INTO public.user_roles VALUES ('{NEW_USER}', 'client');""",
    )
    controller, terminal = os.openpty()
    project.write()
    environ = {**os.environ, "OPS_ENVIRONMENTS": str(project.ini), "SUPABASE_CLI": str(project.cli_recorder())}
    args = ("recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", "auth.users", "--prune")
    task = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
        cwd=project.root,
        env={**environ, **project.secrets},
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        shown = ""
        while "Type its name" not in shown and task.poll() is None:
            shown += task.stdout.read(1)
        assert f"- user_roles[{NEW_USER},client]" in shown
        sql(prod, f"INSERT INTO public.user_roles VALUES ('{NEW_USER}', 'coach')")
        changed = everything(prod)
        os.write(controller, b"prod\nauth.users\n")
        out, err = task.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)
    assert task.returncode == 1, shown + out + err
    assert "changed since the plan" in err and "Traceback" not in err
    assert everything(prod) == changed
