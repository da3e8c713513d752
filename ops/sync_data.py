"""Copy config tables between environments: export to JSON, plan, and apply idempotent upserts.

A run folder holds everything one sync did: the source export (one JSON file per table,
one row per line, plus `manifest.json`), the `import.sql` that was applied (it runs with
`psql` by hand too), and `before/`, an export of the target's rows taken just before the
change, which `--from-export <run>/before --prune` restores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import pgcatalog, sync_sql
from ops.config import Config, Environment, SyncDataSettings
from ops.db import connect
from ops.digest import file_digest
from ops.errors import OperationFailed, UserError, first_line
from ops.pgcatalog import Table
from ops.report import Meter, Result, progress
from ops.report import Table as Rows
from ops.safety import confirm_write, distinct
from ops.stamps import new_run_dir, utc_stamp
from ops.sync_sql import CopyIn, Statement, TablePlan, compare_query, fingerprint_query, import_steps, lock_step

if TYPE_CHECKING:
    import psycopg

LOCK_WAIT = "10min"
COPY_CHUNK = 1 << 20


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


def describe_all(conn: psycopg.Connection, names: list[str], env: Environment) -> list[Table]:
    tables = []
    for name in names:
        table = pgcatalog.describe(conn, name)
        if table is None:
            raise UserError(f"{env.name}: table {name} does not exist (schema is behind: push migrations first)")
        tables.append(table)
    return tables


# ---------------------------------------------------------------- export


def export_tables(
    conn: psycopg.Connection, tables: list[Table], keys: dict[str, list[str]], folder: Path, env: Environment,
    *, copy_text: bool = True,
) -> dict:
    """Write each table as JSON (PostgreSQL's rendering of each value) and a manifest.

    The caller owns the transaction, so several tables share one snapshot. json/jsonb
    values are stored as their text so a JSON null stays distinct from SQL NULL.
    """
    folder.mkdir(parents=True, exist_ok=True)
    conn.execute("SELECT set_config('TimeZone', 'UTC', true), set_config('IntervalStyle', 'postgres', true)")
    entries: list[dict[str, Any]] = []
    meter = Meter(f"exporting {env.name}", len(tables), "tables")
    for table in tables:
        columns = table.writable
        query = sync_sql.export_query(table, keys[table.qualified])
        path = folder / f"{table.qualified}.json"
        rows = 0
        fingerprint = hashlib.md5()
        with path.open("wb") as out, conn.cursor().copy(query) as copy:
            out.write(b"[")
            # PostgreSQL sends one CopyData message per row; COPY's text format only
            # doubles backslashes here (JSON text has no raw tabs or newlines).
            for block in copy:
                row = bytes(block)[:-1].replace(b"\\\\", b"\\")
                out.write(b"\n" if rows == 0 else b",\n")
                out.write(row)
                fingerprint.update(hashlib.md5(row).hexdigest().encode())
                rows += 1
            out.write(b"\n]\n")
        entry = {}
        if copy_text:
            # The same rows once more in COPY text format: what the import loads, with no JSON parsing.
            copy_path = folder / f"{table.qualified}.copy"
            copy_digest = hashlib.sha256()
            with copy_path.open("wb") as out, conn.cursor().copy(sync_sql.copy_out_query(table)) as copy:
                for block in copy:
                    out.write(block)
                    copy_digest.update(block)
            entry = {"copy_file": copy_path.name, "copy_sha256": copy_digest.hexdigest()}
        entries.append(
            {
                "table": table.qualified,
                "file": path.name,
                "rows": rows,
                "fingerprint": fingerprint.hexdigest(),  # see fingerprint_query
                "key": keys[table.qualified],
                "columns": [{"name": c.name, "type": c.type, "json": c.is_json} for c in columns],
                **entry,
            }
        )
        meter.add(1)
    manifest = {
        "env": env.name,
        "ref": env.ref,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "snapshot": "one REPEATABLE READ READ ONLY transaction",
        "tables": entries,
    }
    meter.close()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(entry["rows"] for entry in entries)
    progress(f"exported {len(entries)} tables ({total:,} rows) from {env.name} to {folder}")
    return manifest


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise UserError(f"{folder} is not an export: it has no manifest.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from None


# ---------------------------------------------------------------- import plan


def plan_import(
    manifest: dict, folder: Path, targets: dict[str, Table], natural_keys: dict[str, list[str]]
) -> list[TablePlan]:
    """Match exported tables to the target's schema, in parents-first order."""
    plans = []
    by_name = {entry["table"]: entry for entry in manifest["tables"]}
    for index, target in enumerate(pgcatalog.parents_first(list(targets.values()))):
        entry = by_name[target.qualified]
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
        file = export_file(folder, entry)
        copy_file = export_file(folder, {**entry, "file": entry["copy_file"]}) if entry.get("copy_file") else None
        plans.append(
            TablePlan(
                target=target,
                key=key,
                columns=columns,
                json_columns={c["name"] for c in entry["columns"] if c.get("json")},
                file=file,
                rows=entry["rows"],
                index=index,
                exported=[c["name"] for c in entry["columns"]],
                export_key=entry.get("key", []),
                fingerprint=entry.get("fingerprint"),
                copy_file=copy_file,
                copy_sha256=entry.get("copy_sha256"),
            )
        )
    return plans


def export_file(folder: Path, entry: dict) -> Path:
    """The file a manifest entry names: a bare name inside the export folder, a regular file."""
    name = entry.get("file")
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise UserError(f"{folder / 'manifest.json'}: {entry.get('table')} names the file {name!r}; only a file "
                        "name inside the export folder is accepted (was the manifest edited?)")
    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise UserError(f"export file {path} is missing or not a regular file (symlinks are not followed)")
    return path


def json_rows(path: Path) -> Iterator[bytes]:
    """The rows of an export file, one JSON document each, as the export hashed them."""
    with path.open("rb") as rows:
        for line in rows:
            line = line.rstrip(b"\r\n")
            if line in (b"[", b"]", b""):
                continue
            yield line[:-1] if line.endswith(b",") else line


def check_export_files(plans: list[TablePlan]) -> None:
    """Every file holds exactly the rows its manifest recorded (count and fingerprint), before any write."""
    for plan in plans:
        digest, rows = hashlib.md5(), 0
        for row in json_rows(plan.file):
            digest.update(hashlib.md5(row).hexdigest().encode())
            rows += 1
        if rows != plan.rows or not plan.fingerprint or digest.hexdigest() != plan.fingerprint:
            raise UserError(f"{plan.file} does not match its manifest ({rows} rows, manifest says {plan.rows}; "
                            "fingerprint differs): the export was changed after it was written. Nothing was written.")
        if plan.copy_file and file_digest(plan.copy_file) != plan.copy_sha256:
            raise UserError(f"{plan.copy_file} does not match its manifest (sha256 differs): the export was "
                            "changed after it was written. Nothing was written.")


def copy_lines(path: Path) -> Iterator[bytes]:
    """The rows of an export file as COPY text-format lines."""
    for row in json_rows(path):
        yield row.replace(b"\\", b"\\\\") + b"\n"


def copy_data(step: CopyIn) -> Iterator[bytes]:
    """What a COPY step sends: the COPY text file as it is, or the JSON rows one line each."""
    if step.text:
        with step.source.open("rb") as data:
            yield from iter(lambda: data.read(COPY_CHUNK), b"")
    else:
        yield from copy_lines(step.source)


def write_sql(
    path: Path, source: str, target: Environment, stage: list[Statement | CopyIn], write: list[Statement]
) -> None:
    """Write the import as a script that `psql -f` runs in one transaction."""
    with path.open("wb") as out:
        header = (
            f"-- sync-data import from {source} into {target.name} ({target.ref}), written {utc_stamp()}\n"
            f'-- Run by hand: psql "$DATABASE_URL" -f import.sql (one transaction: all tables or none)\n'
            "\\set ON_ERROR_STOP on\nBEGIN;\n"
        )
        out.write(header.encode())
        for step in [lock_step(), *stage, *write]:
            out.write(step.sql.encode() + b";\n")
            if isinstance(step, CopyIn):
                for chunk in copy_data(step):
                    out.write(chunk)
                out.write(b"\\.\n")
        out.write(b"COMMIT;\n")


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

    def footer(self) -> str:
        verb = "would sync" if self.dry_run else "exported" if self.export_only else "synced"
        return f"{verb} {len(self.tables)} tables in {self.seconds:.1f}s; files in {self.run_dir}"


def _query(cur: psycopg.Cursor, step: Statement) -> list[tuple]:
    """A statement that returns rows."""
    cur.execute(step.sql)
    return cur.fetchall()


def _run(cur: psycopg.Cursor, step: Statement | CopyIn) -> list[tuple] | None:
    if isinstance(step, CopyIn):
        with cur.copy(step.sql) as copy:
            buffer = bytearray()
            for chunk in copy_data(step):
                buffer += chunk
                if len(buffer) >= COPY_CHUNK:
                    copy.write(buffer)
                    buffer.clear()
            if buffer:
                copy.write(buffer)
        return None
    cur.execute(step.sql)
    return cur.fetchall() if cur.description else None


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


def apply(
    conn: psycopg.Connection,
    targets: dict[str, Table],
    load_plans: Callable[[dict[str, Table]], tuple[list[TablePlan], list[Statement | CopyIn], list[Statement]]],
    target: Environment,
    *,
    natural_keys: dict[str, list[str]],
    dry_run: bool,
    prune: bool,
    before_dir: Path,
) -> list[TableResult]:
    """In one transaction: fingerprint the target, load the export, count, and apply.

    The target's row counts and fingerprints are computed in the database while the source is
    still being read; they tell which tables already match and which are empty. The target's
    rows are exported to before/ only when something is about to change.
    """
    import psycopg

    step: Statement | CopyIn = lock_step()
    committed = False  # before/ is kept only when the changes it records were committed
    try:
        with conn.transaction() as transaction, conn.cursor() as cur:
            if not dry_run:
                _lock(cur, target)
            cur.execute("SELECT set_config('TimeZone', 'UTC', true), set_config('IntervalStyle', 'postgres', true)")
            ordered = pgcatalog.parents_first(list(targets.values()))
            keys = {t.qualified: conflict_key(t, natural_keys) for t in ordered}
            held = {t.qualified: _query(cur, Statement(sync_sql.table_fingerprint(t, keys[t.qualified]),
                                                       t.qualified))[0] for t in ordered}
            plans, stage, write = load_plans(targets)
            results = {plan.target.qualified: TableResult(plan.target.qualified) for plan in plans}
            identical, empty = set(), set()
            for plan in plans:
                table, (rows_held, fingerprint_held) = plan.target.qualified, held[plan.target.qualified]
                shaped_alike = [c.name for c in plan.target.writable] == plan.exported \
                    and keys[table] == plan.export_key
                if same_rows(plan, fingerprint_held if shaped_alike else None, cur):
                    identical.add(table)
                    results[table].unchanged = plan.rows
                elif rows_held == 0 and plan.copies_directly:
                    empty.add(table)  # takes the rows by COPY: no stage, no comparison, no upsert
                    results[table].inserted = plan.rows
            for step in stage:
                if _step_table(step) not in identical | empty:
                    _run(cur, step)
            for plan in plans:
                if plan.target.qualified in identical | empty:
                    continue
                step = Statement(compare_query(plan), plan.target.qualified)
                to_insert, to_update, unchanged, only_in_target = _query(cur, step)[0]
                result = results[plan.target.qualified]
                result.inserted, result.updated, result.unchanged = to_insert, to_update, unchanged
                result.only_in_target = only_in_target
                if prune:
                    result.deleted = only_in_target
            changes = any(r.inserted or r.updated or r.deleted for r in results.values())
            if dry_run or not changes:
                raise psycopg.Rollback(transaction)
            # JSON only: before/ is for review and restore (--from-export reads JSON).
            export_tables(conn, ordered, keys, before_dir, target, copy_text=False)
            by_table = {plan.target.qualified: plan for plan in plans}
            for step in write:
                if step.table in identical or (step.table in empty and step.role == "prune"):
                    continue
                if step.table in empty and step.role == "upsert":
                    _run(cur, sync_sql.direct_copy(by_table[step.table]))
                    continue
                rows = _query(cur, step) if step.role in ("upsert", "prune") else _run(cur, step)
                if step.table and rows and step.role == "upsert":
                    result = results[step.table]
                    result.inserted, result.updated = rows[0]
                    result.unchanged = _rows(plans, step.table) - result.inserted - result.updated
                elif step.table and rows and step.role == "prune":
                    results[step.table].deleted = rows[0][0]
            committed = True
    except (psycopg.Error, OSError) as error:
        raise _failure(step, error, target) from None
    finally:
        if not committed:
            shutil.rmtree(before_dir, ignore_errors=True)  # nothing was replaced: nothing to restore
    return list(results.values())


def same_rows(plan: TablePlan, held: str | None, cur: psycopg.Cursor) -> bool:
    """The target already holds exactly the exported rows (the fingerprints agree)."""
    if not plan.fingerprint:
        return False
    if held is not None:
        return held == plan.fingerprint
    query = fingerprint_query(plan)  # the target's shape differs: hash just the exported columns
    return bool(query and _query(cur, Statement(query, plan.target.qualified))[0][1] == plan.fingerprint)


def _step_table(step: Statement | CopyIn) -> str | None:
    return step.table if isinstance(step, Statement) else step.plan.target.qualified


def _rows(plans: list[TablePlan], table: str) -> int:
    return next(plan.rows for plan in plans if plan.target.qualified == table)


def _lock(cur: psycopg.Cursor, target: Environment) -> None:
    """Two syncs into one database never interleave: the second waits for the first."""
    cur.execute(sync_sql.try_lock_sql())
    if cur.fetchall()[0][0]:
        return
    progress(f"another sync-data is writing to {target.name}; waiting up to {LOCK_WAIT} for it to finish")
    cur.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
    cur.execute(lock_step().sql)
    cur.execute("SET LOCAL lock_timeout = 0")


# ---------------------------------------------------------------- the task


def require_tables(env: Environment, tables: list[str]) -> None:
    """Refuse early, before reading the source, when the target lacks a table (migrations behind)."""
    import psycopg

    try:
        with connect(env, autocommit=True, application="ops sync-data check") as conn:
            describe_all(conn, tables, env)
    except psycopg.Error as error:
        raise OperationFailed(f"{env.name}: {first_line(error)}") from None


def export_env(config: Config, env: Environment, tables: list[str], folder: Path) -> dict:
    """Export tables of an environment from one consistent, read-only snapshot."""
    import psycopg

    try:
        with connect(env, application="ops sync-data export") as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                found = describe_all(conn, tables, env)
                keys = {t.qualified: conflict_key(t, config.sync_data.natural_keys) for t in found}
                return export_tables(conn, found, keys, folder, env)
    except psycopg.Error as error:
        cause = first_line(error)
        raise OperationFailed(
            f"reading {env.name} failed: {cause}. Nothing was written to any target; "
            f"the partial export in {folder} is incomplete"
        ) from None


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
        if not dry_run:
            confirm_write(target_env, yes=yes, action="sync config data into it")

    if from_export:
        assert target_env is not None  # --from-export always comes with --to (checked above)
        export_dir = Path(from_export).resolve()
        manifest = read_manifest(export_dir)
        exported = [entry["table"] for entry in manifest["tables"]]
        wanted = [t for t in exported if t in requested] if tables else exported
        select_tables(settings, wanted)  # an old export must not smuggle in a blocked table
        unknown = set(requested) - set(exported) if tables else set()
        if unknown:
            raise UserError(f"{export_dir} has no export of {', '.join(sorted(unknown))}")
        manifest = {**manifest, "tables": [e for e in manifest["tables"] if e["table"] in wanted]}
        run_dir = new_run_dir(settings.export_dir / target_env.name)
        source_label = f"export {export_dir}"
        tables_wanted = wanted
    else:
        assert source_env is not None  # without --from-export there is always --from (checked above)
        if target_env:
            require_tables(target_env, requested)
        run_dir = new_run_dir(settings.export_dir / source_env.name)
        export_dir = run_dir
        source_label = source_env.name
        tables_wanted = requested
        if export_only:
            manifest = export_env(config, source_env, requested, run_dir)

    result = SyncResult(
        source=source_label, target=target, run_dir=str(run_dir), dry_run=dry_run, export_only=export_only, prune=prune
    )
    if export_only:
        result.tables = [TableResult(e["table"], inserted=0) for e in manifest["tables"]]
        for table, entry in zip(result.tables, manifest["tables"], strict=False):
            table.unchanged = entry["rows"]
        result.seconds = round(time.monotonic() - started, 3)
        return result

    import psycopg

    assert target_env is not None  # only --export-only runs without a target
    # The source is read in a thread while the target, in its own transaction, exports what
    # it holds (before/, with the fingerprints that tell unchanged and empty tables): the two
    # databases work at the same time.
    # The source is exported in a thread (its rows pass through Python) while the target computes its
    # fingerprints in the database (the main thread only waits on its socket): both databases work at once.
    with ThreadPoolExecutor(max_workers=1) as pool:
        source_rows: Future[dict] = Future()
        if source_env is None:  # --from-export: the rows are already on disk
            source_rows.set_result(manifest)
        else:
            source_rows = pool.submit(export_env, config, source_env, requested, run_dir)

        def load_plans(targets: dict[str, Table]) -> tuple[list[TablePlan], list[Statement | CopyIn], list[Statement]]:
            plans = plan_import(source_rows.result(), export_dir, targets, settings.natural_keys)
            if from_export or prune:  # files we read back are checked before they are trusted
                check_export_files(plans)
            stage, write = import_steps(plans, prune)
            write_sql(run_dir / "import.sql", source_label, target_env, stage, write)
            progress(f"{'planning' if dry_run else 'applying'} {len(plans)} tables into {target_env.name} "
                     f"(SQL in {run_dir / 'import.sql'})")
            return plans, stage, write

        try:
            with connect(target_env, application="ops sync-data import") as conn:
                targets = {t.qualified: t for t in describe_all(conn, tables_wanted, target_env)}
                conn.rollback()  # catalog reads must not hold a snapshot into the import
                result.tables = apply(conn, targets, load_plans, target_env, natural_keys=settings.natural_keys,
                                      dry_run=dry_run, prune=prune, before_dir=run_dir / "before")
        except psycopg.Error as error:
            cause = first_line(error)
            raise OperationFailed(f"{target_env.name}: {cause}. Nothing was committed: the target is unchanged.") \
                from None
    result.seconds = round(time.monotonic() - started, 3)
    return result
