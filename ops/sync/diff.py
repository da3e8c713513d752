"""`sync-data --diff`: the row-level difference a sync would make, cell by cell (read-only).

The source's rows are read as COPY writes them (what a sync stages), passed to the target in
one read-only query, and compared there by the sync's own test (`sync_sql.distinct_sql`, on the
target's column types): a row is shown as changing exactly when the sync would rewrite it, and
within it each cell whose stored value changes. `rows_of`/`diff_table` compare rows read as
JSON, for recover-rows.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ops.config import Config, Environment
from ops.db.catalog import CatalogTable, ident, qident
from ops.errors import OperationFailed, first_line
from ops.report import Result
from ops.report import Table as Rows
from ops.sync.export import columns_of
from ops.sync.plan import conflict_key, plan_table, read_tables, select_tables
from ops.sync.source import snapshot_reader
from ops.sync.sql import TablePlan, copy_out_query, diff_query

SHOWN_PER_TABLE = 50  # text lines per table; --json has every change


@dataclass
class Change:
    key: dict[str, Any]
    kind: str  # insert | update | delete
    cells: list[dict[str, Any]] = field(default_factory=list)  # update: column, old, new


@dataclass
class TableDiff:
    table: str
    key: list[str]
    insert: int = 0
    update: int = 0
    delete: int = 0
    only_in_target: int = 0  # rows a sync keeps unless --prune
    changes: list[Change] = field(default_factory=list)


@dataclass
class DiffResult(Result):
    source: str
    target: str
    prune: bool
    tables: list[TableDiff] = field(default_factory=list)

    def rows(self) -> Rows:
        return Rows(
            ["table", "to insert", "to update", "to delete" if self.prune else "only in target (kept)"],
            [
                [t.table, t.insert, t.update, t.delete if self.prune else t.only_in_target]
                for t in self.tables
                if t.insert or t.update or t.delete or t.only_in_target
            ],
        )

    def footer(self) -> str:
        paint = colours()
        lines = []
        for t in self.tables:
            shown = [line for change in t.changes for line in change_lines(t, change, paint)]
            lines += shown[:SHOWN_PER_TABLE]
            if len(shown) > SHOWN_PER_TABLE:
                lines.append(f"  ... and {len(shown) - SHOWN_PER_TABLE:,} more lines for {t.table} (--json has all)")
        total = sum(t.insert + t.update + t.delete for t in self.tables)
        lines.append(
            f"{total:,} row(s) would change in {self.target}"
            if total
            else f"{self.target} already matches {self.source} in these tables"
        )
        return "\n".join(lines)


def colours() -> dict[str, str]:
    """git-like colours at a terminal (NO_COLOR honoured); nothing elsewhere."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return {"insert": "", "update": "", "delete": "", "end": ""}
    return {"insert": "\033[32m", "update": "\033[33m", "delete": "\033[31m", "end": "\033[0m"}


def change_lines(table: TableDiff, change: Change, paint: dict[str, str]) -> Iterator[str]:
    name = table.table.removeprefix("public.")
    key = ",".join(render(v) for v in change.key.values())
    start, end = paint[change.kind], paint["end"]
    if change.kind == "insert":
        yield f"{start}+ {name}[{key}]{end}"
    elif change.kind == "delete":
        yield f"{start}- {name}[{key}]{end}"
    else:
        for cell in change.cells:
            yield f"{start}~ {name}[{key}].{cell['column']}: {render(cell['old'])} → {render(cell['new'])}{end}"


def render(value: Any) -> str:
    """A cell for a person: NULL, text as it is, numbers as the database wrote them, JSON compact."""
    if value is None:
        return "NULL"
    if isinstance(value, str | Decimal):
        text = str(value)
    else:
        text = json.dumps(shown(value), ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def shown(value: Any) -> Any:
    """Decimals inside JSON as plain numbers, for display only (comparisons use the decimals)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def row_key(row: dict[str, Any], key: list[str]) -> tuple:
    """How rows are filed and matched: each key column's value as canonical JSON."""
    return tuple(json.dumps(row[k], default=str, sort_keys=True) for k in key)


def rows_of(
    conn: Any, table: CatalogTable, key: list[str], columns: list[str], only: list[dict[str, Any]] | None = None
) -> dict[tuple, dict[str, Any]]:
    """Every row (or `only` the ones with these primary-key values, passed as a parameter) as {column:
    value}, keyed by the conflict key: one round trip, JSON per row."""
    listed = ", ".join(ident(c) for c in columns)
    query = f"SELECT row_to_json(r)::text FROM (SELECT {listed} FROM {qident(table)}) r"
    params = None
    if only is not None:
        if not only:
            return {}
        own = ", ".join(f"t.{ident(c)}" for c in table.primary_key)
        given = ", ".join(f"k.{ident(c)}" for c in table.primary_key)
        query = (
            f"SELECT row_to_json(r)::text FROM (SELECT {listed} FROM {qident(table)} t WHERE ({own}) IN "
            f"(SELECT {given} FROM json_populate_recordset(NULL::{qident(table)}, %s::json) k)) r"
        )
        params = (json.dumps(only, default=str),)
    found = {}
    for (text,) in conn.execute(query, params).fetchall():
        row = json.loads(text, parse_float=Decimal)
        found[row_key(row, key)] = row
    return found


def diff_table(
    source: dict[tuple, dict], target: dict[tuple, dict], table: str, key: list[str], columns: list[str], prune: bool
) -> TableDiff:
    result = TableDiff(table, key)
    for k, row in source.items():
        there = target.get(k)
        keyed = {c: row[c] for c in key}
        if there is None:
            result.insert += 1
            result.changes.append(
                Change(
                    keyed, "insert", [{"column": c, "old": None, "new": row[c]} for c in columns if row[c] is not None]
                )
            )
            continue
        cells = [{"column": c, "old": there[c], "new": row[c]} for c in columns if there[c] != row[c]]
        if cells:
            result.update += 1
            result.changes.append(Change(keyed, "update", cells))
    for k, row in target.items():
        if k not in source:
            result.only_in_target += 1
            if prune:
                result.delete += 1
                result.changes.append(Change({c: row[c] for c in key}, "delete"))
    return result


def source_text(conn: Any, table: CatalogTable, columns: list[str]) -> list[dict[str, str | None]]:
    """The source's rows as the text COPY writes (the very text a sync stages from)."""
    with conn.cursor().copy(copy_out_query(table, columns)) as copy:
        return [dict(zip(columns, row, strict=True)) for row in copy.rows()]


def compare_table(conn: Any, plan: TablePlan, rows: list[dict[str, str | None]], prune: bool) -> TableDiff:
    """Ask the target, by the sync's own comparison, which rows and cells the sync would change."""
    result = TableDiff(plan.target.qualified, plan.key)
    compared = set(plan.compared)
    for kind, key_text, *flags in conn.execute(diff_query(plan), (json.dumps(rows),)):
        key = json.loads(key_text, parse_float=Decimal)
        if kind == "delete":
            result.only_in_target += 1
            if prune:
                result.delete += 1
                result.changes.append(Change(key, "delete"))
            continue
        cells = []
        for index, column in enumerate(plan.columns):
            differs, old, new = flags[3 * index : 3 * index + 3]
            new_value = None if new is None else json.loads(new, parse_float=Decimal)
            if kind == "insert" and new_value is not None:
                cells.append({"column": column, "old": None, "new": new_value})
            elif kind == "update" and differs and column in compared:
                old_value = None if old is None else json.loads(old, parse_float=Decimal)
                cells.append({"column": column, "old": old_value, "new": new_value})
        setattr(result, kind, getattr(result, kind) + 1)
        result.changes.append(Change(key, kind, cells))
    return result


def sync_diff(
    config: Config, source: Environment, target: Environment, tables: list[str] | None, prune: bool
) -> DiffResult:
    import psycopg

    requested = select_tables(config.sync_data, tables)
    result = DiffResult(source.name, target.name, prune)
    try:
        with snapshot_reader(source, "ops sync-data diff") as src, snapshot_reader(target, "ops sync-data diff") as dst:
            targets = {t.qualified: t for t in read_tables(dst, requested, target)}
            for index, table in enumerate(read_tables(src, requested, source)):
                entry = {"columns": columns_of(table), "key": conflict_key(table, config.sync_data.natural_keys)}
                plan = plan_table(targets[table.qualified], entry, config.sync_data.natural_keys, index)
                rows = source_text(src, table, plan.columns)
                result.tables.append(compare_table(dst, plan, rows, prune))
    except psycopg.Error as error:
        raise OperationFailed(f"reading for the diff failed: {first_line(error)}. Nothing was written.") from None
    return result


def diff_task(
    config: Config, *, source: str | None, target: str | None, tables: list[str] | None, prune: bool, others: bool
) -> DiffResult:
    from ops.errors import UserError
    from ops.safety import distinct

    if others:
        raise UserError(
            "--diff reads both sides and changes nothing: it goes with --from, --to, --tables and --prune "
            "only (not --dry-run, --export-only or --from-export)"
        )
    if not source or not target:
        raise UserError("--diff compares two environments: name both with --from ENV --to ENV")
    source_env, target_env = config.env(source), config.env(target)
    distinct(source_env, target_env)
    return sync_diff(config, source_env, target_env, tables, prune)
