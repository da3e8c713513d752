"""`inv status`: do my environments match? Migrations, config tables, buckets, functions, secrets.

Environments are read concurrently; one that cannot be reached is shown as such and the
others still print. Config tables are compared by a hash computed in the database, so no
rows travel.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from ops import report
from ops.backup import freshness
from ops.backup.freshness import Freshness
from ops.config import Config, Environment
from ops.db import catalog as pgcatalog
from ops.db.connection import connect
from ops.errors import NotConfigured, OperationFailed, OpsError, first_line
from ops.platform import migrations, supabase_cli
from ops.platform.functions import local_functions
from ops.platform.secrets import list_secrets
from ops.report import Result, Table
from ops.s3 import objects as s3objects
from ops.sync import plan as sync_plan
from ops.sync import sql as sync_sql


@dataclass
class EnvStatus:
    env: str
    errors: dict[str, str] = field(default_factory=dict)  # part -> why it could not be read
    skipped: dict[str, str] = field(default_factory=dict)  # part -> what to configure to compare it
    applied: int = 0
    pending: int = 0
    remote_only: int = 0
    tables: dict[str, tuple[int, str] | None] = field(default_factory=dict)  # table -> (rows, hash)
    buckets: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # bucket -> (objects, bytes)
    functions: list[str] | None = None
    secrets: list[str] | None = None
    settings: dict[str, object] = field(default_factory=dict)  # "bucket avatars: public", "auth jwt_exp" -> value


# Auth settings status may show: named one by one (or as flags and limits), because the config holds
# secrets under names no pattern foresees (`sms_test_otp`: phone numbers with fixed login codes).
SHOWN_AUTH_SETTINGS = frozenset(
    {
        "site_url",
        "uri_allow_list",
        "disable_signup",
        "jwt_exp",
        "mailer_autoconfirm",
        "mailer_otp_exp",
        "mailer_otp_length",
        "mailer_secure_email_change_enabled",
        "password_min_length",
        "password_required_characters",
        "password_hibp_enabled",
        "refresh_token_rotation_enabled",
        "security_refresh_token_reuse_interval",
        "security_update_password_require_reauthentication",
        "security_manual_linking_enabled",
        "security_captcha_enabled",
        "security_captcha_provider",
        "sessions_timebox",
        "sessions_inactivity_timeout",
        "sessions_single_per_user",
        "sms_autoconfirm",
        "sms_otp_exp",
        "sms_otp_length",
        "sms_provider",
        "smtp_host",
        "smtp_port",
        "smtp_admin_email",
        "smtp_sender_name",
        "smtp_max_frequency",
        "mfa_max_enrolled_factors",
    }
)
SHOWN_AUTH_PATTERN = re.compile(
    r"external_[a-z0-9]+_enabled|mfa_[a-z0-9_]+_(?:enroll|verify)_enabled|rate_limit_[a-z_]+"
)
RUN_KEY = os.urandom(32)  # digests of hidden settings compare within this run only: no guessing their values


class Concealed(str):
    """A hidden setting's value: a keyed digest, equal exactly when the values are equal; shown as "differs"."""


def conceal(value: object) -> Concealed:
    import hashlib
    import hmac
    import json

    text = json.dumps(value, sort_keys=True, default=str).encode()
    return Concealed("hidden " + hmac.new(RUN_KEY, text, hashlib.sha256).hexdigest()[:16])


def shown_auth(key: str, value: object) -> object:
    """An auth setting's value as status may hold it: itself when allow-listed, else its keyed digest."""
    return value if key in SHOWN_AUTH_SETTINGS or SHOWN_AUTH_PATTERN.fullmatch(key) else conceal(value)


# storage.buckets' columns as the drift table names them ("bucket avatars: public").
BUCKET_FIELDS = {"public": "public", "file_size_limit": "file size limit", "allowed_mime_types": "allowed MIME types"}
BUCKET_LABEL = re.compile(r"bucket (.+): (" + "|".join(map(re.escape, BUCKET_FIELDS.values())) + r")$")


def bucket_settings(env: Environment) -> dict[str, object]:
    """Each bucket's settings as storage.buckets holds them (managed by migrations: a difference is drift)."""
    with connect(env, autocommit=True, application="ops status", timeout=5) as conn:
        rows = conn.execute("SELECT id, public, file_size_limit, allowed_mime_types FROM storage.buckets").fetchall()
    found: dict[str, object] = {}
    for bucket, public, limit, mime in rows:
        values = {"public": public, "file_size_limit": limit, "allowed_mime_types": sorted(mime) if mime else None}
        found.update({f"bucket {bucket}: {BUCKET_FIELDS[name]}": value for name, value in values.items()})
    return found


def structured(settings: dict[str, object]) -> dict[str, dict]:
    """The settings as JSON reads them: `{"buckets": {"avatars": {"public": false, ...}}, "auth": {...}}`."""
    fields = {label: name for name, label in BUCKET_FIELDS.items()}
    found: dict[str, dict] = {"buckets": {}, "auth": {}}
    for label, value in settings.items():
        if match := BUCKET_LABEL.match(label):
            found["buckets"].setdefault(match[1], {})[fields[match[2]]] = value
        else:
            found["auth"][label.removeprefix("auth ")] = value
    return found


def auth_settings(env: Environment) -> dict[str, object]:
    """The project's auth config from the Management API (where the CLI's profile points); only allow-listed
    settings by value, every other one by a keyed digest."""
    import httpx

    token = os.environ.get("SUPABASE_ACCESS_TOKEN")
    if not token:
        raise NotConfigured("no SUPABASE_ACCESS_TOKEN")
    url = f"{supabase_cli.api_url()}/v1/projects/{env.ref}/config/auth"
    try:
        answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as error:
        raise OpsError(f"cannot reach the Management API at {supabase_cli.api_url()}: {error}") from None
    if answer.status_code != 200:
        raise OpsError(f"GET /v1/projects/{env.ref}/config/auth answered {answer.status_code}")
    return {f"auth {key}": shown_auth(key, value) for key, value in sorted(answer.json().items())}


def table_fingerprints(config: Config, env: Environment) -> dict[str, tuple[int, str] | None]:
    tables = sync_plan.select_tables(config.sync_data, None)
    found: dict[str, tuple[int, str] | None] = {}
    with connect(env, autocommit=True, application="ops status", timeout=5) as conn, conn.transaction():
        conn.execute(sync_sql.rendering_sql())  # values render alike in every environment compared
        for name in tables:
            table = pgcatalog.read_table(conn, name)
            if table is None:
                found[name] = None
                continue
            columns = sorted(c.name for c in table.writable)  # by name: column order may differ between envs
            row = conn.execute(sync_sql.content_hash_sql(table, columns)).fetchall()[0]
            found[name] = (row[0], row[1])
    return found


def bucket_sizes(config: Config, env: Environment) -> dict[str, tuple[int, int] | None]:
    s3 = s3objects.client(env)
    sizes: dict[str, tuple[int, int] | None] = {}
    for bucket in config.storage.buckets:
        if not s3objects.bucket_exists(s3, bucket):
            sizes[bucket] = None
            continue
        objects = s3objects.list_objects(s3, bucket)
        sizes[bucket] = (len(objects), sum(o.size for o in objects.values()))
    return sizes


def deployed_functions(config: Config, env: Environment) -> list[str]:
    listed = supabase_cli.list_functions(config, env)
    if listed.versions is None:
        problem = listed.result.token_problem == "missing"
        raise (NotConfigured if problem else OpsError)(
            listed.result.reason if not listed.result.ok else "the CLI's function list is not the JSON expected"
        )
    return sorted(listed.versions)


def read_env(config: Config, env: Environment) -> EnvStatus:
    status = EnvStatus(env.name)
    local = migrations.local_migrations(config)

    def attempt(part: str, work: Callable[[], object]) -> None:
        try:
            work()
        except NotConfigured as error:
            status.skipped[part] = f"{first_line(error)}"
        except Exception as error:  # noqa: BLE001 -- one unreadable part must not hide the others
            status.errors[part] = first_line(error)

    def read_migrations() -> None:
        state = migrations.remote_state(env, timeout=5)
        plan = migrations.plan_env(local, state, env)
        status.applied, status.pending, status.remote_only = (
            len(state.applied) - len(plan.remote_only),
            len(plan.pending),
            len(plan.remote_only),
        )

    def read_secrets() -> None:
        found = list_secrets(config, env)
        if found.error:
            raise (NotConfigured if supabase_cli.token_problem(found.error) == "missing" else OpsError)(found.error)
        status.secrets = sorted(found.digests)

    if env.db_url:
        attempt("migrations", read_migrations)
        if "migrations" not in status.errors:
            attempt("tables", lambda: status.tables.update(table_fingerprints(config, env)))
        else:  # the same database: its tables are as unknown as its migrations
            status.errors["tables"] = status.errors["migrations"]
    else:
        status.skipped["migrations"] = status.skipped["tables"] = "no db_url"
    if env.storage_url:
        attempt("storage", lambda: status.buckets.update(bucket_sizes(config, env)))
    else:
        status.skipped["storage"] = "no storage_url"
    if env.db_url and "migrations" not in status.errors:
        attempt("bucket settings", lambda: status.settings.update(bucket_settings(env)))
    if env.ref:
        attempt("functions", lambda: setattr(status, "functions", deployed_functions(config, env)))
        attempt("secrets", read_secrets)
        attempt("auth settings", lambda: status.settings.update(auth_settings(env)))
    return status


@dataclass
class StatusReport(Result):
    envs: list[EnvStatus]
    local_functions: list[str]
    per_env: list[str] = field(default_factory=list)  # auth settings that differ by design
    backups: list[Freshness] = field(default_factory=list)  # newest backup and good drill per environment
    drill_max_age_days: int = 8

    def to_dict(self) -> dict:
        drifted, per_env = self.drift()
        return {
            "envs": [asdict(e) | {"settings": structured(e.settings)} for e in self.envs],
            "local_functions": self.local_functions,
            "settings_drift": drifted,
            "settings_per_env": per_env,
            "backups": [asdict(f) for f in self.backups],
        }

    def rows(self) -> list[Table]:
        return [
            self.overview(),
            self.table_rows(),
            self.bucket_rows(),
            self.drift_rows(),
            freshness.table(self.backups, datetime.now(UTC)),
        ]

    def drift(self) -> tuple[list[str], list[str]]:
        """Settings that differ between the environments read: (drift, per environment by design)."""
        read = [e for e in self.envs if e.settings]
        names = sorted({name for e in read for name in e.settings})
        differing = [n for n in names if len({repr(e.settings.get(n)) for e in read}) > 1] if len(read) > 1 else []
        per_env = [n for n in differing if n.removeprefix("auth ") in self.per_env]
        return [n for n in differing if n not in per_env], per_env

    def drift_rows(self) -> Table:
        drifted, per_env = self.drift()
        rows = [[name, *[self.setting(e, name) for e in self.envs]] for name in drifted]
        rows += [[f"{name} (per environment)", *[self.setting(e, name) for e in self.envs]] for name in per_env]
        return Table(["setting that differs", *[e.env for e in self.envs]], rows)

    @staticmethod
    def setting(e: EnvStatus, name: str) -> str:
        if not e.settings:
            return "unknown"
        if name not in e.settings:
            return "(absent)"
        value = e.settings[name]
        if isinstance(value, Concealed):
            return "differs"
        return "null" if value is None else ", ".join(value) if isinstance(value, list) else str(value)

    def footer(self) -> str:
        lines = [f"{env.env}: {part} not compared: {why}" for env in self.envs for part, why in env.skipped.items()]
        lines += [
            f"{env.env}: {part} could not be read: {why}" for env in self.envs for part, why in env.errors.items()
        ]
        lines += freshness.warnings(self.backups, self.drill_max_age_days, datetime.now(UTC))
        drifted, _ = self.drift()
        if drifted:
            lines.append(
                f"settings drift: {len(drifted)} setting(s) differ between environments (above); bucket "
                "settings come from migrations, auth settings from the dashboard or the Management API; "
                "`inv settings` compares every area (API, storage, database, pooler, network, SSL, ...)"
            )
        incomplete = report.unread_line(self.envs)[1]
        return "\n".join([*lines, incomplete] if incomplete else lines)

    def unread(self) -> list[str]:
        return report.unread_line(self.envs)[0]

    def failure(self) -> OpsError | None:
        unread = self.unread()
        return OperationFailed(f"status is incomplete: could not read {', '.join(unread)}") if unread else None

    @staticmethod
    def cell(e: EnvStatus, part: str) -> str:
        """'unknown' or 'not configured' when the part was not read; '' when it was."""
        if part in e.errors:
            return "unknown"
        if part in e.skipped:
            return "not configured"
        return ""

    def overview(self) -> Table:
        base = self.envs[0]
        all_secrets = {name for e in self.envs for name in (e.secrets or [])}
        rows = []
        for e in self.envs:
            migrations_cell = self.cell(e, "migrations") or (
                f"{e.applied} applied, {e.pending} pending"
                + (f", {e.remote_only} remote-only" if e.remote_only else "")
            )
            if self.cell(e, "tables"):
                tables_cell = self.cell(e, "tables")
            elif e is base:
                tables_cell = "reference"
            elif self.cell(base, "tables"):
                tables_cell = f"unknown ({base.env} not read)"
            else:
                absent = [t for t in e.tables if e.tables[t] is None]  # missing on both sides is no match
                differ = [t for t in e.tables if e.tables[t] is not None and e.tables[t] != base.tables.get(t)]
                tables_cell = (
                    ", ".join(
                        part
                        for part in (
                            f"{len(differ)} of {len(e.tables)} differ" if differ else "",
                            f"{len(absent)} missing" if absent else "",
                        )
                        if part
                    )
                    or "all match"
                )
            if self.cell(e, "storage"):
                storage_cell = self.cell(e, "storage")
            else:
                present = [v for v in e.buckets.values() if v]
                storage_cell = f"{sum(v[0] for v in present)} objects, {sum(v[1] for v in present):,} bytes"
            functions_cell = self.cell(e, "functions") or self.functions_cell(e, base)
            lacking = sorted(all_secrets - set(e.secrets or []))
            secrets_cell = self.cell(e, "secrets") or (
                "unknown"
                if e.secrets is None
                else f"{len(e.secrets)} set" + (f", lacks {', '.join(lacking)}" if lacking else "")
            )
            rows.append([e.env, migrations_cell, tables_cell, storage_cell, functions_cell, secrets_cell])
        return Table(["env", "migrations", f"config tables vs {base.env}", "storage", "functions", "secrets"], rows)

    @staticmethod
    def functions_cell(e: EnvStatus, base: EnvStatus) -> str:
        """The reference's deployed functions are the reference: the others are compared with them."""
        if e.functions is None:
            return "unknown"
        if e is base or base.functions is None:
            return f"{len(e.functions)} deployed" + (" (reference)" if e is base else "")
        lacks, extra = sorted(set(base.functions) - set(e.functions)), sorted(set(e.functions) - set(base.functions))
        notes = ([f"lacks {', '.join(lacks)}"] if lacks else []) + ([f"also {', '.join(extra)}"] if extra else [])
        return f"{len(e.functions)} deployed, " + ("; ".join(notes) if notes else f"same as {base.env}")

    def table_rows(self) -> Table:
        base = self.envs[0]
        names = sorted({t for e in self.envs for t in e.tables})
        rows = []
        for name in names:
            row = [name]
            for e in self.envs:
                value = e.tables.get(name)
                if self.cell(e, "tables"):
                    row.append(self.cell(e, "tables"))
                elif value is None:
                    row.append("missing")
                else:
                    same = e is base or value == base.tables.get(name)
                    row.append(f"{value[0]:,}" + ("" if same else " (differs)"))
            rows.append(row)
        return Table(["table", *[e.env for e in self.envs]], rows if names else [])

    def bucket_rows(self) -> Table:
        names = list(dict.fromkeys(b for e in self.envs for b in e.buckets))
        rows = []
        for name in names:
            if all(e.buckets.get(name) == (0, 0) for e in self.envs):
                continue  # empty everywhere: nothing to compare
            row = [name]
            for e in self.envs:
                value = e.buckets.get(name)
                row.append(self.cell(e, "storage") or "missing" if value is None else f"{value[0]} / {value[1]:,} B")
            rows.append(row)
        return Table(["bucket", *[e.env for e in self.envs]], rows)


def status(config: Config, envs: list[str] | None) -> StatusReport:
    chosen = config.envs_named(envs, default=config.default_envs())
    with ThreadPoolExecutor(max_workers=len(chosen) or 1) as pool:
        found = list(pool.map(lambda e: read_env(config, e), chosen))
    return StatusReport(
        found,
        local_functions(config),
        config.per_env_settings,
        freshness.read(config, chosen),
        config.backup.drill_max_age_days,
    )
