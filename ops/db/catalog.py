"""What a database says about its tables: columns, keys, foreign keys and sequences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

JSON_TYPES = {"json", "jsonb"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    is_json: bool = False
    generated: bool = False
    identity_always: bool = False
    sequence: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    name: str
    parent: str  # the referenced table, schema-qualified
    definition: str  # pg_get_constraintdef: re-creates it exactly (names resolve through the same search_path)


@dataclass(frozen=True)
class Reference:
    """A foreign key pointing at a table whose rows a delete there deletes (CASCADE) or changes (SET NULL /
    SET DEFAULT)."""

    name: str
    child: str  # the referencing table, schema-qualified
    columns: list[str]  # the child's referencing columns
    referenced: list[str]  # the parent's referenced columns, in the same order
    on_delete: str  # CASCADE | SET NULL | SET DEFAULT
    sets: list[str]  # the child's columns SET NULL / SET DEFAULT writes


@dataclass(frozen=True)
class Index:
    """An index as it is re-created: by its constraint (primary key, unique, exclusion) or by itself."""

    name: str
    constraint: str | None  # pg_get_constraintdef, when a constraint owns the index
    definition: str  # pg_get_indexdef (the CREATE INDEX statement), when none does


@dataclass
class CatalogTable:
    schema: str
    name: str
    columns: list[Column]
    primary_key: list[str]
    unique_keys: list[list[str]] = field(default_factory=list)
    parents: set[str] = field(default_factory=set)
    foreign_keys: list[ForeignKey] = field(default_factory=list)  # its own, validated ones (not inherited)
    owned: bool = False  # the connected role may ALTER it (owns it, or is a member of its owner)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def writable(self) -> list[Column]:
        return [c for c in self.columns if not c.generated]

    def column(self, name: str) -> Column:
        """The named column (callers pass names read from this table, so a miss is a bug)."""
        found = next((c for c in self.columns if c.name == name), None)
        if found is None:
            raise KeyError(f"{self.qualified} has no column {name}")
        return found

    @property
    def self_referencing(self) -> bool:
        return self.qualified in self.parents


def ident(name: str) -> str:
    """A quoted SQL identifier: every name we interpolate goes through here."""
    return '"' + name.replace('"', '""') + '"'


def qident(table: CatalogTable) -> str:
    return f"{ident(table.schema)}.{ident(table.name)}"


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def split_name(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return schema or "public", table


def qualify(name: str) -> str:
    return "{}.{}".format(*split_name(name))


def read_table(conn: psycopg.Connection, name: str) -> CatalogTable | None:
    """One table as the catalog describes it (columns, keys, parents), or None when it does not exist."""
    schema, table = split_name(name)
    row = conn.execute(
        "SELECT c.oid, c.relkind = 'r' AND pg_has_role(c.relowner, 'USAGE') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, table),
    ).fetchone()
    if row is None:
        return None
    oid, owned = row
    columns = [
        Column(name, type_, base in JSON_TYPES, generated, identity == "a", sequence)
        for name, type_, base, generated, identity, sequence in conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                   coalesce(bt.typname, t.typname), a.attgenerated <> '', a.attidentity,
                   pg_get_serial_sequence(format('%%I.%%I', %s::text, %s::text), a.attname)
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd'
            WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            (schema, table, oid),
        )
    ]
    keys = conn.execute(
        """
        SELECT i.indisprimary,
               array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, pos)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     ORDER BY k.pos)
        FROM pg_index i
        WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND 0 <> ALL (i.indkey::int2[])
        """,
        (oid,),
    ).fetchall()
    references = conn.execute(
        "SELECT f.conname, format('%%s.%%s', n.nspname, c.relname), pg_get_constraintdef(f.oid), "
        # Only a table's own validated keys may be re-created: a NOT VALID one would skip the rows it must check.
        "f.conparentid = 0 AND f.coninhcount = 0 AND f.convalidated "
        "FROM pg_constraint f JOIN pg_class c ON c.oid = f.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE f.conrelid = %s AND f.contype = 'f' ORDER BY f.conname",
        (oid,),
    ).fetchall()
    parents = {parent for _, parent, _, _ in references}
    # Definitions resolve names as they do for this role's search_path (the one that re-creates them).
    own = [ForeignKey(name, parent, definition) for name, parent, definition, mine in references if mine]
    primary: list[str] = next((cols for is_primary, cols in keys if is_primary), [])
    return CatalogTable(schema, table, columns, primary, [cols for _, cols in keys], parents, own, owned)


ON_DELETE = {"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def referencing(conn: psycopg.Connection, table: CatalogTable) -> list[Reference]:
    """The foreign keys whose ON DELETE action deletes or changes rows of other tables (or of this one)
    when a row of `table` goes; NO ACTION / RESTRICT keys make such a delete fail instead."""
    names = (
        "array(SELECT a.attname FROM unnest({cols}) WITH ORDINALITY k(n, pos) "
        "JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n ORDER BY k.pos)"
    )
    rows = conn.execute(
        f"""
        SELECT f.conname, format('%%s.%%s', n.nspname, c.relname),
               {names.format(cols="f.conkey", rel="f.conrelid")}, {names.format(cols="f.confkey", rel="f.confrelid")},
               f.confdeltype,
               {names.format(cols="coalesce(nullif(f.confdelsetcols, '{}'), f.conkey)", rel="f.conrelid")}
        FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE f.contype = 'f' AND f.confrelid = %s::regclass AND f.conparentid = 0
          AND f.confdeltype IN ('c', 'n', 'd')
        ORDER BY 2, 1
        """,
        (qident(table),),
    ).fetchall()
    return [
        Reference(name, child, list(columns), list(referenced), ON_DELETE[action], list(sets))
        for name, child, columns, referenced, action, sets in rows
    ]


def rebuildable_indexes(cur: psycopg.Cursor, table: CatalogTable) -> list[Index]:
    """The indexes of a plain table that can be dropped before a bulk load and built after it, exactly.

    Left alone: an index anything depends on (a foreign key of another table, a view grouping by
    a primary key), the replica identity's, a CLUSTER one, an invalid one, one with a comment,
    and every index of a partitioned table or a partition (those are attached to each other), or of
    a table with a deferred trigger (its loaded rows leave trigger events pending until COMMIT, and
    PostgreSQL refuses to ALTER a table with pending events).
    """
    rows = cur.execute(
        """
        SELECT i.relname, c.contype IS NOT NULL, coalesce(pg_get_constraintdef(c.oid), ''),
               pg_get_indexdef(x.indexrelid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        LEFT JOIN pg_constraint c
               ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
        WHERE x.indrelid = %s::regclass AND t.relkind = 'r' AND NOT t.relispartition
          AND x.indisvalid AND x.indisready AND NOT x.indisreplident AND NOT x.indisclustered
          AND obj_description(x.indexrelid, 'pg_class') IS NULL
          AND (c.oid IS NULL OR obj_description(c.oid, 'pg_constraint') IS NULL)
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass
                          AND d.refobjid = x.indexrelid AND d.deptype = 'n')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE c.oid IS NOT NULL
                          AND d.refclassid = 'pg_constraint'::regclass AND d.refobjid = c.oid AND d.deptype = 'n')
          AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid OR h.inhparent = x.indexrelid)
          AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = x.indrelid
                          AND g.tgdeferrable AND g.tginitdeferred AND g.tgenabled <> 'D')
        ORDER BY i.relname
        """,
        (qident(table),),
    ).fetchall()
    return [Index(name, constraint if owned else None, definition) for name, owned, constraint, definition in rows]


def parents_first(tables: list[CatalogTable]) -> list[CatalogTable]:
    """Order tables so every referenced table comes before the tables that reference it.

    Only foreign keys within the given set count; ties keep the given order. Cycles
    (other than a table referencing itself) keep the given order for their members.
    """
    remaining = {t.qualified: t for t in tables}
    ordered: list[CatalogTable] = []
    while remaining:
        ready = [t for t in remaining.values() if not (t.parents - {t.qualified}) & remaining.keys()] or list(
            remaining.values()
        )[:1]
        for table in ready:
            ordered.append(table)
            del remaining[table.qualified]
    return ordered
