"""Copy config tables between environments: stream, compare, and apply idempotent writes.

A run folder holds everything one sync did: the source export (one JSON file per table,
one row per line, plus `manifest.json`, see `sync_export`), the `import.sql` that was
applied (it runs with `psql` by hand too), and `before/`, an export of the target's rows
taken just before the change, which `--from-export <run>/before --prune` restores.

From a live source, each table's rows stream as COPY text from the source's snapshot
straight into the target (and into the run folder), while a second connection on the same
snapshot writes the JSON export: both databases work at once, and the import transaction
commits only once the export and before/ are complete.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ops import pgcatalog, sync_export, sync_sql
from ops import sync_undo as undo
from ops.config import Config, Environment, SyncDataSettings
from ops.db import connect
from ops.errors import OperationFailed, UserError, first_line
from ops.pgcatalog import Table, literal
from ops.report import Result, progress
from ops.report import Table as Rows
from ops.safety import confirm_write, distinct, will_ask
from ops.stamps import new_run_dir, utc_stamp
from ops.sync_sql import (
    CopyIn,
    Statement,
    TablePlan,
    closing_steps,
    compare_query,
    fingerprint_query,
    lock_step,
    table_steps,
)

if TYPE_CHECKING:
    import psycopg

LOCK_WAIT = "10min"
CHECK_LOCK_WAIT = "2s"  # for dropping foreign keys to check once: past it, they are checked row by row
COPY_CHUNK = 128 << 10  # psycopg hands the libpq at most 128 KiB at once (larger writes are split and copied)
Feed = Callable[[CopyIn], Iterator[bytes | bytearray]]


# ---------------------------------------------------------------- table selection


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
            raise UserError(
                f"'{name}' is not a known config table. If it holds configuration only, add it to "
                "[sync-data] safe_tables in environments.ini. Nothing was read or written."
            )
        if table not in chosen:
            chosen.append(table)
    return chosen


def conflict_key(table: Table, natural_keys: dict[str, list[str]]) -> list[str]:
    key = natural_keys.get(table.qualified) or natural_keys.get(table.name) or table.primary_key
    if not key:
        raise UserError(
            f"{table.qualified} has no primary key: add one in a migration, or configure a natural "
            f"key in environments.ini ([sync-data] key.{table.name} = col1,col2)"
        )
    if key != table.primary_key and key not in table.unique_keys:
        raise UserError(f"{table.qualified}: natural key ({', '.join(key)}) needs a unique index on those columns")
    return key


class MissingTable(UserError):
    def __init__(self, env: Environment, name: str) -> None:
        super().__init__(f"{env.name}: table {name} does not exist (schema is behind: push migrations first)")
        self.table = name


def describe_all(conn: psycopg.Connection, names: list[str], env: Environment) -> list[Table]:
    tables = []
    for name in names:
        table = pgcatalog.describe(conn, name)
        if table is None:
            raise MissingTable(env, name)
        tables.append(table)
    return tables


def missing_everywhere(missing: MissingTable, source: Environment, target: Environment) -> UserError:
    """A table the target lacks: behind on migrations if the source has it, else a name nobody has."""
    with connect(source, autocommit=True, application="ops sync-data check") as conn:
        if pgcatalog.describe(conn, missing.table) is not None:
            return missing
    return UserError(f"table {missing.table} exists in neither {source.name} nor {target.name}: is it a typo in "
                     "[sync-data] safe_tables of environments.ini (or --tables)? Nothing was changed.")


# ---------------------------------------------------------------- import plan


def plan_table(target: Table, entry: dict, natural_keys: dict[str, list[str]], index: int) -> TablePlan:
    """Match one exported (or streamed) table to the target's schema."""
    target_columns = {c.name: c for c in target.columns}
    missing = [c["name"] for c in entry["columns"] if c["name"] not in target_columns]
    if missing:
        cols = ", ".join(f"{target.qualified}.{name}" for name in missing)
        raise UserError(f"target schema is behind: {cols} missing in the target; push migrations first")
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
    manifest: dict, folder: Path, targets: dict[str, Table], natural_keys: dict[str, list[str]]
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
    sources: list[Table], targets: dict[str, Table], natural_keys: dict[str, list[str]], run_dir: Path
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


# ---------------------------------------------------------------- where rows come from


class SourceFailed(OperationFailed):
    """Reading the source broke off: the import is abandoned, nothing is committed."""


def file_feed(step: CopyIn) -> Iterator[bytes]:
    """What a COPY step sends from an export: the COPY text file as it is, or the JSON rows one line each."""
    if step.text:
        with step.source.open("rb") as data:
            yield from iter(lambda: data.read(COPY_CHUNK), b"")
    else:
        yield from sync_export.copy_lines(step.source)


# ---------------------------------------------------------------- apply

@dataclass
class TableResult:
    table: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    only_in_target: int = 0


@dataclass
class SyncResult(Result):
    source: str
    target: str | None
    run_dir: str
    dry_run: bool = False
    export_only: bool = False
    prune: bool = False
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0
    nothing_to_do: bool = False  # a protected target's plan found nothing to change: nothing was asked

    def rows(self) -> Rows:
        if self.export_only:
            return Rows(["table", "rows exported"], [[t.table, t.unchanged] for t in self.tables])
        if self.dry_run:
            headers = ["table", "to insert", "to update", "unchanged", "only in target"]
            rows = [[t.table, t.inserted, t.updated, t.unchanged, t.only_in_target] for t in self.tables]
            if self.prune:
                headers.append("to delete")
                for row, t in zip(rows, self.tables, strict=False):
                    row.append(t.deleted)
            return Rows(headers, rows)
        return Rows(
            ["table", "inserted", "updated", "unchanged", "deleted"],
            [[t.table, t.inserted, t.updated, t.unchanged, t.deleted] for t in self.tables],
        )

    def changes(self) -> int:
        return sum(t.inserted + t.updated + (t.deleted or (t.only_in_target if self.prune else 0))
                   for t in self.tables)

    def footer(self) -> str:
        if self.nothing_to_do:
            return f"nothing to change in {self.target}: it already matches; nothing was asked or written"
        verb = "would sync" if self.dry_run else "exported" if self.export_only else "synced"
        lines = [f"{verb} {len(self.tables)} tables in {self.seconds:.1f}s; files in {self.run_dir}"]
        before = Path(self.run_dir) / "before" if self.run_dir else None
        if before and self.target and not self.dry_run and (before / sync_export.MANIFEST).is_file():
            # The undo snapshot: the target's rows this run replaced, as they were just before.
            lines.insert(0, f"undo: inv sync-data --from-export {before} --to {self.target} --prune")
        return "\n".join(lines)


def write_sql(path: Path, source: str, target: Environment, steps: list[Statement | CopyIn]) -> None:
    """Write the import as a script that `psql -f` runs in one transaction."""
    with path.open("wb") as out:
        header = (
            f"-- sync-data import from {source} into {target.name} ({target.ref}), written {utc_stamp()}\n"
            f'-- Run by hand: psql "$DATABASE_URL" -f import.sql (one transaction: all tables or none)\n'
            "\\set ON_ERROR_STOP on\nBEGIN;\n"
        )
        out.write(header.encode())
        for step in [lock_step(), *steps]:
            out.write(step.sql.encode() + b";\n")
            if isinstance(step, CopyIn):
                for chunk in file_feed(step):
                    out.write(chunk)
                out.write(b"\\.\n")
        out.write(b"COMMIT;\n")


def _query(cur: psycopg.Cursor, step: Statement) -> list[tuple]:
    """A statement that returns rows."""
    cur.execute(step.sql)
    return cur.fetchall()


def _copy_in(cur: psycopg.Cursor, step: CopyIn, feed: Feed) -> int:
    """Run a COPY step with the rows `feed` gives; return the rows loaded."""
    with cur.copy(step.sql) as copy:
        for chunk in feed(step):
            copy.write(chunk)
    return cur.rowcount


def _failure(step: Statement | CopyIn, error: Exception, target: Environment) -> OperationFailed:
    import psycopg

    table = _step_table(step)
    where = f" in {table}" if table else ""
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        diag = error.diag
        parts = [diag.message_primary or ""]
        if diag.constraint_name:
            parts.append(f"constraint {diag.constraint_name}")
        if diag.message_detail:
            parts.append(diag.message_detail)
        cause = "; ".join(parts)
    else:
        cause = first_line(error)
    return OperationFailed(
        f"sync into {target.name} failed{where}: {cause}. Nothing was committed: the target is unchanged."
    )


@dataclass
class Held:
    """What a target table holds before the import: its row count, and whether those are the source's rows."""

    rows: int
    identical: bool


# How a path (live or export) tells what the target holds, table by table.
Compare = Callable[["psycopg.Cursor", list[TablePlan]], dict[str, Held]]


def held_like_export(cur: psycopg.Cursor, plans: list[TablePlan]) -> dict[str, Held]:
    """Against an export: the target's content hash next to the one recorded at export time.

    Exports from before content hashes are compared by their JSON rows' fingerprint;
    exports with neither (before/) are always loaded and compared row by row.
    """
    held = {}
    for plan in plans:
        table = plan.target.qualified
        if plan.content:
            rows, content = _query(cur, Statement(sync_sql.content_hash_sql(plan.target, plan.exported), table))[0]
            held[table] = Held(rows, rows == plan.rows and content == plan.content)
            continue
        rows = _query(cur, Statement(f"SELECT count(*) FROM {pgcatalog.qident(plan.target)}", table))[0][0]
        query = fingerprint_query(plan) if rows else None
        same = bool(query) and _query(cur, Statement(query or "", table))[0][1] == plan.fingerprint
        held[table] = Held(rows, same and rows == plan.rows)
    return held


@dataclass
class Apply:
    """One import transaction into the target: decide per table, load, write, and commit only when all is done."""

    conn: psycopg.Connection
    target: Environment
    plans: list[TablePlan]
    feed: Feed
    compare: Compare
    run_dir: Path
    source_label: str
    dry_run: bool
    prune: bool
    # Called before the commit (or the dry run's rollback): the source's export must be complete by then.
    finish_source: Callable[[], None] = lambda: None
    ran: list[Statement | CopyIn] = field(default_factory=list)  # what import.sql records, in order
    current: Statement | CopyIn = field(default_factory=lock_step)  # the step a failure is reported in
    before: Future | None = None  # before/ being written from the import's snapshot

    def run(self) -> list[TableResult]:
        import psycopg

        before_dir = self.run_dir / "before"
        commit_sent = committed = False  # before/ is kept only when the changes it records were committed
        results = {p.target.qualified: TableResult(p.target.qualified) for p in self.plans}
        try:
            with ThreadPoolExecutor(max_workers=1) as pool, self.conn.transaction() as transaction, \
                    self.conn.cursor() as cur:
                if not self.dry_run:
                    _lock(cur, self.target)
                cur.execute(sync_sql.rendering_sql())
                held = self.compare(cur, self.plans)
                changing = [p for p in self.plans if not held[p.target.qualified].identical]
                for plan in self.plans:
                    if held[plan.target.qualified].identical:
                        results[plan.target.qualified].unchanged = held[plan.target.qualified].rows
                if changing and not self.dry_run:
                    undo.mark_uncommitted(before_dir)  # until COMMIT returns, a kill leaves no undo that looks real
                    self.before = pool.submit(export_before, self.target, _export_snapshot(cur), changing, before_dir)
                staged = set()
                for plan in changing:
                    empty = held[plan.target.qualified].rows == 0
                    if not empty:
                        staged.add(plan.target.qualified)
                    self._load(cur, plan, held[plan.target.qualified].rows, results[plan.target.qualified])
                for step in closing_steps(changing, prune=self.prune, staged=staged):
                    self._execute(cur, step, results[step.table or ""])
                self.current = lock_step()
                self.finish_source()
                write_sql(self.run_dir / "import.sql", self.source_label, self.target, self.ran)
                changes = any(r.inserted or r.updated or r.deleted for r in results.values())
                if self.dry_run or not changes:
                    raise psycopg.Rollback(transaction)
                assert self.before is not None  # something changed, so before/ was being written
                self.before.result()
                self.current = Statement("COMMIT")
                if self.before is not None:
                    undo.mark_committing(before_dir)
                commit_sent = True  # leaving the block commits
            committed = commit_sent
        except (psycopg.Error, OSError) as error:
            if commit_sent and (self.conn.closed or not getattr(error, "sqlstate", None)):
                # The connection went during COMMIT: the server may have committed or not. before/ is a
                # true undo either way (restoring it where nothing changed changes nothing), so it stays.
                undo.mark_committed(before_dir)
                raise OperationFailed(
                    f"sync into {self.target.name}: the connection failed during COMMIT ({first_line(error)}); the "
                    f"import may or may not have been committed. Check {self.target.name}; the undo is kept: "
                    f"inv sync-data --from-export {before_dir} --to {self.target.name} --prune") from None
            raise _failure(self.current, error, self.target) from None
        finally:
            if committed:
                undo.mark_committed(before_dir)
            elif not commit_sent:
                shutil.rmtree(before_dir, ignore_errors=True)  # nothing was replaced: nothing to restore
        return list(results.values())

    def _load(self, cur: psycopg.Cursor, plan: TablePlan, held: int, result: TableResult) -> None:
        """One table: straight in when empty (its foreign keys checked once at the end where we may), else
        staged, then its changed rows updated and its new rows inserted."""
        empty = held == 0
        if empty and not self.target.protected:
            scope = {p.target.qualified for p in self.plans}
            plan.checked_once = [fk for fk in plan.target.foreign_keys if fk.parent in scope] \
                if plan.target.owned else []
            if plan.checked_once and not self.dry_run and not self._drop_checks(cur, plan):
                plan.checked_once = []
        for step in table_steps(plan, empty=empty):
            if isinstance(step, CopyIn) or step.role != "constraint" or self.dry_run:  # drops ran in _drop_checks
                self._execute(cur, step, result)
        if not empty:
            loaded = result.unchanged
            if self.dry_run:
                self.current = Statement(compare_query(plan), plan.target.qualified)
                result.inserted, result.updated, _, result.only_in_target = _query(cur, self.current)[0]
            else:  # keys are unique: every staged row not inserted matched one of the rows held
                result.only_in_target = held - (loaded - result.inserted)
            result.unchanged = loaded - result.inserted - result.updated

    def _drop_checks(self, cur: psycopg.Cursor, plan: TablePlan) -> bool:
        """Drop the foreign keys checked once later; when a table is busy (its lock not free within
        CHECK_LOCK_WAIT), keep them and check row by row instead."""
        import psycopg

        drops = sync_sql.drop_checks(plan)
        if self.before:
            # before/ reads under share locks that the drops would wait for (and could deadlock with).
            self.before.result()
        self.current = drops[0]
        saved = _query(cur, Statement("SELECT current_setting('lock_timeout')"))[0][0]
        try:
            with self.conn.transaction():  # a savepoint: a lock timeout undoes only this
                cur.execute(f"SET LOCAL lock_timeout = '{CHECK_LOCK_WAIT}'")
                for step in drops:
                    cur.execute(step.sql)
        except psycopg.errors.LockNotAvailable:
            progress(f"{plan.target.qualified} or a table it references is in use: its foreign keys are checked "
                     "row by row")
            return False
        finally:
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (saved,))
        self.ran += drops
        return True

    def _execute(self, cur: psycopg.Cursor, step: Statement | CopyIn, result: TableResult) -> None:
        """Run one step (a dry run only stages and counts) and note what it did."""
        self.current = step
        self.ran.append(step)
        if isinstance(step, CopyIn):
            if step.direct:
                result.inserted = self._load_directly(cur, step)
            else:
                result.unchanged = _copy_in(cur, step, self.feed)  # staged rows, until the writes say otherwise
            return
        if self.dry_run and step.role != "exec":
            if step.role == "prune":
                result.deleted = result.only_in_target
            return
        cur.execute(step.sql)
        if step.role == "update":
            result.updated = cur.rowcount
        elif step.role == "insert":
            result.inserted = cur.rowcount
        elif step.role == "prune":
            result.deleted = cur.rowcount

    def _load_directly(self, cur: psycopg.Cursor, step: CopyIn) -> int:
        """An empty table takes the rows by COPY (a dry run only reads them, for import.sql)."""
        if self.dry_run:
            return sum(chunk.count(b"\n") for chunk in self.feed(step))  # COPY text: one line per row
        return _copy_in(cur, step, self.feed)


def _export_snapshot(cur: psycopg.Cursor) -> str:
    """The import transaction's view before any write, for before/ to read from another connection."""
    return _query(cur, Statement("SELECT pg_export_snapshot()"))[0][0]


@contextmanager
def snapshot_reader(env: Environment, application: str, snapshot: str | None = None) -> Iterator[psycopg.Connection]:
    """A REPEATABLE READ READ ONLY transaction (in another connection's exported `snapshot` if given),
    its values rendered as every export renders them."""
    import psycopg

    with connect(env, application=application) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            if snapshot:  # must come first: the transaction then sees exactly what the other one saw
                conn.execute(f"SET TRANSACTION SNAPSHOT {literal(snapshot)}")
            conn.execute(sync_sql.rendering_sql())
            yield conn


def export_before(target: Environment, snapshot: str, plans: list[TablePlan], folder: Path) -> dict:
    """before/: the target's rows of the tables about to change, from the import's own snapshot (JSON only)."""
    with snapshot_reader(target, "ops sync-data before", snapshot) as conn:
        tables = [p.target for p in plans]
        keys = {p.target.qualified: p.key for p in plans}
        entries = sync_export.export_tables(conn, tables, keys, folder, target, copy_text=False)
        return sync_export.write_manifest(folder, target, entries)


def _step_table(step: Statement | CopyIn) -> str | None:
    return step.table if isinstance(step, Statement) else step.plan.target.qualified


def _lock(cur: psycopg.Cursor, target: Environment) -> None:
    """Two syncs into one database never interleave: the second waits for the first."""
    cur.execute(sync_sql.try_lock_sql())
    if cur.fetchall()[0][0]:
        return
    progress(f"another sync-data is writing to {target.name}; waiting up to {LOCK_WAIT} for it to finish")
    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
    cur.execute(lock_step().sql)
    cur.execute("SET LOCAL lock_timeout = 0")


# ---------------------------------------------------------------- the source side


def export_env(config: Config, env: Environment, tables: list[str], folder: Path) -> dict:
    """Export tables of an environment from one consistent, read-only snapshot (JSON and COPY text)."""
    import psycopg

    try:
        with snapshot_reader(env, "ops sync-data export") as conn:
            found = describe_all(conn, tables, env)
            keys = {t.qualified: conflict_key(t, config.sync_data.natural_keys) for t in found}
            hashes = sync_export.content_hashes(conn, found)
            entries = sync_export.export_tables(conn, found, keys, folder, env, hashes=hashes)
            return sync_export.write_manifest(folder, env, entries)
    except psycopg.Error as error:
        raise OperationFailed(
            f"reading {env.name} failed: {first_line(error)}. Nothing was written to any target; "
            f"the partial export in {folder} is incomplete"
        ) from None


def export_beside(env: Environment, snapshot: str, tables: list[Table], keys: dict[str, list[str]], folder: Path,
                  hashes: Future | None) -> list[dict]:
    """The JSON export of a streamed sync, on its own connection in the stream's snapshot.

    With `hashes`, the content hashes come first (resolved as soon as they are known: the
    import waits on them for tables the target has rows in) and unchanged tables are then
    linked from the newest earlier export; the others are exported.
    """
    import psycopg

    try:
        with snapshot_reader(env, "ops sync-data export", snapshot) as conn:
            found = None
            if hashes is not None:
                found = sync_export.content_hashes(conn, tables)
                hashes.set_result(found)
            return sync_export.export_tables(conn, tables, keys, folder, env, copy_text=False, hashes=found,
                                             reuse=True)
    except psycopg.Error as error:
        failure = SourceFailed(f"reading {env.name} failed: {first_line(error)}. Nothing was committed: the "
                               f"target is unchanged; the partial export in {folder} is incomplete")
        if hashes is not None and not hashes.done():
            hashes.set_exception(failure)
        raise failure from None
    except BaseException as error:
        if hashes is not None and not hashes.done():
            hashes.set_exception(error)
        raise


@dataclass
class LiveSource:
    """The source's snapshot: streamed table by table as COPY text (kept in the run folder as it passes),
    exported as JSON beside the stream, and compared with the target by content hashes."""

    conn: psycopg.Connection
    env: Environment
    snapshot: str
    tables: list[Table]
    keys: dict[str, list[str]]
    run_dir: Path
    pool: ThreadPoolExecutor
    exported: Future | None = None
    hashes: Future | None = None  # asked only when the target holds rows (else after the loads, for the manifest)
    streamed: dict[str, dict] = field(default_factory=dict)  # table -> its COPY file's manifest fields

    def compare(self, cur: psycopg.Cursor, plans: list[TablePlan]) -> dict[str, Held]:
        """Count the target's rows; where it has some, its content hashes next to the source's (both at once)."""
        counts = {p.target.qualified: _query(cur, Statement(f"SELECT count(*) FROM {pgcatalog.qident(p.target)}",
                                                              p.target.qualified))[0][0] for p in plans}
        self.hashes = Future() if any(counts.values()) else None
        self.exported = self.pool.submit(export_beside, self.env, self.snapshot, self.tables, self.keys,
                                         self.run_dir, self.hashes)
        held = {table: Held(0, False) for table in counts}
        if self.hashes is None:
            return held
        mine = {p.target.qualified: _query(cur, Statement(sync_sql.content_hash_sql(p.target, p.exported),
                                                          p.target.qualified))[0]
                for p in plans if counts[p.target.qualified]}
        theirs = self.hashes.result()  # computed meanwhile on the source's second connection
        for table, (rows, content) in mine.items():
            held[table] = Held(rows, (rows, content) == tuple(theirs[table]))
        return held

    def feed(self, step: CopyIn) -> Iterator[bytes | bytearray]:
        import psycopg

        plan = step.plan
        assert plan.copy_file is not None  # plan_stream names one for every table
        digest = hashlib.sha256()
        try:
            with plan.copy_file.open("wb") as out, \
                    self.conn.cursor().copy(sync_sql.copy_out_query(plan.target, plan.columns)) as copy:
                chunk = bytearray()
                for block in copy:  # one message per row: gathered into large writes
                    chunk += block
                    if len(chunk) >= COPY_CHUNK:
                        out.write(chunk)
                        digest.update(chunk)
                        yield chunk
                        chunk = bytearray()  # the target's writer may still hold the last one
                if chunk:
                    out.write(chunk)
                    digest.update(chunk)
                    yield chunk
        except psycopg.Error as error:
            raise SourceFailed(f"reading {self.env.name} failed in {plan.target.qualified}: {first_line(error)}. "
                               "Nothing was committed: the target is unchanged.") from None
        self.streamed[plan.target.qualified] = {"copy_file": plan.copy_file.name, "copy_sha256": digest.hexdigest(),
                                                "copy_columns": plan.columns}

    def finish(self) -> None:
        """Complete the export: the JSON files, the COPY files streamed, the content hashes, the manifest."""
        import psycopg

        assert self.exported is not None  # compare started it
        entries = self.exported.result()
        if self.hashes is None:  # the target was empty: hashed now, while the JSON export ends
            try:
                found = sync_export.content_hashes(self.conn, self.tables)
            except psycopg.Error as error:
                raise SourceFailed(f"reading {self.env.name} failed: {first_line(error)}. Nothing was committed: "
                                   "the target is unchanged.") from None
            for entry in entries:
                entry["content"] = found[entry["table"]][1]
        for entry in entries:
            entry.update(self.streamed.get(entry["table"], {}))
        sync_export.write_manifest(self.run_dir, self.env, entries)


# ---------------------------------------------------------------- the task


def sync_data(
    config: Config,
    *,
    source: str | None,
    target: str | None,
    tables: list[str] | None = None,
    dry_run: bool = False,
    export_only: bool = False,
    prune: bool = False,
    from_export: str | None = None,
    yes: bool = False,
) -> SyncResult:
    started = time.monotonic()
    settings = config.sync_data
    requested = select_tables(settings, tables)
    if from_export and source:
        raise UserError("use either --from or --from-export, not both")
    if not from_export and not source:
        raise UserError("name the source with --from ENV (or an earlier export with --from-export DIR)")
    if export_only and (target or from_export):
        raise UserError("--export-only writes files only: drop --to/--from-export")
    if not export_only and not target:
        raise UserError("name the target with --to ENV (or pass --export-only)")
    source_env = config.env(source) if source else None
    target_env = config.env(target) if target else None
    if source_env and target_env:
        distinct(source_env, target_env)
    if target_env:
        target_env.require_db()
        if not dry_run and will_ask(target_env, yes=yes):
            # The plan first (a dry run: read-only), then the question; nothing to change asks nothing.
            plan = sync_data(config, source=source, target=target, tables=tables, dry_run=True, prune=prune,
                             from_export=from_export, yes=True)
            if not plan.changes():
                plan.nothing_to_do = True
                return plan
            from ops.report import table

            rows = plan.rows()
            confirm_write(target_env, yes=False, action="sync config data into it",
                          plan=f"plan for {target_env.name}:\n" + table(rows.rows, rows.headers))
            yes = True
    if from_export:
        undo.refuse_uncommitted(Path(from_export).resolve())
    undo.clean_stale(settings.export_dir)

    if export_only:
        assert source_env is not None  # --export-only needs --from (checked above)
        run_dir = new_run_dir(settings.export_dir / source_env.name)
        manifest = export_env(config, source_env, requested, run_dir)
        result = SyncResult(source=source_env.name, target=None, run_dir=str(run_dir), export_only=True)
        result.tables = [TableResult(e["table"], unchanged=e["rows"]) for e in manifest["tables"]]
        result.seconds = round(time.monotonic() - started, 3)
        return result

    assert target_env is not None  # only --export-only runs without a target
    if from_export:
        export_dir = Path(from_export).resolve()
        manifest = sync_export.read_manifest(export_dir)
        exported = [entry["table"] for entry in manifest["tables"]]
        wanted = [t for t in exported if t in requested] if tables else exported
        select_tables(settings, wanted)  # an old export must not smuggle in a blocked table
        unknown = set(requested) - set(exported) if tables else set()
        if unknown:
            raise UserError(f"{export_dir} has no export of {', '.join(sorted(unknown))}")
        manifest = {**manifest, "tables": [e for e in manifest["tables"] if e["table"] in wanted]}
        run_dir = new_run_dir(settings.export_dir / target_env.name)
        result = SyncResult(source=f"export {export_dir}", target=target, run_dir=str(run_dir), dry_run=dry_run,
                            prune=prune)
        result.tables = import_export(config, target_env, manifest, export_dir, wanted, run_dir, result.source,
                                      dry_run=dry_run, prune=prune)
    else:
        assert source_env is not None  # without --from-export there is always --from (checked above)
        result = SyncResult(source=source_env.name, target=target, run_dir="", dry_run=dry_run, prune=prune)

        def run_folder() -> Path:
            folder = new_run_dir(settings.export_dir / source_env.name)
            result.run_dir = str(folder)
            return folder

        result.tables = stream(config, source_env, target_env, requested, run_folder, dry_run=dry_run, prune=prune)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _announce(plans: list[TablePlan], target: Environment, run_dir: Path, dry_run: bool) -> None:
    progress(f"{'planning' if dry_run else 'applying'} {len(plans)} tables into {target.name} "
             f"(SQL in {run_dir / 'import.sql'})")


def import_export(config: Config, target: Environment, manifest: dict, export_dir: Path, tables: list[str],
                  run_dir: Path, label: str, *, dry_run: bool, prune: bool) -> list[TableResult]:
    """--from-export: the rows come from files, checked against their manifest before anything is written."""
    import psycopg

    try:
        with connect(target, application="ops sync-data import") as conn:
            targets = {t.qualified: t for t in describe_all(conn, tables, target)}
            conn.rollback()  # catalog reads must not hold a snapshot into the import
            plans = plan_import(manifest, export_dir, targets, config.sync_data.natural_keys)
            check_export_files(plans)
            _announce(plans, target, run_dir, dry_run)
            return Apply(conn, target, plans, file_feed, held_like_export, run_dir, label, dry_run, prune).run()
    except psycopg.Error as error:
        raise OperationFailed(f"{target.name}: {first_line(error)}. Nothing was committed: the target is unchanged.") \
            from None


def stream(config: Config, source: Environment, target: Environment, tables: list[str],
           run_folder: Callable[[], Path], *, dry_run: bool, prune: bool) -> list[TableResult]:
    """From a live source: the target is checked first, then rows stream from one source snapshot into it."""
    import psycopg

    natural_keys = config.sync_data.natural_keys
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            with connect(target, application="ops sync-data import") as conn:
                # A target that lacks a table is refused before the source is read.
                try:
                    targets = {t.qualified: t for t in describe_all(conn, tables, target)}
                except MissingTable as missing:
                    raise missing_everywhere(missing, source, target) from None
                conn.rollback()  # catalog reads must not hold a snapshot into the import
                run_dir = run_folder()  # made only once the sync can happen
                with snapshot_reader(source, "ops sync-data stream") as src:
                    sources, snapshot = _open_source(src, source, tables)
                    plans = plan_stream(sources, targets, natural_keys, run_dir)
                    keys = {t.qualified: conflict_key(t, natural_keys) for t in sources}
                    live = LiveSource(src, source, snapshot, sources, keys, run_dir, pool)
                    _announce(plans, target, run_dir, dry_run)
                    apply = Apply(conn, target, plans, live.feed, live.compare, run_dir, source.name,
                                  dry_run, prune, live.finish)
                    return apply.run()
        except psycopg.Error as error:
            raise OperationFailed(f"{target.name}: {first_line(error)}. Nothing was committed: the target is "
                                  "unchanged.") from None


def _open_source(src: psycopg.Connection, source: Environment, tables: list[str]) -> tuple[list[Table], str]:
    """Describe the source's tables and export the snapshot both source connections read."""
    import psycopg

    try:
        sources = describe_all(src, tables, source)
        snapshot = src.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
    except psycopg.Error as error:
        raise SourceFailed(f"reading {source.name} failed: {first_line(error)}. Nothing was written.") from None
    return sources, snapshot
