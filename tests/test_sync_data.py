"""`inv sync-data` against two real PostgreSQL databases."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from lib.db import dump, pg_tool, sql
from lib.project import FAKE_DB_PASSWORD, REPO

CATALOGUE = """
CREATE TYPE public.mood AS ENUM ('happy', 'sad', 'it''s complicated');
CREATE TABLE public.value_catalogue (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  parent_id bigint REFERENCES public.value_catalogue (id),
  uid uuid, label text, doc json, docb jsonb, tags text[], grid int[], feeling public.mood,
  exact numeric(40, 20), big numeric, ratio double precision, at timestamptz, day date,
  span interval, blob bytea, flag boolean,
  label_length int GENERATED ALWAYS AS (length(label)) STORED
);
"""

CATALOGUE_ROWS = r"""
INSERT INTO public.value_catalogue (id, parent_id, uid, label, doc, docb, tags, grid, feeling, exact, big, ratio, at, day, span, blob, flag)
OVERRIDING SYSTEM VALUE VALUES
 (2, 1, gen_random_uuid(), E'quote '' double " back\\slash $$ dollar\nnew line\ttab', '{"a": [1, 2.50, {"b": null}]}', 'null',
  '{"x y", "", NULL, "q\"uote"}', '{{1,2},{3,NULL}}', 'it''s complicated', 12345678901234567890.12345678901234567890,
  -0.000000000000000000000000001, 0.1, '2026-03-01 12:34:56.789012+05:30', '2024-02-29', '1 year 2 mons 3 days 04:05:06.789', '\x00ff5c27', true),
 (1, NULL, '00000000-0000-0000-0000-000000000000', 'ünïcödé ✓ 😀', NULL, '{"nested": {"deep": [true, false, null]}}',
  '{}', NULL, 'happy', 0, 1e30, 'Infinity', '-infinity', '0001-01-01', '-1 day', '', false),
 (3, 2, NULL, NULL, 'null', NULL, NULL, NULL, NULL, NULL, 'NaN', -1.5e-300, NULL, NULL, NULL, NULL, NULL);
SELECT setval(pg_get_serial_sequence('public.value_catalogue', 'id'), 3);
"""


def summary(result) -> dict:
    data = json.loads(result.out)
    return {t["table"]: t for t in data["tables"]}


def totals(result) -> tuple[int, int, int]:
    tables = summary(result).values()
    return (sum(t["inserted"] for t in tables), sum(t["updated"] for t in tables), sum(t["deleted"] for t in tables))


def test_full_sync_copies_config_and_no_user_data(project):
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 0, result.err
    tables = summary(result)
    assert len(tables) == 26
    assert tables["public.assessment_questions"]["inserted"] == 30
    prod, preprod = project.url("prod"), project.url("preprod")
    config_tables = [f"public.{t}" for t in ("plans", "features", "plan_features", "programs", "assessment_families")]
    assert dump(prod, *config_tables) == dump(preprod, *config_tables)
    assert sql(preprod, "SELECT count(*) FROM public.profiles")[0][0] == 0
    assert sql(preprod, "SELECT count(*) FROM public.audit_log")[0][0] == 0


def test_second_run_changes_nothing(project):
    assert project.run("sync-data", "--from", "prod", "--to", "preprod").code == 0
    before = dump(project.url("preprod"))
    second = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json")
    assert second.code == 0, second.err
    assert totals(second) == (0, 0, 0)
    assert summary(second)["public.plans"]["unchanged"] == 3
    assert dump(project.url("preprod")) == before


def test_one_changed_row_is_one_update(project):
    assert project.run("sync-data", "--from", "prod", "--to", "preprod").code == 0
    sql(project.url("prod"), "UPDATE public.plans SET name = 'Pro+' WHERE key = 'pro'")
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json", "--tables", "plans")
    assert result.code == 0, result.err
    assert totals(result) == (0, 1, 0)
    assert sql(project.url("preprod"), "SELECT name FROM public.plans WHERE key = 'pro'") == [("Pro+",)]


def test_value_catalogue_round_trips_exactly(project):
    for env in ("prod", "preprod"):
        sql(project.url(env), CATALOGUE)
    sql(project.url("prod"), CATALOGUE_ROWS)
    project.safe_extra = ["value_catalogue"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "value_catalogue", "--json")
    assert result.code == 0, result.err
    assert summary(result)["public.value_catalogue"]["inserted"] == 3
    assert dump(project.url("prod"), "public.value_catalogue") == dump(project.url("preprod"), "public.value_catalogue")
    # JSON null and SQL NULL stay distinct; the identity sequence moved past the copied ids.
    assert sql(project.url("preprod"), "SELECT id, doc IS NULL, doc::text FROM public.value_catalogue ORDER BY id") == [
        (1, True, None),
        (2, False, '{"a": [1, 2.50, {"b": null}]}'),
        (3, False, "null"),
    ]
    sql(project.url("preprod"), "INSERT INTO public.value_catalogue (label) VALUES ('new')")
    assert sql(project.url("preprod"), "SELECT max(id) FROM public.value_catalogue") == [(4,)]


@pytest.mark.parametrize("table", ["profiles", "public.oauth_tokens", "audit_log"], ids=["plain", "qualified", "log"])
def test_blocked_table_refused_before_anything(project, table):
    before = dump(project.url("preprod"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", f"plans,{table}")
    assert result.code == 2
    assert table in result.err and "user data" in result.err
    assert dump(project.url("preprod")) == before
    assert not (project.root / "tmp").exists(), "nothing may be read or written"


def test_unknown_table_refused_with_fix(project):
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans", "--tables", "coupons")
    assert result.code == 2
    assert "coupons" in result.err and "safe_tables" in result.err


def test_failure_in_last_table_leaves_target_identical(project):
    assert project.run("sync-data", "--from", "prod", "--to", "preprod").code == 0
    sql(
        project.url("prod"),
        "UPDATE public.plans SET name = 'changed'; UPDATE public.assessment_questions SET weight = 2",
    )
    sql(
        project.url("preprod"),
        "ALTER TABLE public.assessment_questions ADD CONSTRAINT weight_small CHECK (weight < 1.5)",
    )
    before = dump(project.url("preprod"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    assert result.code == 1
    assert "public.assessment_questions" in result.err and "weight_small" in result.err
    assert "unchanged" in result.err
    assert dump(project.url("preprod")) == before


def test_foreign_key_to_missing_user_rolls_back_and_names_key(project):
    sql(
        project.url("prod"),
        "UPDATE public.programs SET created_by = '00000000-0000-4000-8000-000000000002' WHERE slug = 'leadership-101'",
    )
    before = dump(project.url("preprod"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    assert result.code == 1
    assert "public.programs" in result.err
    assert "programs_created_by_fkey" in result.err
    assert "00000000-0000-4000-8000-000000000002" in result.err
    assert dump(project.url("preprod")) == before


@pytest.mark.parametrize(
    "order",
    [
        "assessment_questions,assessment_domains,assessment_families,assessment_categories",
        "assessment_categories,assessment_families,assessment_domains,assessment_questions",
    ],
    ids=["children-first", "parents-first"],
)
def test_foreign_key_order_does_not_depend_on_tables_flag(project, order):
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", order, "--json")
    assert result.code == 0, result.err
    assert list(summary(result)) == [
        "public.assessment_categories",
        "public.assessment_families",
        "public.assessment_domains",
        "public.assessment_questions",
    ]
    # The child family sorts before its parent in the source: it still lands.
    assert sql(
        project.url("preprod"), "SELECT count(*) FROM public.assessment_families WHERE parent_family_id IS NOT NULL"
    ) == [(1,)]


def test_dry_run_counts_and_changes_nothing(project):
    sql(
        project.url("preprod"),
        "INSERT INTO public.module_types (key, label) VALUES ('video', 'Old label'), ('legacy', 'Legacy')",
    )
    before = dump(project.url("preprod"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--dry-run", "--json", "--prune")
    assert result.code == 0, result.err
    module_types = summary(result)["public.module_types"]
    assert (
        module_types["inserted"],
        module_types["updated"],
        module_types["only_in_target"],
        module_types["deleted"],
    ) == (2, 1, 1, 1)
    assert dump(project.url("preprod")) == before
    data = json.loads(result.out)
    assert data["dry_run"] is True
    assert (Path(data["run_dir"]) / "import.sql").is_file()


def test_prune_deletes_target_only_rows_children_first(project):
    assert project.run("sync-data", "--from", "prod", "--to", "preprod").code == 0
    sql(
        project.url("preprod"),
        """
        INSERT INTO public.plans (id, key, name) VALUES ('10000000-0000-4000-8000-0000000000ff', 'legacy', 'Legacy');
        INSERT INTO public.plan_features (plan_id, feature_id)
        SELECT '10000000-0000-4000-8000-0000000000ff', id FROM public.features LIMIT 2;""",
    )
    without_prune = project.run(
        "sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans,plan_features", "--json"
    )
    assert totals(without_prune) == (0, 0, 0)
    assert summary(without_prune)["public.plans"]["only_in_target"] == 1
    pruned = project.run(
        "sync-data", "--from", "prod", "--to", "preprod", "--tables", "plan_features,plans", "--prune", "--json"
    )
    assert pruned.code == 0, pruned.err
    assert summary(pruned)["public.plan_features"]["deleted"] == 2
    assert summary(pruned)["public.plans"]["deleted"] == 1
    tables = ("public.plans", "public.plan_features")
    assert dump(project.url("prod"), *tables) == dump(project.url("preprod"), *tables)


def test_before_export_restores_the_target(project):
    sql(
        project.url("preprod"),
        """
        INSERT INTO public.module_types (key, label) VALUES ('video', 'Local video'), ('legacy', 'Legacy');
        INSERT INTO public.system_settings (key, value) VALUES ('maintenance_mode', 'true');""",
    )
    tables = ("public.module_types", "public.system_settings")
    original = dump(project.url("preprod"), *tables)
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "module_types,system_settings")
    assert result.code == 0, result.err
    assert dump(project.url("preprod"), *tables) != original
    undo = next(line for line in result.out.splitlines() if line.startswith("undo: inv "))
    before_dir = Path(undo.split("--from-export ")[1].split(" ")[0])
    assert before_dir.name == "before" and undo.endswith("--to preprod --prune")
    restore = project.run(*undo.removeprefix("undo: inv ").split(), "--json")
    assert restore.code == 0, restore.err
    assert dump(project.url("preprod"), *tables) == original


def test_export_only_writes_json_and_manifest(project):
    result = project.run("sync-data", "--from", "prod", "--export-only", "--tables", "plans,features", "--json")
    assert result.code == 0, result.err
    run_dir = Path(json.loads(result.out)["run_dir"])
    assert run_dir.parent.name == "prod" and run_dir.parent.parent == project.root / "tmp" / "data-sync"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["env"] == "prod" and manifest["ref"] == "qfdztdgublwlmewobxmx"
    assert {t["table"]: t["rows"] for t in manifest["tables"]} == {"public.plans": 3, "public.features": 12}
    plans = json.loads((run_dir / "public.plans.json").read_text())
    assert sorted(p["key"] for p in plans) == ["enterprise", "free", "pro"]
    assert not (run_dir / "import.sql").exists()


def test_import_sql_runs_with_psql_by_hand(project, pg):
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--dry-run", "--json")
    script = Path(json.loads(result.out)["run_dir"]) / "import.sql"
    url = project.url("preprod").replace("?sslmode=disable", "")
    subprocess.run([pg_tool("psql"), "-q", "-X", url, "-f", str(script)], check=True, capture_output=True)
    assert dump(project.url("prod"), "public.programs", "public.plan_prices") == dump(
        project.url("preprod"), "public.programs", "public.plan_prices"
    )


def test_target_schema_behind_is_refused(project):
    sql(project.url("preprod"), "ALTER TABLE public.plans DROP COLUMN tier_level")
    result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    assert result.code == 2
    assert "public.plans.tier_level" in result.err and "push migrations" in result.err


def test_target_only_column_is_left_alone(project):
    sql(project.url("preprod"), "ALTER TABLE public.plans ADD COLUMN local_note text DEFAULT 'kept'")
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    assert result.code == 0, result.err
    assert sql(project.url("preprod"), "SELECT DISTINCT local_note FROM public.plans") == [("kept",)]


def test_natural_key_matches_rows_with_other_ids(project):
    sql(project.url("preprod"), "INSERT INTO public.plans (key, name) VALUES ('pro', 'Old pro')")
    project.keys = {"plans": "key"}
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans", "--json")
    assert result.code == 0, result.err
    assert totals(result)[:2] == (2, 1)
    assert sql(project.url("preprod"), "SELECT name FROM public.plans WHERE key = 'pro'") == [("Pro",)]


def test_table_without_any_key_is_refused(project):
    for env in ("prod", "preprod"):
        sql(project.url(env), "CREATE TABLE public.loose (a int, b text)")
    project.safe_extra = ["loose"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "loose")
    assert result.code == 2
    assert "no primary key" in result.err and "key.loose" in result.err


def test_serial_sequence_is_advanced(project):
    assert project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "session_types").code == 0
    sql(project.url("preprod"), "INSERT INTO public.session_types (key, name) VALUES ('new', 'New')")
    assert sql(project.url("preprod"), "SELECT id FROM public.session_types WHERE key = 'new'") == [(4,)]


def test_protected_target_needs_yes_without_a_terminal(project):
    before = dump(project.url("prod"))
    refused = project.run("sync-data", "--from", "preprod", "--to", "prod", "--prune")  # would empty prod's tables
    assert refused.code == 2 and "--yes" in refused.err
    assert dump(project.url("prod")) == before
    nothing = project.run("sync-data", "--from", "preprod", "--to", "prod")  # the plan changes nothing: no question
    assert nothing.code == 0 and "nothing to change in prod" in nothing.out
    allowed = project.run("sync-data", "--from", "preprod", "--to", "prod", "--yes", "--tables", "plans")
    assert allowed.code == 0, allowed.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from", "prod", "--to", "prod"], "two different"),
        (["--from", "prod", "--to", "staging"], "unknown environment 'staging'"),
        (["--from", "prod"], "--to"),
        (["--to", "preprod"], "--from"),
    ],
    ids=["same-env", "unknown-env", "no-target", "no-source"],
)
def test_bad_arguments_exit_2(project, args, message):
    before = dump(project.url("preprod"))
    result = project.run("sync-data", *args)
    assert result.code == 2
    assert message in result.err
    assert dump(project.url("preprod")) == before


def test_missing_password_without_terminal_names_the_variable(project, pg):
    from devstack import localstack

    localstack.set_role_password(project.url("preprod"), FAKE_DB_PASSWORD)
    project.envs["preprod"]["db_url"] = project.url("preprod").replace("postgres@", f"{localstack.PASSWORD_ROLE}@")
    refused = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans")
    assert refused.code == 2
    assert "OPS_PREPROD_DB_PASSWORD" in refused.err
    ok = project.run(
        "sync-data",
        "--from",
        "prod",
        "--to",
        "preprod",
        "--tables",
        "plans",
        env={"OPS_PREPROD_DB_PASSWORD": FAKE_DB_PASSWORD},
    )
    assert ok.code == 0, ok.err
    for text in (ok.out, ok.err, refused.out, refused.err):
        assert FAKE_DB_PASSWORD not in text
    for path in project.files():
        assert FAKE_DB_PASSWORD.encode() not in path.read_bytes(), path


def test_concurrent_sync_waits_for_the_lock(project):
    holder = psycopg.connect(project.url("preprod"), autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('ops:sync-data'))")
    project.write()
    import os

    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(REPO),
            "sync-data",
            "--from",
            "prod",
            "--to",
            "preprod",
            "--tables",
            "plans",
        ],
        cwd=project.root,
        env={**os.environ, "OPS_ENVIRONMENTS": str(project.ini)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert waiting.poll() is None, "the second sync must wait"
        assert sql(project.url("preprod"), "SELECT count(*) FROM public.plans") == [(0,)]
    finally:
        holder.execute("SELECT pg_advisory_unlock_all()")
        holder.close()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert "waiting" in err
    assert sql(project.url("preprod"), "SELECT count(*) FROM public.plans") == [(3,)]


def test_missing_target_table_is_refused_before_reading_the_source(project):
    sql(project.url("preprod"), "DROP TABLE public.track_features")
    result = project.run("sync-data", "--from", "prod", "--to", "preprod")
    assert result.code == 2
    assert "public.track_features" in result.err and "push migrations" in result.err
    assert not (project.root / "tmp").exists(), "nothing exported for a sync that cannot happen"


def schema(url: str) -> str:
    """The public schema as pg_dump prints it (without its per-run \\restrict key)."""
    argv = [pg_tool("pg_dump"), "--schema-only", "--schema=public", "-d", url.replace("?sslmode=disable", "")]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def test_empty_tables_check_their_foreign_keys_once_and_keep_them(project):
    before = schema(project.url("preprod"))
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json")
    assert result.code == 0, result.err
    script = (Path(json.loads(result.out)["run_dir"]) / "import.sql").read_text()
    assert 'DROP CONSTRAINT "plan_features_plan_id_fkey"' in script
    assert 'ADD CONSTRAINT "plan_features_plan_id_fkey" FOREIGN KEY (plan_id)' in script
    # A key to a table outside the sync (auth.users) keeps its row-by-row check.
    assert "programs_created_by_fkey" not in script
    assert schema(project.url("preprod")) == before, "every constraint is back, exactly as it was"


def test_foreign_key_checked_once_fails_cleanly(project):
    for env in ("prod", "preprod"):
        sql(
            project.url(env),
            """
            CREATE TABLE public.fk_parent (id int PRIMARY KEY);
            CREATE TABLE public.fk_child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES public.fk_parent);""",
        )
    sql(
        project.url("prod"),
        "INSERT INTO public.fk_parent VALUES (1), (2); INSERT INTO public.fk_child VALUES (10, 1), (20, 2)",
    )
    # The target's parent table silently drops row 2: the child's one check must catch it.
    sql(
        project.url("preprod"),
        """
        INSERT INTO public.fk_parent VALUES (1);
        CREATE FUNCTION public.skip_two() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.id = 2 THEN RETURN NULL; END IF; RETURN NEW; END $$;
        CREATE TRIGGER skip_two BEFORE INSERT ON public.fk_parent FOR EACH ROW EXECUTE FUNCTION public.skip_two();""",
    )
    before, shape = dump(project.url("preprod")), schema(project.url("preprod"))
    project.safe_extra = ["fk_parent", "fk_child"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "fk_child,fk_parent")
    assert result.code == 1
    assert "public.fk_child" in result.err and "fk_child_parent_id_fkey" in result.err
    assert "(parent_id)=(2)" in result.err and "unchanged" in result.err
    assert dump(project.url("preprod")) == before and schema(project.url("preprod")) == shape


BULK_TABLES = """
CREATE TABLE public.bulk_items (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), code text UNIQUE NOT NULL,
                                note text, n int, CONSTRAINT bulk_items_n_excl EXCLUDE USING btree (note WITH =));
CREATE INDEX bulk_items_positive ON public.bulk_items (n DESC) INCLUDE (note) WHERE n > 0;
CREATE INDEX bulk_items_lower ON public.bulk_items (lower(note));
COMMENT ON INDEX public.bulk_items_lower IS 'kept as it is: a rebuild would lose this comment';
CREATE TABLE public.bulk_parts (id int PRIMARY KEY, item_code text REFERENCES public.bulk_items (code));
"""


def test_empty_tables_build_their_indexes_after_the_load_and_keep_them_exactly(project):
    for env in ("prod", "preprod"):
        sql(project.url(env), BULK_TABLES)
    sql(
        project.url("prod"),
        "INSERT INTO public.bulk_items (code, note, n) SELECT 'c' || g, 'note ' || g, g - 50 FROM generate_series(1, 300) g;"
        "INSERT INTO public.bulk_parts VALUES (1, 'c7'), (2, 'c9')",
    )
    shape = schema(project.url("preprod"))
    project.safe_extra = ["bulk_items", "bulk_parts"]
    result = project.run(
        "sync-data", "--from", "prod", "--to", "preprod", "--tables", "bulk_items,bulk_parts", "--json"
    )
    assert result.code == 0, result.err
    script = (Path(json.loads(result.out)["run_dir"]) / "import.sql").read_text()
    for dropped in (
        'DROP CONSTRAINT "bulk_items_pkey"',
        'DROP CONSTRAINT "bulk_items_n_excl"',
        'DROP INDEX "public"."bulk_items_positive"',
        'DROP CONSTRAINT "bulk_parts_pkey"',
    ):
        assert dropped in script
    assert (
        script.index('DROP CONSTRAINT "bulk_items_pkey"')
        < script.index("COPY")
        < script.index('ADD CONSTRAINT "bulk_items_pkey" PRIMARY KEY (id)')
    )
    assert "bulk_items_code_key" not in script, "a foreign key depends on it: it stays during the load"
    assert "bulk_items_lower" not in script, "its comment would be lost: it stays"
    assert schema(project.url("preprod")) == shape, "every index and constraint is back, exactly as it was"
    assert dump(project.url("preprod"), "public.bulk_items", "public.bulk_parts") == dump(
        project.url("prod"), "public.bulk_items", "public.bulk_parts"
    )


def test_an_index_that_fails_to_build_leaves_the_target_unchanged(project):
    for env in ("prod", "preprod"):
        sql(project.url(env), BULK_TABLES)
    sql(
        project.url("preprod"), "CREATE UNIQUE INDEX bulk_items_one_n ON public.bulk_items (n)"
    )  # prod has no such rule
    sql(project.url("prod"), "INSERT INTO public.bulk_items (code, note, n) VALUES ('a', 'x', 1), ('b', 'y', 1)")
    before, shape = dump(project.url("preprod")), schema(project.url("preprod"))
    project.safe_extra = ["bulk_items"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "bulk_items")
    assert result.code == 1
    assert "public.bulk_items" in result.err and "(n)=(1)" in result.err and "unchanged" in result.err
    assert "Traceback" not in result.err
    assert dump(project.url("preprod")) == before and schema(project.url("preprod")) == shape


def test_protected_target_keeps_row_by_row_checks(project):
    project.envs["preprod"]["protected"] = "true"
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--yes", "--json")
    assert result.code == 0, result.err
    script = (Path(json.loads(result.out)["run_dir"]) / "import.sql").read_text()
    assert "DROP CONSTRAINT" not in script  # no lock on a protected target's referenced tables


def test_unchanged_tables_are_linked_from_the_previous_export(project):
    first = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json")
    assert first.code == 0, first.err
    sql(project.url("prod"), "UPDATE public.plans SET name = 'Pro+' WHERE key = 'pro'")
    second = project.run("sync-data", "--from", "prod", "--to", "preprod", "--json")
    assert second.code == 0, second.err
    assert totals(second) == (0, 1, 0)
    one, two = (Path(json.loads(r.out)["run_dir"]) for r in (first, second))
    entries = {e["table"]: e for e in json.loads((two / "manifest.json").read_text())["tables"]}
    assert entries["public.features"]["linked_from"] == one.name
    assert (two / "public.features.json").stat().st_ino == (one / "public.features.json").stat().st_ino
    assert "linked_from" not in entries["public.plans"]
    assert "Pro+" in (two / "public.plans.json").read_text()
    assert (one / "public.plans.json").read_text().count("Pro+") == 0, "the earlier export is untouched"


def test_streamed_copy_files_replay_from_the_export(project):
    first = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plans,plan_prices", "--json")
    assert first.code == 0, first.err
    run_dir = Path(json.loads(first.out)["run_dir"])
    entries = {e["table"]: e for e in json.loads((run_dir / "manifest.json").read_text())["tables"]}
    assert entries["public.plans"]["copy_file"] == "public.plans.copy" and entries["public.plans"]["content"]
    sql(project.url("preprod"), "TRUNCATE public.plans CASCADE")
    replay = project.run("sync-data", "--from-export", str(run_dir), "--to", "preprod", "--json")
    assert replay.code == 0, replay.err
    assert totals(replay)[0] == entries["public.plans"]["rows"] + entries["public.plan_prices"]["rows"]
    tables = ("public.plans", "public.plan_prices")
    assert dump(project.url("prod"), *tables) == dump(project.url("preprod"), *tables)
    again = project.run("sync-data", "--from-export", str(run_dir), "--to", "preprod", "--json")
    assert again.code == 0, again.err
    assert totals(again) == (0, 0, 0)  # the content hash recorded at export time says nothing changed


def test_not_valid_foreign_key_keeps_checking_new_rows(project):
    """A NOT VALID key still checks every new row: it is never dropped and re-created unchecked."""
    for env in ("prod", "preprod"):
        sql(
            project.url(env),
            "CREATE TABLE public.nv_parent (id int PRIMARY KEY); "
            "CREATE TABLE public.nv_child (id int PRIMARY KEY, parent_id int)",
        )
    sql(project.url("prod"), "INSERT INTO public.nv_child VALUES (1, 99)")  # no parent 99 anywhere
    sql(
        project.url("preprod"),
        "ALTER TABLE public.nv_child ADD CONSTRAINT nv_fk FOREIGN KEY (parent_id) "
        "REFERENCES public.nv_parent NOT VALID",
    )
    project.safe_extra = ["nv_parent", "nv_child"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "nv_parent,nv_child")
    assert result.code == 1
    assert "nv_fk" in result.err and "(parent_id)=(99)" in result.err
    assert sql(project.url("preprod"), "SELECT count(*) FROM public.nv_child") == [(0,)]


def test_a_safe_table_that_exists_nowhere_is_called_a_typo(project):
    project.safe_extra = ["plan_pricez"]
    result = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "plan_pricez")
    assert result.code == 2
    assert "exists in neither prod nor preprod" in result.err and "typo" in result.err
    assert "push migrations" not in result.err


PROBE = """
CREATE TABLE public.diff_probe (id int PRIMARY KEY, price numeric(10,2), tags text[], meta jsonb,
                                starts timestamptz, note text);
INSERT INTO public.diff_probe VALUES
  (1, 19.00, '{a,b}', '{"limits": {"seats": 5}}', '2026-01-01 10:00+00', NULL),
  (2, 5.50, '{x}', NULL, NULL, 'same'),
  (3, NULL, NULL, '{"flag": true}', '2026-02-01 00:00+00', 'keep'),
  (7, 1.00, '{}', '{}', NULL, 'only in the target');
"""


def probe_rows(url: str) -> dict:
    return {row[0]: row[1] for row in sql(url, "SELECT id, to_jsonb(p) FROM public.diff_probe p")}


def test_diff_shows_exactly_the_cells_a_sync_changes(project):
    project.safe_extra = ["diff_probe"]
    for env in ("prod", "preprod"):
        sql(project.url(env), PROBE)
    sql(
        project.url("preprod"),
        "DELETE FROM public.diff_probe WHERE id <> 7; INSERT INTO public.diff_probe "
        "SELECT * FROM (VALUES (1, 19.0, '{a,b}'::text[], '{\"limits\": {\"seats\": 5}}'::jsonb, "
        "'2026-01-01 11:00+01'::timestamptz, NULL::text)) v",
    )  # the same values, written otherwise
    sql(
        project.url("prod"),
        """
        DELETE FROM public.diff_probe WHERE id = 7;
        UPDATE public.diff_probe SET price = 24.00, meta = '{"limits": {"seats": 10}}' WHERE id = 1;
        UPDATE public.diff_probe SET tags = '{x,y}', note = NULL WHERE id = 2;
        INSERT INTO public.diff_probe VALUES (4, 0.10, NULL, NULL, '2026-03-01 00:00+00', 'new');""",
    )
    sql(
        project.url("preprod"),
        "INSERT INTO public.diff_probe VALUES (2, 5.50, '{x}', NULL, NULL, 'same'), "
        "(3, NULL, NULL, '{\"flag\": true}', '2026-02-01 00:00+00', 'keep')",
    )
    result = project.run(
        "sync-data", "--from", "prod", "--to", "preprod", "--tables", "diff_probe", "--diff", "--prune", "--json"
    )
    assert result.code == 0, result.err
    [table] = [t for t in json.loads(result.out)["tables"] if t["table"] == "public.diff_probe"]
    cells = {(c["key"]["id"], cell["column"]) for c in table["changes"] if c["kind"] == "update" for cell in c["cells"]}
    assert cells == {(1, "price"), (1, "meta"), (2, "tags"), (2, "note")}  # not id 1's starts: same instant
    assert {(c["kind"], c["key"]["id"]) for c in table["changes"] if c["kind"] != "update"} == {
        ("insert", 4),
        ("delete", 7),
    }
    text = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "diff_probe", "--diff")
    assert "~ diff_probe[1].price: 19.00 → 24.00" in text.out and "+ diff_probe[4]" in text.out
    assert "diff_probe[7]" not in text.out, "without --prune a target-only row is kept, not shown as deleted"

    before = probe_rows(project.url("preprod"))
    assert project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "diff_probe", "--prune").code == 0
    after = probe_rows(project.url("preprod"))
    changed = {(k, col) for k in before.keys() & after.keys() for col in before[k] if before[k][col] != after[k][col]}
    assert changed == cells and set(after) - set(before) == {4} and set(before) - set(after) == {7}
    again = project.run("sync-data", "--from", "prod", "--to", "preprod", "--tables", "diff_probe", "--diff")
    assert "already matches" in again.out


def test_an_export_by_a_random_key_is_sorted_in_one_pass_and_stays_in_key_order(project, tmp_path):
    from ops.db import catalog as pgcatalog
    from ops.sync import export as sync_export

    sql(
        project.url("prod"),
        """
        CREATE TABLE public.random_keyed (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int NOT NULL);
        CREATE TABLE public.serial_keyed (id bigserial PRIMARY KEY, n int NOT NULL);
        INSERT INTO public.random_keyed (n) SELECT g FROM generate_series(1, 3000) g;
        INSERT INTO public.serial_keyed (n) SELECT g FROM generate_series(1, 3000) g;
        ANALYZE public.random_keyed, public.serial_keyed;""",
    )
    with psycopg.connect(project.url("prod")) as conn:
        random_keyed = pgcatalog.read_table(conn, "public.random_keyed")
        serial_keyed = pgcatalog.read_table(conn, "public.serial_keyed")
        assert random_keyed and serial_keyed
        assert sync_export.key_unrelated_to_storage(conn, random_keyed, ["id"])
        assert not sync_export.key_unrelated_to_storage(conn, serial_keyed, ["id"])
        assert not sync_export.key_unrelated_to_storage(conn, random_keyed, ["n"]), "n follows the insert order"
        sorted_rows = sync_export.export_json(conn, random_keyed, ["id"], tmp_path / "sorted.json")
        assert conn.execute("SHOW enable_indexscan").fetchone() == ("on",), "the planner is left as it was"
        by_index = sync_export.export_json(conn, random_keyed, ["n"], tmp_path / "by_n.json")
    rows = json.loads((tmp_path / "sorted.json").read_text())
    assert sorted_rows[0] == by_index[0] == 3000 == len(rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
