"""The project settings endpoints of the Management API stand-in, per project, as strict as the platform.

Field names, types and enums come from the Supabase CLI's generated API types and recorded
responses (`mgmt_auth.json` holds the auth config's); ranges are the published API's. A body
with an unknown field, a wrong type or a value out of range is a 400 and changes nothing.
Secret fields are stored as given and answered as the platform answers them: an HMAC-SHA256
of the value keyed by the project's ref (what the CLI compares its own hash with).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

_AUTH = json.loads((Path(__file__).with_name("mgmt_auth.json")).read_text(encoding="utf-8"))
AUTH_DEFAULTS: dict[str, Any] = _AUTH["auth_defaults"]
AUTH_UPDATE_FIELDS: dict[str, Any] = _AUTH["auth_update_fields"]  # name -> "boolean"/"integer"/... or an enum
AUTH_SECRET = re.compile(
    r"^(external_\w+_secret|smtp_pass|security_captcha_secret|hook_\w+_secrets|nimbus_oauth_client_secret"
    r"|sms_twilio_auth_token|sms_twilio_verify_auth_token|sms_messagebird_access_key|sms_textlocal_api_key"
    r"|sms_vonage_api_secret)$"
)
INT32 = 2**31 - 1
AUTH_RANGES = {
    "jwt_exp": (0, 604800),
    "password_min_length": (6, 32767),
    "mailer_otp_exp": (0, INT32),
    "mailer_otp_length": (6, 10),
    "sms_otp_exp": (0, INT32),
    "sms_otp_length": (6, 10),
    "sms_max_frequency": (0, 32767),
    "smtp_max_frequency": (0, 32767),
    "mfa_max_enrolled_factors": (0, INT32),
    "mfa_phone_otp_length": (6, 10),
    "mfa_phone_max_frequency": (0, 32767),
    "security_refresh_token_reuse_interval": (0, INT32),
    "api_max_request_duration": (5, 30),
    **{f"rate_limit_{name}": (1, INT32) for name in ("anonymous_users", "email_sent", "sms_sent", "verify")},
    **{f"rate_limit_{name}": (1, INT32) for name in ("token_refresh", "otp", "web3")},
}
POSTGREST_FIELDS = {
    "db_extra_search_path": "string",
    "db_pool": "integer",
    "db_schema": "string",
    "max_rows": "integer",
}
POSTGREST_RANGES = {"db_pool": (0, 1000), "max_rows": (0, 1000000)}
POSTGRES_FIELDS: dict[str, Any] = {
    **dict.fromkeys(
        [
            "checkpoint_timeout",
            "effective_cache_size",
            "logical_decoding_work_mem",
            "maintenance_work_mem",
            "max_slot_wal_keep_size",
            "max_standby_archive_delay",
            "max_standby_streaming_delay",
            "max_wal_size",
            "shared_buffers",
            "statement_timeout",
            "track_activity_query_size",
            "wal_keep_size",
            "wal_sender_timeout",
            "work_mem",
        ],
        "string",
    ),
    **dict.fromkeys(
        [
            "max_connections",
            "max_locks_per_transaction",
            "max_parallel_maintenance_workers",
            "max_parallel_workers",
            "max_parallel_workers_per_gather",
            "max_replication_slots",
            "max_wal_senders",
            "max_worker_processes",
        ],
        "integer",
    ),
    "hot_standby_feedback": "boolean",
    "track_commit_timestamp": "boolean",
    "restart_database": "boolean",
    "session_replication_role": ["origin", "replica", "local"],
}
POSTGRES_RANGES = {"max_connections": (1, 262143), "max_locks_per_transaction": (10, 2147483640)}
POOLER_FIELDS: dict[str, Any] = {"default_pool_size": "integer", "pool_mode": ["transaction", "session"]}
POOLER_RANGES = {"default_pool_size": (0, 3000)}
STORAGE_FEATURES: dict[str, dict[str, str]] = {
    "imageTransformation": {"enabled": "boolean"},
    "s3Protocol": {"enabled": "boolean"},
    "icebergCatalog": {
        "enabled": "boolean",
        "maxCatalogs": "integer",
        "maxNamespaces": "integer",
        "maxTables": "integer",
    },
    "vectorBuckets": {"enabled": "boolean", "maxBuckets": "integer", "maxIndexes": "integer"},
}
STORAGE_MAX_FILE_SIZE = 500 * 2**30  # the largest upload limit any plan allows


class Invalid(Exception):
    """A request body the platform would answer 400."""


def hashed(ref: str, value: str) -> str:
    return hmac.new(ref.encode(), value.encode(), hashlib.sha256).hexdigest()


def check_value(name: str, kind: Any, value: Any, ranges: dict[str, tuple[int, int]], *, nullable: bool) -> None:
    if value is None:
        if not nullable:
            raise Invalid(f"{name} must not be null")
        return
    if isinstance(kind, list):
        if value not in kind:
            raise Invalid(f"{name} must be one of: {', '.join(map(repr, kind))}")
        return
    ok = {
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    if not ok:
        raise Invalid(f"{name} must be of type {kind}")
    if name in ranges:
        low, high = ranges[name]
        if not low <= value <= high:
            raise Invalid(f"{name} must be between {low} and {high}")


def check_body(body: Any, fields: dict[str, Any], ranges: dict[str, tuple[int, int]], *, nullable: bool) -> dict:
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise Invalid(f"property {unknown[0]} should not exist")  # the platform's own wording (class-validator)
    for name, value in body.items():
        check_value(name, fields[name], value, ranges, nullable=nullable)
    return body


def cidrs(name: str, value: Any, version: int) -> list[str]:
    if not isinstance(value, list):
        raise Invalid(f"{name} must be an array")
    for item in value:
        try:
            network = ipaddress.ip_network(item, strict=True)
        except (TypeError, ValueError):
            raise Invalid(f"{name}: {item!r} is not a CIDR") from None
        if network.version != version:
            raise Invalid(f"{name}: {item} is not an IPv{version} CIDR")
    return list(value)


class ProjectSettings:
    """One project's settings, answered and changed as the platform does."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.auth: dict[str, Any] = {}  # changes over AUTH_DEFAULTS, secrets in clear (never answered so)
        self.postgrest: dict[str, Any] = {
            "db_schema": "public,graphql_public",
            "max_rows": 1000,
            "db_extra_search_path": "public, extensions",
            "db_pool": None,
        }
        self.storage: dict[str, Any] = {
            "fileSizeLimit": 52428800,
            "features": {
                "imageTransformation": {"enabled": True},
                "s3Protocol": {"enabled": True},
                "icebergCatalog": {"enabled": True, "maxNamespaces": 10, "maxTables": 10, "maxCatalogs": 2},
                "vectorBuckets": {"enabled": True, "maxBuckets": 10, "maxIndexes": 5},
            },
            "external": {"upstreamTarget": "main"},
        }
        self.postgres: dict[str, Any] = {}  # user overrides: the platform answers only those
        self.pooler: dict[str, Any] = {"pool_mode": "transaction", "default_pool_size": None}
        self.network: dict[str, list[str]] = {"dbAllowedCidrs": ["0.0.0.0/0"], "dbAllowedCidrsV6": ["::/0"]}
        self.ssl = True

    # ------------------------------------------------------------ answers

    def auth_config(self) -> dict[str, Any]:
        merged = {**AUTH_DEFAULTS, **self.auth}
        return {k: hashed(self.ref, v) if AUTH_SECRET.match(k) and v else v for k, v in merged.items()}

    def postgrest_config(self) -> dict[str, Any]:
        # The platform's own JWT secret, one per project.
        secret = hashlib.sha512(f"jwt:{self.ref}".encode()).digest()
        return {**self.postgrest, "jwt_secret": base64.b64encode(secret).decode()}

    def storage_config(self) -> dict[str, Any]:
        return {
            **copy.deepcopy(self.storage),
            "capabilities": {"list_v2": True, "iceberg_catalog": True},
            "migrationVersion": "operation-ergonomics",
            "databasePoolMode": "recycled",
        }

    def pooler_config(self) -> list[dict[str, Any]]:
        host = "aws-0-eu-central-1.pooler.supabase.com"
        url = f"postgresql://postgres.{self.ref}:[YOUR-PASSWORD]@{host}:6543/postgres"
        return [
            {
                "identifier": self.ref,
                "database_type": "PRIMARY",
                "db_user": f"postgres.{self.ref}",
                "db_host": host,
                "db_port": 6543,
                "db_name": "postgres",
                "connection_string": url,
                "pool_mode": self.pooler["pool_mode"],
                "default_pool_size": self.pooler["default_pool_size"],
                "max_client_conn": None,
                "is_using_scram_auth": True,
                "connectionString": url,
            }
        ]

    def network_config(self) -> dict[str, Any]:
        return {"entitlement": "allowed", "config": copy.deepcopy(self.network), "status": "applied"}

    def ssl_config(self) -> dict[str, Any]:
        return {"currentConfig": {"database": self.ssl}, "appliedSuccessfully": True}

    # ------------------------------------------------------------ changes

    def update_auth(self, body: Any) -> dict[str, Any]:
        check_body(body, AUTH_UPDATE_FIELDS, AUTH_RANGES, nullable=True)
        self.auth.update(body)
        return self.auth_config()

    def update_postgrest(self, body: Any) -> dict[str, Any]:
        check_body(body, POSTGREST_FIELDS, POSTGREST_RANGES, nullable=False)
        self.postgrest.update(body)
        return dict(self.postgrest)

    def update_storage(self, body: Any) -> dict[str, Any]:
        check_body(body, {"fileSizeLimit": "integer", "features": "object", "external": "object"}, {}, nullable=False)
        if "fileSizeLimit" in body:
            limit = {"fileSizeLimit": (0, STORAGE_MAX_FILE_SIZE)}
            check_value("fileSizeLimit", "integer", body["fileSizeLimit"], limit, nullable=False)
        features = body.get("features", {})
        check_body(features, dict.fromkeys(STORAGE_FEATURES, "object"), {}, nullable=False)
        for name, value in features.items():
            check_body(value, STORAGE_FEATURES[name], {}, nullable=False)
            missing = sorted(set(STORAGE_FEATURES[name]) - set(value))
            if missing:
                raise Invalid(f"features.{name}.{missing[0]} is required")
        external = body.get("external", {})
        check_body(external, {"upstreamTarget": ["main", "canary"]}, {}, nullable=False)
        if "external" in body and "upstreamTarget" not in external:
            raise Invalid("external.upstreamTarget is required")
        if "fileSizeLimit" in body:
            self.storage["fileSizeLimit"] = body["fileSizeLimit"]
        for name, value in features.items():
            self.storage["features"][name].update(value)
        if external:
            self.storage["external"].update(external)
        return self.storage_config()

    def replace_postgres(self, body: Any) -> dict[str, Any]:
        check_body(body, POSTGRES_FIELDS, POSTGRES_RANGES, nullable=False)
        # PUT: the whole set of overrides, answered in one order whatever the body's
        self.postgres = {k: v for k, v in sorted(body.items()) if k != "restart_database"}
        return dict(self.postgres)

    def update_pooler(self, body: Any) -> dict[str, Any]:
        check_body(body, POOLER_FIELDS, POOLER_RANGES, nullable=True)
        if body.get("pool_mode", "x") is None:
            raise Invalid("pool_mode must not be null")
        self.pooler.update(body)
        return dict(self.pooler)

    def apply_network(self, body: Any) -> dict[str, Any]:
        check_body(body, {"dbAllowedCidrs": "array", "dbAllowedCidrsV6": "array"}, {}, nullable=False)
        if "dbAllowedCidrs" in body:
            self.network["dbAllowedCidrs"] = cidrs("dbAllowedCidrs", body["dbAllowedCidrs"], 4)
        if "dbAllowedCidrsV6" in body:
            self.network["dbAllowedCidrsV6"] = cidrs("dbAllowedCidrsV6", body["dbAllowedCidrsV6"], 6)
        return self.network_config()

    def enforce_ssl(self, body: Any) -> dict[str, Any]:
        check_body(body, {"requestedConfig": "object"}, {}, nullable=False)
        requested = body.get("requestedConfig")
        if requested is None:
            raise Invalid("requestedConfig is required")
        check_body(requested, {"database": "boolean"}, {}, nullable=False)
        if "database" not in requested:
            raise Invalid("requestedConfig.database is required")
        self.ssl = requested["database"]
        return self.ssl_config()


# path under /v1/projects/{ref}/ -> method -> (what answers, status on success)
ROUTES: dict[str, dict[str, tuple[str, int]]] = {
    "config/auth": {"GET": ("auth_config", 200), "PATCH": ("update_auth", 200)},
    "postgrest": {"GET": ("postgrest_config", 200), "PATCH": ("update_postgrest", 200)},
    "config/storage": {"GET": ("storage_config", 200), "PATCH": ("update_storage", 200)},
    "config/database/postgres": {"GET": ("postgres_config", 200), "PUT": ("replace_postgres", 200)},
    "config/database/pooler": {"GET": ("pooler_config", 200), "PATCH": ("update_pooler", 200)},
    "network-restrictions": {"GET": ("network_config", 200)},
    "network-restrictions/apply": {"POST": ("apply_network", 201)},
    "ssl-enforcement": {"GET": ("ssl_config", 200), "PUT": ("enforce_ssl", 200)},
}


def answer(project: ProjectSettings, route: str, method: str, body: bytes) -> tuple[int, Any]:
    """(status, payload) for one settings request; the project changes only on a 2xx."""
    methods = ROUTES[route]
    if method not in methods:
        return 405, {"message": f"Cannot {method} /v1/projects/{project.ref}/{route}"}
    name, status = methods[method]
    if method == "GET":
        if name == "postgres_config":
            return status, dict(project.postgres)
        return status, getattr(project, name)()
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return 400, {"message": "the body is not JSON"}
    try:
        return status, getattr(project, name)(parsed)
    except Invalid as error:
        return 400, {"message": str(error)}
