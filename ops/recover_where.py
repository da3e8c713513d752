"""`recover-rows --where`: a condition that can only ever select rows of the restored source.

The condition is the user's SQL, never inspected as text here. The server parses the exact query as a
temporary view (parsed, never run, in a transaction always rolled back) and its own parse tree names
every function the query calls, directly, through operators and through the views it reads: a volatile
one is refused (it may change state even in a read-only transaction: session settings, locks,
signals). The query then runs as one statement of the extended protocol (a second statement is a
server error; no `%` or `$1` becomes a placeholder) inside the source's READ ONLY transaction, which
no statement can end and where the server refuses every write, under a time limit. Only the key
values it selects leave this module: the target never sees the condition.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ops.config import Environment
from ops.errors import OperationFailed, UserError, first_line
from ops.pgcatalog import Table, ident, qident

TIMEOUT = "60s"  # a condition that runs longer is a mistake, not a selection
VIEW = "ops_recover_where"
# Fields of PostgreSQL's node trees that hold a function's or an operator's OID.
FUNCTION_FIELDS = {":funcid", ":opfuncid", ":aggfnoid", ":winfnoid", ":hashfuncid", ":negfuncid"}
OPERATOR_FIELDS = {":opno", ":opnos"}


def query(table: Table, where: str) -> str:
    keyed = ", ".join(ident(c) for c in table.primary_key)
    return f"SELECT row_to_json(k)::text FROM (SELECT {keyed} FROM {qident(table)} WHERE (\n{where}\n)) k"


def refused(table: Table, where: str, source: Environment, error: BaseException) -> UserError:
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


def references(tree: str) -> tuple[set[int], set[int], set[int]]:
    """The function, operator and relation OIDs a stored query's node tree names."""
    functions: set[int] = set()
    operators: set[int] = set()
    relations: set[int] = set()
    field = ""
    for token in tokens(tree):
        if token.startswith(":"):
            field = token
            continue
        if token.isdigit():
            number = int(token)
            if field in FUNCTION_FIELDS:
                functions.add(number)
            elif field in OPERATOR_FIELDS:
                operators.add(number)
            elif field == ":relid":
                relations.add(number)
        if token not in ("(", "o") and not (field == ":opnos" and token.isdigit()):
            field = ""
    return functions, operators, relations


def volatile_calls(probe: Any, table: Table, where: str) -> list[str]:
    """The volatile functions the query would call, from the server's parse (views followed)."""
    probe.execute(f"SET LOCAL statement_timeout = '{TIMEOUT}'")
    probe.execute(f"CREATE TEMPORARY VIEW {VIEW} AS {query(table, where)}", binary=True)
    functions: set[int] = set()
    operators: set[int] = set()
    seen: set[int] = set()
    views = [f"pg_temp.{VIEW}"]
    while views:
        trees = probe.execute(
            "SELECT ev_class::int, ev_action::text FROM pg_rewrite WHERE ev_class = ANY(%s::regclass[]) "
            "AND rulename = '_RETURN'",
            ([str(v) for v in views],),
        ).fetchall()
        views = []
        for relation, tree in trees:
            seen.add(relation)
            called, used, read = references(tree)
            functions |= called
            operators |= used
            views += [str(r) for r in read - seen]
    return [
        name
        for (name,) in probe.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.provolatile = 'v' AND "
            "(p.oid = ANY(%s::oid[]) OR p.oid IN (SELECT o.oprcode FROM pg_operator o WHERE o.oid = ANY(%s::oid[]))) "
            "ORDER BY 1",
            (sorted(functions), sorted(operators)),
        ).fetchall()
    ]


def refuse_volatile(probe: Any, table: Table, where: str, source: Environment) -> None:
    import psycopg

    try:
        with probe.transaction(force_rollback=True):
            calls = volatile_calls(probe, table, where)
    except psycopg.Error as error:
        raise refused(table, where, source, error) from None
    if calls:
        raise UserError(
            f"--where only selects rows: it may not call {', '.join(calls)} (volatile: it may change state). "
            "Nothing was changed."
        )


def selected_keys(src: Any, table: Table, where: str, source: Environment) -> list[dict[str, Any]]:
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
    return [json.loads(text) for (text,) in found]
