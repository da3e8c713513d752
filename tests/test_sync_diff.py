"""`sync-data --diff` against two real PostgreSQL databases: it names exactly the cells a sync changes."""

from __future__ import annotations

import json

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lib.db import sql

from ops import config as ops_config
from ops import report
from ops.sync import data as sync_data
from ops.sync import diff as sync_diff
from ops.sync import sql as sync_sql

TABLE = "diff_prop"
# Each column's values as PostgreSQL reads them: small pools, so that the two sides often hold the same
# value written otherwise (key order, scale, time zone, spelling of an array) or nearly the same one.
POOLS: dict[str, tuple[str, list[str | None]]] = {
    "doc": ("json", ['{"a":1,"b":2}', '{"b":2,"a":1}', '{"a": 1, "b": 2}', "null", "[1, 2.50]", None]),
    "docb": ("jsonb", ['{"a":1,"b":2}', '{"b":2,"a":1}', "null", '{"a":1.0}', '{"a":1.00}', '"x"', None]),
    "tags": ("text[]", ["{a,b}", '{"a","b"}', "{b,a}", "{NULL}", "{}", '{"x y","q\\"uote"}', None]),
    "grid": ("int[]", ["{1,2}", "[0:1]={1,2}", "{{1,2},{3,4}}", "{}", None]),
    "amount": ("numeric", ["1.5", "1.50", "1.500", "0", "-0", "0.0", "NaN", "1e3", "1000", None]),
    "exact": ("numeric(12,4)", ["1.5", "1.50", "2", None]),
    "ratio": ("double precision", ["0.1", "0.10", "0", "-0", "Infinity", "NaN", "1e-300", None]),
    "at": (
        "timestamptz",
        ["2026-01-01 12:00+00", "2026-01-01 13:00+01", "2026-01-01 06:30-05:30", "2026-01-01 12:00:00.000001Z", None],
    ),
    "note": ("text", ["a", "a ", "A", "", "back\\slash", "tab\there", "new\nline\r", "é", "e\u0301", "'\"$$", None]),
    "flag": ("boolean", ["t", "true", "f", None]),
}
CREATE = (
    f"CREATE TABLE public.{TABLE} (id int PRIMARY KEY, " + ", ".join(f"{c} {t}" for c, (t, _) in POOLS.items()) + ")"
)

row = st.fixed_dictionaries({column: st.sampled_from(values) for column, (_, values) in POOLS.items()})
# id -> (its row in the source, its row in the target); None: the side lacks it.
sides = st.dictionaries(st.integers(1, 6), st.tuples(st.none() | row, st.none() | row), max_size=6)


def same_but(**changes) -> dict:
    base = {column: values[0] for column, (_, values) in POOLS.items()}
    return {**base, **changes}


def fill(url: str, rows: dict[int, dict]) -> None:
    columns = ", ".join(POOLS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE public.{TABLE}")
        for key, values in rows.items():
            casts = ", ".join(f"%s::{kind}" for kind, _ in POOLS.values())
            conn.execute(
                f"INSERT INTO public.{TABLE} (id, {columns}) VALUES (%s, {casts})",
                [key, *(values[column] for column in POOLS)],
            )


def cells(url: str) -> dict[int, dict[str, str | None]]:
    """The target's rows as text, rendered as the sync renders them."""
    with psycopg.connect(url) as conn:
        conn.execute(sync_sql.rendering_sql())
        listed = ", ".join(f"{c}::text" for c in POOLS)
        found = conn.execute(f"SELECT id, {listed} FROM public.{TABLE}").fetchall()
    return {key: dict(zip(POOLS, values, strict=True)) for key, *values in found}


def test_diff_names_exactly_the_cells_a_sync_changes(project, tmp_path, monkeypatch):
    project.safe_extra = [TABLE]
    for env in ("prod", "preprod"):
        sql(project.url(env), CREATE)
    monkeypatch.chdir(tmp_path)
    config = ops_config.load(project.write())
    prod, preprod = project.url("prod"), project.url("preprod")

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(sides)
    @example({1: (same_but(doc='{"a":1,"b":2}'), same_but(doc='{"b":2,"a":1}'))})  # json keeps its text
    @example({1: (same_but(docb="null"), same_but(docb=None))})  # JSON null is not SQL NULL
    @example({1: (same_but(amount="1.50", note="b"), same_but(amount="1.5"))})  # a rewritten row's scale
    def check(pairs: dict[int, tuple[dict | None, dict | None]]) -> None:
        fill(prod, {key: source for key, (source, _) in pairs.items() if source is not None})
        fill(preprod, {key: target for key, (_, target) in pairs.items() if target is not None})
        found = sync_diff.diff_task(config, source="prod", target="preprod", tables=[TABLE], prune=True, others=False)
        [table] = json.loads(report.dump(found.to_dict()))["tables"]
        named = {
            (c["kind"], c["key"]["id"], cell["column"])
            for c in table["changes"]
            for cell in c["cells"] or [{"column": ""}]
        }
        before = cells(preprod)
        sync_data.sync_data(config, source="prod", target="preprod", tables=[TABLE], prune=True, yes=True)
        after = cells(preprod)
        changed = {
            ("update", key, column)
            for key in before.keys() & after.keys()
            for column in POOLS
            if before[key][column] != after[key][column]
        }
        changed |= {
            ("insert", key, c) for key in after.keys() - before.keys() for c in POOLS if after[key][c] is not None
        }
        changed |= {("insert", key, "id") for key in after.keys() - before.keys()}
        changed |= {("delete", key, "") for key in before.keys() - after.keys()}
        assert named == changed

    check()
