"""What `inv backup` adds to a storage backup: config export, database dump, secret names, code commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ops import dburl, secrets, sync_data
from ops import git as gitrepo
from ops.childenv import child_env
from ops.config import Config, Environment
from ops.db import password_for
from ops.digest import file_digest
from ops.errors import OperationFailed, last_line
from ops.functions import functions_dir, local_functions


def write_artifacts(config: Config, env: Environment, folder: Path) -> dict[str, str]:
    """Write the non-storage parts of a backup into `folder`; return relative path -> sha256."""
    written = [
        *export_config(config, env, folder / "config"),
        dump_database(env, folder / "database.dump", config.backup.schemas),
        list_secrets(config, env, folder / "secrets.json"),
        functions_commit(config, folder / "functions.json"),
    ]
    return {str(path.relative_to(folder)): file_digest(path) for path in written}


def export_config(config: Config, env: Environment, folder: Path) -> list[Path]:
    tables = sync_data.select_tables(config.sync_data, None)
    sync_data.export_env(config, env, tables, folder)
    return sorted(p for p in folder.rglob("*") if p.is_file())


def pg_dump_binary() -> str:
    found = os.environ.get("OPS_PG_DUMP") or shutil.which("pg_dump")
    if not found:
        raise OperationFailed("pg_dump not found: install PostgreSQL client tools or set OPS_PG_DUMP")
    return found


def dump_database(env: Environment, path: Path, schemas: list[str]) -> Path:
    """`pg_dump` of the app's schemas in custom format (restore with pg_restore); the password only in PGPASSWORD.

    Only `[backup] schemas` (default: public): on hosted Supabase the platform's schemas
    belong to other roles, and the connecting `postgres` role may not read them.
    """
    pg_dump = pg_dump_binary()
    environ = child_env("postgres", {"PGPASSWORD": password_for(env)})
    result = subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", *(f"--schema={schema}" for schema in schemas),
         "--file", str(path), "--dbname", dburl.for_pg_dump(env)],
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        # pg_dump prints its error, then details ("Query was: ..."): the error is what a person needs.
        reason = next((line for line in result.stderr.splitlines() if "error:" in line), "")
        reason = reason or last_line(result.stderr, f"exit {result.returncode}")
        raise OperationFailed(f"{env.name}: pg_dump failed: {reason}")
    return path


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
