"""Which config tables a sync reads, and how each one is written into the target's schema.

Selection refuses what is not a known config table (and what holds user data) before anything
is read; a plan matches each source (or exported) table to the target's columns and conflict key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ops.config import Environment, SyncDataSettings
from ops.db import catalog as pgcatalog
from ops.db.catalog import CatalogTable
from ops.db.connection import connect
from ops.errors import UserError
from ops.sync import export as sync_export
from ops.sync.sql import TablePlan

if TYPE_CHECKING:
    import psycopg


def select_tables(settings: SyncDataSettings, requested: list[str] | None) -> list[str]:
    """The qualified tables to sync: all safe tables, or the requested ones if all are safe."""
    safe = [pgcatalog.qualify(t) for t in settings.safe_tables]
    blocked = {pgcatalog.qualify(t) for t in settings.blocked_tables}
    if not requested:
        return safe
    chosen = []
    for name in requested:
        table = pgcatalog.qualify(name)
        if table in blocked:
            raise UserError(
                f"refusing to sync '{name}': it holds user data and is on the blocked list "
                "([sync-data] blocked_tables). Nothing was read or written."
            )
        if table not in safe:
            from ops.spelling import did_you_mean

            hint = did_you_mean(name, [*settings.safe_tables, *safe]) or "."
            raise UserError(
                f"'{name}' is not a known config table{hint} "
                "If it holds configuration only, add it to [sync-data] safe_tables in environments.ini. "
                "Nothing was read or written."
            )
        if table not in chosen:
            chosen.append(table)
    return chosen


def conflict_key(table: CatalogTable, natural_keys: dict[str, list[str]]) -> list[str]:
    key = natural_keys.get(table.qualified) or natural_keys.get(table.name) or table.primary_key
    if not key:
        raise UserError(
            f"{table.qualified} has no primary key: add one in a migration, or configure a natural "
            f"key in environments.ini ([sync-data] key.{table.name} = col1,col2)"
        )
    if key != table.primary_key and key not in table.unique_keys:
        raise UserError(f"{table.qualified}: natural key ({', '.join(key)}) needs a unique index on those columns")
    return key


class SchemaBehind(UserError):
    """The target lacks a table or column the source has: its migrations are behind."""


class MissingTable(SchemaBehind):
    def __init__(self, env: Environment, name: str) -> None:
        super().__init__(f"{env.name}: table {name} does not exist (schema is behind: push migrations first)")
        self.table = name


def read_tables(conn: psycopg.Connection, names: list[str], env: Environment) -> list[CatalogTable]:
    tables = []
    for name in names:
        table = pgcatalog.read_table(conn, name)
        if table is None:
            raise MissingTable(env, name)
        tables.append(table)
    return tables


def missing_everywhere(missing: MissingTable, source: Environment, target: Environment) -> UserError:
    """A table the target lacks: behind on migrations if the source has it, else a name nobody has."""
    with connect(source, autocommit=True, application="ops sync-data check") as conn:
        if pgcatalog.read_table(conn, missing.table) is not None:
            return missing
    return UserError(
        f"table {missing.table} exists in neither {source.name} nor {target.name}: is it a typo in "
        "[sync-data] safe_tables of environments.ini (or --tables)? Nothing was changed."
    )


def plan_table(target: CatalogTable, entry: dict, natural_keys: dict[str, list[str]], index: int) -> TablePlan:
    """Match one exported (or streamed) table to the target's schema."""
    target_columns = {c.name: c for c in target.columns}
    missing = [c["name"] for c in entry["columns"] if c["name"] not in target_columns]
    if missing:
        cols = ", ".join(f"{target.qualified}.{name}" for name in missing)
        raise SchemaBehind(f"target schema is behind: {cols} missing in the target; push migrations first")
    columns = [c["name"] for c in entry["columns"] if not target_columns[c["name"]].generated]
    key = conflict_key(target, natural_keys)
    absent_key = [k for k in key if k not in columns]
    if absent_key:
        raise UserError(f"{target.qualified}: the export lacks key column(s) {absent_key}")
    return TablePlan(
        target=target,
        key=key,
        columns=columns,
        json_columns={c["name"] for c in entry["columns"] if c.get("json")},
        file=Path(entry.get("file") or f"{target.qualified}.json"),
        rows=entry.get("rows", 0),
        index=index,
        exported=[c["name"] for c in entry["columns"]],
        export_key=entry.get("key", []),
        fingerprint=entry.get("fingerprint"),
        content=entry.get("content"),
        sha256=entry.get("sha256"),
        copy_sha256=entry.get("copy_sha256"),
        copy_columns=entry.get("copy_columns"),
    )


def plan_import(
    manifest: dict, folder: Path, targets: dict[str, CatalogTable], natural_keys: dict[str, list[str]]
) -> list[TablePlan]:
    """Match exported tables to the target's schema, in parents-first order."""
    plans = []
    by_name = {entry["table"]: entry for entry in manifest["tables"]}
    for index, target in enumerate(pgcatalog.parents_first(list(targets.values()))):
        entry = by_name[target.qualified]
        plan = plan_table(target, entry, natural_keys, index)
        plan.file = sync_export.export_file(folder, entry)
        plan.copy_file = sync_export.export_file(folder, entry, "copy_file") if entry.get("copy_file") else None
        plans.append(plan)
    return plans


def plan_stream(
    sources: list[CatalogTable], targets: dict[str, CatalogTable], natural_keys: dict[str, list[str]], run_dir: Path
) -> list[TablePlan]:
    """Tables read live: each streams exactly the columns it writes, into a .copy file beside the export."""
    by_name = {t.qualified: t for t in sources}
    plans = []
    for index, target in enumerate(pgcatalog.parents_first(list(targets.values()))):
        source = by_name[target.qualified]
        entry = {"columns": sync_export.columns_of(source), "key": conflict_key(source, natural_keys)}
        plan = plan_table(target, entry, natural_keys, index)
        plan.copy_file = run_dir / f"{target.qualified}.copy"
        plan.copy_columns = plan.columns
        plans.append(plan)
    return plans


def check_export_files(plans: list[TablePlan]) -> None:
    """Every file holds exactly the rows its manifest recorded, before any write."""
    for plan in plans:
        sync_export.check_files(plan)


@dataclass
class TargetContent:
    """What a target table holds before the import: its row count, and whether those are the source's rows."""

    rows: int
    identical: bool


# How a sync tells what the target holds, table by table (from an export's hashes, or the live source's).
Compare = Callable[["psycopg.Cursor", list[TablePlan]], dict[str, TargetContent]]
