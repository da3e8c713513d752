"""Ctrl-D (end of input) at a prompt is a "no": one line, exit 2, nothing changed, journaled as refused."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

import psycopg
from lib.db import dump, sql
from lib.project import at_a_terminal

CTRL_D = b"\x04"  # at the start of a terminal line: end of input


def last_journaled(project) -> dict:
    lines = (project.root / "ops-journal.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def assert_a_plain_no(project, result) -> None:
    said = [line for line in result.err.splitlines() if line.startswith("error")]
    assert result.code == 2, result.out + result.err
    assert said == ["error: no answer (end of input): nothing was changed"], result.err
    assert "bug" not in result.err
    entry = last_journaled(project)
    assert entry["exit_code"] == 2 and "crashed" not in json.dumps(entry), entry


def test_ctrl_d_at_the_protected_name_prompt_is_a_no(project):
    sql(project.url("preprod"), "INSERT INTO public.module_types (key, label) VALUES ('podcast', 'Podcast')")
    before = dump(project.url("prod"))
    result = at_a_terminal(
        project, "sync-data", "--from", "preprod", "--to", "prod", "--tables", "module_types", typed=CTRL_D
    )
    assert_a_plain_no(project, result)
    assert dump(project.url("prod")) == before


def test_ctrl_d_at_the_table_names_prompt_is_a_no(project, pg):
    prod = project.url("prod")
    name = f"pitr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{urlsplit(prod).path.lstrip("/")}"')
    project.envs["prod-pitr"] = {"ref": "pitrrestoredxxxxxxxx", "db_url": pg.url(name), "restored_from": "prod"}
    sql(prod, "UPDATE public.profiles SET full_name = NULL")
    before = dump(prod)
    result = at_a_terminal(
        project,
        "recover-rows",
        "--from",
        "prod-pitr",
        "--to",
        "prod",
        "--table",
        "public.profiles",
        typed=b"prod\n" + CTRL_D,
    )
    assert_a_plain_no(project, result)
    assert dump(prod) == before
