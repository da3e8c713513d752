"""What deleting rows takes with it: every row that an ON DELETE CASCADE, SET NULL or SET DEFAULT foreign
key deletes or changes, found by following the catalog's foreign keys from table to table (read-only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ops.db import catalog as pgcatalog
from ops.db.catalog import CatalogTable, ident, qident
from ops.errors import UserError
from ops.sync.diff import row_key


@dataclass
class Touched:
    """One table's rows that the deletes reach: deleted ones, and changed ones with their new cells."""

    table: CatalogTable
    via: list[str] = field(default_factory=list)  # e.g. "ON DELETE CASCADE from auth.users"
    deleted: dict[tuple, dict[str, Any]] = field(default_factory=dict)  # key -> the row as it is
    changed: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    cells: dict[tuple, list[dict[str, Any]]] = field(default_factory=dict)  # changed key -> column, old, new

    def rows(self) -> list[dict[str, Any]]:
        """Every touched row as it is now, in the table's writable columns (what an undo writes back)."""
        columns = [c.name for c in self.table.writable]
        return [{c: row[c] for c in columns} for row in [*self.deleted.values(), *self.changed.values()]]


def keys_json(table: CatalogTable, rows: list[dict[str, Any]]) -> str:
    return json.dumps([{k: row[k] for k in table.primary_key} for row in rows], default=str)


def referencing_rows(
    conn: Any, parent: CatalogTable, ref: pgcatalog.Reference, child: CatalogTable, keys: str, lock: bool
) -> list:
    """The child's rows that point at the parent rows with these keys (MATCH SIMPLE: a NULL points nowhere)."""
    pk = ", ".join(f"p.{ident(c)}" for c in parent.primary_key)
    given = ", ".join(f"k.{ident(c)}" for c in parent.primary_key)
    pointing = ", ".join(f"c.{ident(c)}" for c in ref.columns)
    referenced = ", ".join(f"p.{ident(c)}" for c in ref.referenced)
    query = (
        f"SELECT row_to_json(c)::text FROM {qident(child)} c WHERE ({pointing}) IN "
        f"(SELECT {referenced} FROM {qident(parent)} p WHERE ({pk}) IN "
        f"(SELECT {given} FROM json_populate_recordset(NULL::{qident(parent)}, %s::json) k))"
        + (" FOR UPDATE OF c" if lock else "")
    )
    return [json.loads(text, parse_float=Decimal) for (text,) in conn.execute(query, (keys,)).fetchall()]


def dependents(
    conn: Any, deleting: list[tuple[CatalogTable, list[dict[str, Any]]]], *, lock: bool = False
) -> list[Touched]:
    """The rows that deleting these rows (each table's, by primary key) deletes or changes through foreign
    keys, table by table, recursively; rows the deletes name themselves are not repeated. With `lock`, the
    parents and every touched row are locked (FOR UPDATE), so nothing new can point at them before the
    delete."""
    described = {table.qualified: table for table, _ in deleting}
    gone = {table.qualified: {row_key(row, table.primary_key) for row in rows} for table, rows in deleting}
    found: dict[str, Touched] = {}
    queue = [(table, rows) for table, rows in deleting if rows]
    if lock:
        for table, rows in queue:
            given = ", ".join(f"k.{ident(c)}" for c in table.primary_key)
            own = ", ".join(f"t.{ident(c)}" for c in table.primary_key)
            conn.execute(
                f"SELECT 1 FROM {qident(table)} t WHERE ({own}) IN (SELECT {given} FROM "
                f"json_populate_recordset(NULL::{qident(table)}, %s::json) k) FOR UPDATE OF t",
                (keys_json(table, rows),),
            ).fetchall()
    while queue:
        parent, rows = queue.pop(0)
        keys = keys_json(parent, rows)
        for ref in pgcatalog.referencing(conn, parent):
            child = described.get(ref.child) or pgcatalog.read_table(conn, ref.child)
            if child is None:  # unreachable: the catalog just named it
                continue
            described[child.qualified] = child
            if not child.primary_key:
                raise UserError(
                    f"deleting rows of {parent.qualified} would {ref.on_delete} rows of {child.qualified} "
                    f"({ref.name}), which has no primary key: they could not be put back. Nothing was changed."
                )
            touched = found.setdefault(child.qualified, Touched(child))
            via = f"ON DELETE {ref.on_delete} from {parent.qualified}"
            if via not in touched.via:
                touched.via.append(via)
            removed = gone.setdefault(child.qualified, set())
            newly = []
            for row in referencing_rows(conn, parent, ref, child, keys, lock):
                key = row_key(row, child.primary_key)
                if key in removed:
                    continue
                if ref.on_delete == "CASCADE":
                    removed.add(key)
                    touched.deleted[key] = touched.changed.pop(key, row)
                    touched.cells.pop(key, None)
                    newly.append(row)
                else:
                    touched.changed.setdefault(key, row)
                    new = None if ref.on_delete == "SET NULL" else "DEFAULT"
                    cells = touched.cells.setdefault(key, [])
                    cells += [{"column": c, "old": row[c], "new": new} for c in ref.sets if row[c] is not None]
            if newly:
                queue.append((child, newly))
    return [t for t in found.values() if t.deleted or t.changed]
