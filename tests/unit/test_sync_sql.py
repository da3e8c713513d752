"""The SQL sync-data writes, built from plans without a database."""

from __future__ import annotations

from pathlib import Path

from ops import sync_sql
from ops.pgcatalog import Column, Table, ident, literal, parents_first, qident
from ops.sync_sql import TablePlan


def odd_table() -> Table:
    return Table("public", 'it\'s "odd"', [
        Column("id", "bigint", identity_always=True, sequence='public."it\'s ""odd""_id_seq"'),
        Column("slug", "text"),
        Column("doc", "json", is_json=True),
        Column("total", "integer", generated=True),
    ], ["id"], [["id"], ["slug"]])


def plan(table: Table | None = None) -> TablePlan:
    table = table or odd_table()
    return TablePlan(target=table, key=["id"], columns=["id", "slug", "doc"], json_columns={"doc"},
                     file=Path("x.json"), rows=3, index=0, exported=["id", "slug", "doc"], export_key=["id"],
                     fingerprint="f" * 32)


def test_identifiers_and_literals_are_quoted():
    assert ident('a"b') == '"a""b"'
    assert qident(odd_table()) == '"public"."it\'s ""odd"""'
    assert literal("it's") == "'it''s'"


def test_sequence_name_is_a_bound_literal_not_interpolated():
    (step,) = sync_sql.sequence_steps(plan())
    assert "setval('public.\"it''s \"\"odd\"\"_id_seq\"'::regclass, m)" in step.sql
    # the only quote characters left unbalanced would be an injection: literals pair up
    assert step.sql.count("'") % 2 == 0


def test_upsert_overrides_identity_and_compares_json_as_text():
    step = sync_sql.upsert_step(plan())
    assert step.role == "upsert"
    assert "OVERRIDING SYSTEM VALUE" in step.sql
    assert 'ON CONFLICT ("id") DO UPDATE SET "slug" = EXCLUDED."slug", "doc" = EXCLUDED."doc"' in step.sql
    assert 't."doc"::text' in step.sql and '"total"' not in step.sql


def test_key_only_table_does_nothing_on_conflict():
    table = Table("public", "tags", [Column("name", "text")], ["name"])
    only_key = TablePlan(target=table, key=["name"], columns=["name"], json_columns=set(), file=Path("t.json"),
                         rows=1, index=1)
    assert "DO NOTHING" in sync_sql.upsert_step(only_key).sql


def test_prune_runs_children_first_and_after_upserts():
    parent = Table("public", "plans", [Column("id", "int")], ["id"])
    child = Table("public", "plan_prices", [Column("id", "int")], ["id"], parents={"public.plans"})
    ordered = parents_first([child, parent])
    assert [t.name for t in ordered] == ["plans", "plan_prices"]
    plans = [TablePlan(target=t, key=["id"], columns=["id"], json_columns=set(), file=Path("f"), rows=1, index=i)
             for i, t in enumerate(ordered)]
    stage, write = sync_sql.import_steps(plans, prune=True)
    roles = [(s.role, s.table) for s in write if s.role != "exec"]
    assert roles == [("upsert", "public.plans"), ("upsert", "public.plan_prices"),
                     ("prune", "public.plan_prices"), ("prune", "public.plans")]
    assert len(stage) == 3 * len(plans)


def test_fingerprint_needs_the_export_key():
    assert sync_sql.fingerprint_query(plan()) is not None
    no_key = plan()
    no_key.export_key = []
    assert sync_sql.fingerprint_query(no_key) is None


def test_export_query_orders_by_key_and_skips_generated_columns():
    query = sync_sql.export_query(odd_table(), ["id"])
    assert query.endswith('ORDER BY "id") r) TO STDOUT')
    assert '"doc"::text AS "doc"' in query and '"total"' not in query
