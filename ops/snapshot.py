"""What `inv backup` adds to a storage backup: config export, database dump, secret names, code commit."""

from __future__ import annotations

import json
from pathlib import Path

from ops import dbdump, secrets, sync_plan, sync_source
from ops import git as gitrepo
from ops.config import Config, Environment
from ops.digest import file_digest
from ops.functions import functions_dir, local_functions


def write_artifacts(config: Config, env: Environment, folder: Path) -> dict[str, str]:
    """Write the non-storage parts of a backup into `folder`; return relative path -> sha256."""
    written = [
        *export_config(config, env, folder / "config"),
        *dbdump.dump_database(env, folder / "database"),
        list_secrets(config, env, folder / "secrets.json"),
        functions_commit(config, folder / "functions.json"),
    ]
    return {str(path.relative_to(folder)): file_digest(path) for path in written}


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
