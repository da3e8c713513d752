"""Normalising and comparing settings, and the bodies a promotion sends: pure functions, no services."""

from __future__ import annotations

import hashlib
import hmac

from ops.settings.drift import EnvSettings, compare, normalise
from ops.settings.promote import plan_promotion, request

A, B = "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"


def env(name: str, ref: str, area: str, answer) -> EnvSettings:
    found = EnvSettings(name, ref, raw={area: answer})
    found.values[area], secrets = normalise(area, answer, ref)
    if secrets:
        found.secrets[area] = secrets
    return found


def pooler(ref: str) -> list[dict]:
    url = f"postgresql://postgres.{ref}:[YOUR-PASSWORD]@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
    return [
        {
            "identifier": ref,
            "database_type": "PRIMARY",
            "db_user": f"postgres.{ref}",
            "connection_string": url,
            "pool_mode": "transaction",
            "default_pool_size": None,
        }
    ]


def test_two_projects_configured_alike_compare_equal():
    one, two = env("prod", A, "pooler", pooler(A)), env("preprod", B, "pooler", pooler(B))
    assert [r for r in compare([one, two], ["pooler"], []) if r.note != "same"] == []
    hook = {
        "uri_allow_list": f"https://{A}.supabase.co/cb",
        "smtp_pass": hmac.new(A.encode(), b"pw", hashlib.sha256).hexdigest(),
    }
    other = {
        "uri_allow_list": f"https://{B}.supabase.co/cb",
        "smtp_pass": hmac.new(B.encode(), b"pw", hashlib.sha256).hexdigest(),
    }
    rows = compare([env("prod", A, "auth", hook), env("preprod", B, "auth", other)], ["auth"], [])
    assert {r.setting: (r.cells, r.drift) for r in rows} == {
        "auth.uri_allow_list": (["https://<ref>.supabase.co/cb"] * 2, False),
        "auth.smtp_pass": (["set", "set"], False),
    }


def test_per_env_keys_take_either_spelling():
    one = env("prod", A, "auth", {"site_url": "https://a.example", "jwt_exp": 3600})
    two = env("preprod", B, "auth", {"site_url": "https://b.example", "jwt_exp": 7200})
    for per_env in (["site_url"], ["auth.site_url"]):
        notes = {r.setting: r.note for r in compare([one, two], ["auth"], per_env)}
        assert notes == {"auth.site_url": "per environment", "auth.jwt_exp": "drift"}


def test_a_value_naming_the_source_project_is_sent_naming_the_target():
    source = env("preprod", B, "auth", {"uri_allow_list": f"https://{B}.supabase.co/cb", "jwt_exp": 3600})
    target = env("prod", A, "auth", {"uri_allow_list": "https://app.example/cb", "jwt_exp": 3600})
    plan = plan_promotion(source, target, ["auth"], [])
    assert [c.setting for c in plan.changes] == ["auth.uri_allow_list"]
    assert request("auth", plan.changes, source, target) == (
        "PATCH",
        "config/auth",
        {"uri_allow_list": f"https://{A}.supabase.co/cb"},
    )


def test_storage_sends_a_feature_whole_and_postgres_its_whole_override_set():
    features = {"icebergCatalog": {"enabled": True, "maxCatalogs": 2, "maxNamespaces": 10, "maxTables": 10}}
    source = env(
        "preprod",
        B,
        "storage",
        {"fileSizeLimit": 1, "features": {"icebergCatalog": {**features["icebergCatalog"], "maxTables": 20}}},
    )
    target = env("prod", A, "storage", {"fileSizeLimit": 1, "features": features})
    plan = plan_promotion(source, target, ["storage"], [])
    assert request("storage", plan.changes, source, target)[2] == {
        "features": {"icebergCatalog": {"enabled": True, "maxCatalogs": 2, "maxNamespaces": 10, "maxTables": 20}}
    }
    source = env("preprod", B, "database", {"statement_timeout": "9s"})
    target = env("prod", A, "database", {"max_connections": 90, "statement_timeout": "8s"})
    plan = plan_promotion(source, target, ["database"], [])
    assert request("database", plan.changes, source, target) == (
        "PUT",
        "config/database/postgres",
        {"statement_timeout": "9s"},
    )
