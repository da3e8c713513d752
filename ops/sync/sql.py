"""The SQL of a sync-data import, built from plans: pure functions, no database needed.

Every name is quoted with `pgcatalog.ident`; every step is a plain statement so the same
list runs through psycopg and is written to `import.sql` for `psql -f`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ops.db.catalog import CatalogTable, ForeignKey, Index, ident, literal, qident

LOCK_KEY = "ops:sync-data"
# Every value renders the same on both sides (exports, content hashes), whatever the role's defaults.
RENDERING = {
    "TimeZone": "UTC",
    "IntervalStyle": "postgres",
    "DateStyle": "ISO, MDY",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}


def rendering_sql() -> str:
    """Set, for this transaction only, the settings that decide how values render as text."""
    settings = ", ".join(f"set_config({literal(name)}, {literal(value)}, true)" for name, value in RENDERING.items())
    return f"SELECT {settings}"


def copy_out_query(table: CatalogTable, columns: list[str] | None = None) -> str:
    """The rows in COPY text format, the exact round trip pg_dump uses (any order: only loaded, never read)."""
    names = ", ".join(ident(c) for c in (columns if columns is not None else [c.name for c in table.writable]))
    return f"COPY (SELECT {names} FROM {qident(table)}) TO STDOUT"


def content_hash_sql(table: CatalogTable, columns: list[str]) -> str:
    """Row count and an order-free 64-bit hash sum of the rows' text: equal on both sides means equal rows.

    Cheap enough to ask of both databases before moving any row (no sort, no JSON); a
    changed row moves the sum with odds of 2^-64 of landing on the old value.
    """
    row = f"ROW({', '.join(ident(c) for c in columns)})::text"
    return f"SELECT count(*), coalesce(sum(hashtextextended({row}, 0)), 0)::text FROM {qident(table)}"


def export_query(table: CatalogTable, key: list[str]) -> str:
    """One JSON document per row, in key order (json/jsonb as text so JSON null stays distinct from NULL)."""
    select = ", ".join(
        f"{ident(c.name)}::text AS {ident(c.name)}" if c.is_json else ident(c.name) for c in table.writable
    )
    order = ", ".join(ident(k) for k in key)
    return f"SELECT to_json(r)::text FROM (SELECT {select} FROM {qident(table)} ORDER BY {order}) r"


@dataclass
class TablePlan:
    target: CatalogTable
    key: list[str]
    columns: list[str]  # written columns, in source order
    json_columns: set[str]
    file: Path
    rows: int
    index: int
    exported: list[str] = field(default_factory=list)  # the export's columns, in its order
    export_key: list[str] = field(default_factory=list)  # the export's row order
    fingerprint: str | None = None  # exports before content hashes: see fingerprint_sql
    content: str | None = None  # the source's content hash at export time: see content_hash_sql
    sha256: str | None = None  # the JSON file's digest
    copy_file: Path | None = None  # the same rows in COPY text format (exports since the COPY channel)
    copy_sha256: str | None = None
    copy_columns: list[str] | None = None  # the COPY file's columns, when not the exported ones
    checked_once: list[ForeignKey] = field(default_factory=list)  # foreign keys checked once, after the load
    rebuilt: list[Index] = field(default_factory=list)  # indexes dropped before the load and built after it

    @property
    def copies_directly(self) -> bool:
        """The COPY text file fits the written columns as they are (no column dropped on the way)."""
        return self.copy_file is not None and self.columns == (self.copy_columns or self.exported)

    @property
    def raw(self) -> str:
        return f"pg_temp._sync_raw_{self.index}"

    @property
    def stage(self) -> str:
        return f"pg_temp._sync_{self.index}"

    @property
    def compared(self) -> list[str]:
        """Columns whose difference makes an update (the key and identity columns cannot change)."""
        return [c for c in self.columns if c not in self.key and not self.target.column(c).identity_always]


@dataclass
class Statement:
    sql: str
    table: str | None = None
    # exec | update | insert | prune (row counts reported) | constraint, index (neither run in a dry run;
    # constraint steps run before the load, in ImportTransaction._drop_checks)
    role: str = "exec"


@dataclass
class CopyIn:
    sql: str
    plan: TablePlan
    text: bool = False  # stream the plan's COPY text file as it is, else its JSON rows
    direct: bool = False  # into the target table itself (it was empty), not into a stage

    @property
    def source(self) -> Path:
        return self.plan.copy_file if self.text and self.plan.copy_file else self.plan.file


def distinct_sql(left: str, right: str, table: CatalogTable, columns: list[str]) -> str:
    """Whether a row changes, compared on the columns' own types: the one test the sync writes by and
    the diff shows by (json, which has no equality operator, by its text)."""

    def side(alias: str) -> str:
        return ", ".join(
            f"{alias}.{ident(c)}::text" if table.column(c).type == "json" else f"{alias}.{ident(c)}" for c in columns
        )

    return f"ROW({side(left)}) IS DISTINCT FROM ROW({side(right)})"


def _distinct(left: str, right: str, plan: TablePlan) -> str:
    return distinct_sql(left, right, plan.target, plan.compared)


def _key_join(left: str, right: str, key: list[str]) -> str:
    return " AND ".join(f"{left}.{ident(k)} = {right}.{ident(k)}" for k in key)


def stage_steps(plan: TablePlan) -> list[Statement | CopyIn]:
    """Load the export into a typed temp table: straight from COPY text, else through jsonb."""
    target = plan.target
    if plan.copies_directly:
        columns = ", ".join(ident(c) for c in plan.columns)
        return [
            Statement(
                f"CREATE TEMP TABLE {plan.stage.split('.')[1]} ON COMMIT DROP AS SELECT {columns} "
                f"FROM {qident(target)} WITH NO DATA",
                target.qualified,
            ),
            CopyIn(f"COPY {plan.stage} ({columns}) FROM STDIN", plan, text=True),
        ]
    record = ", ".join(
        f"{ident(c)} {'text' if c in plan.json_columns else target.column(c).type}" for c in plan.columns
    )
    select = ", ".join(
        f"p.{ident(c)}::{target.column(c).type} AS {ident(c)}" if c in plan.json_columns else f"p.{ident(c)}"
        for c in plan.columns
    )
    return [
        Statement(f"CREATE TEMP TABLE {plan.raw.split('.')[1]} (doc jsonb) ON COMMIT DROP", target.qualified),
        CopyIn(f"COPY {plan.raw} (doc) FROM STDIN", plan),
        Statement(
            f"CREATE TEMP TABLE {plan.stage.split('.')[1]} ON COMMIT DROP AS SELECT {select} "
            f"FROM {plan.raw} r CROSS JOIN LATERAL jsonb_to_record(r.doc) AS p({record})",
            target.qualified,
        ),
    ]


def update_step(plan: TablePlan) -> Statement | None:
    """Rewrite only the rows whose values differ (unchanged rows are never locked or rewritten)."""
    if not plan.compared:
        return None
    sets = ", ".join(f"{ident(c)} = s.{ident(c)}" for c in plan.compared)
    return Statement(
        f"UPDATE {qident(plan.target)} AS t SET {sets} FROM {plan.stage} s "
        f"WHERE {_key_join('t', 's', plan.key)} AND {_distinct('t', 's', plan)}",
        plan.target.qualified,
        "update",
    )


def insert_step(plan: TablePlan) -> Statement:
    """Insert the rows the target lacks; one probe of the key per row, ON CONFLICT only for a racing insert."""
    target = plan.target
    columns = ", ".join(ident(c) for c in plan.columns)
    staged = ", ".join(f"s.{ident(c)}" for c in plan.columns)
    overriding = " OVERRIDING SYSTEM VALUE" if any(target.column(c).identity_always for c in plan.columns) else ""
    conflict = ", ".join(ident(k) for k in plan.key)
    if plan.compared:
        sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in plan.compared)
        on_conflict = f"DO UPDATE SET {sets} WHERE {_distinct('t', 'EXCLUDED', plan)}"
    else:
        on_conflict = "DO NOTHING"
    return Statement(
        f"INSERT INTO {qident(target)} AS t ({columns}){overriding} "
        f"SELECT {staged} FROM {plan.stage} s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {qident(target)} x WHERE {_key_join('x', 's', plan.key)}) "
        f"ON CONFLICT ({conflict}) {on_conflict}",
        target.qualified,
        "insert",
    )


def direct_copy(plan: TablePlan) -> CopyIn:
    """Into a table that is empty: COPY the rows straight in (no stage, no upsert; identity values kept)."""
    columns = ", ".join(ident(c) for c in plan.columns)
    return CopyIn(f"COPY {qident(plan.target)} ({columns}) FROM STDIN", plan, text=True, direct=True)


def prune_step(plan: TablePlan) -> Statement:
    target = plan.target
    return Statement(
        f"DELETE FROM {qident(target)} t WHERE NOT EXISTS "
        f"(SELECT 1 FROM {plan.stage} s WHERE {_key_join('s', 't', plan.key)})",
        target.qualified,
        "prune",
    )


def sequence_steps(plan: TablePlan) -> list[Statement]:
    steps = []
    for name in plan.columns:
        column = plan.target.column(name)
        if column.sequence:
            steps.append(
                Statement(
                    # The sequence name comes quoted from pg_get_serial_sequence; as a value it is a literal.
                    f"SELECT setval({literal(column.sequence)}::regclass, m) "
                    f"FROM (SELECT max({ident(name)}) AS m FROM {qident(plan.target)}) x, "
                    f"{column.sequence} s WHERE m > s.last_value OR (m = s.last_value AND NOT s.is_called)",
                    plan.target.qualified,
                )
            )
    return steps


def compare_query(plan: TablePlan) -> str:
    target = qident(plan.target)
    changed = _distinct("t", "s", plan) if plan.compared else "false"
    return (
        f"SELECT count(*) FILTER (WHERE t.ctid IS NULL), "
        f"count(*) FILTER (WHERE t.ctid IS NOT NULL AND {changed}), "
        f"count(*) FILTER (WHERE t.ctid IS NOT NULL AND NOT ({changed})), "
        f"(SELECT count(*) FROM {target}) - count(t.ctid) "
        f"FROM {plan.stage} s LEFT JOIN {target} t ON {_key_join('t', 's', plan.key)}"
    )


def fingerprint_sql(table: CatalogTable, columns: list[str], json_columns: set[str], key: list[str]) -> str:
    """Row count and fingerprint of a table, rendered and hashed exactly as the export hashes rows."""
    select = ", ".join(f"{ident(c)}::text AS {ident(c)}" if c in json_columns else ident(c) for c in columns)
    order = ", ".join(f"x.{ident(k)}" for k in key)
    return (
        f"SELECT count(*), md5(coalesce(string_agg(md5(to_json(x)::text), '' ORDER BY {order}), '')) "
        f"FROM (SELECT {select} FROM {qident(table)}) x"
    )


def fingerprint_query(plan: TablePlan) -> str | None:
    """The target table hashed in the export's shape (its columns and order).

    Equal fingerprints mean the target already holds exactly the exported rows, so the
    table needs no staging, no comparison and no write.
    """
    if not plan.fingerprint or not plan.export_key or not set(plan.export_key) <= set(plan.exported):
        return None
    return fingerprint_sql(plan.target, plan.exported, plan.json_columns, plan.export_key)


def lock_step() -> Statement:
    return Statement(f"SELECT pg_advisory_xact_lock(hashtext({literal(LOCK_KEY)}))")


def try_lock_sql() -> str:
    return f"SELECT pg_try_advisory_xact_lock(hashtext({literal(LOCK_KEY)}))"


def table_steps(plan: TablePlan, *, empty: bool) -> list[Statement | CopyIn]:
    """One table's load: COPY straight into an empty table, else stage, update the changed rows, insert the new."""
    if empty and plan.copies_directly:
        return [*drop_checks(plan), direct_copy(plan), *build_indexes(plan)]
    update = update_step(plan)
    return [*stage_steps(plan), *([update] if update else []), insert_step(plan), *build_indexes(plan)]


def drop_checks(plan: TablePlan) -> list[Statement]:
    """Drop the foreign keys to check once after the load (a row-by-row check costs a query per row),
    and the indexes to build after it (as pg_restore does: one sort beats a B-tree insert per row)."""
    table = qident(plan.target)
    return [
        Statement(f"ALTER TABLE {table} DROP CONSTRAINT {ident(fk.name)}", plan.target.qualified, "constraint")
        for fk in plan.checked_once
    ] + [
        Statement(
            f"ALTER TABLE {table} DROP CONSTRAINT {ident(index.name)}"
            if index.constraint
            else f"DROP INDEX {ident(plan.target.schema)}.{ident(index.name)}",
            plan.target.qualified,
            "constraint",
        )
        for index in plan.rebuilt
    ]


def build_indexes(plan: TablePlan) -> list[Statement]:
    """Re-create the indexes dropped before the load, under their names, from their own definitions."""
    table = qident(plan.target)
    return [
        Statement(
            f"ALTER TABLE {table} ADD CONSTRAINT {ident(index.name)} {index.constraint}"
            if index.constraint
            else index.definition,
            plan.target.qualified,
            "index",
        )
        for index in plan.rebuilt
    ]


def check_once(plan: TablePlan) -> list[Statement]:
    """Re-create the dropped foreign keys: PostgreSQL checks every row in one join, in this transaction."""
    return [
        Statement(
            f"ALTER TABLE {qident(plan.target)} ADD CONSTRAINT {ident(fk.name)} {fk.definition}",
            plan.target.qualified,
            "constraint",
        )
        for fk in plan.checked_once
    ]


def closing_steps(plans: list[TablePlan], *, prune: bool, staged: set[str]) -> list[Statement]:
    """After every table is loaded: foreign keys checked once, prune (children first, staged tables only),
    then advance sequences."""
    steps: list[Statement] = [step for plan in plans for step in check_once(plan)]
    if prune:
        steps += [prune_step(plan) for plan in reversed(plans) if plan.target.qualified in staged]
    return steps + [step for plan in plans for step in sequence_steps(plan)]


PAYLOAD = "\x00rows"  # where diff_query's one parameter goes (no identifier holds a NUL)
IN_SOURCE = ident("?in source")


def diff_query(plan: TablePlan) -> str:
    """The sync's comparison asked of the target, read-only, for the source rows passed as one jsonb
    array of objects whose values are the text COPY wrote (the text a sync stages from): each row
    to insert, update or delete, its key, and per column whether the stored text changes, old, new.

    The text goes into the target's column types as the stage does, and a row is an update by
    `distinct_sql`, so the diff names exactly the rows the write rewrites.
    """
    target = plan.target
    record = ", ".join(f"{ident(c)} text" for c in plan.columns)
    typed = ", ".join(f"x.{ident(c)}::{target.column(c).type} AS {ident(c)}" for c in plan.columns)
    changed = distinct_sql("t", "s", target, plan.compared) if plan.compared else "false"
    kind = (
        f"CASE WHEN s.{IN_SOURCE} IS NULL THEN 'delete' WHEN t.ctid IS NULL THEN 'insert' "
        f"WHEN {changed} THEN 'update' END"
    )
    key = ", ".join(f"{literal(k)}, coalesce(s.{ident(k)}, t.{ident(k)})" for k in plan.key)

    def shown(alias: str, column: str) -> str:
        value = f"{alias}.{ident(column)}"
        return f"to_json({value}::text)::text" if target.column(column).is_json else f"to_json({value})::text"

    cells = ", ".join(
        f"t.{ident(c)}::text IS DISTINCT FROM s.{ident(c)}::text, {shown('t', c)}, {shown('s', c)}"
        for c in plan.columns
    )
    query = (
        f"SELECT {kind}, json_build_object({key})::text, {cells} "
        f"FROM (SELECT true AS {IN_SOURCE}, {typed} FROM jsonb_to_recordset({PAYLOAD}::jsonb) AS x({record})) s "
        f"FULL JOIN {qident(target)} t ON {_key_join('t', 's', plan.key)} "
        f"WHERE s.{IN_SOURCE} IS NULL OR t.ctid IS NULL OR {changed}"
    )
    return query.replace("%", "%%").replace(PAYLOAD, "%s")
