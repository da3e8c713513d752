"""Load `environments.ini`: environments, typed settings per section, and secrets from the environment.

Every section has a fixed set of keys; an unknown key (a typo) is refused with the list of
known ones, so a misspelt setting never silently falls back to a default. The file never
holds a secret: passwords and keys come from `OPS_<ENV>_*` variables.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ops import conninfo
from ops.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_KEYS = {
    "ref",
    "branch",
    "frontend",
    "db_url",
    "storage_url",
    "storage_region",
    "protected",
    "region",
    "ssl_root_cert",
    "insecure_tls",
    "functions_url",
    "bucket",
    "prefix",
    "restored_from",
    "scratch",
}
TARGET_KEYS = {"storage_url", "storage_region", "bucket", "prefix"}  # a section with `bucket` is a backup target
SETTINGS_KEYS: dict[str, set[str]] = {
    "project": {"supabase_dir"},
    "sync-data": {"export_dir", "safe_tables", "blocked_tables"},  # plus key.<table>
    "storage": {"buckets", "backup_dir", "keep", "jobs"},
    "migrations": {"all_order", "test_first"},
    "functions": {"jobs"},
    "backup": {"dir", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "drill_max_age_days"},
    "lovable": {"remote", "branch", "paths", "ours"},
    "workflows": {"prod", "preprod", "sandbox", "sandbox_buckets"},
    "journal": {"path"},
    "smoke": {"urls", "timeout"},  # plus function.<slug>
    "status": {"per_env"},
}
PREFIXED_KEYS = {"sync-data": "key.", "smoke": "function."}
SECRET_KEY_PATTERN = re.compile(r"password|passwd|secret|token|access_key|api_key|(^|_)key_id", re.I)
# Access tokens, JWTs (anon/service keys), Supabase's new secret keys, and credentials in a URL's query.
SECRET_VALUE_PATTERN = re.compile(
    r"sbp_[0-9a-f]{40}|eyJ[A-Za-z0-9_-]{20,}|sb_secret_[A-Za-z0-9_-]+"
    r"|[?&](?:token|access_token|apikey|api_key|key|secret|signature|sig|x-amz-signature|x-amz-credential"
    r"|x-amz-security-token)=[^&#\s]",
    re.I,
)
CONNINFO_SECRETS = ("password", "sslpassword")
T = TypeVar("T")


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
    region: str = ""  # the project's AWS region: gives the session-pooler db_url when none is written
    ssl_root_cert: str = ""  # a CA file (the Supabase CA from the dashboard): verify-full instead of require
    insecure_tls: bool = False  # allow sslmode=disable/allow/prefer to a remote host (never for hosted Supabase)
    functions_url: str = ""  # where edge functions answer (default https://<ref>.supabase.co/functions/v1)
    restored_from: str = ""  # a PITR-restored project: the environment it was restored from (recover-rows)
    scratch: bool = False  # a spare project `inv drill` may wipe and restore a backup into

    @property
    def secret_prefix(self) -> str:
        return secret_prefix(self.name)

    @property
    def folder(self) -> str:
        """The name of its backup series and pool, here and at a target: one per environment (see
        `_refuse_ambiguous_names`: a ref is letters and digits, so the last hyphen splits name from ref)."""
        return f"{self.name}-{self.ref}"

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
class BackupTarget:
    """Where backups are copied off-site: a bucket (and prefix) at any S3 endpoint, keys as any section's."""

    name: str
    bucket: str
    prefix: str
    store: Environment  # the endpoint, region and key variables, as an environment's storage has them


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
class MigrationSettings:
    all_order: list[str]
    test_first: dict[str, str]  # env -> the env that must have every migration first


@dataclass(frozen=True)
class RetentionPolicy:
    """How many backups a series keeps (restic's `forget --keep-*`): the newest `last`, and the newest
    of each of the last `daily` days, `weekly` weeks and `monthly` months that have one."""

    last: int = 5
    daily: int = 0
    weekly: int = 0
    monthly: int = 0


@dataclass(frozen=True)
class BackupSettings:
    dir: Path
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    drill_max_age_days: int = 8  # a weekly drill, a day's grace: older is a warning in `inv status`


@dataclass(frozen=True)
class LovableSettings:
    remote: str = ""
    branch: str = ""
    paths: list[str] = field(default_factory=list)
    ours: str = "main"


@dataclass(frozen=True)
class SmokeSettings:
    urls: list[str] = field(default_factory=list)
    timeout: float = 10.0
    functions: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # slug -> method, path, status


@dataclass(frozen=True)
class WorkflowSettings:
    """The names the workflows use when none is given on the command line."""

    prod: str = "prod"
    preprod: str = "preprod"
    sandbox: str = "sandbox"
    sandbox_buckets: list[str] = field(default_factory=lambda: ["program-logos", "email-assets"])

    @property
    def defaults(self) -> list[str]:
        return [self.prod, self.preprod, self.sandbox]


@dataclass(frozen=True)
class Config:
    path: Path
    environments: dict[str, Environment]
    supabase_dir: Path
    sync_data: SyncDataSettings
    storage: StorageSettings
    migrations: MigrationSettings
    functions_jobs: int
    backup: BackupSettings
    lovable: LovableSettings
    workflows: WorkflowSettings
    journal_path: Path
    smoke: SmokeSettings
    backup_targets: dict[str, BackupTarget] = field(default_factory=dict)
    per_env_settings: list[str] = field(default_factory=lambda: ["site_url", "uri_allow_list"])

    @property
    def root(self) -> Path:
        return self.path.parent

    def env(self, name: str | None) -> Environment:
        if not name:
            raise UserError(f"name an environment; known: {', '.join(self.environments)}")
        if name not in self.environments:
            raise UserError(
                f"unknown environment '{name}'; known: {', '.join(self.environments)} (sections of {self.path})"
            )
        return self.environments[name]

    def target(self, name: str) -> BackupTarget:
        if name not in self.backup_targets:
            known = ", ".join(self.backup_targets) or "none: add a section with storage_url and bucket"
            raise UserError(f"unknown backup target '{name}'; known: {known} (sections of {self.path} with a bucket)")
        return self.backup_targets[name]

    def envs_named(
        self,
        value: str | list[str] | None,
        *,
        default: list[str],
        all_of: list[str] | None = None,
        having: Callable[[Environment], bool] | None = None,
        needs: str = "",
    ) -> list[Environment]:
        """`--env` of a task that reads several: one name, a comma list, or 'all'.

        'all' is `all_of` (default: every section) less those `having` rejects; a list keeps its
        order and names each environment once. Unknown names are refused (exit 2).
        """
        names = split_list(",".join(value) if isinstance(value, list) else value or "") or default
        if names == ["all"]:
            found = [self.environments[n] for n in (all_of or list(self.environments)) if n in self.environments]
            found = [e for e in found if having is None or having(e)]
            if not found:
                raise UserError(f"no environment has {needs or 'what this task needs'}")
            return found
        if "all" in names:
            raise UserError("'all' stands alone: --env all, or a list of names like --env prod,preprod")
        return [self.env(name) for name in dict.fromkeys(names)]

    def default_envs(self) -> list[str]:
        """The workflow environments that exist here, else every environment."""
        return [n for n in self.workflows.defaults if n in self.environments] or list(self.environments)


def session_pooler_url(ref: str, region: str) -> str:
    """Supabase's shared pooler in session mode: IPv4, a whole session, works for every task."""
    return f"postgresql://postgres.{ref}@aws-0-{region}.pooler.supabase.com:5432/postgres"


def functions_url(ref: str) -> str:
    return f"https://{ref}.supabase.co/functions/v1"


def split_list(value: str) -> list[str]:
    """Lists in the file and on the command line: spaces, commas or newlines."""
    return [item for item in re.split(r"[\s,]+", value) if item]


def config_path() -> Path:
    """OPS_ENVIRONMENTS, else the nearest environments.ini from the current folder up (as git finds
    .git). Never the checkout's own file: that one names real projects, so a task run from an
    unrelated folder is refused instead."""
    if os.environ.get("OPS_ENVIRONMENTS"):
        return Path(os.environ["OPS_ENVIRONMENTS"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "environments.ini").is_file():
            return folder / "environments.ini"
    raise UserError(
        f"no environments.ini in {here} or any folder above it: run from your project's folder, "
        "or point at the file with OPS_ENVIRONMENTS=/path/to/environments.ini"
    )


def announce(path: Path) -> None:
    """At a terminal, say which file a task uses when it is not the current folder's."""
    if sys.stderr.isatty() and path.parent != Path.cwd().resolve():
        print(f"using {path}", file=sys.stderr, flush=True)


class _Reader:
    """Typed reads of one file, with errors that name the file, section and key."""

    def __init__(self, parser: configparser.ConfigParser, path: Path) -> None:
        self.parser, self.path = parser, path

    def text(self, section: str, key: str, default: str = "") -> str:
        return self.parser.get(section, key, fallback=default).strip()

    def list(self, section: str, key: str, default: list[str]) -> list[str]:
        value = self.parser.get(section, key, fallback=None)
        return split_list(value) if value is not None else list(default)

    def path_(self, section: str, key: str, default: str) -> Path:
        return (self.path.parent / self.text(section, key, default)).resolve()

    def _typed(self, section: str, key: str, default: T, convert: Callable[[str, str], T], what: str) -> T:
        try:
            return convert(section, key) if self.parser.has_option(section, key) else default
        except ValueError:
            raise UserError(f"{self.path}: [{section}] {key} must be {what}") from None

    def integer(self, section: str, key: str, default: int) -> int:
        return self._typed(section, key, default, self.parser.getint, "a whole number")

    def boolean(self, section: str, key: str, default: bool) -> bool:
        return self._typed(section, key, default, self.parser.getboolean, "true or false")


def load(path: Path | str | None = None, *, check_refs: bool = True) -> Config:
    """The environments file, refused (exit 2) when it is malformed, holds a secret, or (unless
    `check_refs` is off, for `inv doctor` to report it) points a section at another project."""
    path = Path(path).resolve() if path else config_path()
    parser = _parse(path)
    _refuse_secrets(parser, path)  # first: a password under a made-up key is a secret, not a typo
    _refuse_unknown_keys(parser, path)
    _refuse_ambiguous_names(parser, path)
    read = _Reader(parser, path)
    environments, targets = _environments_and_targets(read)
    for environment in environments.values():
        if check_refs:
            check_refs_of(environment, path)
    check_restores(environments, path)
    return Config(
        path=path,
        environments=environments,
        supabase_dir=read.path_("project", "supabase_dir", "supabase"),
        sync_data=_sync_data_settings(read),
        storage=StorageSettings(
            buckets=read.list("storage", "buckets", []),
            backup_dir=read.path_("storage", "backup_dir", "backups/storage"),
            keep=read.integer("storage", "keep", 5),
            jobs=read.integer("storage", "jobs", 4),
        ),
        migrations=MigrationSettings(
            all_order=read.list("migrations", "all_order", ["preprod", "prod", "sandbox"]),
            test_first=_pairs(read.text("migrations", "test_first", "prod:preprod"), path),
        ),
        functions_jobs=read.integer("functions", "jobs", 4),
        backup=_backup_settings(read),
        lovable=LovableSettings(
            remote=read.text("lovable", "remote"),
            branch=read.text("lovable", "branch"),
            paths=read.list("lovable", "paths", []),
            ours=read.text("lovable", "ours", "main"),
        ),
        workflows=WorkflowSettings(
            prod=read.text("workflows", "prod", "prod"),
            preprod=read.text("workflows", "preprod", "preprod"),
            sandbox=read.text("workflows", "sandbox", "sandbox"),
            sandbox_buckets=read.list("workflows", "sandbox_buckets", ["program-logos", "email-assets"]),
        ),
        journal_path=read.path_("journal", "path", "ops-journal.jsonl"),
        backup_targets=targets,
        # Auth settings that differ by design (each environment's own URLs): shown, never called drift.
        per_env_settings=read.list("status", "per_env", ["site_url", "uri_allow_list"]),
        smoke=_smoke_settings(read),
    )


def _parse(path: Path) -> configparser.ConfigParser:
    """The file as INI, or a one-line error saying what to fix (missing, not UTF-8, unreadable, malformed)."""
    if not path.is_file():
        raise UserError(f"environments file not found: {path} (set OPS_ENVIRONMENTS or create it)")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is read as nothing, as it should be.
        parser.read_string(path.read_bytes().decode("utf-8-sig"), source=str(path))
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise UserError(
            f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} on line {line}); "
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except configparser.Error as error:
        raise UserError(f"{path} is malformed: {error.message.splitlines()[0]}") from None
    return parser


def _environments_and_targets(read: _Reader) -> tuple[dict[str, Environment], dict[str, BackupTarget]]:
    """Every section that is not a settings section: a backup target when it names a bucket, else an environment."""
    environments, targets = {}, {}
    for name in read.parser.sections():
        if name in SETTINGS_KEYS:
            continue
        if read.text(name, "bucket"):
            targets[name] = _backup_target(read, name)
        else:
            environments[name] = _environment(read, name)
    return environments, targets


def _backup_target(read: _Reader, name: str) -> BackupTarget:
    extra = sorted(set(read.parser[name]) - TARGET_KEYS)
    if extra:
        raise UserError(
            f"{read.path}: [{name}] has a bucket, so it is a backup target, which takes only "
            f"{', '.join(sorted(TARGET_KEYS))}; remove {', '.join(extra)}"
        )
    store = Environment(
        name=name,
        storage_url=read.text(name, "storage_url"),
        storage_region=read.text(name, "storage_region", "us-east-1"),
    )
    store.require_storage()
    return BackupTarget(name, read.text(name, "bucket"), read.text(name, "prefix").strip("/"), store)


def _environment(read: _Reader, name: str) -> Environment:
    ref, region = read.text(name, "ref"), read.text(name, "region")
    environment = Environment(
        name=name,
        ref=ref,
        branch=read.text(name, "branch"),
        frontend=read.text(name, "frontend"),
        db_url=read.text(name, "db_url") or (session_pooler_url(ref, region) if ref and region else ""),
        storage_url=read.text(name, "storage_url"),
        storage_region=read.text(name, "storage_region", region or "us-east-1"),
        protected=read.boolean(name, "protected", False),
        region=region,
        ssl_root_cert=str(read.path_(name, "ssl_root_cert", "")) if read.text(name, "ssl_root_cert") else "",
        insecure_tls=read.boolean(name, "insecure_tls", False),
        functions_url=read.text(name, "functions_url") or (functions_url(ref) if ref else ""),
        restored_from=read.text(name, "restored_from"),
        scratch=read.boolean(name, "scratch", False),
    )
    if environment.scratch and environment.protected:
        raise UserError(
            f"{read.path}: [{name}] is both scratch (a drill wipes it) and protected; a spare project "
            "is not protected: remove one of the two"
        )
    return environment


def _sync_data_settings(read: _Reader) -> SyncDataSettings:
    sync = dict(read.parser["sync-data"]) if read.parser.has_section("sync-data") else {}
    return SyncDataSettings(
        safe_tables=read.list("sync-data", "safe_tables", []),
        blocked_tables=read.list("sync-data", "blocked_tables", []),
        export_dir=read.path_("sync-data", "export_dir", "tmp/data-sync"),
        natural_keys={k.removeprefix("key."): split_list(v) for k, v in sync.items() if k.startswith("key.")},
    )


def _backup_settings(read: _Reader) -> BackupSettings:
    return BackupSettings(
        dir=read.path_("backup", "dir", "backups/full"),
        # keep_last falls back on [storage] keep, which it replaces.
        retention=RetentionPolicy(
            last=read.integer("backup", "keep_last", read.integer("storage", "keep", 5)),
            daily=read.integer("backup", "keep_daily", 0),
            weekly=read.integer("backup", "keep_weekly", 0),
            monthly=read.integer("backup", "keep_monthly", 0),
        ),
        drill_max_age_days=_positive(
            read.integer("backup", "drill_max_age_days", 8), read.path, "[backup] drill_max_age_days"
        ),
    )


def _smoke_settings(read: _Reader) -> SmokeSettings:
    probes = dict(read.parser["smoke"]) if read.parser.has_section("smoke") else {}
    return SmokeSettings(
        urls=read.list("smoke", "urls", []),
        timeout=float(read.integer("smoke", "timeout", 10)),
        functions={
            k.removeprefix("function."): _function_probe(v, read.path)
            for k, v in probes.items()
            if k.startswith("function.")
        },
    )


def _positive(value: int, path: Path, what: str) -> int:
    if value < 1:
        raise UserError(f"{path}: {what} must be a whole number of 1 or more, not {value}")
    return value


def _function_probe(value: str, path: Path) -> tuple[str, str, int]:
    """`[smoke] function.<slug> = METHOD [/path] STATUS`, e.g. `POST /health 200`."""
    parts = value.split()
    try:
        method, status = parts[0].upper(), int(parts[-1])
    except (IndexError, ValueError):
        raise UserError(
            f"{path}: [smoke] function.<slug> takes METHOD [/path] STATUS, e.g. POST /health 200, not {value!r}"
        ) from None
    return method, parts[1] if len(parts) == 3 else "", status


def _pairs(value: str, path: Path) -> dict[str, str]:
    pairs = {}
    for item in split_list(value):
        target, _, first = item.partition(":")
        if not first:
            raise UserError(f"{path}: [migrations] test_first takes env:tested_first pairs, e.g. prod:preprod")
        pairs[target] = first
    return pairs


def _refuse_unknown_keys(parser: configparser.ConfigParser, path: Path) -> None:
    for section in parser.sections():
        if section not in SETTINGS_KEYS and section.lower() in SETTINGS_KEYS:
            # Read as it is spelled, [Storage] would be an environment and [storage]'s settings the defaults.
            raise UserError(f"{path}: [{section}] is spelled [{section.lower()}] (section names are case-sensitive)")
        known = SETTINGS_KEYS.get(section, ENV_KEYS)
        prefix = PREFIXED_KEYS.get(section)
        unknown = sorted(k for k in parser[section] if k not in known and not (prefix and k.startswith(prefix)))
        if unknown:
            extra = f" and {prefix}<name>" if prefix else ""
            raise UserError(
                f"{path}: [{section}] has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}{extra}"
            )


def secret_prefix(section: str) -> str:
    """Where a section's secrets are read from: OPS_<NAME>_DB_PASSWORD and the like."""
    return "OPS_" + section.upper().replace("-", "_")


SECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
PROJECT_REF = re.compile(r"[a-z0-9]*")
LONGEST_NAME = 63  # name and ref each: `<name>-<ref>+<buckets>` must stay within a file name's 255 bytes


def _refuse_ambiguous_names(parser: configparser.ConfigParser, path: Path) -> None:
    """Names that would share what is each environment's own: its secrets (OPS_<NAME>_...), its backup
    series, pool and lock (`<name>-<ref>`: env `a` with ref `b-c` would be env `a-b` with ref `c`)."""
    by_prefix: dict[str, list[str]] = {}
    for section in parser.sections():
        if section in SETTINGS_KEYS:
            continue
        if not SECTION_NAME.fullmatch(section):
            raise UserError(
                f"{path}: [{section}] is no name a shell can carry in {secret_prefix(section)}_DB_PASSWORD: "
                "name environments and targets with letters, digits, - and _"
            )
        ref = parser.get(section, "ref", fallback="").strip()
        if max(len(section), len(ref)) > LONGEST_NAME:
            raise UserError(
                f"{path}: [{section[:LONGEST_NAME]}{'...' if len(section) > LONGEST_NAME else ''}] has a name or "
                f"ref too long for its backup folder (<name>-<ref>): at most {LONGEST_NAME} characters each"
            )
        if not PROJECT_REF.fullmatch(ref):
            raise UserError(
                f"{path}: [{section}] ref = {ref!r} is no project ref: it is the lower-case letters of the "
                "project's URL (https://<ref>.supabase.co)"
            )
        by_prefix.setdefault(secret_prefix(section), []).append(section)
    for prefix, sections in by_prefix.items():
        if len(sections) > 1:
            raise UserError(
                f"{path}: [{'] and ['.join(sections)}] would both read their secrets from {prefix}_*: "
                "rename one of them"
            )


def _refuse_secrets(parser: configparser.ConfigParser, path: Path) -> None:
    for section in parser.sections():
        prefix = secret_prefix(section)
        for key, value in parser[section].items():
            if key.startswith("key."):
                continue  # natural keys of tables, not credentials
            if SECRET_KEY_PATTERN.search(key) and value.strip():
                raise UserError(
                    f"{path}: [{section}] {key} holds a secret; remove it and set it in the "
                    f"environment instead (e.g. {prefix}_DB_PASSWORD)"
                )
            if key == "db_url" and value.strip():
                found = conninfo_secrets(value.strip(), path, section)
                if found:
                    raise UserError(
                        f"{path}: [{section}] db_url carries a {found}; remove it and set "
                        f"{prefix}_DB_PASSWORD instead (the file must hold no secret)"
                    )
            if SECRET_VALUE_PATTERN.search(value) or _url_has_password(value):
                variable = (
                    f"{prefix}_S3_ACCESS_KEY_ID and {prefix}_S3_SECRET_ACCESS_KEY"
                    if key == "storage_url"
                    else f"{prefix}_*"
                )
                raise UserError(
                    f"{path}: [{section}] {key} contains a password, key or token; keep the file "
                    f"free of secrets and set {variable} instead"
                )


HOSTED_DB_HOST = re.compile(r"db\.([a-z0-9]+)\.supabase\.co$")
HOSTED_POOLER_USER = re.compile(r"[^.]+\.([a-z0-9]+)$")
HOSTED_STORAGE_HOST = re.compile(r"([a-z0-9]+)(?:\.storage)?\.supabase\.co$")


def hosted_refs(env: Environment) -> dict[str, str]:
    """The project refs an environment's hosted URLs point at (direct host, pooler user, storage host)."""
    found: dict[str, str] = {}
    if env.db_url:
        params = conninfo.parse(env.db_url)
        user = params.get("user", "").lower()
        for host in (canonical_host(h) for h in params.get("host", "").split(",")):
            if match := HOSTED_DB_HOST.match(host):
                found["db_url host"] = match[1]
            elif host.endswith(".pooler.supabase.com") and (match := HOSTED_POOLER_USER.match(user)):
                found["db_url user"] = match[1]
    for key, url in (("storage_url", env.storage_url), ("functions_url", env.functions_url)):
        try:
            host = canonical_host(urlsplit(url).hostname or "") if url else ""
        except ValueError:
            continue
        if match := HOSTED_STORAGE_HOST.match(host):
            found[f"{key} host"] = match[1]
    return found


def canonical_host(host: str) -> str:
    """DNS names are case-blind, and a trailing dot names the same host: compare them as one."""
    return host.strip().lower().rstrip(".")


def check_refs_of(env: Environment, path: Path) -> None:
    """A section pointing at another project (a copy-paste away from writing prod) is refused."""
    for where, ref in hosted_refs(env).items():
        if ref != env.ref:
            raise UserError(
                f"{path}: [{env.name}] {where} points at project {ref}, but its ref is "
                f"{env.ref or '(none)'}; fix the section so both name the same project"
            )


def db_endpoint(env: Environment) -> tuple[tuple[str, ...], str, str, str] | None:
    """The database a section's db_url reaches, as comparable as libpq's fields allow: the addresses
    (else hosts) connected to, the port, the database, and the user where a shared pooler tells
    projects apart by it."""
    if not env.db_url:
        return None
    try:
        params = conninfo.parse(env.db_url)
    except conninfo.InvalidConninfo:
        return None  # reported where the URL is used
    hosts = [canonical_host(h) for h in params.get("host", "").split(",") if h.strip()]
    places = [a.strip() for a in params.get("hostaddr", "").split(",") if a.strip()] or hosts
    user = params.get("user", "")
    pooled = any(h.endswith(".pooler.supabase.com") for h in hosts)
    return tuple(sorted(places)), params.get("port") or "5432", params.get("dbname") or user, user if pooled else ""


def check_restores(environments: dict[str, Environment], path: Path) -> None:
    """`restored_from` makes a section the source of recover-rows: it must be a project of its own,
    never another environment's ref or database under a second name."""
    for env in environments.values():
        if not env.restored_from:
            continue
        if env.restored_from == env.name or env.restored_from not in environments:
            others = ", ".join(name for name in environments if name != env.name) or "none"
            raise UserError(
                f"{path}: [{env.name}] restored_from = {env.restored_from} names no other environment (known: {others})"
            )
        endpoint = db_endpoint(env)
        for other in environments.values():
            if other is env:
                continue
            if env.ref and env.ref == other.ref:
                same = f"the ref of [{other.name}] ({env.ref})"
            elif endpoint is not None and endpoint == db_endpoint(other):
                same = f"a db_url that reaches the database of [{other.name}]"
            else:
                continue
            raise UserError(
                f"{path}: [{env.name}] has restored_from = {env.restored_from} but {same}: a restore is a "
                "project of its own; give the section the restored project's ref and db_url"
            )


def conninfo_secrets(db_url: str, path: Path, section: str) -> str:
    """Which secret a libpq connection string carries ('' if none), read as libpq reads it."""
    try:
        params = conninfo.parse(db_url)
    except conninfo.InvalidConninfo as error:
        raise UserError(f"{path}: [{section}] db_url is {error}") from None
    return next((name for name in CONNINFO_SECRETS if params.get(name)), "")


def _url_has_password(value: str) -> bool:
    if "://" not in value:
        return False
    try:
        parts = urlsplit(value.strip())
        return parts.password is not None or (parts.scheme.startswith("http") and parts.username is not None)
    except ValueError:
        return False
