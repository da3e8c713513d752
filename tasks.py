"""Operations for one app on several Supabase projects: `inv --list` shows them all."""

from __future__ import annotations

from ops import startup

startup.loading()  # before Invoke and the tasks load: a Ctrl-C then ends quietly, no traceback

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, Exit, Task, task

from ops.cli import COMMAND_LINE, OpsTask, install, program

if TYPE_CHECKING:
    from ops.config import Config
    from ops.invocation import CommandLine
    from ops.report import Renderable

LIST_HELP = "repeat the flag or separate with commas"
install()  # one meaning per flag, value kinds in help, mistyped flags answered (see ops/cli.py)


def ops_task(*args: Any, journal: bool = False, **kwargs: Any) -> Callable[[Callable[..., None]], Task]:
    """An invoke task whose every failure becomes one line and the matching exit code, never a traceback.

    With `journal`, the task writes: its run is appended to the ops journal, however it ends
    (an unexpected exception as `crashed: <type>: <message>`, never as done).
    """

    def wrap(function: Callable[..., None]) -> Task:
        @functools.wraps(function)
        def run(*a: Any, **kw: Any) -> None:
            import os
            import sys

            from ops import invocation, report
            from ops import journal as ops_journal
            from ops.cli import json_error
            from ops.errors import OpsError, first_line

            report.PLAIN_PROGRESS = bool(kw.get("json"))  # --json: stderr keeps plain lines, never a bar
            defaults = {name: p.default for name, p in inspect.signature(function).parameters.items()}
            typed = {k: v for k, v in kw.items() if v != defaults.get(k)}  # as typed: no defaults
            entry = ops_journal.begin(function.__name__.replace("_", "-"), kw) if journal else None
            if COMMAND_LINE in defaults:  # the task's own command line, for its re-run hints
                kw[COMMAND_LINE] = invocation.CommandLine(function.__name__.replace("_", "-"), typed)
            code, failure = 1, "crashed"
            as_json = bool(kw.get("json"))

            def refuse(message: str, exit_code: int, *, reported: bool = False) -> Exit:
                """The one line on stderr; with --json, the same as JSON on stdout unless a summary said it."""
                if as_json and not reported:
                    json_error(message, exit_code)
                return Exit(message, code=exit_code)

            try:
                function(*a, **kw)
                code, failure = 0, ""
            except OpsError as error:
                code, failure = error.exit_code, str(error)
                raise refuse(f"error: {error}", error.exit_code, reported=error.in_summary) from None
            except KeyboardInterrupt:
                code, failure = 130, "interrupted (Ctrl-C)"
                raise refuse("interrupted", 130) from None
            except Exit as error:
                code, failure = error.code, str(error.message or "")
                if error.message and error.code:
                    raise refuse(str(error.message), error.code) from None
                raise
            except BrokenPipeError:
                # The reader left (`inv journal | head`): stop quietly, as git does, and let nothing
                # write to the closed pipe again on the way out (the journal entry is still written).
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                code, failure = 141, "output pipe closed by the reader"
                raise Exit(code=141) from None
            except Exception as error:
                code, failure = 1, f"crashed: {type(error).__name__}: {first_line(error)}"
                if os.environ.get("OPS_DEBUG"):
                    raise
                raise refuse(
                    f"error: {failure}\nThis is a bug in the toolkit: please report it with the output of "
                    "the same command run with OPS_DEBUG=1 (which shows where it happened).",
                    1,
                ) from None
            finally:
                if entry is not None:
                    ops_journal.finish(entry, code, failure)

        return task(*args, klass=OpsTask, auto_shortflags=False, **kwargs)(run)

    return wrap


def comma_list(values: list[str] | None) -> list[str]:
    from ops.config import split_list

    return [name for value in values or [] for name in split_list(value)]


def number_flag(value: str | int | None, flag: str) -> int | None:
    """A whole-number flag; a clear exit 2 instead of a traceback for anything else."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Exit(f"error: {flag} takes a whole number, not {value!r}", code=2) from None


RETENTION_HELP = {
    "keep": "the same as --keep-last",
    "keep_last": "keep the newest N full backups (default: [backup] keep_last, else [storage] keep, 5)",
    "keep_daily": "and the newest of each of the last N days that have one (UTC; default: [backup] keep_daily)",
    "keep_weekly": "and the newest of each of the last N ISO weeks that have one (default: [backup] keep_weekly)",
    "keep_monthly": "and the newest of each of the last N months that have one (default: [backup] keep_monthly)",
}


def retention_flags(
    keep: str | None, keep_last: str | None, keep_daily: str | None, keep_weekly: str | None, keep_monthly: str | None
) -> dict[str, int | None]:
    """The retention flags given, as whole numbers (`--keep` is `--keep-last`)."""
    last, alias = number_flag(keep_last, "--keep-last"), number_flag(keep, "--keep")
    if last is not None and alias is not None and last != alias:
        raise Exit("error: --keep is --keep-last: give one of them", code=2)
    return {
        "last": alias if last is None else last,
        "daily": number_flag(keep_daily, "--keep-daily"),
        "weekly": number_flag(keep_weekly, "--keep-weekly"),
        "monthly": number_flag(keep_monthly, "--keep-monthly"),
    }


def load_config(*, check_refs: bool = True) -> Config:
    from ops import config

    loaded = config.load(check_refs=check_refs)
    config.announce(loaded.path)
    return loaded


def emit(result: Renderable, as_json: bool) -> None:
    from ops import journal
    from ops.report import emit as render

    journal.note(result)
    render(result, as_json)


@ops_task(
    help={
        "env": "environment, a comma list, or 'all' (default: prod)",
        "json": "print the checks as JSON",
        "verbose": "also show how long each check took",
    }
)
def doctor(c: Context, env: str | None = None, verbose: bool = False, json: bool = False) -> None:
    """Run first on a new machine: config, database (TLS, role, pooler), pg_dump, storage, API token, CLI."""
    from ops.views import doctor as checks

    emit(checks.doctor(load_config(check_refs=False), env, verbose), json)


@ops_task(
    help={
        "env": "only runs that named this environment",
        "task": "only runs of this task (e.g. deploy-functions)",
        "since": "only runs since 7d, 24h, 30m or a date (2026-11-01)",
        "last": "at most this many runs, newest first (default 20)",
        "json": "print the runs as JSON",
    }
)
def journal(
    c: Context,
    env: str | None = None,
    task: str | None = None,
    since: str | None = None,
    last: str | None = None,
    json: bool = False,
) -> None:
    """Who changed which environment, when, with what result (the ops journal, newest first)."""
    from ops import journal as ops_journal

    emit(
        ops_journal.read(
            load_config(check_refs=False).journal_path,
            env=env,
            task=task,
            since=since,
            last=number_flag(last, "--last"),
        ),
        json,
    )


@ops_task(help={"env": "environment (default: preprod)", "json": "print the checks as JSON"})
def smoke(c: Context, env: str | None = None, json: bool = False) -> None:
    """Is the environment serving? Its frontend and every edge function over HTTP, with latency."""
    from ops.views import smoke as checks

    emit(checks.smoke(load_config(), env), json)


@ops_task(help={"json": "print the environments as JSON"})
def envs(c: Context, json: bool = False) -> None:
    """List the environments, their projects and which secrets are set (never their values)."""
    from ops.views import envs as environments

    emit(environments.describe(load_config()), json)


@ops_task(
    journal=True,
    iterable=["tables"],
    help={
        "from": "source environment (e.g. prod)",
        "to": "target environment (e.g. preprod)",
        "tables": f"only these safe tables ({LIST_HELP}); default: all safe tables",
        "dry_run": "read both sides, write import.sql, change nothing; print what would change",
        "export_only": "export the source tables as JSON and stop (no --to)",
        "prune": "also delete target rows of the synced tables that are absent in the source",
        "from_export": "import an earlier export folder (e.g. a run's before/) instead of --from",
        "diff": "show, row by row and cell by cell, what a sync would change (read-only; --json has every cell)",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def sync_data(
    c: Context,
    from_: str | None = None,
    to: str | None = None,
    tables: list[str] | None = None,
    dry_run: bool = False,
    export_only: bool = False,
    prune: bool = False,
    from_export: str | None = None,
    diff: bool = False,
    json: bool = False,
    yes: bool = False,
) -> None:
    """Sync config tables between environments with idempotent upserts (never user data)."""
    from ops.sync import data as sync

    if diff:
        from ops.sync import diff as sync_diff

        emit(
            sync_diff.diff_task(
                load_config(),
                source=from_,
                target=to,
                tables=comma_list(tables) or None,
                prune=prune,
                others=dry_run or export_only or bool(from_export),
            ),
            json,
        )
        return
    result = sync.sync_data(
        load_config(),
        source=from_,
        target=to,
        tables=comma_list(tables) or None,
        dry_run=dry_run,
        export_only=export_only,
        prune=prune,
        from_export=from_export,
        yes=yes,
    )
    emit(result, json)


@ops_task(
    journal=True,
    iterable=["buckets"],
    help={
        "from": "source environment",
        "to": "target environment",
        "buckets": f"only these buckets ({LIST_HELP}); default: all of [storage] buckets",
        "dry_run": "list both sides and print the plan; copy nothing",
        "jobs": "like rclone's --transfers: 2 x jobs objects at once, each downloaded then uploaded "
        "(default: [storage] jobs, 4)",
        "delete": "remove target objects absent in the source, after every copy succeeded",
        "force": "copy every object, even identical ones",
        "max_delete": "with --delete: refuse when more target objects would go (default: a quarter of the "
        "target's objects, at least 10)",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def sync_storage(
    c: Context,
    from_: str | None = None,
    to: str | None = None,
    buckets: list[str] | None = None,
    dry_run: bool = False,
    jobs: str | None = None,
    delete: bool = False,
    force: bool = False,
    json: bool = False,
    yes: bool = False,
    max_delete: str | None = None,
    command_line: CommandLine | None = None,
) -> None:
    """Copy new and changed storage objects between environments (incremental, parallel)."""
    from ops.storage import sync as storage

    result = storage.sync_storage(
        load_config(),
        source=from_,
        target=to,
        buckets=comma_list(buckets) or None,
        dry_run=dry_run,
        jobs=number_flag(jobs, "--jobs"),
        delete=delete,
        force=force,
        yes=yes,
        max_delete=number_flag(max_delete, "--max-delete"),
        command=command_line,
    )
    emit(result, json)


@ops_task(
    journal=True,
    iterable=["buckets"],
    help={
        "env": "environment to back up, a comma list, or 'all' (default: prod)",
        "buckets": f"only these buckets ({LIST_HELP})",
        **RETENTION_HELP,
        "copy_to": "then copy each sealed backup to this backup target (a section with a bucket), incrementally",
        "to": "back up straight to this backup target (no local copy): unchanged objects are copied there "
        "server-side from its newest sealed backup; not with --copy-to",
        "json": "print the summary as JSON",
    },
)
def backup_storage(
    c: Context,
    env: str | None = None,
    buckets: list[str] | None = None,
    keep: str | None = None,
    keep_last: str | None = None,
    keep_daily: str | None = None,
    keep_weekly: str | None = None,
    keep_monthly: str | None = None,
    copy_to: str | None = None,
    to: str | None = None,
    json: bool = False,
) -> None:
    """Back up storage buckets to backups/storage/<env>-<ref>/<time>/ (incremental, keeps 5)."""
    from ops.backup import remote

    emit(
        remote.backup_storage(
            load_config(),
            env=env,
            buckets=comma_list(buckets) or None,
            keep=retention_flags(keep, keep_last, keep_daily, keep_weekly, keep_monthly),
            copy_to=copy_to,
            to=to,
        ),
        json,
    )


@ops_task(
    help={
        "env": "the environment whose backups to list (default: prod)",
        "target": "list the copies on this backup target (a section with a bucket) instead of this machine's",
        **RETENTION_HELP,
        "json": "print the list as JSON",
    },
)
def backups(
    c: Context,
    env: str | None = None,
    target: str | None = None,
    keep: str | None = None,
    keep_last: str | None = None,
    keep_daily: str | None = None,
    keep_weekly: str | None = None,
    keep_monthly: str | None = None,
    json: bool = False,
) -> None:
    """List an environment's backups (here or on a backup target) and the retention rule that keeps each."""
    from ops.backup import series

    emit(
        series.list_backups(
            load_config(),
            env=env,
            target=target,
            keep=retention_flags(keep, keep_last, keep_daily, keep_weekly, keep_monthly),
        ),
        json,
    )


@ops_task(
    help={
        "backup": "a backup folder, 'latest' (default), or TARGET:latest / TARGET:<time> for an off-site copy",
        "env": "environment for 'latest' (default: prod)",
        "json": "print the result as JSON",
    }
)
def verify_backup(c: Context, backup: str = "latest", env: str | None = None, json: bool = False) -> None:
    """Re-hash every file of a backup against its manifest: missing, corrupt and extra files."""
    from ops.backup import verify

    emit(verify.verify_backup(load_config(), backup=backup, env=env), json)


@ops_task(
    journal=True,
    iterable=["buckets"],
    help={
        "to": "environment to restore into",
        "backup": "a backup folder, 'latest' (default), or TARGET:<time> / TARGET:latest (an off-site copy)",
        "env": "whose backup to restore (default: the --to environment's own; another env's needs this flag)",
        "buckets": f"only these buckets ({LIST_HELP})",
        "dry_run": "print what would be uploaded; upload nothing",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def restore_storage(
    c: Context,
    to: str | None = None,
    backup: str = "latest",
    env: str | None = None,
    buckets: list[str] | None = None,
    dry_run: bool = False,
    json: bool = False,
    yes: bool = False,
    command_line: CommandLine | None = None,
) -> None:
    """Upload a storage backup back into an environment (only what differs)."""
    from ops.backup import restore

    emit(
        restore.restore_storage(
            load_config(),
            target=to,
            backup=backup,
            env=env,
            buckets=comma_list(buckets) or None,
            dry_run=dry_run,
            yes=yes,
            command=command_line,
        ),
        json,
    )


@ops_task(
    journal=True,
    help={
        "env": "environment, a comma list (pushed in that order), or 'all' for [migrations] all_order (default: prod)",
        "dry_run": "list the pending migrations; apply nothing",
        "include_all": "also apply pending migrations older than the newest applied one",
        "skip_preprod_check": "push to prod even if preprod lacks a migration (critical rule 2)",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def push_migrations(
    c: Context,
    env: str | None = None,
    dry_run: bool = False,
    include_all: bool = False,
    skip_preprod_check: bool = False,
    json: bool = False,
    yes: bool = False,
) -> None:
    """Apply pending migrations with the Supabase CLI (preprod first; 'all' stops at the first failure)."""
    from ops.platform import migrations
    from ops.report import progress

    result = migrations.push_migrations(
        load_config(),
        env=env,
        dry_run=dry_run,
        yes=yes,
        include_all=include_all,
        skip_preprod_check=skip_preprod_check,
        show=progress if json else print,
    )
    emit(result, json)


@ops_task(
    iterable=["env", "envs"],
    help={
        "env": f"environments to compare ({LIST_HELP}), or 'all'; default: prod,preprod,sandbox",
        "envs": "the same as --env (the older spelling)",
        "json": "print the table as JSON",
    },
)
def migration_status(
    c: Context, env: list[str] | None = None, envs: list[str] | None = None, json: bool = False
) -> None:
    """Show every local migration as applied/pending per environment, plus remote-only versions."""
    from ops.platform import migrations

    emit(migrations.migration_status(load_config(), comma_list((env or []) + (envs or [])) or None), json)


@ops_task(
    journal=True,
    iterable=["only"],
    help={
        "env": "environment (default: prod)",
        "only": f"only these functions ({LIST_HELP})",
        "changed_since": "only functions changed since this git ref (including via _shared imports)",
        "dry_run": "print what would deploy; run no deploy",
        "jobs": "parallel deploys (default: [functions] jobs, 4)",
        "json": "print the result as JSON",
        "yes": "do not ask before writing to a protected environment",
        "at": "deploy the functions as they were at this git ref (a rollback); the working tree is untouched",
    },
)
def deploy_functions(
    c: Context,
    env: str | None = None,
    only: list[str] | None = None,
    changed_since: str | None = None,
    dry_run: bool = False,
    jobs: str | None = None,
    json: bool = False,
    yes: bool = False,
    at: str | None = None,
    command_line: CommandLine | None = None,
) -> None:
    """Deploy edge functions with --no-verify-jwt; failed ones are named with a re-run command."""
    from ops.platform import functions

    result = functions.deploy_functions(
        load_config(),
        env=env,
        only=comma_list(only) or None,
        changed_since=changed_since,
        dry_run=dry_run,
        jobs=number_flag(jobs, "--jobs"),
        yes=yes,
        at=at,
        command=command_line,
    )
    emit(result, json)


@ops_task(
    help={
        "env": "environment, a comma list or 'all' for a matrix of them (default: prod)",
        "json": "print names and digests as JSON",
    }
)
def secrets(c: Context, env: str | None = None, json: bool = False) -> None:
    """List secret names and digests per environment (never values); 'all' shows what each env lacks."""
    from ops.platform import secrets as ops_secrets

    emit(ops_secrets.secrets_report(load_config(), env), json)


WORKFLOW_HELP = {
    "dry_run": "show what each step would do",
    "yes": "do not ask before writing to a protected environment (each is confirmed before the first step)",
    "resume_at": "skip the steps before this one (the command printed after a failure)",
    "json": "print the step summary as JSON",
}


@ops_task(
    journal=True,
    iterable=["only"],
    help={
        "env": "environment (default: preprod)",
        "only": f"only these functions ({LIST_HELP})",
        "changed_since": "only functions changed since this git ref",
        "smoke": "end with the smoke task on the environment (--no-smoke skips it)",
        **WORKFLOW_HELP,
    },
)
def release(
    c: Context,
    env: str | None = None,
    only: list[str] | None = None,
    changed_since: str | None = None,
    dry_run: bool = False,
    yes: bool = False,
    resume_at: str | None = None,
    json: bool = False,
    smoke: bool = True,
    command_line: CommandLine | None = None,
) -> None:
    """After merging a PR: push migrations, deploy the named or changed functions, smoke-check."""
    from ops import workflows

    emit(
        workflows.release(
            load_config(),
            env=env,
            only=comma_list(only) or None,
            changed_since=changed_since,
            dry_run=dry_run,
            yes=yes,
            resume_at=resume_at,
            smoke=smoke,
            command=command_line,
        ),
        json,
    )


@ops_task(
    journal=True,
    help={
        "from": "environment to copy from (default: prod)",
        "to": "environment to reset (default: preprod)",
        **WORKFLOW_HELP,
    },
)
def reset_env(
    c: Context,
    from_: str | None = None,
    to: str | None = None,
    dry_run: bool = False,
    yes: bool = False,
    resume_at: str | None = None,
    json: bool = False,
    command_line: CommandLine | None = None,
) -> None:
    """Bring an environment in line with another: migrations, config data, storage, functions."""
    from ops import workflows

    emit(
        workflows.reset_env(
            load_config(),
            source=from_,
            target=to,
            dry_run=dry_run,
            yes=yes,
            resume_at=resume_at,
            command=command_line,
        ),
        json,
    )


@ops_task(
    journal=True,
    help={
        "from": "environment to copy config and files from (default: prod)",
        "sandbox": "the sandbox environment (default: sandbox)",
        **WORKFLOW_HELP,
    },
)
def refresh_sandbox(
    c: Context,
    from_: str | None = None,
    sandbox: str | None = None,
    dry_run: bool = False,
    yes: bool = False,
    resume_at: str | None = None,
    json: bool = False,
    command_line: CommandLine | None = None,
) -> None:
    """Bring the Lovable sandbox up to date: code, migrations, config data, logos and email assets."""
    from ops import workflows

    emit(
        workflows.refresh_sandbox(
            load_config(),
            source=from_,
            sandbox=sandbox,
            dry_run=dry_run,
            yes=yes,
            resume_at=resume_at,
            command=command_line,
        ),
        json,
    )


@ops_task(
    journal=True,
    iterable=["tables"],
    help={
        "tables": f"config tables to promote ({LIST_HELP})",
        "sandbox": "default: sandbox",
        "preprod": "default: preprod",
        "prod": "default: prod",
        "dry_run": "show what each step would do",
        "yes": "do not ask before writing to prod",
        "resume_at": WORKFLOW_HELP["resume_at"],
        "json": "print the step summary as JSON",
    },
)
def promote_config(
    c: Context,
    tables: list[str] | None = None,
    sandbox: str | None = None,
    preprod: str | None = None,
    prod: str | None = None,
    dry_run: bool = False,
    yes: bool = False,
    resume_at: str | None = None,
    json: bool = False,
    command_line: CommandLine | None = None,
) -> None:
    """After prototyping in Lovable: config tables sandbox -> preprod, then (confirmed) preprod -> prod."""
    from ops import workflows

    emit(
        workflows.promote_config(
            load_config(),
            tables=comma_list(tables) or None,
            sandbox=sandbox,
            preprod=preprod,
            prod=prod,
            dry_run=dry_run,
            yes=yes,
            resume_at=resume_at,
            command=command_line,
        ),
        json,
    )


@ops_task(
    journal=True,
    help={
        "env": "environment, a comma list, or 'all' (default: prod)",
        **RETENTION_HELP,
        "copy_to": "then copy each sealed snapshot to this backup target (a section with a bucket), incrementally",
        "to": "back up straight to this backup target (no local copy): unchanged objects are copied there "
        "server-side from its newest sealed backup; not with --copy-to",
        "resume_at": WORKFLOW_HELP["resume_at"],
        "json": "print the step summary as JSON",
        "yes": "accepted for scripts and CI (a backup writes to no environment, so it never asks)",
    },
)
def backup(
    c: Context,
    env: str | None = None,
    keep: str | None = None,
    keep_last: str | None = None,
    keep_daily: str | None = None,
    keep_weekly: str | None = None,
    keep_monthly: str | None = None,
    copy_to: str | None = None,
    to: str | None = None,
    resume_at: str | None = None,
    json: bool = False,
    yes: bool = False,
    command_line: CommandLine | None = None,
) -> None:
    """The backup routine in one snapshot: storage, config export, pg_dump, secret names, functions commit."""
    from ops import workflows

    emit(
        workflows.full_backup(
            load_config(),
            env=env,
            keep=retention_flags(keep, keep_last, keep_daily, keep_weekly, keep_monthly),
            resume_at=resume_at,
            copy_to=copy_to,
            to=to,
            command=command_line,
        ),
        json,
    )


@ops_task(
    journal=True,
    iterable=["table", "keys"],
    help={
        "from": "the PITR-restored project (its section has restored_from = the --to environment)",
        "to": "the project to recover rows into",
        "table": f"the table(s) to recover, schema-qualified for auth ({LIST_HELP}); parents go first",
        "where": "only rows matching one SQL boolean expression (OR allowed), evaluated on --from alone, "
        "e.g. \"created_at > '2026-11-01'\"",
        "keys": f"only rows with these values of a one-column key, bare or named: id=<v>,<v> ({LIST_HELP})",
        "prune": "also delete target rows the restore lacks (created after the restore point: kept otherwise)",
        "dry_run": "show the rows, cell by cell, that would be recovered; change nothing",
        "from_export": "undo a recovery: put back the before/ folder it printed",
        "json": "print the result as JSON",
        "yes": "do not ask (a protected target asks for its name and the table names)",
    },
)
def recover_rows(
    c: Context,
    from_: str | None = None,
    to: str | None = None,
    table: list[str] | None = None,
    where: str | None = None,
    keys: list[str] | None = None,
    prune: bool = False,
    dry_run: bool = False,
    from_export: str | None = None,
    json: bool = False,
    yes: bool = False,
) -> None:
    """Recover rows (user tables too) from a PITR-restored project into the live one, with an undo."""
    from ops.sync import recover

    emit(
        recover.recover_rows(
            load_config(),
            source=from_,
            target=to,
            tables=comma_list(table),
            where=where,
            keys=comma_list(keys) or None,
            prune=prune,
            dry_run=dry_run,
            yes=yes,
            from_export=from_export,
        ),
        json,
    )


@ops_task(
    journal=True,
    help={
        "backup": "a full backup folder (from the backup task), or 'latest' (default)",
        "to": "the project to restore into: a new one, or a PITR-restored one, whose public schema is empty",
        "env": "whose backup 'latest' means (default: the --to environment's own)",
        "force": "restore even though the target has app tables (one transaction: a clash changes nothing)",
        "json": "print the result as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def restore_db(
    c: Context,
    to: str | None = None,
    backup: str = "latest",
    env: str | None = None,
    force: bool = False,
    json: bool = False,
    yes: bool = False,
) -> None:
    """Restore a snapshot's database (roles, schema, every row incl. auth users) into an empty project."""
    from ops.backup import restore_db as restoring

    emit(restoring.restore_db(load_config(), backup=backup, target=to, env=env, force=force, yes=yes), json)


@ops_task(
    journal=True,
    help={
        "env": "whose backup to drill (default: prod)",
        "backup": "a full backup folder, 'latest' (default), or TARGET:latest / TARGET:<time> for an off-site copy",
        "into": "the scratch environment to wipe and restore into (its section has scratch = true)",
        "json": "print the result as JSON",
        "yes": "accepted for scripts and CI (a scratch environment is never protected, so a drill never asks)",
    },
)
def drill(
    c: Context,
    env: str | None = None,
    backup: str = "latest",
    into: str | None = None,
    json: bool = False,
    yes: bool = False,
) -> None:
    """Restore a backup into a scratch environment and check it: rows, sequences, every object re-hashed."""
    from ops.backup import drill as ops_drill

    emit(ops_drill.drill(load_config(), env=env, backup=backup, into=into, yes=yes), json)


@ops_task(
    journal=True,
    help={"diff_only": "only show which files Lovable changed; merge nothing", "json": "print the result as JSON"},
)
def sync_lovable(c: Context, diff_only: bool = False, json: bool = False) -> None:
    """Fetch the Lovable sandbox's branch; show what changed, or merge it into the current branch."""
    from ops.platform import lovable

    emit(lovable.sync_lovable(load_config(), diff_only=diff_only), json)


@ops_task(journal=True, help={"dry_run": "show what would be merged; push nothing", "json": "print the result as JSON"})
def update_lovable(c: Context, dry_run: bool = False, json: bool = False) -> None:
    """Merge our main into the Lovable branch and push it (never a force-push)."""
    from ops.platform import lovable

    emit(lovable.update_lovable(load_config(), dry_run=dry_run), json)


@ops_task(
    iterable=["env", "envs"],
    help={
        "env": f"environments ({LIST_HELP}), or 'all'; the first is the reference (default: prod,preprod,sandbox)",
        "envs": "the same as --env (the older spelling)",
        "json": "print everything as JSON",
    },
)
def status(c: Context, env: list[str] | None = None, envs: list[str] | None = None, json: bool = False) -> None:
    """Do my environments match? Migrations, config tables, buckets, functions and secrets side by side."""
    from ops.views import status as ops_status

    emit(ops_status.status(load_config(), comma_list((env or []) + (envs or [])) or None), json)


@ops_task(
    iterable=["env", "only"],
    help={
        "env": f"environments ({LIST_HELP}), or 'all' (default: prod,preprod,sandbox)",
        "only": f"only these areas ({LIST_HELP}): auth,api,storage,database,pooler,network,ssl,buckets,functions,"
        "secrets",
        "check": "exit 1 when any setting drifts (a CI gate)",
        "all": "show every setting, not only those that differ",
        "json": "print the matrix as JSON",
    },
)
def settings(
    c: Context,
    env: list[str] | None = None,
    only: list[str] | None = None,
    check: bool = False,
    all_: bool = False,
    json: bool = False,
) -> None:
    """Project settings side by side (auth, API, storage, database, pooler, network, SSL, ...): what drifts?"""
    from ops.settings import drift as ops_settings

    emit(
        ops_settings.settings(
            load_config(), comma_list(env) or None, only=comma_list(only) or None, show_all=all_, check=check
        ),
        json,
    )


@ops_task(
    journal=True,
    iterable=["only", "allow_weaker"],
    help={
        "from_": "the environment whose settings to copy",
        "from_export": "or a promotion's <run>/before folder: put those settings back (the undo)",
        "to": "the environment to change",
        "only": f"only these areas ({LIST_HELP}; default: auth,api,storage,database,pooler,network,ssl)",
        "dry_run": "show the plan; send nothing",
        "yes": "do not ask before writing to a protected environment",
        "allow_weaker": f"send these weakening changes all the same ({LIST_HELP}; e.g. password_min_length)",
        "json": "print the result as JSON",
    },
)
def promote_settings(
    c: Context,
    from_: str | None = None,
    from_export: str | None = None,
    to: str | None = None,
    only: list[str] | None = None,
    dry_run: bool = False,
    yes: bool = False,
    allow_weaker: list[str] | None = None,
    json: bool = False,
) -> None:
    """Copy project settings to another environment: only what differs, never weaker unless named, undoable."""
    from ops.settings import promote as settings_promote

    emit(
        settings_promote.promote_settings(
            load_config(),
            source=from_,
            from_export=from_export,
            target=to,
            only=comma_list(only) or None,
            dry_run=dry_run,
            yes=yes,
            allow_weaker=comma_list(allow_weaker),
        ),
        json,
    )


ns = Collection(
    doctor,
    envs,
    journal,
    smoke,
    sync_data,
    sync_storage,
    backup_storage,
    backups,
    verify_backup,
    restore_storage,
    push_migrations,
    migration_status,
    deploy_functions,
    secrets,
    release,
    reset_env,
    refresh_sandbox,
    promote_config,
    backup,
    restore_db,
    drill,
    recover_rows,
    sync_lovable,
    update_lovable,
    status,
    settings,
    promote_settings,
)


def main() -> None:
    """The `supabase-ops` console script: these tasks from any folder (environments.ini is looked up)."""
    program(ns).run()


startup.loaded()
