"""The plan comes before the question: read-only planning, then the typed name, at a terminal."""

from __future__ import annotations

import json

from lib.db import dump, sql
from lib.project import at_a_terminal
from lib.s3 import contents, fill


def test_sync_storage_shows_every_object_before_asking(project, storage):
    fill(storage["preprod"].client(), "avatars", 3)
    before = contents(storage["prod"].client(), "avatars")
    result = at_a_terminal(
        project, "sync-storage", "--from", "preprod", "--to", "prod", "--buckets", "avatars", typed=b"preprod\n"
    )
    assert result.code == 2 and "not confirmed" in result.err
    plan, prompt = result.out.index("plan for prod: copy 3 object(s)"), result.out.index("Type its name")
    assert plan < result.out.index("+ avatars/bulk/0002.bin") < prompt
    assert contents(storage["prod"].client(), "avatars") == before


def test_sync_data_shows_the_row_counts_before_asking(project):
    sql(project.url("preprod"), "INSERT INTO public.module_types (key, label) VALUES ('podcast', 'Podcast')")
    before = dump(project.url("prod"))
    result = at_a_terminal(
        project, "sync-data", "--from", "preprod", "--to", "prod", "--tables", "module_types", typed=b"nope\n"
    )
    assert result.code == 2
    plan = result.out.index("plan for prod:")
    assert plan < result.out.index("public.module_types") < result.out.index("Type its name")
    assert "to insert" in result.out
    assert dump(project.url("prod")) == before


def cells(text: str, table: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {table} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_sync_data_applies_the_plan_it_showed(project):
    """What is applied is the plan shown before the question: its tables and --prune, row for row."""
    assert project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "module_types").code == 0
    sql(project.url("preprod"), "INSERT INTO public.module_types (key, label) VALUES ('podcast', 'Podcast')")
    sql(project.url("prod"), "INSERT INTO public.module_types (key, label) VALUES ('webinar', 'Webinar')")
    result = at_a_terminal(
        project,
        "sync-data",
        "--from",
        "preprod",
        "--to",
        "prod",
        "--tables",
        "module_types",
        "--prune",
        typed=b"prod\n",
    )
    assert result.code == 0, result.err
    shown, applied = result.out.split("Type its name")
    planned = cells(shown[shown.index("plan for prod:") :], "public.module_types")
    done = cells(applied, "public.module_types")
    # table | to insert | to update | unchanged | only in target | to delete   (the plan)
    # table | inserted  | updated   | unchanged | deleted                      (the run)
    assert planned[1:3] + planned[5:] == done[1:3] + done[4:] == ["1", "0", "1"], (planned, done)
    assert dump(project.url("prod"), "public.module_types") == dump(project.url("preprod"), "public.module_types")


def test_nothing_to_do_asks_nothing(project, storage):
    for args in (
        ("sync-storage", "--from", "preprod", "--to", "prod", "--buckets", "group-notes"),
        ("sync-data", "--from", "prod", "--to", "prod-copy", "--tables", "plans"),
    ):
        if args[0] == "sync-data":
            project.envs["prod-copy"] = {**project.envs["preprod"], "protected": "true"}
            assert project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans").code == 0
        result = project.run(*args)  # no terminal, no --yes: only a plan with work in it would need one
        assert result.code == 0, result.err
        assert "Type its name" not in result.out


def test_dry_run_names_what_would_be_copied_and_deleted(project, storage):
    src, dst = storage["prod"].client(), storage["preprod"].client()
    fill(src, "avatars", 60)
    dst.put_object(Bucket="avatars", Key="stale/old.bin", Body=b"x")
    text = project.run(
        "sync-storage",
        "--from",
        "prod",
        "--to",
        "preprod",
        "--buckets",
        "avatars",
        "--delete",
        "--max-delete",
        "5",
        "--dry-run",
    )
    assert text.code == 0, text.err
    assert "+ avatars/bulk/0000.bin" in text.out and "- avatars/stale/old.bin" in text.out
    assert "+ ... and 10 more in avatars" in text.out and "+ avatars/bulk/0055.bin" not in text.out
    as_json = project.run(
        "sync-storage",
        "--from",
        "prod",
        "--to",
        "preprod",
        "--buckets",
        "avatars",
        "--delete",
        "--max-delete",
        "5",
        "--dry-run",
        "--json",
    )
    bucket = json.loads(as_json.out)["buckets"][0]
    assert len(bucket["to_copy"]) == 60 and bucket["to_delete"] == ["stale/old.bin"]
