"""Project settings of several environments side by side: read, normalised, compared (`inv settings`).

Each area is read through the Management API (buckets from storage.buckets) and flattened to
`key -> value`. What always differs between two projects is not a setting and is left out or
made alike: the project's own ref (in a connection string, a host, a URL) becomes `<ref>`;
ids, versions, timestamps and the platform's own keys (PostgREST's jwt_secret) are dropped.
Secret fields come back hashed with the project's ref as key, so they are kept only as
set/unset and never compared; `[status] per_env` keys differ by design. Neither counts as drift.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ops import report
from ops.config import Config, Environment
from ops.errors import NotConfigured, OperationFailed, OpsError, UserError, first_line
from ops.platform import management_api
from ops.report import Result, Table

AREAS = ("auth", "api", "storage", "database", "pooler", "network", "ssl", "buckets", "functions", "secrets")
API_PATHS = {
    "auth": "config/auth",
    "api": "postgrest",
    "storage": "config/storage",
    "database": "config/database/postgres",
    "pooler": "config/database/pooler",
    "network": "network-restrictions",
    "ssl": "ssl-enforcement",
}
# Fields the platform returns as an HMAC of the value (the CLI's `Secret` fields), and API keys.
AUTH_SECRET = re.compile(
    r"^(external_\w+_secret|smtp_pass|security_captcha_secret|hook_\w+_secrets|nimbus_oauth_client_secret"
    r"|sms_twilio_auth_token|sms_twilio_verify_auth_token|sms_messagebird_access_key|sms_textlocal_api_key"
    r"|sms_vonage_api_key|sms_vonage_api_secret)$"
)
# Per area: keys that name the project or the platform's own state, never a setting.
NOT_SETTINGS = {
    "api": {"jwt_secret"},
    "storage": {"migrationVersion", "databasePoolMode", "capabilities.list_v2", "capabilities.iceberg_catalog"},
    "pooler": {"identifier", "db_user", "db_host", "connection_string", "connectionString"},
    "network": {"status", "applied_at", "updated_at", "entitlement"},
    "ssl": {"appliedSuccessfully"},
}
PLATFORM_SECRETS = {"SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL"}
OWN_REF = "<ref>"
PLATFORM_NOTE = "per environment (set by the platform)"


@dataclass
class EnvSettings:
    env: str
    ref: str
    raw: dict[str, Any] = field(default_factory=dict)  # area -> the API's answer, secret fields removed
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # area -> key -> comparable value
    secrets: dict[str, dict[str, bool]] = field(default_factory=dict)  # area -> secret field -> set?
    errors: dict[str, str] = field(default_factory=dict)  # area -> why it could not be read
    skipped: dict[str, str] = field(default_factory=dict)  # area -> what to configure to read it


def choose_areas(only: list[str] | None) -> list[str]:
    if not only:
        return list(AREAS)
    unknown = [a for a in only if a not in AREAS]
    if unknown:
        raise UserError(f"--only: no area {', '.join(unknown)}; areas: {','.join(AREAS)}")
    return [a for a in AREAS if a in only]


def own_ref(value: Any, ref: str) -> Any:
    """The project's own ref anywhere in a value becomes `<ref>`, so two projects alike compare equal."""
    if isinstance(value, str) and ref:
        return value.replace(ref, OWN_REF)
    if isinstance(value, list):
        return [own_ref(v, ref) for v in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for name, item in value.items() for k, v in flatten(item, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): value}


def public_raw(area: str, answer: Any) -> Any:
    """The answer as saved and compared: secret fields and the platform's own keys left out."""
    if area == "auth" and isinstance(answer, dict):
        return {k: v for k, v in answer.items() if not AUTH_SECRET.match(k)}
    if area == "api" and isinstance(answer, dict):
        return {k: v for k, v in answer.items() if k not in NOT_SETTINGS["api"]}
    return answer


def normalise(area: str, answer: Any, ref: str) -> tuple[dict[str, Any], dict[str, bool]]:
    """(comparable values, secret field -> set) of one area's API answer."""
    secrets: dict[str, bool] = {}
    if area == "auth":
        secrets = {k: bool(v) for k, v in answer.items() if AUTH_SECRET.match(k)}
        flat = {k: v for k, v in answer.items() if not AUTH_SECRET.match(k)}
    elif area == "pooler":
        entries = answer if isinstance(answer, list) else [answer]
        primary = next((e for e in entries if e.get("database_type") == "PRIMARY"), entries[0] if entries else {})
        flat = dict(primary)
    elif area == "network":
        config = answer.get("config") or {}
        flat = {name: sorted(config.get(name) or []) for name in ("dbAllowedCidrs", "dbAllowedCidrsV6")}
    elif area == "functions":
        flat = {}
        for function in answer:
            flat[f"{function['slug']}.ezbr_sha256"] = function.get("ezbr_sha256")
            flat[f"{function['slug']}.verify_jwt"] = function.get("verify_jwt")
    elif area == "secrets":
        flat = {item["name"]: item.get("value", "") for item in answer}
    else:
        flat = flatten(answer)
    dropped = NOT_SETTINGS.get(area, set())
    return {k: own_ref(v, ref) for k, v in sorted(flat.items()) if k not in dropped}, secrets


def need_token() -> None:
    """Every area but buckets is read through the API: without a token there is nothing to compare."""
    try:
        management_api.token()
    except NotConfigured as error:
        raise UserError(f"{error}: {error.fix}") from None


def read_api_area(env: Environment, area: str) -> Any:
    if area in API_PATHS:
        return management_api.call("GET", env.ref, API_PATHS[area])
    if area == "functions":
        return management_api.call("GET", env.ref, "functions")
    return management_api.call("GET", env.ref, "secrets")


def read_buckets(env: Environment) -> dict[str, Any]:
    from ops.views.status import bucket_settings

    return {name.removeprefix("bucket "): value for name, value in bucket_settings(env).items()}


def read_env(env: Environment, areas: list[str]) -> EnvSettings:
    found = EnvSettings(env.name, env.ref)
    for area in areas:
        try:
            if area == "buckets":
                if not env.db_url:
                    raise NotConfigured("no db_url")
                found.values[area] = read_buckets(env)
                continue
            if not env.ref:
                raise NotConfigured("no project ref")
            answer = read_api_area(env, area)
            found.raw[area] = public_raw(area, answer)
            found.values[area], secrets = normalise(area, answer, env.ref)
            if secrets:
                found.secrets[area] = secrets
        except NotConfigured as error:
            found.skipped[area] = first_line(error)
        except Exception as error:  # noqa: BLE001 -- one unreadable area must not hide the others
            found.errors[area] = first_line(error)
    return found


def read_settings(envs: list[Environment], areas: list[str]) -> list[EnvSettings]:
    with ThreadPoolExecutor(max_workers=len(envs) or 1) as pool:
        return list(pool.map(lambda e: read_env(e, areas), envs))


# ---------------------------------------------------------------- comparing


def is_per_env(area: str, key: str, per_env: list[str]) -> bool:
    return key in per_env or f"{area}.{key}" in per_env


def shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Row:
    setting: str  # area.key
    cells: list[str]  # one per environment
    note: str  # "drift", "same", "per environment", "secret: ...", "values per environment"
    drift: bool


def compare(found: list[EnvSettings], areas: list[str], per_env: list[str]) -> list[Row]:
    """Every setting of every area, a row each, with whether it counts as drift."""
    rows: list[Row] = []
    for area in areas:
        readers = [e for e in found if area in e.values]
        keys = sorted({k for e in readers for k in e.values[area]})
        for key in keys:
            present = [e.values[area].get(key, ...) for e in readers]
            differ = len({json.dumps(v, sort_keys=True, default=str) for v in present}) > 1 and len(readers) > 1
            cells = [
                cell(e, area, "(absent)" if key not in e.values.get(area, {}) else display(area, e.values[area][key]))
                for e in found
            ]
            if area == "secrets" and differ:
                missing = any(v is ... for v in present)
                if key in PLATFORM_SECRETS:
                    note, drift = PLATFORM_NOTE, False
                elif missing:
                    note, drift = "drift (a secret name missing)", True
                else:
                    note, drift = "values per environment (digests differ)", False
            elif differ and is_per_env(area, key, per_env):
                note, drift = "per environment", False
            else:
                note, drift = ("drift" if differ else "same"), differ
            rows.append(Row(f"{area}.{key}", cells, note, drift))
        secret_keys = sorted({k for e in found for k in e.secrets.get(area, {})})
        for key in secret_keys:
            states = [e.secrets[area].get(key) for e in readers if area in e.secrets]
            cells = [cell(e, area, "set" if e.secrets.get(area, {}).get(key) else "unset") for e in found]
            differ = len(set(states)) > 1
            note = "secret: not comparable across projects" + ("; set in some only" if differ else "")
            rows.append(Row(f"{area}.{key}", cells, note, False))
    return rows


def cell(e: EnvSettings, area: str, value: str) -> str:
    return "unknown" if area in e.errors else "not configured" if area in e.skipped else value


def display(area: str, value: Any) -> str:
    if area in ("functions", "secrets") and isinstance(value, str) and len(value) > 12:
        return value[:12]  # a digest: its start tells them apart
    return shown(value)


@dataclass
class SettingsReport(Result):
    envs: list[EnvSettings]
    areas: list[str]
    rows_found: list[Row]
    show_all: bool = False
    check: bool = False

    @property
    def drifted(self) -> list[Row]:
        return [r for r in self.rows_found if r.drift]

    def visible(self) -> list[Row]:
        if self.show_all:
            return self.rows_found
        # Differences only, less the platform's own secrets; a secret field only when it is set in some
        # environments and not in others.
        return [
            r
            for r in self.rows_found
            if r.note not in ("same", PLATFORM_NOTE) and (not r.note.startswith("secret") or "some" in r.note)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "envs": [
                {"env": e.env, "ref": e.ref, "errors": e.errors, "skipped": e.skipped, "read": sorted(e.values)}
                for e in self.envs
            ],
            "areas": self.areas,
            "drift": [r.setting for r in self.drifted],
            "settings": [
                {
                    "setting": r.setting,
                    "note": r.note,
                    "drift": r.drift,
                    "values": dict(zip(self.names, r.cells, strict=True)),
                }
                for r in self.visible()
            ],
            "incomplete": self.unread(),
        }

    @property
    def names(self) -> list[str]:
        return [e.env for e in self.envs]

    def rows(self) -> Table:
        return Table(["setting", *self.names, "note"], [[r.setting, *r.cells, r.note] for r in self.visible()])

    def footer(self) -> str:
        lines = [f"{e.env}: {area} not compared: {why}" for e in self.envs for area, why in e.skipped.items()]
        lines += [f"{e.env}: {area} could not be read: {why}" for e in self.envs for area, why in e.errors.items()]
        per_env = sum(1 for r in self.rows_found if r.note.startswith(("per environment", "values per")))
        secrets = len({r.setting for r in self.rows_found if r.note.startswith("secret")})
        drifted = self.drifted
        areas = sorted({r.setting.split(".", 1)[0] for r in drifted})
        lines.append(
            (f"drift: {len(drifted)} setting(s) differ ({', '.join(areas)})" if drifted else "no drift")
            + f"; {per_env} per environment, {secrets} secret field(s) listed by name only"
            + ("" if self.show_all else " (--all shows every setting)")
        )
        incomplete = report.unread_line(self.envs)[1]
        return "\n".join([*lines, incomplete] if incomplete else lines)

    def unread(self) -> list[str]:
        return report.unread_line(self.envs)[0]

    def failure(self) -> OpsError | None:
        unread = self.unread()
        if unread:
            return OperationFailed(f"settings are incomplete: could not read {', '.join(unread)}")
        if self.check and self.drifted:
            return OperationFailed(f"--check: {len(self.drifted)} setting(s) drift between {', '.join(self.names)}")
        return None


def settings(
    config: Config,
    envs: list[str] | None,
    *,
    only: list[str] | None = None,
    show_all: bool = False,
    check: bool = False,
) -> SettingsReport:
    chosen = config.envs_named(envs, default=config.default_envs())
    areas = choose_areas(only)
    if any(a != "buckets" for a in areas):
        need_token()
    found = read_settings(chosen, areas)
    return SettingsReport(found, areas, compare(found, areas, config.per_env_settings), show_all, check)
