"""The SQL sync-data writes, built from plans without a database."""

from __future__ import annotations

from pathlib import Path

from ops.db.catalog import CatalogTable, Column, ForeignKey, ident, literal, parents_first, qident
from ops.sync import sql as sync_sql
from ops.sync.sql import TablePlan


def odd_table() -> CatalogTable:
    return CatalogTable(
        "public",
        'it\'s "odd"',
        [
            Column("id", "bigint", identity_always=True, sequence='public."it\'s ""odd""_id_seq"'),
            Column("slug", "text"),
            Column("doc", "json", is_json=True),
            Column("total", "integer", generated=True),
        ],
        ["id"],
        [["id"], ["slug"]],
    )


def plan(table: CatalogTable | None = None) -> TablePlan:
    table = table or odd_table()
    return TablePlan(
        target=table,
        key=["id"],
        columns=["id", "slug", "doc"],
        json_columns={"doc"},
        file=Path("x.json"),
        rows=3,
        index=0,
        exported=["id", "slug", "doc"],
        export_key=["id"],
        fingerprint="f" * 32,
    )


def test_identifiers_and_literals_are_quoted():
    assert ident('a"b') == '"a""b"'
    assert qident(odd_table()) == '"public"."it\'s ""odd"""'
    assert literal("it's") == "'it''s'"


def test_sequence_name_is_a_bound_literal_not_interpolated():
    (step,) = sync_sql.sequence_steps(plan())
    assert 'setval(\'public."it\'\'s ""odd""_id_seq"\'::regclass, m)' in step.sql
    # the only quote characters left unbalanced would be an injection: literals pair up
    assert step.sql.count("'") % 2 == 0


def test_insert_overrides_identity_and_update_compares_json_as_text():
    insert = sync_sql.insert_step(plan())
    assert insert.role == "insert" and "OVERRIDING SYSTEM VALUE" in insert.sql
    assert "WHERE NOT EXISTS" in insert.sql  # one probe per row; ON CONFLICT only for a racing insert
    assert 'ON CONFLICT ("id") DO UPDATE SET "slug" = EXCLUDED."slug", "doc" = EXCLUDED."doc"' in insert.sql
    update = sync_sql.update_step(plan())
    assert update is not None and update.role == "update"
    assert 't."doc"::text' in update.sql and '"total"' not in update.sql
    assert "IS DISTINCT FROM" in update.sql  # unchanged rows are never rewritten


def test_key_only_table_does_nothing_on_conflict():
    table = CatalogTable("public", "tags", [Column("name", "text")], ["name"])
    only_key = TablePlan(
        target=table, key=["name"], columns=["name"], json_columns=set(), file=Path("t.json"), rows=1, index=1
    )
    assert sync_sql.update_step(only_key) is None
    assert "DO NOTHING" in sync_sql.insert_step(only_key).sql


def test_prune_runs_children_first_after_the_loads():
    parent = CatalogTable("public", "plans", [Column("id", "int")], ["id"])
    child = CatalogTable("public", "plan_prices", [Column("id", "int")], ["id"], parents={"public.plans"})
    ordered = parents_first([child, parent])
    assert [t.name for t in ordered] == ["plans", "plan_prices"]
    plans = [
        TablePlan(target=t, key=["id"], columns=["id"], json_columns=set(), file=Path("f"), rows=1, index=i)
        for i, t in enumerate(ordered)
    ]
    closing = sync_sql.closing_steps(plans, prune=True, staged={"public.plans", "public.plan_prices"})
    assert [(s.role, s.table) for s in closing] == [("prune", "public.plan_prices"), ("prune", "public.plans")]
    assert sync_sql.closing_steps(plans, prune=True, staged={"public.plans"})[0].table == "public.plans"


def test_empty_table_copies_straight_in_and_checks_its_foreign_keys_once():
    fk = ForeignKey("child_parent_fkey", "public.parent", "FOREIGN KEY (parent_id) REFERENCES parent(id)")
    table = CatalogTable(
        "public", "child", [Column("id", "int"), Column("parent_id", "int")], ["id"], foreign_keys=[fk]
    )
    empty = TablePlan(
        target=table,
        key=["id"],
        columns=["id", "parent_id"],
        json_columns=set(),
        file=Path("f"),
        rows=2,
        index=0,
        exported=["id", "parent_id"],
        copy_file=Path("f.copy"),
        checked_once=[fk],
    )
    steps = sync_sql.table_steps(empty, empty=True)
    assert [getattr(s, "role", "copy") for s in steps] == ["constraint", "copy"]
    assert steps[0].sql == 'ALTER TABLE "public"."child" DROP CONSTRAINT "child_parent_fkey"'
    assert isinstance(steps[1], sync_sql.CopyIn) and steps[1].direct
    (add,) = sync_sql.closing_steps([empty], prune=False, staged=set())
    assert add.sql == (
        'ALTER TABLE "public"."child" ADD CONSTRAINT "child_parent_fkey" FOREIGN KEY (parent_id) REFERENCES parent(id)'
    )
    held = sync_sql.table_steps(empty, empty=False)  # rows held: staged and upserted, constraints untouched
    assert [getattr(s, "role", "copy") for s in held] == ["exec", "copy", "update", "insert"]


def test_content_hash_covers_the_named_columns_in_order():
    query = sync_sql.content_hash_sql(odd_table(), ["slug", "id"])
    assert 'hashtextextended(ROW("slug", "id")::text, 0)' in query
    assert query.startswith("SELECT count(*)") and "ORDER BY" not in query


def test_fingerprint_needs_the_export_key():
    assert sync_sql.fingerprint_query(plan()) is not None
    no_key = plan()
    no_key.export_key = []
    assert sync_sql.fingerprint_query(no_key) is None


def test_export_query_orders_by_key_and_skips_generated_columns():
    query = sync_sql.export_query(odd_table(), ["id"])
    assert query.endswith('ORDER BY "id") r')
    assert '"doc"::text AS "doc"' in query and '"total"' not in query
