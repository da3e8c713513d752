"""`inv recover-rows`: bring rows back from a PITR-restored project into the live one.

A PITR restore creates a new project; describe it as a section with `restored_from = prod`.
Only from such a section, and only into the project it names, may rows of any table (user
tables included: this is the one task that writes them) be copied. The rows to recover are
the ones that differ (all of the table's, or those matching `--where` or `--keys`), shown cell
by cell before the typed confirmation; one transaction writes them, parents first; the target's
affected rows (with every row a deletion's ON DELETE actions reach) are exported to `before/`
first, and `--from-export <run>/before` puts them back.

`--where` is evaluated on the source alone (see recover_where); the target is only ever addressed by
the key values it selected, as parameters.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ops.config import Config, Environment
from ops.db import catalog as pgcatalog
from ops.db.catalog import CatalogTable, ident, qident
from ops.db.connection import connect
from ops.errors import OperationFailed, UserError, first_line
from ops.invocation import program
from ops.report import Result, progress
from ops.report import Table as Rows
from ops.report import table as tabulated
from ops.safety import ask, confirm_write
from ops.stamps import new_run_dir, seal_private
from ops.sync import cascade, recover_where
from ops.sync import diff as sync_diff
from ops.sync.source import snapshot_reader

BEFORE = "before"


@dataclass
class Recovered:
    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    changes: list[sync_diff.Change] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # ON DELETE actions that reach it from a deletion


@dataclass
class RecoverResult(Result):
    source: str
    target: str
    dry_run: bool
    run_dir: str = ""
    tables: list[Recovered] = field(default_factory=list)
    seconds: float = 0.0

    def rows(self) -> Rows:
        verb = "to " if self.dry_run else ""
        return Rows(
            ["table", f"{verb}insert", f"{verb}update", f"{verb}delete"],
            [[t.table + "".join(f" ({v})" for v in t.via), t.inserted, t.updated, t.deleted] for t in self.tables],
        )

    def plan(self) -> str:
        """What the question shows first: the counts per table, then the rows."""
        counts = self.rows()
        shown = tabulated(counts.rows, counts.headers)
        return "\n".join([f"plan for {self.target}:", shown, *self.footer().splitlines()[:-1]])

    def footer(self) -> str:
        paint = sync_diff.colours()
        lines = []
        for t in self.tables:
            lines += [f"{t.table}: {v}" for v in t.via]
            for change in t.changes[: sync_diff.SHOWN_PER_TABLE]:
                lines += sync_diff.change_lines(sync_diff.TableDiff(t.table, []), change, paint)
            if len(t.changes) > sync_diff.SHOWN_PER_TABLE:
                lines.append(f"  ... and {len(t.changes) - sync_diff.SHOWN_PER_TABLE:,} more rows of {t.table}")
        if self.run_dir and not self.dry_run:
            tables = ",".join(t.table for t in self.tables)
            lines.append(
                f"undo: {program()} recover-rows --from-export {Path(self.run_dir) / BEFORE} --to {self.target} "
                f"--table {tables}"
            )
        total = sum(t.inserted + t.updated + t.deleted for t in self.tables)
        lines.append(
            f"{'would recover' if self.dry_run else 'recovered'} {total} row(s) into {self.target} from {self.source}"
        )
        return "\n".join(lines)


def key_values(table: CatalogTable, keys: list[str]) -> list[str]:
    """`--keys id=<v>,<v>` or `--keys <v>,<v>`: the values of the table's one-column key."""
    if len(table.primary_key) != 1:
        raise UserError(
            f"--keys takes values of a one-column key; {table.qualified}'s key is "
            f"({', '.join(table.primary_key)}): use --where for it"
        )
    column = table.primary_key[0]
    values = []
    for given in keys:
        named, _, value = given.partition("=")
        if value and named == column:
            given = value
        elif value and named in {c.name for c in table.columns}:
            raise UserError(
                f"--keys {given!r}: {named} is not the key of {table.qualified} ({column} is): "
                f"write --keys {column}=<value>,<value>. Nothing was changed."
            )
        values.append(given)
    return values


def keys_present(conn: Any, table: CatalogTable, values: list[str], env: Environment) -> set[str]:
    """Which of these key values (as typed) have a row in the table, compared as the key's own type."""
    import psycopg

    column = table.column(table.primary_key[0])
    try:
        found = conn.execute(
            f"SELECT v FROM unnest(%s::text[]) v WHERE EXISTS (SELECT 1 FROM {qident(table)} t "
            f"WHERE t.{ident(column.name)} = v::{column.type})",
            (values,),
        ).fetchall()
    except psycopg.Error as error:
        raise UserError(
            f"--keys: {env.name} cannot read the values as {table.qualified}'s {column.name} ({column.type}): "
            f"{first_line(error)}. Nothing was changed."
        ) from None
    return {v for (v,) in found}


def jsonable(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=lambda v: str(v) if isinstance(v, Decimal) else v, ensure_ascii=False)


def upsert_sql(table: CatalogTable, columns: list[str]) -> str:
    listed = ", ".join(ident(c) for c in columns)
    keyed = ", ".join(ident(c) for c in table.primary_key)
    updates = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}" for c in columns if c not in table.primary_key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {qident(table)} ({listed}) OVERRIDING SYSTEM VALUE SELECT {listed} FROM "
        f"json_populate_recordset(NULL::{qident(table)}, %s::json) ON CONFLICT ({keyed}) {action}"
    )


def delete_sql(table: CatalogTable) -> str:
    match = " AND ".join(f"t.{ident(c)} = d.{ident(c)}" for c in table.primary_key)
    rows = f"json_populate_recordset(NULL::{qident(table)}, %s::json)"
    return f"DELETE FROM {qident(table)} t USING {rows} d WHERE {match}"


def read_tables_on_both(
    src: Any, dst: Any, names: list[str], source: Environment, target: Environment
) -> list[CatalogTable]:
    tables = []
    for name in names:
        here, there = pgcatalog.read_table(dst, name), pgcatalog.read_table(src, name)
        if here is None or there is None:
            missing = " and ".join(e.name for e, t in ((source, there), (target, here)) if t is None)
            raise UserError(f"table {pgcatalog.qualify(name)} is not in {missing}. Nothing was changed.")
        if not here.primary_key:
            raise UserError(f"{here.qualified} has no primary key: rows cannot be matched. Nothing was changed.")
        tables.append(here)
    return pgcatalog.parents_first(tables)


def selected(
    src: Any,
    dst: Any,
    table: CatalogTable,
    where: str | None,
    keys: list[str] | None,
    envs: tuple[Environment, Environment],
) -> tuple[list[dict[str, Any]] | None, set[str]]:
    """The key values to read on both sides (None: every row), and which --keys values either side holds."""
    if where:
        return recover_where.selected_keys(src, table, where, envs[0]), set()
    if keys:
        values = key_values(table, keys)
        held = keys_present(src, table, values, envs[0]) | keys_present(dst, table, values, envs[1])
        typed = dict(zip(values, keys, strict=True))
        return [{table.primary_key[0]: v} for v in values], {typed[v] for v in held}
    return None, set()


def recover_rows(
    config: Config,
    *,
    source: str | None,
    target: str | None,
    tables: list[str],
    where: str | None,
    keys: list[str] | None,
    prune: bool,
    dry_run: bool,
    yes: bool,
    from_export: str | None = None,
) -> RecoverResult:
    import psycopg

    started = time.monotonic()
    if not target:
        raise UserError("name the project to recover into with --to ENV")
    if not tables:
        raise UserError("name the table(s) with --table (e.g. --table auth.users,public.profiles)")
    utf8_only({"--where": [where or ""], "--keys": keys or [], "--table": tables})
    target_env = config.env(target)
    if from_export:
        if source or where or keys:
            raise UserError("--from-export puts a recovery's before/ back: it takes no --from, --where or --keys")
        return undo(config, target_env, Path(from_export).resolve(), tables, dry_run=dry_run, yes=yes)
    source_env = restored_source(config, source, target_env, where=where, keys=keys, prune=prune)
    result = RecoverResult(source_env.name, target_env.name, dry_run)
    try:
        with (
            snapshot_reader(source_env, "ops recover-rows") as src,
            connect(target_env, application="ops recover-rows") as dst,
        ):
            described = read_tables_on_both(src, dst, tables, source_env, target_env)
            if where:
                with connect(source_env, application="ops recover-rows where") as probe:
                    for table in described:
                        recover_where.refuse_volatile(probe, table, where, source_env)
            plans = plan_tables(src, dst, described, where, keys, prune, (source_env, target_env), result)
            reached = cascade.dependents(dst, deletions(plans))
            add_reached(result, reached)
            dst.rollback()
            if dry_run or not any(t.inserted or t.updated or t.deleted for t in result.tables):
                result.seconds = round(time.monotonic() - started, 3)
                return result
            names = ",".join(t.qualified for t in described)
            confirm_write(target_env, yes=yes, action=f"recover rows of {names} into it", plan=result.plan())
            confirm_table(target_env, names, yes=yes)
            run_dir = new_run_dir(config.sync_data.export_dir / f"recover-{target_env.name}")
            result.run_dir = str(run_dir)
            write(dst, plans, reached, run_dir / BEFORE)
    except psycopg.Error as error:
        raise OperationFailed(
            f"recovering into {target_env.name} failed: {first_line(error)}. Nothing was "
            "committed: the target is unchanged."
        ) from None
    result.seconds = round(time.monotonic() - started, 3)
    return result


def restored_source(
    config: Config, source: str | None, target: Environment, *, where: str | None, keys: list[str] | None, prune: bool
) -> Environment:
    """The environment named by --from, refused unless it is a restore of `target` and the flags go together."""
    if not source:
        raise UserError(f"name the restored project with --from ENV (a section with restored_from = {target.name})")
    source_env = config.env(source)
    if where and keys:
        raise UserError("use either --where or --keys, not both")
    if where and prune:
        raise UserError(
            "--prune deletes target rows the restore lacks, and --where is evaluated on the restore alone, so it "
            "cannot pick them: name them with --keys, or prune the whole table. Nothing was changed."
        )
    if source_env.restored_from != target.name:
        raise UserError(
            f"{source_env.name} is not a restore of {target.name} (its section has restored_from = "
            f"{source_env.restored_from or 'nothing'}): user data never moves between environments, "
            f"only from a PITR restore back into its project. Nothing was changed."
        )
    return source_env


def plan_tables(
    src: Any,
    dst: Any,
    described: list[CatalogTable],
    where: str | None,
    keys: list[str] | None,
    prune: bool,
    envs: tuple[Environment, Environment],
    result: RecoverResult,
) -> list[Any]:
    """Each table's rows compared on both sides (what to insert, update, delete), counted into `result`;
    refused when a --keys value is in neither side."""
    plans = []
    held: set[str] = set()
    for table in described:
        columns = [c.name for c in table.writable]
        only, found_keys = selected(src, dst, table, where, keys, envs)
        held |= found_keys
        wanted = sync_diff.rows_of(src, table, table.primary_key, columns, only)
        present = sync_diff.rows_of(dst, table, table.primary_key, columns, only)
        found = sync_diff.diff_table(wanted, present, table.qualified, table.primary_key, columns, prune)
        plans.append((table, columns, wanted, present, found))
        result.tables.append(Recovered(table.qualified, found.insert, found.update, found.delete, found.changes))
    nowhere = [k for k in keys or [] if k not in held]
    if nowhere:
        raise UserError(
            f"--keys {', '.join(nowhere)}: found in neither {envs[0].name} nor {envs[1].name} "
            f"({', '.join(t.qualified for t in described)}). Nothing was changed."
        )
    return plans


def utf8_only(flags: dict[str, list[str]]) -> None:
    """Flags go to the server as UTF-8: bytes that are not (argv keeps them as surrogates) are refused here."""
    for flag, values in flags.items():
        for value in values:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise UserError(
                    f"{flag} {value!r} is not UTF-8 text: type it again in a UTF-8 terminal. Nothing was changed."
                ) from None


def confirm_table(env: Environment, names: str, *, yes: bool) -> None:
    """User data: beside the environment's name, the table names are typed too."""
    if yes or not env.protected:
        return
    answer = ask(f"Type the table name(s) to recover ({names}): ")
    if answer.replace(" ", "") != names:
        raise UserError(f"not confirmed ('{answer}' is not '{names}'); nothing was changed")


def deletions(plans: list) -> list[tuple[CatalogTable, list[dict[str, Any]]]]:
    """The target rows each table's plan deletes (--prune), as they are."""
    return [
        (table, [present[sync_diff.row_key(c.key, table.primary_key)] for c in found.changes if c.kind == "delete"])
        for table, _, _, present, found in plans
    ]


def add_reached(result: RecoverResult, reached: list[cascade.Touched]) -> None:
    """The rows deletions reach through ON DELETE actions, in the plan: each under its table."""
    shown = {t.table: t for t in result.tables}
    for touched in reached:
        entry = shown.get(touched.table.qualified)
        if entry is None:
            entry = shown[touched.table.qualified] = Recovered(touched.table.qualified)
            result.tables.append(entry)
        entry.via += touched.via
        entry.deleted += len(touched.deleted)
        entry.updated += len(touched.changed)
        key = touched.table.primary_key
        entry.changes += [sync_diff.Change({k: row[k] for k in key}, "delete") for row in touched.deleted.values()]
        entry.changes += [
            sync_diff.Change({k: row[k] for k in key}, "update", touched.cells[k_])
            for k_, row in touched.changed.items()
        ]


def same_rows(planned: list[cascade.Touched], now: list[cascade.Touched]) -> bool:
    def keys(found: list[cascade.Touched]) -> dict[str, tuple[set, set]]:
        return {t.table.qualified: (set(t.deleted), set(t.changed)) for t in found}

    return keys(planned) == keys(now)


def write(dst: Any, plans: list, reached: list[cascade.Touched], before: Path) -> None:
    """The undo first (the target's affected rows as the plan read them, and every row the deletions reach
    through ON DELETE actions), then the rows: upserts parents first, deletions children first, all in
    one transaction."""
    manifest = []
    with dst.transaction():
        # The deleted rows and all they reach, locked: nothing new can point at them until the commit.
        if not same_rows(reached, cascade.dependents(dst, deletions(plans), lock=True)):
            raise OperationFailed(
                "rows that the deletions would reach through ON DELETE actions changed since the plan was "
                "shown. Nothing was changed: run it again to see the new plan."
            )
        before.mkdir(parents=True, mode=0o700)  # user rows: ours alone, like a backup (sealed below)
        extra = {t.table.qualified: t for t in reached}
        tables = [(table, found.changes, present) for table, _, _, present, found in plans]
        tables += [(t.table, [], {}) for t in reached if t.table.qualified not in {p[0].qualified for p in plans}]
        for table, changes, present in tables:
            touched = [sync_diff.row_key(c.key, table.primary_key) for c in changes]
            old_rows = [present[k] for k in touched if k in present]
            if table.qualified in extra:
                planned = set(touched)
                reached_rows = extra[table.qualified].rows()
                old_rows += [r for r in reached_rows if sync_diff.row_key(r, table.primary_key) not in planned]
            inserted = [c.key for c in changes if c.kind == "insert"]
            path = before / f"{table.qualified}.json"
            path.write_text(jsonable(old_rows), encoding="utf-8")
            manifest.append(
                {
                    "table": table.qualified,
                    "file": path.name,
                    "rows": len(old_rows),
                    "inserted_keys": json.loads(jsonable(inserted)),
                }
            )
        (before / "manifest.json").write_text(json.dumps({"tables": manifest}, indent=2) + "\n", encoding="utf-8")
        seal_private(before)
        for table, columns, wanted, _, found in plans:
            rows = [wanted[sync_diff.row_key(c.key, table.primary_key)] for c in found.changes if c.kind != "delete"]
            if rows:
                dst.execute(upsert_sql(table, columns), (jsonable(rows),))
        for table, _, _, _, found in reversed(plans):
            gone = [c.key for c in found.changes if c.kind == "delete"]
            if gone:
                dst.execute(delete_sql(table), (jsonable(gone),))
    progress(f"the target's rows as they were before are in {before}")


def undo(
    config: Config, target: Environment, before: Path, tables: list[str], *, dry_run: bool, yes: bool
) -> RecoverResult:
    """Put a recovery's before/ back: its inserted rows removed, its changed and deleted rows restored.
    Rows that removing the inserted ones reaches through ON DELETE actions (added since) are shown too."""
    import psycopg

    manifest_path = before / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{before} is not the before/ of a recover-rows run (no manifest.json)")
    recorded = json.loads(manifest_path.read_text(encoding="utf-8"))["tables"]
    wanted = {pgcatalog.qualify(t) for t in tables}
    entries = [e for e in recorded if e["table"] in wanted]
    if {e["table"] for e in entries} != wanted:
        raise UserError(f"{before} holds {', '.join(e['table'] for e in recorded)}; name those with --table")
    result = RecoverResult(f"undo {before}", target.name, dry_run)
    try:
        put_back(target, before, entries, result, dry_run=dry_run, yes=yes)
    except psycopg.Error as error:
        raise OperationFailed(
            f"putting back {before} into {target.name} failed: {first_line(error)}. Nothing was committed: "
            "the target is unchanged."
        ) from None
    return result


def put_back(
    target: Environment, before: Path, entries: list, result: RecoverResult, *, dry_run: bool, yes: bool
) -> None:
    with connect(target, application="ops recover-rows undo") as dst:
        described = {t.qualified: t for t in (pgcatalog.read_table(dst, e["table"]) for e in entries) if t}
        order = pgcatalog.parents_first(list(described.values()))
        loaded = {
            e["table"]: (e, json.loads((before / Path(e["file"]).name).read_text(encoding="utf-8"))) for e in entries
        }
        for table in order:
            entry, rows = loaded[table.qualified]
            result.tables.append(Recovered(table.qualified, inserted=len(rows), deleted=len(entry["inserted_keys"])))
        add_reached(result, cascade.dependents(dst, [(t, loaded[t.qualified][0]["inserted_keys"]) for t in order]))
        dst.rollback()
        if dry_run:
            return
        confirm_write(
            target, yes=yes, action=f"put back the rows of {', '.join(described)} as they were", plan=result.plan()
        )
        with dst.transaction():
            for table in reversed(order):  # children before parents
                keys = loaded[table.qualified][0]["inserted_keys"]
                if keys:
                    dst.execute(delete_sql(table), (json.dumps(keys),))
            for table in order:
                rows = loaded[table.qualified][1]
                if rows:
                    dst.execute(upsert_sql(table, [c.name for c in table.writable]), (json.dumps(rows),))
