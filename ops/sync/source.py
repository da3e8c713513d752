"""Where a sync's rows come from: a live source's snapshot (streamed as COPY text, exported as JSON
beside the stream) or an export's files, and how each tells what the target already holds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ops.config import Config, Environment
from ops.db import catalog as pgcatalog
from ops.db.catalog import CatalogTable, literal
from ops.db.connection import connect
from ops.errors import OperationFailed, first_line
from ops.sync import export as sync_export
from ops.sync import sql as sync_sql
from ops.sync.plan import TargetContent, conflict_key, read_tables
from ops.sync.sql import CopyIn, Statement, TablePlan, fingerprint_query

if TYPE_CHECKING:
    import psycopg

COPY_CHUNK = 128 << 10  # psycopg hands the libpq at most 128 KiB at once (larger writes are split and copied)
# The rows of one COPY step, as the bytes COPY takes.
RowFeed = Callable[[CopyIn], Iterator[bytes | bytearray]]


class SourceFailed(OperationFailed):
    """Reading the source broke off: the import is abandoned, nothing is committed."""


def file_feed(step: CopyIn) -> Iterator[bytes]:
    """What a COPY step sends from an export: the COPY text file as it is, or the JSON rows one line each."""
    if step.text:
        with step.source.open("rb") as data:
            yield from iter(lambda: data.read(COPY_CHUNK), b"")
    else:
        yield from sync_export.copy_lines(step.source)


def query_rows(cur: psycopg.Cursor, step: Statement) -> list[tuple]:
    """A statement that returns rows."""
    cur.execute(step.sql)
    return cur.fetchall()


def compare_with_export(cur: psycopg.Cursor, plans: list[TablePlan]) -> dict[str, TargetContent]:
    """Against an export: the target's content hash next to the one recorded at export time.

    Exports from before content hashes are compared by their JSON rows' fingerprint;
    exports with neither (before/) are always loaded and compared row by row.
    """
    held = {}
    for plan in plans:
        table = plan.target.qualified
        if plan.content:
            rows, content = query_rows(cur, Statement(sync_sql.content_hash_sql(plan.target, plan.exported), table))[0]
            held[table] = TargetContent(rows, rows == plan.rows and content == plan.content)
            continue
        rows = query_rows(cur, Statement(f"SELECT count(*) FROM {pgcatalog.qident(plan.target)}", table))[0][0]
        query = fingerprint_query(plan) if rows else None
        same = bool(query) and query_rows(cur, Statement(query or "", table))[0][1] == plan.fingerprint
        held[table] = TargetContent(rows, same and rows == plan.rows)
    return held


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


def export_env(config: Config, env: Environment, tables: list[str], folder: Path) -> dict:
    """Export tables of an environment from one consistent, read-only snapshot (JSON and COPY text)."""
    import psycopg

    try:
        with snapshot_reader(env, "ops sync-data export") as conn:
            found = read_tables(conn, tables, env)
            keys = {t.qualified: conflict_key(t, config.sync_data.natural_keys) for t in found}
            hashes = sync_export.content_hashes(conn, found)
            entries = sync_export.export_tables(conn, found, keys, folder, env, hashes=hashes)
            return sync_export.write_manifest(folder, env, entries)
    except psycopg.Error as error:
        raise OperationFailed(
            f"reading {env.name} failed: {first_line(error)}. Nothing was written to any target; "
            f"the partial export in {folder} is incomplete"
        ) from None


def export_beside(
    env: Environment,
    snapshot: str,
    tables: list[CatalogTable],
    keys: dict[str, list[str]],
    folder: Path,
    hashes: Future | None,
) -> list[dict]:
    """The JSON export of a streamed sync, on its own connection in the stream's snapshot.

    With `hashes`, the content hashes come first (resolved as soon as they are known: the
    import waits on them for tables the target has rows in) and unchanged tables are then
    linked from the newest earlier export; the others are exported. Without (the target is
    empty: nothing to compare), they are taken last, for the manifest, while the load goes on.
    """
    import psycopg

    try:
        with snapshot_reader(env, "ops sync-data export", snapshot) as conn:
            found = None
            if hashes is not None:
                found = sync_export.content_hashes(conn, tables)
                hashes.set_result(found)
            entries = sync_export.export_tables(
                conn, tables, keys, folder, env, copy_text=False, hashes=found, reuse=True
            )
            if found is None:
                found = sync_export.content_hashes(conn, tables)
                for entry in entries:
                    entry["content"] = found[entry["table"]][1]
            return entries
    except psycopg.Error as error:
        failure = SourceFailed(
            f"reading {env.name} failed: {first_line(error)}. Nothing was committed: the "
            f"target is unchanged; the partial export in {folder} is incomplete"
        )
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
    tables: list[CatalogTable]
    keys: dict[str, list[str]]
    run_dir: Path
    pool: ThreadPoolExecutor
    exported: Future | None = None
    hashes: Future | None = None  # asked only when the target holds rows (else after the loads, for the manifest)
    streamed: dict[str, dict] = field(default_factory=dict)  # table -> its COPY file's manifest fields

    def compare(self, cur: psycopg.Cursor, plans: list[TablePlan]) -> dict[str, TargetContent]:
        """Count the target's rows; where it has some, its content hashes next to the source's (both at once)."""
        counts = {
            p.target.qualified: query_rows(
                cur, Statement(f"SELECT count(*) FROM {pgcatalog.qident(p.target)}", p.target.qualified)
            )[0][0]
            for p in plans
        }
        self.hashes = Future() if any(counts.values()) else None
        self.exported = self.pool.submit(
            export_beside, self.env, self.snapshot, self.tables, self.keys, self.run_dir, self.hashes
        )
        held = {table: TargetContent(0, False) for table in counts}
        if self.hashes is None:
            return held
        mine = {
            p.target.qualified: query_rows(
                cur, Statement(sync_sql.content_hash_sql(p.target, p.exported), p.target.qualified)
            )[0]
            for p in plans
            if counts[p.target.qualified]
        }
        theirs = self.hashes.result()  # computed meanwhile on the source's second connection
        for table, (rows, content) in mine.items():
            held[table] = TargetContent(rows, (rows, content) == tuple(theirs[table]))
        return held

    def feed(self, step: CopyIn) -> Iterator[bytes | bytearray]:
        import psycopg

        plan = step.plan
        assert plan.copy_file is not None  # plan_stream names one for every table
        digest = hashlib.sha256()
        try:
            with (
                plan.copy_file.open("wb") as out,
                self.conn.cursor().copy(sync_sql.copy_out_query(plan.target, plan.columns)) as copy,
            ):
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
            raise SourceFailed(
                f"reading {self.env.name} failed in {plan.target.qualified}: {first_line(error)}. "
                "Nothing was committed: the target is unchanged."
            ) from None
        self.streamed[plan.target.qualified] = {
            "copy_file": plan.copy_file.name,
            "copy_sha256": digest.hexdigest(),
            "copy_columns": plan.columns,
        }

    def finish(self) -> None:
        """Complete the export: the JSON files and hashes (export_beside's), the COPY files streamed, the manifest."""
        assert self.exported is not None  # compare started it
        entries = self.exported.result()
        for entry in entries:
            entry.update(self.streamed.get(entry["table"], {}))
        sync_export.write_manifest(self.run_dir, self.env, entries)


def open_source(src: psycopg.Connection, source: Environment, tables: list[str]) -> tuple[list[CatalogTable], str]:
    """Describe the source's tables and export the snapshot both source connections read."""
    import psycopg

    try:
        sources = read_tables(src, tables, source)
        snapshot = src.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
    except psycopg.Error as error:
        raise SourceFailed(f"reading {source.name} failed: {first_line(error)}. Nothing was written.") from None
    return sources, snapshot
