"""`inv backup`: a storage backup of an environment plus its config export, database dump, secret names and
functions commit, sealed as one; optionally copied off-site."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ops import git as gitrepo
from ops.backup.buckets import backup_env
from ops.backup.dumpfacts import dump_facts
from ops.config import BackupTarget, Config, Environment, RetentionPolicy
from ops.db import dump as dbdump
from ops.digest import file_digest
from ops.errors import UserError
from ops.platform import secrets
from ops.platform.functions import functions_dir, local_functions
from ops.sync import plan as sync_plan
from ops.sync import source as sync_source

# What write_artifacts puts beside the buckets' folders in a backup: a bucket of one of these names would
# share its path with the dump or the config export, one file written over the other.
ARTIFACT_NAMES = ("config", "database", "secrets.json", "functions.json")


def refuse_artifact_buckets(buckets: list[str]) -> None:
    """Refuse (exit 2, before anything is written) a bucket whose folder in a backup is one of its own files."""
    clash = [bucket for bucket in buckets if bucket in ARTIFACT_NAMES]
    if clash:
        raise UserError(
            f"[storage] buckets names {', '.join(clash)}: a full backup keeps its own "
            f"{', '.join(ARTIFACT_NAMES)} at the top of the backup, beside the buckets, so one would be written "
            "over the other; rename the bucket (`inv backup-storage`, which writes no dump, still backs it up)"
        )


def write_artifacts(config: Config, env: Environment, folder: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Write the non-storage parts of a backup into `folder`; return relative path -> sha256, and the
    dump's row counts and sequence values for the manifest (retention compares the rows)."""
    written = [
        *export_config(config, env, folder / "config"),
        *dbdump.dump_database(env, folder / "database"),
        list_secrets(config, env, folder / "secrets.json"),
        functions_commit(config, folder / "functions.json"),
    ]
    artifacts = {str(path.relative_to(folder)): file_digest(path) for path in written}
    return artifacts, dump_facts(folder / "database" / "data.sql")


def export_config(config: Config, env: Environment, folder: Path) -> list[Path]:
    tables = sync_plan.select_tables(config.sync_data, None)
    sync_source.export_env(config, env, tables, folder)
    return sorted(p for p in folder.rglob("*") if p.is_file())


def list_secrets(config: Config, env: Environment, path: Path) -> Path:
    found = secrets.list_secrets(config, env)
    record = {
        "env": env.name,
        "ref": env.ref,
        "names": sorted(found.digests),
        "digests": found.digests,
        "error": found.error,
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def functions_commit(config: Config, path: Path) -> Path:
    folder = functions_dir(config)

    def git(*args: str) -> str:
        return gitrepo.out(config.supabase_dir.parent, *args)

    record = {
        "commit": git("log", "-1", "--format=%H", "--", str(folder)) or None,
        "head": git("rev-parse", "HEAD") or None,
        "uncommitted_changes": bool(git("status", "--porcelain", "--", str(folder))),
        "functions": local_functions(config),
    }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def back_up(
    config: Config,
    env: Environment,
    policy: RetentionPolicy,
    target: BackupTarget | None,
    straight_to: BackupTarget | None = None,
) -> str:
    """One environment's full backup into its series (beside the storage-only ones), or straight to a backup
    target (`straight_to`, no local series); what was made, in a line."""
    if straight_to:
        from ops.backup.remote import backup_to

        straight = backup_to(
            config,
            env,
            straight_to,
            config.storage.buckets,
            policy,
            full=True,
            extras=lambda folder: write_artifacts(config, env, folder),
        )
        detail = f"{straight.path} ({straight.objects} objects, {straight.sent()})"
        return detail + (f"; no old remote backup removed: {straight.kept_because}" if straight.kept_because else "")
    made = backup_env(
        config,
        env,
        config.storage.buckets,
        policy,
        series=config.backup.dir / env.folder,
        extras=lambda folder: write_artifacts(config, env, folder),
    )
    detail = f"{made.path} ({made.objects} objects, {made.downloaded} downloaded, {made.linked} linked)"
    if made.kept_because:
        detail += f"; no old backup removed: {made.kept_because}"
    if target:
        from ops.backup import offsite

        sent = offsite.copy_backup(config, target, Path(made.path), env=env, full=True, policy=policy)
        detail += (
            f"; off-site at {target.name}: {sent.remote} ({sent.uploaded} uploaded, "
            f"{sent.copied_server_side} copied server-side)"
        )
    return detail
