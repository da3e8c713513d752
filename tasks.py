"""Operations for one app on several Supabase projects: `inv --list` shows them all."""

from __future__ import annotations

import functools
import json

from invoke import Collection, Exit, task

LIST_HELP = "repeat the flag or separate with commas"


def ops_task(*args, **kwargs):
    """An invoke task whose ops errors become a message and the matching exit code."""

    def wrap(function):
        @functools.wraps(function)
        def run(*a, **kw):
            from ops.errors import OpsError

            try:
                return function(*a, **kw)
            except OpsError as error:
                raise Exit(f"error: {error}", code=error.exit_code) from None
            except KeyboardInterrupt:
                raise Exit("interrupted", code=130) from None

        return task(*args, **kwargs)(run)

    return wrap


def names(values) -> list[str]:
    from ops.config import split_list

    return [name for value in values or [] for name in split_list(value)]


def load_config():
    from ops import config

    return config.load()


def emit(result_dict: dict, headers, rows, as_json: bool, footer: str = "") -> None:
    from ops.report import as_json as dump, table

    if as_json:
        print(dump(result_dict))
    else:
        print(table(rows, headers))
        if footer:
            print(footer)


@ops_task(help={"json": "print the environments as JSON"})
def envs(c, json=False):
    """List the environments, their projects and which secrets are set (never their values)."""
    from ops import environments

    rows = environments.describe(load_config())
    emit({"environments": rows}, list(rows[0]) if rows else [], [list(r.values()) for r in rows], json)


@ops_task(
    iterable=["tables"],
    help={
        "from": "source environment (e.g. prod)",
        "to": "target environment (e.g. preprod)",
        "tables": f"only these safe tables ({LIST_HELP}); default: all safe tables",
        "dry_run": "read both sides, write import.sql, change nothing; print what would change",
        "export_only": "export the source tables as JSON and stop (no --to)",
        "prune": "also delete target rows of the synced tables that are absent in the source",
        "from_export": "import an earlier export folder (e.g. a run's before/) instead of --from",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def sync_data(c, from_=None, to=None, tables=None, dry_run=False, export_only=False, prune=False,
              from_export=None, json=False, yes=False):
    """Sync config tables between environments with idempotent upserts (never user data)."""
    from ops import sync_data as sync

    result = sync.sync_data(load_config(), source=from_, target=to, tables=names(tables) or None,
                            dry_run=dry_run, export_only=export_only, prune=prune,
                            from_export=from_export, yes=yes)
    headers, rows = sync.summary_rows(result)
    verb = "would sync" if dry_run else "exported" if export_only else "synced"
    emit(result.to_dict(), headers, rows, json,
         f"{verb} {len(result.tables)} tables in {result.seconds:.1f}s; files in {result.run_dir}")


ns = Collection(envs, sync_data)
