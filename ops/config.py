"""Load `environments.ini`: environments, per-task settings, and secrets from the environment."""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ops.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SECTIONS = {"project", "sync-data", "storage", "migrations", "functions", "lovable", "backup"}
ENV_KEYS = {"ref", "branch", "frontend", "db_url", "storage_url", "storage_region", "protected"}
SECRET_KEY_PATTERN = re.compile(r"password|passwd|secret|token|access_key|api_key|(^|_)key_id", re.I)
SECRET_VALUE_PATTERN = re.compile(r"sbp_[0-9a-f]{40}|eyJ[A-Za-z0-9_-]{20,}")


@dataclass(frozen=True)
class Environment:
    name: str
    ref: str = ""
    branch: str = ""
    frontend: str = ""
    db_url: str = ""
    storage_url: str = ""
    storage_region: str = "us-east-1"
    protected: bool = False

    @property
    def secret_prefix(self) -> str:
        return "OPS_" + self.name.upper().replace("-", "_")

    @property
    def db_password_var(self) -> str:
        return f"{self.secret_prefix}_DB_PASSWORD"

    @property
    def s3_key_id_var(self) -> str:
        return f"{self.secret_prefix}_S3_ACCESS_KEY_ID"

    @property
    def s3_secret_var(self) -> str:
        return f"{self.secret_prefix}_S3_SECRET_ACCESS_KEY"

    def secret(self, var: str) -> str | None:
        return os.environ.get(var) or None

    def require_db(self) -> str:
        if not self.db_url:
            raise UserError(f"environment '{self.name}' has no db_url: add one to its section")
        return self.db_url

    def require_storage(self) -> str:
        if not self.storage_url:
            raise UserError(f"environment '{self.name}' has no storage_url: add one to its section")
        return self.storage_url


@dataclass(frozen=True)
class SyncDataSettings:
    safe_tables: list[str]
    blocked_tables: list[str]
    export_dir: Path
    natural_keys: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageSettings:
    buckets: list[str]
    backup_dir: Path
    keep: int = 5
    jobs: int = 4


@dataclass(frozen=True)
class Config:
    path: Path
    environments: dict[str, Environment]
    supabase_dir: Path
    sync_data: SyncDataSettings
    storage: StorageSettings
    migrations_all_order: list[str]
    test_first: dict[str, str]
    full_backup_dir: Path
    functions_jobs: int
    lovable: dict[str, str]

    @property
    def root(self) -> Path:
        return self.path.parent

    def env(self, name: str | None) -> Environment:
        if not name:
            raise UserError(f"name an environment; known: {', '.join(self.environments)}")
        if name not in self.environments:
            raise UserError(
                f"unknown environment '{name}'; known: {', '.join(self.environments)} "
                f"(sections of {self.path})"
            )
        return self.environments[name]


def split_list(value: str) -> list[str]:
    """Lists in the file and on the command line: spaces, commas or newlines."""
    return [item for item in re.split(r"[\s,]+", value) if item]


def config_path() -> Path:
    return Path(os.environ.get("OPS_ENVIRONMENTS") or REPO_ROOT / "environments.ini").resolve()


def load(path: Path | str | None = None) -> Config:
    path = Path(path).resolve() if path else config_path()
    if not path.is_file():
        raise UserError(f"environments file not found: {path} (set OPS_ENVIRONMENTS or create it)")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as error:
        raise UserError(f"{path} is malformed: {error.message.splitlines()[0]}") from None
    _refuse_secrets(parser, path)

    def resolve(value: str) -> Path:
        return (path.parent / value).resolve()

    def integer(section: str, key: str, default: int) -> int:
        try:
            return parser.getint(section, key, fallback=default)
        except ValueError:
            raise UserError(f"{path}: [{section}] {key} must be a whole number") from None

    environments = {}
    for name in parser.sections():
        if name in SETTINGS_SECTIONS:
            continue
        section = parser[name]
        unknown = set(section) - ENV_KEYS
        if unknown:
            raise UserError(f"{path}: [{name}] has unknown keys {sorted(unknown)}; allowed: {sorted(ENV_KEYS)}")
        try:
            protected = section.getboolean("protected", fallback=False)
        except ValueError:
            raise UserError(f"{path}: [{name}] protected must be true or false") from None
        environments[name] = Environment(
            name=name,
            ref=section.get("ref", ""),
            branch=section.get("branch", ""),
            frontend=section.get("frontend", ""),
            db_url=section.get("db_url", ""),
            storage_url=section.get("storage_url", ""),
            storage_region=section.get("storage_region", "us-east-1"),
            protected=protected,
        )

    sync = parser["sync-data"] if parser.has_section("sync-data") else {}
    natural_keys = {
        key.removeprefix("key."): split_list(value) for key, value in dict(sync).items() if key.startswith("key.")
    }
    storage = parser["storage"] if parser.has_section("storage") else {}
    return Config(
        path=path,
        environments=environments,
        supabase_dir=resolve(parser.get("project", "supabase_dir", fallback="supabase")),
        sync_data=SyncDataSettings(
            safe_tables=split_list(sync.get("safe_tables", "")),
            blocked_tables=split_list(sync.get("blocked_tables", "")),
            export_dir=resolve(sync.get("export_dir", "tmp/data-sync")),
            natural_keys=natural_keys,
        ),
        storage=StorageSettings(
            buckets=split_list(storage.get("buckets", "")),
            backup_dir=resolve(storage.get("backup_dir", "backups/storage")),
            keep=integer("storage", "keep", 5),
            jobs=integer("storage", "jobs", 4),
        ),
        migrations_all_order=split_list(parser.get("migrations", "all_order", fallback="preprod prod sandbox")),
        full_backup_dir=resolve(parser.get("backup", "dir", fallback="backups/full")),
        test_first=_pairs(parser.get("migrations", "test_first", fallback="prod:preprod"), path),
        functions_jobs=integer("functions", "jobs", 4),
        lovable=dict(parser["lovable"]) if parser.has_section("lovable") else {},
    )


def _pairs(value: str, path: Path) -> dict[str, str]:
    pairs = {}
    for item in split_list(value):
        target, _, first = item.partition(":")
        if not first:
            raise UserError(f"{path}: [migrations] test_first takes env:tested_first pairs, e.g. prod:preprod")
        pairs[target] = first
    return pairs


def _refuse_secrets(parser: configparser.ConfigParser, path: Path) -> None:
    for section in parser.sections():
        for key, value in parser[section].items():
            if key.startswith("key."):
                continue  # natural keys of tables, not credentials
            if SECRET_KEY_PATTERN.search(key) and value.strip():
                raise UserError(
                    f"{path}: [{section}] {key} holds a secret; remove it and set it in the "
                    f"environment instead (e.g. OPS_{section.upper().replace('-', '_')}_DB_PASSWORD)"
                )
            if SECRET_VALUE_PATTERN.search(value) or _url_has_password(value):
                raise UserError(
                    f"{path}: [{section}] {key} contains a password or token; keep the file "
                    f"free of secrets and set OPS_{section.upper().replace('-', '_')}_* variables instead"
                )


def _url_has_password(value: str) -> bool:
    if "://" not in value:
        return False
    try:
        return urlsplit(value.strip()).password is not None
    except ValueError:
        return False
