"""The export folder of sync-data: one JSON file per table, COPY text files, and `manifest.json`.

A JSON file holds one row per line, as PostgreSQL renders it (`to_json`), in key order:
it is for people to review and for `--from-export` to restore. A `.copy` file holds the
same rows in COPY text format, what an import loads without parsing JSON. The manifest,
written last, lists every table with its row count, the content hash the database gave
(see `sync_sql.content_hash_sql`) and the files' sha256 digests. (Exports written before
content hashes carry a `fingerprint` of their JSON rows instead: see `fingerprint_sql`.)

A table whose content hash and columns equal those of the newest earlier export of the
same project is hard-linked from it instead of being exported again (as restic or a
backup's incremental copy would): the files are byte for byte what an export would write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.config import Environment
from ops.db.catalog import CatalogTable
from ops.digest import file_digest
from ops.errors import UserError
from ops.report import Meter, progress
from ops.stamps import stamp_order
from ops.sync import sql as sync_sql
from ops.sync.sql import TablePlan

if TYPE_CHECKING:
    import psycopg

MANIFEST = "manifest.json"
EARLIER_RUNS_LOOKED_AT = 5
EXPORT_BATCH = 10_000  # rows per chunk of a JSON export: about 2 MiB
CHUNKED_ROWS_LIBPQ = 170000  # libpq 17 streams results in chunks (PQsetChunkedRowsMode)
UNRELATED_ORDER = 0.5  # |correlation| of a key with the rows' physical order below which it is "unrelated"


def columns_of(table: CatalogTable) -> list[dict[str, Any]]:
    return [{"name": c.name, "type": c.type, "json": c.is_json} for c in table.writable]


def content_hashes(conn: psycopg.Connection, tables: list[CatalogTable]) -> dict[str, tuple[int, str]]:
    """Row count and content hash of each table (its writable columns, in its order)."""
    return {
        t.qualified: conn.execute(sync_sql.content_hash_sql(t, [c.name for c in t.writable])).fetchone()  # type: ignore[misc]
        for t in tables
    }


def export_json(conn: psycopg.Connection, table: CatalogTable, key: list[str], path: Path) -> tuple[int, str]:
    """Write one table as JSON rows in key order; return its row count and the file's sha256.

    Streamed in chunks of EXPORT_BATCH rows (libpq 17's chunked rows, one query, no round trip per
    chunk): COPY hands over one message per row, and psycopg's 1.2 us for each (2.4 s of CPU for
    2,000,000 rows, under the GIL the streamed load needs too) would make the export the slowest
    part of a large sync; chunks cost 0.3 us a row. An older libpq streams row by row.
    """
    from psycopg import pq

    rows = 0
    digest = hashlib.sha256()
    with (
        path.open("wb") as out,
        _sorted_in_one_pass(conn) if key_unrelated_to_storage(conn, table, key) else nullcontext(),
        conn.cursor() as cur,
    ):

        def write(data: bytes) -> None:
            out.write(data)
            digest.update(data)

        def flush(docs: list[str]) -> None:
            write((b"\n" if rows == 0 else b",\n") + ",\n".join(docs).encode())

        chunk = EXPORT_BATCH if pq.version() >= CHUNKED_ROWS_LIBPQ else 1
        write(b"[")
        docs: list[str] = []
        for (doc,) in cur.stream(sync_sql.export_query(table, key), size=chunk):
            docs.append(doc)
            if len(docs) == EXPORT_BATCH:
                flush(docs)
                rows += len(docs)
                docs = []
        if docs:
            flush(docs)
            rows += len(docs)
        write(b"\n]\n")
    return rows, digest.hexdigest()


def key_unrelated_to_storage(conn: psycopg.Connection, table: CatalogTable, key: list[str]) -> bool:
    """Whether the table's rows sit in an order unrelated to its key (a random UUID), as far as the
    statistics tell (|correlation| < UNRELATED_ORDER; no statistics: not known, so no)."""
    found = conn.execute(
        "SELECT correlation FROM pg_stats WHERE schemaname = %s AND tablename = %s AND attname = %s",
        (table.schema, table.name, key[0]),
    ).fetchone()
    return found is not None and found[0] is not None and abs(found[0]) < UNRELATED_ORDER


@contextmanager
def _sorted_in_one_pass(conn: psycopg.Connection) -> Iterator[None]:
    """Within the export's transaction, read the next query's table in one pass and sort it, rather
    than fetch its rows through the key's index in an order unrelated to where they sit.

    PostgreSQL's planner picks the index (its cost model expects the pages cached); on 2,000,000
    rows keyed by a random UUID, reading the table whole and sorting it takes two thirds of the
    index's time, which keeps a fresh sync of such a table as fast as pg_dump | psql.
    """
    settings = ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan")
    saved = [conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in settings]  # type: ignore[index]
    for name in settings:
        conn.execute("SELECT set_config(%s, 'off', true)", (name,))
    try:
        yield
    finally:
        from psycopg.pq import TransactionStatus

        if not conn.closed and conn.info.transaction_status == TransactionStatus.INTRANS:
            for name, value in zip(settings, saved, strict=True):
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def export_copy(conn: psycopg.Connection, table: CatalogTable, path: Path) -> str:
    """Write one table in COPY text format; return the file's sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out, conn.cursor().copy(sync_sql.copy_out_query(table)) as copy:
        for block in copy:
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


def earlier_entries(folder: Path, env: Environment) -> dict[str, tuple[Path, dict]]:
    """The newest earlier export entry of each table of this project, with the folder it is in."""
    found: dict[str, tuple[Path, dict]] = {}
    runs = sorted((p for p in folder.parent.iterdir() if p.is_dir() and p != folder), key=stamp_order, reverse=True)
    for run in runs[:EARLIER_RUNS_LOOKED_AT]:
        try:
            manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("env") != env.name or manifest.get("ref") != env.ref:
            continue
        for entry in manifest.get("tables", []):
            if isinstance(entry, dict) and entry.get("content") and isinstance(entry.get("table"), str):
                found.setdefault(entry["table"], (run, entry))
    return found


def link_earlier(
    entry: dict | None, earlier_run: Path | None, folder: Path, wanted: dict, *, copy_text: bool
) -> dict | None:
    """Hard-link an earlier export of a table whose content and shape are unchanged; None if it cannot be."""
    if not entry or earlier_run is None:
        return None
    if any(entry.get(k) != wanted[k] for k in ("content", "columns", "key")):
        return None
    if not copy_text:  # the caller writes the COPY text itself, or none
        entry = {k: v for k, v in entry.items() if not k.startswith("copy_")}
    elif not entry.get("copy_file"):
        return None
    names = [entry.get("file"), entry.get("copy_file")]
    linked: list[Path] = []
    try:
        for name in filter(None, names):
            if not isinstance(name, str) or Path(name).name != name:
                raise OSError(f"odd file name {name!r}")
            os.link(earlier_run / name, folder / name)
            linked.append(folder / name)
    except OSError:  # another file system, a file removed by hand: export it instead
        for path in linked:
            path.unlink(missing_ok=True)
        return None
    return {**entry, "linked_from": earlier_run.name}


def export_tables(
    conn: psycopg.Connection,
    tables: list[CatalogTable],
    keys: dict[str, list[str]],
    folder: Path,
    env: Environment,
    *,
    copy_text: bool = True,
    hashes: dict[str, tuple[int, str]] | None = None,
    reuse: bool = False,
) -> list[dict]:
    """Export each table (JSON, and COPY text unless told not to); return the manifest's table entries.

    The caller owns the transaction, so several tables share one snapshot. json/jsonb
    values are stored as their text so a JSON null stays distinct from SQL NULL. With
    `hashes` (the tables' content hashes) and `reuse`, unchanged tables are linked from
    the newest earlier export.
    """
    folder.mkdir(parents=True, exist_ok=True)
    conn.execute(sync_sql.rendering_sql())
    earlier = earlier_entries(folder, env) if reuse and hashes else {}
    entries: list[dict[str, Any]] = []
    meter = Meter(f"exporting {env.name}", len(tables), "tables")
    for table in tables:
        wanted = {
            "columns": columns_of(table),
            "key": keys[table.qualified],
            "content": hashes[table.qualified][1] if hashes else None,
        }
        run, previous = earlier.get(table.qualified, (None, None))
        entry = link_earlier(previous, run, folder, wanted, copy_text=copy_text)
        if entry is None:
            path = folder / f"{table.qualified}.json"
            rows, digest = export_json(conn, table, keys[table.qualified], path)
            entry = {"table": table.qualified, "file": path.name, "rows": rows, "sha256": digest, **wanted}
            if not hashes:
                del entry["content"]
            if copy_text:
                copy_path = folder / f"{table.qualified}.copy"
                entry |= {"copy_file": copy_path.name, "copy_sha256": export_copy(conn, table, copy_path)}
        entries.append(entry)
        meter.add(1)
    meter.close()
    return entries


def write_manifest(folder: Path, env: Environment, entries: list[dict]) -> dict:
    """Written last: a folder with a manifest is a complete export."""
    manifest = {
        "env": env.name,
        "ref": env.ref,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "snapshot": "one REPEATABLE READ READ ONLY transaction",
        "tables": entries,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total = sum(entry["rows"] for entry in entries)
    linked = sum(1 for entry in entries if entry.get("linked_from"))
    note = f", {linked} unchanged since an earlier export and linked to it" if linked else ""
    progress(f"exported {len(entries)} tables ({total:,} rows{note}) from {env.name} to {folder}")
    return manifest


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder} is not an export: it has no manifest.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from None


def export_file(folder: Path, entry: dict, key: str = "file") -> Path:
    """The file a manifest entry names: a bare name inside the export folder, a regular file."""
    name = entry.get(key)
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise UserError(
            f"{folder / MANIFEST}: {entry.get('table')} names the file {name!r}; only a file "
            "name inside the export folder is accepted (was the manifest edited?)"
        )
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


def check_files(plan: TablePlan) -> None:
    """The files hold exactly what the manifest recorded (digests, or the rows' fingerprint), before any write."""
    changed = "the export was changed after it was written. Nothing was written."
    if plan.sha256:
        if file_digest(plan.file) != plan.sha256:
            raise UserError(f"{plan.file} does not match its manifest (sha256 differs): {changed}")
    else:  # an export from before the digests: its JSON rows' fingerprint
        digest, seen = hashlib.md5(), 0
        for row in json_rows(plan.file):
            digest.update(hashlib.md5(row).hexdigest().encode())
            seen += 1
        if seen != plan.rows or not plan.fingerprint or digest.hexdigest() != plan.fingerprint:
            raise UserError(
                f"{plan.file} does not match its manifest ({seen} rows, manifest says {plan.rows}; "
                f"fingerprint differs): {changed}"
            )
    if plan.copy_file and file_digest(plan.copy_file) != plan.copy_sha256:
        raise UserError(f"{plan.copy_file} does not match its manifest (sha256 differs): {changed}")


def copy_lines(path: Path) -> Iterator[bytes]:
    """The rows of an export file as COPY text-format lines."""
    for row in json_rows(path):
        yield row.replace(b"\\", b"\\\\") + b"\n"
