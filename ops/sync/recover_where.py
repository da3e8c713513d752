"""`recover-rows --where`: a condition that can only ever select rows of the restored source.

The condition is the user's SQL, never inspected as text here. The server parses the exact query as a
prepared statement (parsed, never run) in a READ ONLY transaction that is always rolled back: parsing
alone runs code (a literal's input function checks a domain's CHECK, inside an array or a row literal
too), so that code may not write either. The server prints the query's rewritten tree (views and row
security policies expanded) and that tree names every function the query calls, directly, through
operators, casts and the CHECK constraints of the domains it reaches. A volatile function is refused
(it may change state even in a read-only transaction: session settings, locks, signals, NOTIFY), and
so is any function the project defined itself: its STABLE or IMMUTABLE label is only a promise, and
its body may do anything. The query then runs as one statement of the extended protocol (a second
statement is a server error; no `%` or `$1` becomes a placeholder) inside the source's READ ONLY
transaction, which no statement can end and where the server refuses every write, under a time limit.
Only the key values it selects leave this module: the target never sees the condition.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ops.config import Environment
from ops.db.catalog import CatalogTable, ident, qident
from ops.errors import OperationFailed, UserError, first_line

TIMEOUT = "60s"  # a condition that runs longer is a mistake, not a selection
STATEMENT = "ops_recover_where"
# Fields of PostgreSQL's node trees that hold a function's or an operator's OID.
FUNCTION_FIELDS = {
    ":funcid",
    ":opfuncid",
    ":aggfnoid",
    ":winfnoid",
    ":hashfuncid",
    ":negfuncid",
    ":startInRangeFunc",
    ":endInRangeFunc",
}
OPERATOR_FIELDS = {":opno", ":opnos", ":eqop", ":sortop"}
FIRST_USER_OID = 16384  # PostgreSQL's own objects have OIDs below this
# Built-in functions labelled STABLE that still change state or run SQL the tree does not show: the
# first assign a transaction ID, the others read tables and views (a view's functions run) or run a
# type's input function named by a string (a domain's CHECK).
UNSAFE_BUILTINS = (
    "txid_current",
    "pg_current_xact_id",
    "table_to_xml",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xml_and_xmlschema",
    "pg_input_is_valid",
    "pg_input_error_info",
)


def query(table: CatalogTable, where: str) -> str:
    keyed = ", ".join(ident(c) for c in table.primary_key)
    return f"SELECT row_to_json(k)::text FROM (SELECT {keyed} FROM {qident(table)} WHERE (\n{where}\n)) k"


def refused(table: CatalogTable, where: str, source: Environment, error: BaseException) -> UserError:
    return UserError(
        f"--where takes one SQL condition on the columns of {table.qualified}; {source.name} refused "
        f"{where!r}: {first_line(error)}. Nothing was changed."
    )


def tokens(tree: str) -> Iterator[str]:
    """The tokens of a node tree as PostgreSQL's own reader splits them (a backslash escapes one char)."""
    token: list[str] = []
    chars = iter(tree)
    for char in chars:
        if char == "\\":
            token.append(next(chars, ""))
        elif char.isspace() or char in "(){}":
            if token:
                yield "".join(token)
                token = []
            if not char.isspace():
                yield char
        else:
            token.append(char)
    if token:
        yield "".join(token)


def is_type_field(field: str) -> bool:
    return "type" in field.lower() and not field.endswith("typmod")


def references(tree: str) -> tuple[set[int], set[int], set[int]]:
    """The function, operator and type OIDs a node tree names."""
    functions: set[int] = set()
    operators: set[int] = set()
    types: set[int] = set()
    field = ""
    previous = ""
    oids = False  # inside a field's list of OIDs: (o 23 25)
    for token in tokens(tree):
        if token.startswith(":"):
            field, previous, oids = token, token, False
            continue
        oids = oids or (token == "o" and previous == "(")
        previous = token
        if token.isdigit():
            number = int(token)
            if field in FUNCTION_FIELDS:
                functions.add(number)
            elif field in OPERATOR_FIELDS:
                operators.add(number)
            elif is_type_field(field):
                types.add(number)
        if token not in ("(", "o") and not (oids and token.isdigit()):
            field, oids = "", False
    return functions, operators, types


def parsed(probe: Any, table: CatalogTable, where: str) -> str:
    """The rewritten tree of the query as the server prints it while preparing (never running) it."""
    printed: list[str] = []

    def keep(notice: Any) -> None:
        if (notice.message_primary or "").startswith("rewritten parse tree"):
            printed.append(notice.message_detail or "")

    probe.add_notice_handler(keep)
    try:
        probe.execute(f"SET LOCAL statement_timeout = '{TIMEOUT}'")
        probe.execute("SET LOCAL debug_pretty_print = off")
        probe.execute("SET LOCAL client_min_messages = log")
        probe.execute("SET LOCAL debug_print_rewritten = on")
        probe.execute(f"PREPARE {STATEMENT} AS {query(table, where)}", binary=True)
        probe.execute("SET LOCAL debug_print_rewritten = off")
        placeholders = probe.execute(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = %s", (STATEMENT,)
        ).fetchone()[0]
        probe.execute(f"DEALLOCATE {STATEMENT}")
    finally:
        probe.remove_notice_handler(keep)
    if placeholders:
        raise UserError("--where takes no placeholders ($1): write the value itself. Nothing was changed.")
    trees = [tree for tree in printed if ":commandType 1 " in tree]
    if len(trees) != 1:
        raise OperationFailed(
            "the source did not show how it parsed --where (debug_print_rewritten). Nothing was changed."
        )
    return trees[0]


def domain_checks(probe: Any, types: set[int]) -> tuple[list[str], set[int]]:
    """The CHECK constraints of every domain these types reach (as base, element, field or range
    subtype), and the range types' own functions."""
    reached = (
        "WITH RECURSIVE reached(oid) AS (SELECT unnest(%s::oid[]) UNION SELECT p.part FROM reached r "
        "JOIN pg_type t ON t.oid = r.oid, LATERAL (SELECT t.typbasetype UNION ALL SELECT t.typelem "
        "UNION ALL SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 "
        "UNION ALL SELECT g.rngsubtype FROM pg_range g WHERE g.rngtypid = t.oid "
        "UNION ALL SELECT g.rngtypid FROM pg_range g WHERE g.rngmultitypid = t.oid) p(part) WHERE p.part <> 0) "
    )
    checks = [
        tree
        for (tree,) in probe.execute(
            reached + "SELECT c.conbin::text FROM pg_constraint c JOIN reached r ON c.contypid = r.oid "
            "WHERE c.conbin IS NOT NULL",
            (sorted(types),),
        ).fetchall()
    ]
    functions = {
        int(f)
        for row in probe.execute(
            reached + "SELECT g.rngcanonical::oid::int, g.rngsubdiff::oid::int FROM pg_range g "
            "JOIN reached r ON g.rngtypid = r.oid",
            (sorted(types),),
        ).fetchall()
        for f in row
        if f
    }
    return checks, functions


def calls(probe: Any, table: CatalogTable, where: str) -> tuple[set[int], set[int]]:
    """Every function and operator the query may call, from the server's parse and the domains it reaches."""
    functions: set[int] = set()
    operators: set[int] = set()
    seen: set[int] = set()
    trees = [parsed(probe, table, where)]
    while trees:
        types: set[int] = set()
        for tree in trees:
            called, used, typed = references(tree)
            functions |= called
            operators |= used
            types |= typed
        types -= seen
        seen |= types
        trees, ranged = domain_checks(probe, types) if types else ([], set())
        functions |= ranged
    return functions, operators


def not_allowed(probe: Any, functions: set[int], operators: set[int]) -> tuple[list[str], list[str]]:
    """(volatile functions, functions the project wrote itself) among these calls."""
    rows = probe.execute(
        "SELECT p.oid::regprocedure::text, p.provolatile = 'v' OR (p.oid < %s AND p.proname = ANY(%s)), "
        "p.oid >= %s AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
        "AND d.objid = p.oid AND d.deptype = 'e') FROM pg_proc p WHERE p.oid = ANY(%s::oid[]) "
        "OR p.oid IN (SELECT o.oprcode FROM pg_operator o WHERE o.oid = ANY(%s::oid[])) ORDER BY 1",
        (FIRST_USER_OID, list(UNSAFE_BUILTINS), FIRST_USER_OID, sorted(functions), sorted(operators)),
    ).fetchall()
    return [name for name, volatile, _ in rows if volatile], [name for name, _, own in rows if own]


def refuse_volatile(probe: Any, table: CatalogTable, where: str, source: Environment) -> None:
    import psycopg

    probe.read_only = True  # parsing runs code (a domain's CHECK on a literal): it may not write either
    try:
        with probe.transaction(force_rollback=True):
            volatile, own = not_allowed(probe, *calls(probe, table, where))
    except psycopg.Error as error:
        raise refused(table, where, source, error) from None
    if volatile:
        raise UserError(
            f"--where only selects rows: it may not call {', '.join(volatile)} "
            "(volatile, or it runs SQL of its own: it may change state). "
            "Nothing was changed."
        )
    if own:
        raise UserError(
            f"--where only selects rows: it may not call {', '.join(own)} (the project's own function: its "
            "STABLE or IMMUTABLE label is only a promise, its body may change state). Use PostgreSQL's own "
            "functions. Nothing was changed."
        )


def selected_keys(src: Any, table: CatalogTable, where: str, source: Environment) -> list[dict[str, Any]]:
    """The keys of the source's rows that match `where`, evaluated in `src`'s READ ONLY transaction."""
    import psycopg

    if src.execute("SELECT current_setting('transaction_read_only')").fetchone()[0] != "on":
        raise AssertionError("--where is only ever evaluated in a read-only transaction")
    try:
        src.execute(f"SET LOCAL statement_timeout = '{TIMEOUT}'")
        found = src.execute(query(table, where), binary=True).fetchall()
        src.execute("SET LOCAL statement_timeout TO DEFAULT")
    except psycopg.Error as error:
        if src.broken or src.closed:
            raise OperationFailed(
                f"{source.name} closed the connection while evaluating --where ({first_line(error)}). "
                "Nothing was changed."
            ) from None
        raise refused(table, where, source, error) from None
    keys: list[Any] = [json.loads(text) if isinstance(text, str) else None for (text,) in found]
    if any(not isinstance(k, dict) or sorted(k) != sorted(table.primary_key) for k in keys):
        raise UserError(
            f"--where is one condition on the rows of {table.qualified}: its query selected something other "
            f"than their keys ({', '.join(table.primary_key)}). Nothing was changed."
        )
    return keys
