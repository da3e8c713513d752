"""Operations for one app on several Supabase projects: `inv --list` shows them all.

Each task turns its flags into arguments (ops.tasking's helpers), calls one function in ops and
returns its result; the task class (ops.tasking.OpsTask) prints it, journals the run and turns a
failure into one line and its exit code.
"""

from __future__ import annotations

from ops import startup

startup.loading()  # before Invoke and the tasks load: a Ctrl-C then ends quietly, no traceback

from typing import TYPE_CHECKING

from invoke import Collection, Context

from ops import cli
from ops.tasking import LIST_HELP, RETENTION_HELP, comma_list, load_config, number_flag, ops_task, retention_flags

if TYPE_CHECKING:
    from ops.invocation import CommandLine
    from ops.report import Renderable

cli.serve_inv()  # under `inv`: the same help and flag errors as supabase-ops (see ops/cli.py)


@ops_task(
    help={
        "env": "environment, a comma list, or 'all' (default: prod)",
        "json": "print the checks as JSON",
        "verbose": "also show how long each check took",
    }
)
def doctor(c: Context, env: str | None = None, verbose: bool = False, json: bool = False) -> Renderable:
    """Run first on a new machine: config, database (TLS, role, pooler), pg_dump, storage, API token, CLI."""
    from ops.views import doctor

    return doctor.doctor(load_config(check_refs=False), env, verbose)


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
) -> Renderable:
    """Who changed which environment, when, with what result (the ops journal, newest first)."""
    from ops import journal

    return journal.read(
        load_config(check_refs=False).journal_path,
        env=env,
        task=task,
        since=since,
        last=number_flag(last, "--last"),
    )


@ops_task(help={"env": "environment (default: preprod)", "json": "print the checks as JSON"})
def smoke(c: Context, env: str | None = None, json: bool = False) -> Renderable:
    """Is the environment serving? Its frontend and every edge function over HTTP, with latency."""
    from ops.views import smoke

    return smoke.smoke(load_config(), env)


@ops_task(help={"json": "print the environments as JSON"})
def envs(c: Context, json: bool = False) -> Renderable:
    """List the environments, their projects and which secrets are set (never their values)."""
    from ops.views import envs as environments

    return environments.environments_report(load_config())


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
) -> Renderable:
    """Sync config tables between environments with idempotent upserts (never user data)."""
    from ops.sync import data as sync_data

    if diff:
        from ops.sync import diff as sync_diff

        return sync_diff.diff_task(
            load_config(),
            source=from_,
            target=to,
            tables=comma_list(tables) or None,
            prune=prune,
            others=dry_run or export_only or bool(from_export),
        )
    return sync_data.sync_data(
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
) -> Renderable:
    """Copy new and changed storage objects between environments (incremental, parallel)."""
    from ops.storage import sync as storage

    return storage.sync_storage(
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
) -> Renderable:
    """Back up storage buckets to backups/storage/<env>-<ref>/<time>/ (incremental, keeps 5)."""
    from ops.backup import remote

    return remote.backup_storage(
        load_config(),
        env=env,
        buckets=comma_list(buckets) or None,
        keep=retention_flags(keep, keep_last, keep_daily, keep_weekly, keep_monthly),
        copy_to=copy_to,
        to=to,
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
) -> Renderable:
    """List an environment's backups (here or on a backup target) and the retention rule that keeps each."""
    from ops.backup import series

    return series.list_backups(
        load_config(),
        env=env,
        target=target,
        keep=retention_flags(keep, keep_last, keep_daily, keep_weekly, keep_monthly),
    )


@ops_task(
    help={
        "backup": "a backup folder, 'latest' (default), or TARGET:latest / TARGET:<time> for an off-site copy",
        "env": "environment for 'latest' (default: prod)",
        "json": "print the result as JSON",
    }
)
def verify_backup(c: Context, backup: str = "latest", env: str | None = None, json: bool = False) -> Renderable:
    """Re-hash every file of a backup against its manifest: missing, corrupt and extra files."""
    from ops.backup import verify

    return verify.verify_backup(load_config(), backup=backup, env=env)


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
) -> Renderable:
    """Upload a storage backup back into an environment (only what differs)."""
    from ops.backup import restore

    return restore.restore_storage(
        load_config(),
        target=to,
        backup=backup,
        env=env,
        buckets=comma_list(buckets) or None,
        dry_run=dry_run,
        yes=yes,
        command=command_line,
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
) -> Renderable:
    """Apply pending migrations with the Supabase CLI (preprod first; 'all' stops at the first failure)."""
    from ops.platform import migrations
    from ops.report import progress

    return migrations.push_migrations(
        load_config(),
        env=env,
        dry_run=dry_run,
        yes=yes,
        include_all=include_all,
        skip_preprod_check=skip_preprod_check,
        show=progress if json else print,
    )


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
) -> Renderable:
    """Show every local migration as applied/pending per environment, plus remote-only versions."""
    from ops.platform import migrations

    return migrations.migration_status(load_config(), comma_list((env or []) + (envs or [])) or None)


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
) -> Renderable:
    """Deploy edge functions with --no-verify-jwt; failed ones are named with a re-run command."""
    from ops.platform import functions

    return functions.deploy_functions(
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


@ops_task(
    help={
        "env": "environment, a comma list or 'all' for a matrix of them (default: prod)",
        "json": "print names and digests as JSON",
    }
)
def secrets(c: Context, env: str | None = None, json: bool = False) -> Renderable:
    """List secret names and digests per environment (never values); 'all' shows what each env lacks."""
    from ops.platform import secrets

    return secrets.secrets_report(load_config(), env)


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
) -> Renderable:
    """After merging a PR: push migrations, deploy the named or changed functions, smoke-check."""
    from ops import workflows

    return workflows.release(
        load_config(),
        env=env,
        only=comma_list(only) or None,
        changed_since=changed_since,
        dry_run=dry_run,
        yes=yes,
        resume_at=resume_at,
        smoke=smoke,
        command=command_line,
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
) -> Renderable:
    """Bring an environment in line with another: migrations, config data, storage, functions."""
    from ops import workflows

    return workflows.reset_env(
        load_config(),
        source=from_,
        target=to,
        dry_run=dry_run,
        yes=yes,
        resume_at=resume_at,
        command=command_line,
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
) -> Renderable:
    """Bring the Lovable sandbox up to date: code, migrations, config data, logos and email assets."""
    from ops import workflows

    return workflows.refresh_sandbox(
        load_config(),
        source=from_,
        sandbox=sandbox,
        dry_run=dry_run,
        yes=yes,
        resume_at=resume_at,
        command=command_line,
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
) -> Renderable:
    """After prototyping in Lovable: config tables sandbox -> preprod, then (confirmed) preprod -> prod."""
    from ops import workflows

    return workflows.promote_config(
        load_config(),
        tables=comma_list(tables) or None,
        sandbox=sandbox,
        preprod=preprod,
        prod=prod,
        dry_run=dry_run,
        yes=yes,
        resume_at=resume_at,
        command=command_line,
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
) -> Renderable:
    """The backup routine in one snapshot: storage, config export, pg_dump, secret names, functions commit."""
    from ops import workflows

    return workflows.full_backup(
        load_config(),
        env=env,
        keep=retention_flags(keep, keep_last, keep_daily, keep_weekly, keep_monthly),
        resume_at=resume_at,
        copy_to=copy_to,
        to=to,
        command=command_line,
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
) -> Renderable:
    """Recover rows (user tables too) from a PITR-restored project into the live one, with an undo."""
    from ops.sync import recover

    return recover.recover_rows(
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
) -> Renderable:
    """Restore a snapshot's database (roles, schema, every row incl. auth users) into an empty project."""
    from ops.backup import restore_db as restoring

    return restoring.restore_db(load_config(), backup=backup, target=to, env=env, force=force, yes=yes)


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
) -> Renderable:
    """Restore a backup into a scratch environment and check it: rows, sequences, every object re-hashed."""
    from ops.backup import drill

    return drill.drill(load_config(), env=env, backup=backup, into=into, yes=yes)


@ops_task(
    journal=True,
    help={"diff_only": "only show which files Lovable changed; merge nothing", "json": "print the result as JSON"},
)
def sync_lovable(c: Context, diff_only: bool = False, json: bool = False) -> Renderable:
    """Fetch the Lovable sandbox's branch; show what changed, or merge it into the current branch."""
    from ops.platform import lovable

    return lovable.sync_lovable(load_config(), diff_only=diff_only)


@ops_task(journal=True, help={"dry_run": "show what would be merged; push nothing", "json": "print the result as JSON"})
def update_lovable(c: Context, dry_run: bool = False, json: bool = False) -> Renderable:
    """Merge our main into the Lovable branch and push it (never a force-push)."""
    from ops.platform import lovable

    return lovable.update_lovable(load_config(), dry_run=dry_run)


@ops_task(
    iterable=["env", "envs"],
    help={
        "env": f"environments ({LIST_HELP}), or 'all'; the first is the reference (default: prod,preprod,sandbox)",
        "envs": "the same as --env (the older spelling)",
        "json": "print everything as JSON",
    },
)
def status(c: Context, env: list[str] | None = None, envs: list[str] | None = None, json: bool = False) -> Renderable:
    """Do my environments match? Migrations, config tables, buckets, functions and secrets side by side."""
    from ops.views import status

    return status.status(load_config(), comma_list((env or []) + (envs or [])) or None)


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
) -> Renderable:
    """Project settings side by side (auth, API, storage, database, pooler, network, SSL, ...): what drifts?"""
    from ops.settings import drift as settings

    return settings.settings(
        load_config(), comma_list(env) or None, only=comma_list(only) or None, show_all=all_, check=check
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
) -> Renderable:
    """Copy project settings to another environment: only what differs, never weaker unless named, undoable."""
    from ops.settings import promote as settings_promote

    return settings_promote.promote_settings(
        load_config(),
        source=from_,
        from_export=from_export,
        target=to,
        only=comma_list(only) or None,
        dry_run=dry_run,
        yes=yes,
        allow_weaker=comma_list(allow_weaker),
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
    cli.run(ns)


startup.loaded()
