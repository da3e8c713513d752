"""What a database dump holds, read back from its data.sql: rows per table and each sequence's value.

Read from the dump itself, not asked of the database, so the figures are those of what a restore
brings back (a database moves on while pg_dump runs). pg_dump writes every table's rows as one
COPY block (one line a row: a newline inside a value is written `\\n`), empty tables included,
and each sequence as a `setval` call.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

IDENT = r'(?:"(?:[^"]|"")*"|[^\s."(]+)'
COPY = re.compile(rf"^COPY ({IDENT})\.({IDENT}) .*FROM stdin;$")
SETVAL = re.compile(r"^SELECT pg_catalog\.setval\('((?:[^']|'')*)', (-?\d+), (true|false)\);$")
END_OF_COPY = "\\."


def unquote(identifier: str) -> str:
    return identifier[1:-1].replace('""', '"') if identifier.startswith('"') else identifier


def dump_facts(data_sql: Path) -> dict[str, Any]:
    """`rows` ("schema.table" -> rows) and `sequences` ("schema.name" -> value, is_called) of a data dump."""
    rows: dict[str, int] = {}
    sequences: dict[str, dict[str, Any]] = {}
    table: str | None = None
    with data_sql.open(encoding="utf-8", errors="surrogateescape") as dump:
        for raw in dump:
            line = raw.rstrip("\n")
            if table is not None:
                if line == END_OF_COPY:
                    table = None
                else:
                    rows[table] += 1
            elif copy := COPY.match(line):
                table = f"{unquote(copy[1])}.{unquote(copy[2])}"
                rows.setdefault(table, 0)
            elif setval := SETVAL.match(line):
                name = setval[1].replace("''", "'")
                schema, _, rest = name.partition(".")
                qualified = f"{unquote(schema)}.{unquote(rest)}" if rest else unquote(schema)
                sequences[qualified] = {"value": int(setval[2]), "is_called": setval[3] == "true"}
    return {"rows": rows, "sequences": sequences}
