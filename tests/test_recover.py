"""`inv recover-rows` (issue 21, item 1): rows back from a PITR-restored project, with an undo."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from lib.db import sql

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
