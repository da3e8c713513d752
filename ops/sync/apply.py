"""The import transaction: what one sync writes into the target, all tables or none.

It locks out a second sync, compares, loads (straight in when a table is empty, else staged
then updated and inserted), writes before/ (the undo) from its own snapshot, and commits only
when the source's export is complete.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ops.config import Environment
from ops.db import catalog as pgcatalog
from ops.errors import OperationFailed, first_line
from ops.invocation import program
from ops.report import progress
from ops.stamps import utc_stamp
from ops.sync import export as sync_export
from ops.sync import sql as sync_sql
from ops.sync import undo
from ops.sync.plan import Compare
from ops.sync.source import RowFeed, file_feed, query_rows, snapshot_reader
from ops.sync.sql import CopyIn, Statement, TablePlan, closing_steps, compare_query, lock_step, table_steps

if TYPE_CHECKING:
    import psycopg

LOCK_WAIT = "10min"
CHECK_LOCK_WAIT = "2s"  # for dropping foreign keys to check once: past it, they are checked row by row


@dataclass
class TableResult:
    table: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    only_in_target: int = 0


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


def _copy_in(cur: psycopg.Cursor, step: CopyIn, feed: RowFeed) -> int:
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
class ImportTransaction:
    """One import transaction into the target: decide per table, load, write, and commit only when all is done."""

    conn: psycopg.Connection
    target: Environment
    plans: list[TablePlan]
    feed: RowFeed
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
            with (
                ThreadPoolExecutor(max_workers=1) as pool,
                self.conn.transaction() as transaction,
                self.conn.cursor() as cur,
            ):
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
                    self.before = pool.submit(export_before, self.target, export_snapshot(cur), changing, before_dir)
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
                    f"{program()} sync-data --from-export {before_dir} --to {self.target.name} --prune"
                ) from None
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
        if empty and not self.target.protected and plan.target.owned:
            scope = {p.target.qualified for p in self.plans}
            plan.checked_once = [fk for fk in plan.target.foreign_keys if fk.parent in scope]
            self.current = Statement("-- its indexes, read from pg_index", plan.target.qualified)
            plan.rebuilt = pgcatalog.rebuildable_indexes(cur, plan.target)
            if (plan.checked_once or plan.rebuilt) and not self.dry_run and not self._drop_checks(cur, plan):
                plan.checked_once, plan.rebuilt = [], []
        for step in table_steps(plan, empty=empty):
            if isinstance(step, CopyIn) or step.role != "constraint" or self.dry_run:  # drops ran in _drop_checks
                self._execute(cur, step, result)
        if not empty:
            loaded = result.unchanged
            if self.dry_run:
                self.current = Statement(compare_query(plan), plan.target.qualified)
                result.inserted, result.updated, _, result.only_in_target = query_rows(cur, self.current)[0]
            else:  # keys are unique: every staged row not inserted matched one of the rows held
                result.only_in_target = held - (loaded - result.inserted)
            result.unchanged = loaded - result.inserted - result.updated

    def _drop_checks(self, cur: psycopg.Cursor, plan: TablePlan) -> bool:
        """Drop the foreign keys checked once later and the indexes built after the load; when a table is
        busy (its lock not free within CHECK_LOCK_WAIT), keep them all and check row by row instead."""
        import psycopg

        drops = sync_sql.drop_checks(plan)
        if self.before:
            # before/ reads under share locks that the drops would wait for (and could deadlock with).
            self.before.result()
        self.current = drops[0]
        saved = query_rows(cur, Statement("SELECT current_setting('lock_timeout')"))[0][0]
        try:
            with self.conn.transaction():  # a savepoint: a lock timeout undoes only this
                cur.execute(f"SET LOCAL lock_timeout = '{CHECK_LOCK_WAIT}'")
                for step in drops:
                    cur.execute(step.sql)
        except psycopg.errors.LockNotAvailable:
            progress(
                f"{plan.target.qualified} or a table it references is in use: its foreign keys are checked row by "
                "row and its indexes kept during the load"
            )
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


def export_snapshot(cur: psycopg.Cursor) -> str:
    """The import transaction's view before any write, for before/ to read from another connection."""
    return query_rows(cur, Statement("SELECT pg_export_snapshot()"))[0][0]


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
