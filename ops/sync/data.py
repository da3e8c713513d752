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

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ops.config import Config, Environment
from ops.db.connection import connect
from ops.errors import OperationFailed, UserError, first_line
from ops.invocation import program
from ops.report import Result, progress
from ops.report import Table as Rows
from ops.safety import confirm_write, distinct, will_ask
from ops.stamps import new_run_dir
from ops.sync import export as sync_export
from ops.sync import undo
from ops.sync.apply import ImportTransaction, TableResult
from ops.sync.plan import (
    MissingTable,
    check_export_files,
    conflict_key,
    missing_everywhere,
    plan_import,
    plan_stream,
    read_tables,
    select_tables,
)
from ops.sync.source import LiveSource, compare_with_export, export_env, file_feed, open_source, snapshot_reader
from ops.sync.sql import TablePlan


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
        return sum(t.inserted + t.updated + (t.deleted or (t.only_in_target if self.prune else 0)) for t in self.tables)

    def footer(self) -> str:
        if self.nothing_to_do:
            return f"nothing to change in {self.target}: it already matches; nothing was asked or written"
        verb = "would sync" if self.dry_run else "exported" if self.export_only else "synced"
        lines = [f"{verb} {len(self.tables)} tables in {self.seconds:.1f}s; files in {self.run_dir}"]
        before = Path(self.run_dir) / "before" if self.run_dir else None
        if before and self.target and not self.dry_run and (before / sync_export.MANIFEST).is_file():
            # The undo snapshot: the target's rows this run replaced, as they were just before.
            lines.insert(0, f"undo: {program()} sync-data --from-export {before} --to {self.target} --prune")
        return "\n".join(lines)


@dataclass
class SyncPlan:
    """One sync-data run, checked before anything is read: its sides, tables and mode. `preview`
    holds the rows each table would change, once `preview()` counted them (read-only); that is
    what the question shows, and `apply()` runs this same plan."""

    source: Environment | None
    target: Environment | None
    tables: list[str]
    named: bool = False  # tables were named: an export's other tables are left out
    from_export: Path | None = None
    export_only: bool = False
    prune: bool = False
    preview: SyncResult | None = None

    def text(self) -> str:
        """The plan as the question shows it: each table's rows to insert, update (and delete)."""
        from ops.report import table

        rows = self.preview.rows() if self.preview else Rows(["table"], [[t] for t in self.tables])
        return f"plan for {self.target.name if self.target else 'files only'}:\n" + table(rows.rows, rows.headers)

    def to_dict(self) -> dict:
        # Environments by name only: their URLs hold passwords.
        return {
            "source": self.source.name if self.source else None,
            "target": self.target.name if self.target else None,
            "tables": self.tables,
            "from_export": str(self.from_export) if self.from_export else None,
            "export_only": self.export_only,
            "prune": self.prune,
            "preview": self.preview.to_dict() if self.preview else None,
        }


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
    """Plan, then (unless a dry run) apply that plan; a protected target is asked about in between."""
    planned = plan(
        config,
        source=source,
        target=target,
        tables=tables,
        export_only=export_only,
        prune=prune,
        from_export=from_export,
    )
    if dry_run:
        return preview(config, planned)
    if planned.target and will_ask(planned.target, yes=yes):
        # The plan's row counts first (read-only), then the question; nothing to change asks nothing.
        counted = preview(config, planned)
        if not counted.changes():
            counted.nothing_to_do = True
            return counted
        confirm_write(planned.target, yes=False, action="sync config data into it", plan=planned.text())
    return apply(config, planned)


def plan(
    config: Config,
    *,
    source: str | None,
    target: str | None,
    tables: list[str] | None = None,
    export_only: bool = False,
    prune: bool = False,
    from_export: str | None = None,
) -> SyncPlan:
    """The run the flags ask for, or a UserError saying how to fix them; reads nothing but the config."""
    requested = select_tables(config.sync_data, tables)
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
    return SyncPlan(
        source=source_env,
        target=target_env,
        tables=requested,
        named=bool(tables),
        from_export=Path(from_export).resolve() if from_export else None,
        export_only=export_only,
        prune=prune,
    )


def preview(config: Config, plan: SyncPlan) -> SyncResult:
    """The plan run read-only (the import transaction rolled back): the rows it would change, kept in the plan."""
    plan.preview = run(config, plan, dry_run=True)
    return plan.preview


def apply(config: Config, plan: SyncPlan) -> SyncResult:
    """The plan run for real. The rows are compared again inside the import transaction: they may
    have changed since the preview was counted."""
    return run(config, plan, dry_run=False)


def run(config: Config, plan: SyncPlan, *, dry_run: bool) -> SyncResult:
    started = time.monotonic()
    if plan.from_export:
        undo.refuse_uncommitted(plan.from_export)
    undo.clean_stale(config.sync_data.export_dir)
    if plan.export_only:
        assert plan.source is not None  # --export-only needs --from (checked by plan())
        result = export_only_run(config, plan.source, plan.tables)
    elif plan.from_export:
        assert plan.target is not None  # only --export-only runs without a target
        result = sync_from_export(
            config, plan.from_export, plan.target, plan.tables, plan.named, dry_run=dry_run, prune=plan.prune
        )
    else:
        assert plan.source is not None and plan.target is not None  # checked by plan()
        result = sync_live(config, plan.source, plan.target, plan.tables, dry_run=dry_run, prune=plan.prune)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def export_only_run(config: Config, source: Environment, tables: list[str]) -> SyncResult:
    """--export-only: the source's tables into a new run folder, nothing written anywhere else."""
    run_dir = new_run_dir(config.sync_data.export_dir / source.name)
    manifest = export_env(config, source, tables, run_dir)
    result = SyncResult(source=source.name, target=None, run_dir=str(run_dir), export_only=True)
    result.tables = [TableResult(e["table"], unchanged=e["rows"]) for e in manifest["tables"]]
    return result


def sync_from_export(
    config: Config,
    export_dir: Path,
    target: Environment,
    requested: list[str],
    named: bool,
    *,
    dry_run: bool,
    prune: bool,
) -> SyncResult:
    """--from-export: an earlier export's tables (those `requested`, when tables were `named`) into the target."""
    manifest = sync_export.read_manifest(export_dir)
    exported = [entry["table"] for entry in manifest["tables"]]
    wanted = [t for t in exported if t in requested] if named else exported
    select_tables(config.sync_data, wanted)  # an old export must not smuggle in a blocked table
    unknown = set(requested) - set(exported) if named else set()
    if unknown:
        raise UserError(f"{export_dir} has no export of {', '.join(sorted(unknown))}")
    manifest = {**manifest, "tables": [e for e in manifest["tables"] if e["table"] in wanted]}
    run_dir = new_run_dir(config.sync_data.export_dir / target.name)
    result = SyncResult(
        source=f"export {export_dir}", target=target.name, run_dir=str(run_dir), dry_run=dry_run, prune=prune
    )
    result.tables = import_export(
        config, target, manifest, export_dir, wanted, run_dir, result.source, dry_run=dry_run, prune=prune
    )
    return result


def sync_live(
    config: Config, source: Environment, target: Environment, tables: list[str], *, dry_run: bool, prune: bool
) -> SyncResult:
    """--from ENV: rows stream from the source's snapshot into the target; the run folder is made once it can happen."""
    result = SyncResult(source=source.name, target=target.name, run_dir="", dry_run=dry_run, prune=prune)

    def run_folder() -> Path:
        folder = new_run_dir(config.sync_data.export_dir / source.name)
        result.run_dir = str(folder)
        return folder

    result.tables = stream(config, source, target, tables, run_folder, dry_run=dry_run, prune=prune)
    return result


def _announce(plans: list[TablePlan], target: Environment, run_dir: Path, dry_run: bool) -> None:
    progress(
        f"{'planning' if dry_run else 'applying'} {len(plans)} tables into {target.name} "
        f"(SQL in {run_dir / 'import.sql'})"
    )


def import_export(
    config: Config,
    target: Environment,
    manifest: dict,
    export_dir: Path,
    tables: list[str],
    run_dir: Path,
    label: str,
    *,
    dry_run: bool,
    prune: bool,
) -> list[TableResult]:
    """--from-export: the rows come from files, checked against their manifest before anything is written."""
    import psycopg

    try:
        with connect(target, application="ops sync-data import") as conn:
            targets = {t.qualified: t for t in read_tables(conn, tables, target)}
            conn.rollback()  # catalog reads must not hold a snapshot into the import
            plans = plan_import(manifest, export_dir, targets, config.sync_data.natural_keys)
            check_export_files(plans)
            _announce(plans, target, run_dir, dry_run)
            return ImportTransaction(
                conn, target, plans, file_feed, compare_with_export, run_dir, label, dry_run, prune
            ).run()
    except psycopg.Error as error:
        raise OperationFailed(
            f"{target.name}: {first_line(error)}. Nothing was committed: the target is unchanged."
        ) from None


def stream(
    config: Config,
    source: Environment,
    target: Environment,
    tables: list[str],
    run_folder: Callable[[], Path],
    *,
    dry_run: bool,
    prune: bool,
) -> list[TableResult]:
    """From a live source: the target is checked first, then rows stream from one source snapshot into it."""
    import psycopg

    natural_keys = config.sync_data.natural_keys
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            with connect(target, application="ops sync-data import") as conn:
                # A target that lacks a table is refused before the source is read.
                try:
                    targets = {t.qualified: t for t in read_tables(conn, tables, target)}
                except MissingTable as missing:
                    raise missing_everywhere(missing, source, target) from None
                conn.rollback()  # catalog reads must not hold a snapshot into the import
                run_dir = run_folder()  # made only once the sync can happen
                with snapshot_reader(source, "ops sync-data stream") as src:
                    sources, snapshot = open_source(src, source, tables)
                    plans = plan_stream(sources, targets, natural_keys, run_dir)
                    keys = {t.qualified: conflict_key(t, natural_keys) for t in sources}
                    live = LiveSource(src, source, snapshot, sources, keys, run_dir, pool)
                    _announce(plans, target, run_dir, dry_run)
                    apply = ImportTransaction(
                        conn, target, plans, live.feed, live.compare, run_dir, source.name, dry_run, prune, live.finish
                    )
                    return apply.run()
        except psycopg.Error as error:
            raise OperationFailed(
                f"{target.name}: {first_line(error)}. Nothing was committed: the target is unchanged."
            ) from None
