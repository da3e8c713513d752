"""Operations for one app on several Supabase projects: `inv --list` shows them all."""

from __future__ import annotations

import functools

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


def whole(value, flag: str) -> int | None:
    """A whole-number flag; a clear exit 2 instead of a traceback for anything else."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Exit(f"error: {flag} takes a whole number, not {value!r}", code=2) from None


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




@ops_task(
    iterable=["buckets"],
    help={
        "from": "source environment",
        "to": "target environment",
        "buckets": f"only these buckets ({LIST_HELP}); default: all of [storage] buckets",
        "dry_run": "list both sides and print the plan; copy nothing",
        "jobs": "parallel copies (default: [storage] jobs, 4)",
        "delete": "remove target objects absent in the source, after every copy succeeded",
        "force": "copy every object, even identical ones",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def sync_storage(c, from_=None, to=None, buckets=None, dry_run=False, jobs=None, delete=False, force=False,
                 json=False, yes=False):
    """Copy new and changed storage objects between environments (incremental, parallel)."""
    from ops import storage

    result = storage.sync_storage(load_config(), source=from_, target=to, buckets=names(buckets) or None,
                                  dry_run=dry_run, jobs=whole(jobs, "--jobs"), delete=delete, force=force,
                                  yes=yes)
    headers, rows = storage.summary_rows(result)
    emit(result.to_dict(), headers, rows, json, f"{'planned' if dry_run else 'done'} in {result.seconds:.1f}s")
    if result.failed:
        raise Exit(storage.failure_report(result.failures, result.rerun), code=1)


@ops_task(
    iterable=["buckets"],
    help={
        "env": "environment to back up, or 'all' (default: prod)",
        "buckets": f"only these buckets ({LIST_HELP})",
        "keep": "complete backups to keep per environment (default: [storage] keep, 5)",
        "json": "print the summary as JSON",
    },
)
def backup_storage(c, env=None, buckets=None, keep=None, json=False):
    """Back up storage buckets to backups/storage/<env>-<ref>/<time>/ (incremental, keeps 5)."""
    from ops import backup

    results = backup.backup_storage(load_config(), env=env, buckets=names(buckets) or None,
                                    keep=whole(keep, "--keep"))
    rows = [[r.env, r.objects, r.bytes, r.downloaded, r.linked, len(r.removed), r.path] for r in results]
    emit({"backups": [vars(r) for r in results]},
         ["env", "objects", "bytes", "downloaded", "hard-linked", "old removed", "path"], rows, json)


@ops_task(help={"backup": "a backup folder, or 'latest' (default)", "env": "environment for 'latest' (default: prod)",
                "json": "print the result as JSON"})
def verify_backup(c, backup="latest", env=None, json=False):
    """Re-hash every file of a backup against its manifest: missing, corrupt and extra files."""
    from ops import backup as backups

    result = backups.verify_backup(load_config(), backup=backup, env=env)
    rows = [["checked", result.checked], ["missing", len(result.missing)], ["corrupt", len(result.corrupt)],
            ["extra", len(result.extra)]]
    problems = [f"{kind}: {item}" for kind in ("missing", "corrupt", "extra") for item in getattr(result, kind)]
    emit(result.to_dict(), ["backup", result.path], rows, json, "\n".join(problems[:50]))
    if not result.ok:
        raise Exit(f"backup {result.path} does not match its manifest", code=1)


@ops_task(
    iterable=["buckets"],
    help={
        "to": "environment to restore into",
        "backup": "a backup folder, or 'latest' (default)",
        "env": "whose backup 'latest' means (default: prod)",
        "buckets": f"only these buckets ({LIST_HELP})",
        "dry_run": "print what would be uploaded; upload nothing",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def restore_storage(c, to=None, backup="latest", env=None, buckets=None, dry_run=False, json=False, yes=False):
    """Upload a storage backup back into an environment (only what differs)."""
    from ops import backup as backups
    from ops import storage

    result = backups.restore_storage(load_config(), target=to, backup=backup, env=env,
                                     buckets=names(buckets) or None, dry_run=dry_run, yes=yes)
    rows = [list(b.values()) for b in result.buckets]
    emit(result.to_dict(), list(result.buckets[0]) if result.buckets else ["bucket"], rows, json,
         f"from {result.backup}")
    if result.failed:
        raise Exit(storage.failure_report(result.failures, f"inv restore-storage --to {to} --backup {result.backup}"),
                   code=1)


@ops_task(
    help={
        "env": "environment, or 'all' for [migrations] all_order (default: prod)",
        "dry_run": "list the pending migrations; apply nothing",
        "include_all": "also apply pending migrations older than the newest applied one",
        "skip_preprod_check": "push to prod even if preprod lacks a migration (critical rule 2)",
        "json": "print the summary as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def push_migrations(c, env=None, dry_run=False, include_all=False, skip_preprod_check=False, json=False, yes=False):
    """Apply pending migrations with the Supabase CLI (preprod first; 'all' stops at the first failure)."""
    from ops import migrations
    from ops.report import progress

    result = migrations.push_migrations(load_config(), env=env, dry_run=dry_run, yes=yes, include_all=include_all,
                                        skip_preprod_check=skip_preprod_check, show=progress if json else print)
    emit(result.to_dict(), ["env", "status", "applied", "pending", "detail"],
         [[r.env, r.status, r.applied, r.pending, r.detail] for r in result.rows], json)
    if result.failed:
        raise Exit("a migration push failed: fix the migration and re-run (applied ones are tracked)", code=1)


@ops_task(iterable=["envs"], help={"envs": f"environments to compare ({LIST_HELP}); default: prod,preprod,sandbox",
                                   "json": "print the table as JSON"})
def migration_status(c, envs=None, json=False):
    """Show every local migration as applied/pending per environment, plus remote-only versions."""
    from ops import migrations

    result = migrations.migration_status(load_config(), names(envs) or None)
    headers = ["version", "name", *result.envs]
    emit(result.to_dict(), headers, [[row.get(h, "") for h in headers] for row in result.rows], json,
         "\n".join(f"{env}: unreachable ({why})" for env, why in result.unreachable.items()))


@ops_task(
    iterable=["only"],
    help={
        "env": "environment (default: prod)",
        "only": f"only these functions ({LIST_HELP})",
        "changed_since": "only functions changed since this git ref (including via _shared imports)",
        "dry_run": "print what would deploy; run no deploy",
        "jobs": "parallel deploys (default: [functions] jobs, 4)",
        "json": "print the result as JSON",
        "yes": "do not ask before writing to a protected environment",
    },
)
def deploy_functions(c, env=None, only=None, changed_since=None, dry_run=False, jobs=None, json=False, yes=False):
    """Deploy edge functions with --no-verify-jwt; failed ones are named with a re-run command."""
    from ops import functions

    result = functions.deploy_functions(load_config(), env=env, only=names(only) or None,
                                        changed_since=changed_since, dry_run=dry_run,
                                        jobs=whole(jobs, "--jobs"), yes=yes)
    if dry_run:
        rows = [[name, "would deploy"] for name in result.functions]
    else:
        rows = [[name, "failed" if name in result.failed else "deployed (retried)" if name in result.retried
                 else "deployed"] for name in result.functions]
    emit(result.to_dict(), ["function", f"{result.env} ({result.ref})"], rows, json,
         f"{len(result.functions)} function(s)" if result.functions else "nothing to deploy")
    if result.failed:
        raise Exit(f"{len(result.failed)} function(s) failed: {', '.join(result.failed)}\nre-run: {result.rerun}",
                   code=1)


@ops_task(help={"env": "environment, or 'all' for a matrix of every environment (default: prod)",
                "json": "print names and digests as JSON"})
def secrets(c, env=None, json=False):
    """List secret names and digests per environment (never values); 'all' shows what each env lacks."""
    from ops import secrets as ops_secrets

    report = ops_secrets.secrets_report(load_config(), env)
    headers, rows = report.rows()
    emit(report.to_dict(), headers, rows, json,
         "\n".join(f"{e.env}: unreachable ({e.error})" for e in report.envs if e.error))


def finish(result, json: bool) -> None:
    """Print a workflow's step summary; exit with its code and the command that resumes it."""
    emit(result.to_dict(), ["step", "status", "detail"], [[s.step, s.status, s.detail] for s in result.steps], json,
         f"resume with: {result.resume}" if result.resume else "")
    if result.exit_code:
        raise Exit(f"{result.workflow} stopped at a failed step; resume with: {result.resume}", code=result.exit_code)


RESUME_HELP = "skip the steps before this one (the command printed after a failure)"


@ops_task(
    iterable=["only"],
    help={"env": "environment (default: preprod)", "only": f"only these functions ({LIST_HELP})",
          "changed_since": "only functions changed since this git ref", "dry_run": "show what each step would do",
          "yes": "do not ask before writing to a protected environment", "resume_at": RESUME_HELP,
          "json": "print the step summary as JSON"},
)
def release(c, env=None, only=None, changed_since=None, dry_run=False, yes=False, resume_at=None, json=False):
    """After merging a PR: push migrations, then deploy the named or changed functions."""
    from ops import workflows

    finish(workflows.release(load_config(), env=env, only=names(only) or None, changed_since=changed_since,
                             dry_run=dry_run, yes=yes, resume_at=resume_at), json)


@ops_task(help={"from": "environment to copy from (default: prod)", "to": "environment to reset (default: preprod)",
                "dry_run": "show what each step would do", "yes": "do not ask before writing to a protected environment",
                "resume_at": RESUME_HELP, "json": "print the step summary as JSON"})
def reset_env(c, from_=None, to=None, dry_run=False, yes=False, resume_at=None, json=False):
    """Bring an environment in line with another: migrations, config data, storage, functions."""
    from ops import workflows

    finish(workflows.reset_env(load_config(), source=from_, target=to, dry_run=dry_run, yes=yes,
                               resume_at=resume_at), json)


@ops_task(help={"from": "environment to copy config and files from (default: prod)",
                "sandbox": "the sandbox environment (default: sandbox)", "dry_run": "show what each step would do",
                "yes": "do not ask before writing to a protected environment", "resume_at": RESUME_HELP,
                "json": "print the step summary as JSON"})
def refresh_sandbox(c, from_=None, sandbox=None, dry_run=False, yes=False, resume_at=None, json=False):
    """Bring the Lovable sandbox up to date: code, migrations, config data, logos and email assets."""
    from ops import workflows

    finish(workflows.refresh_sandbox(load_config(), source=from_, sandbox=sandbox, dry_run=dry_run, yes=yes,
                                     resume_at=resume_at), json)


@ops_task(
    iterable=["tables"],
    help={"tables": f"config tables to promote ({LIST_HELP})", "sandbox": "default: sandbox",
          "preprod": "default: preprod", "prod": "default: prod", "dry_run": "show what each step would do",
          "yes": "do not ask before writing to prod", "resume_at": RESUME_HELP, "json": "print the step summary as JSON"},
)
def promote_config(c, tables=None, sandbox=None, preprod=None, prod=None, dry_run=False, yes=False, resume_at=None,
                   json=False):
    """After prototyping in Lovable: config tables sandbox -> preprod, then (confirmed) preprod -> prod."""
    from ops import workflows

    finish(workflows.promote_config(load_config(), tables=names(tables) or None, sandbox=sandbox, preprod=preprod,
                                    prod=prod, dry_run=dry_run, yes=yes, resume_at=resume_at), json)


@ops_task(help={"env": "environment, or 'all' (default: prod)", "keep": "snapshots to keep per environment (default 5)",
                "resume_at": RESUME_HELP, "json": "print the step summary as JSON"})
def backup(c, env=None, keep=None, resume_at=None, json=False):
    """The backup routine in one snapshot: storage, config export, pg_dump, secret names, functions commit."""
    from ops import workflows

    finish(workflows.full_backup(load_config(), env=env, keep=whole(keep, "--keep"), resume_at=resume_at), json)


@ops_task(help={"diff_only": "only show which files Lovable changed; merge nothing",
                "json": "print the result as JSON"})
def sync_lovable(c, diff_only=False, json=False):
    """Fetch the Lovable sandbox's branch; show what changed, or merge it into the current branch."""
    from ops import lovable

    result = lovable.sync_lovable(load_config(), diff_only=diff_only)
    emit(result.to_dict(), ["status", "path", "added", "deleted"],
         [[f["status"], f["path"], f["added"], f["deleted"]] for f in result.files], json, result.summary)


@ops_task(help={"dry_run": "show what would be merged; push nothing", "json": "print the result as JSON"})
def update_lovable(c, dry_run=False, json=False):
    """Merge our main into the Lovable branch and push it (never a force-push)."""
    from ops import lovable

    result = lovable.update_lovable(load_config(), dry_run=dry_run)
    emit(result.to_dict(), ["status", "path", "added", "deleted"],
         [[f["status"], f["path"], f["added"], f["deleted"]] for f in result.files], json, result.summary)


@ops_task(iterable=["envs"], help={"envs": f"environments ({LIST_HELP}); the first is the reference "
                                           "(default: prod,preprod,sandbox)", "json": "print everything as JSON"})
def status(c, envs=None, json=False):
    """Do my environments match? Migrations, config tables, buckets, functions and secrets side by side."""
    from ops import status as ops_status
    from ops.report import table

    report = ops_status.status(load_config(), names(envs) or None)
    if json:
        from ops.report import as_json

        print(as_json(report.to_dict()))
        return
    for headers, rows in (report.overview(), report.table_rows(), report.bucket_rows()):
        if rows:
            print(table(rows, headers) + "\n")
    for env in report.envs:
        for part, why in env.errors.items():
            print(f"{env.env}: {part} unreachable: {why}")


ns = Collection(envs, sync_data, sync_storage, backup_storage, verify_backup, restore_storage,
                push_migrations, migration_status, deploy_functions, secrets,
                release, reset_env, refresh_sandbox, promote_config, backup, sync_lovable, update_lovable, status)
