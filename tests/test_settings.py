"""`inv settings` and `inv promote-settings` against the Management API stand-in (and real databases for buckets)."""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import stat
from pathlib import Path

import httpx
import pytest
from lib.db import sql

from devstack.mgmt_standin import TOKEN, ManagementAPI

PROD, PREPROD = "qfdztdgublwlmewobxmx", "jtzcrirqflfnagceendt"
ENDPOINTS = (
    "config/auth",
    "postgrest",
    "config/storage",
    "config/database/postgres",
    "config/database/pooler",
    "network-restrictions",
    "ssl-enforcement",
)


@pytest.fixture
def api():
    server = ManagementAPI(projects={PROD, PREPROD})
    yield server
    server.stop()


@pytest.fixture
def envs(project, api, tmp_path):
    """prod (protected) and preprod, each a project at the stand-in with a real database."""
    home = tmp_path / "home"
    home.mkdir()
    project.secrets.update(
        HOME=str(home), SUPABASE_PROFILE=str(api.write_profile(tmp_path / "profile.yaml")), SUPABASE_ACCESS_TOKEN=TOKEN
    )
    return project


def answers(api: ManagementAPI, ref: str) -> dict[str, bytes]:
    """Every settings endpoint's answer, byte for byte."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return {path: httpx.get(f"{api.url}/v1/projects/{ref}/{path}", headers=headers).content for path in ENDPOINTS}


def writes(api: ManagementAPI) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in api.requests if method != "GET"]


def function(digest: str) -> dict:
    return {
        "id": "fn-hello",
        "slug": "hello",
        "name": "hello",
        "status": "ACTIVE",
        "version": 1,
        "verify_jwt": False,
        "ezbr_sha256": digest,
    }


def bucket(envs, env: str, public: str) -> None:
    sql(envs.url(env), f"INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', {public})")


DRIFTS = {
    "auth": (lambda api, envs: api.auth.__setitem__(PREPROD, {"password_min_length": 10}), "auth.password_min_length"),
    "api": (lambda api, envs: api.project_settings(PREPROD).postgrest.update(max_rows=500), "api.max_rows"),
    "storage": (
        lambda api, envs: api.project_settings(PREPROD).storage["features"]["s3Protocol"].update(enabled=False),
        "storage.features.s3Protocol.enabled",
    ),
    "database": (
        lambda api, envs: setattr(api.project_settings(PREPROD), "postgres", {"statement_timeout": "9s"}),
        "database.statement_timeout",
    ),
    "pooler": (
        lambda api, envs: api.project_settings(PREPROD).pooler.update(default_pool_size=20),
        "pooler.default_pool_size",
    ),
    "network": (
        lambda api, envs: api.project_settings(PREPROD).network.update(dbAllowedCidrs=["10.0.0.0/8"]),
        "network.dbAllowedCidrs",
    ),
    "ssl": (lambda api, envs: setattr(api.project_settings(PREPROD), "ssl", False), "ssl.currentConfig.database"),
    "buckets": (
        lambda api, envs: (bucket(envs, "prod", "false"), bucket(envs, "preprod", "true")),
        "buckets.avatars: public",
    ),
    "functions": (
        lambda api, envs: api.functions.update(
            {PROD: {"hello": function("a" * 64)}, PREPROD: {"hello": function("b" * 64)}}
        ),
        "functions.hello.ezbr_sha256",
    ),
    "secrets": (
        lambda api, envs: api.secrets.update({PROD: {"STRIPE_SECRET_KEY": "e" * 64}}),
        "secrets.STRIPE_SECRET_KEY",
    ),
}


@pytest.mark.parametrize("area", list(DRIFTS), ids=list(DRIFTS))
def test_a_drift_in_each_area_shows_and_fails_the_check(envs, api, area):
    alike = envs.run("settings", "--env", "prod,preprod", "--only", area, "--check", "--json")
    assert alike.code == 0, alike.err  # two projects configured alike compare as equal
    assert json.loads(alike.out)["drift"] == []
    make_drift, setting = DRIFTS[area]
    make_drift(api, envs)
    result = envs.run("settings", "--env", "prod,preprod", "--only", area, "--check", "--json")
    assert result.code == 1, result.err
    assert json.loads(result.out)["drift"] == [setting]
    assert "--check: 1 setting(s) drift" in result.err
    table = envs.run("settings", "--env", "prod,preprod", "--only", area)
    assert table.code == 0, table.err  # without --check a drift is shown, not a failure
    assert setting in table.out and "drift: 1 setting(s) differ" in table.out


def test_per_environment_keys_and_secrets_never_count(envs, api):
    api.auth[PROD] = {
        "site_url": "https://app.example.com",
        "smtp_pass": "prod-smtp-pass-1",
        "external_google_secret": "g-1",
    }
    api.auth[PREPROD] = {"site_url": "https://preprod.example.com", "smtp_pass": "preprod-smtp-pass-2"}
    api.secrets.update({PROD: {"STRIPE_SECRET_KEY": "e" * 64}, PREPROD: {"STRIPE_SECRET_KEY": "f" * 64}})
    result = envs.run("settings", "--env", "prod,preprod", "--check", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["drift"] == []
    notes = {row["setting"]: row for row in report["settings"]}
    assert notes["auth.site_url"]["note"] == "per environment"
    google = notes["auth.external_google_secret"]
    assert google["values"] == {"prod": "set", "preprod": "unset"} and google["note"].startswith(
        "secret: not comparable"
    )
    assert "auth.smtp_pass" not in notes  # set in both: nothing to show without --all
    assert notes["secrets.STRIPE_SECRET_KEY"]["drift"] is False
    everything = envs.run("settings", "--env", "prod,preprod", "--all")
    assert "auth.smtp_pass" in everything.out
    for ref, value in ((PROD, "prod-smtp-pass-1"), (PREPROD, "preprod-smtp-pass-2"), (PROD, "g-1")):
        digest = hmac.new(ref.encode(), value.encode(), hashlib.sha256).hexdigest()
        for shown in (result.out, everything.out):
            assert value not in shown and digest[:12] not in shown  # neither the value nor its hash
    # the platform's own keys and the project's own ref never count either
    assert "jwt_secret" not in everything.out and "pooler.connection_string" not in everything.out
    assert not [r for r in report["settings"] if r["setting"].startswith("pooler.")]


def test_a_weakening_promotion_is_refused_and_nothing_sent(envs, api):
    api.auth[PROD] = {"password_min_length": 12}  # preprod has the platform's 8
    before = answers(api, PROD)
    refused = envs.run("promote-settings", "--from", "preprod", "--to", "prod", "--yes")
    assert refused.code == 2, refused.err
    assert "auth.password_min_length: 12 -> 8 weakens security: a shorter minimum password length" in refused.err
    assert "--allow-weaker password_min_length" in refused.err
    assert writes(api) == []  # not one PATCH
    assert answers(api, PROD) == before
    sent = envs.run(
        "promote-settings",
        "--from",
        "preprod",
        "--to",
        "prod",
        "--yes",
        "--allow-weaker",
        "password_min_length",
        "--json",
    )
    assert sent.code == 0, sent.err
    assert writes(api) == [("PATCH", f"/v1/projects/{PROD}/config/auth")]
    assert json.loads(answers(api, PROD)["config/auth"])["password_min_length"] == 8


def test_promotion_then_undo_leaves_the_target_byte_identical(envs, api):
    api.auth[PROD] = {"site_url": "https://app.example.com"}
    api.auth[PREPROD] = {
        "site_url": "https://preprod.example.com",
        "password_min_length": 14,
        "smtp_pass": "pre-pass-9",
    }
    pre = api.project_settings(PREPROD)
    pre.postgrest.update(max_rows=500)
    pre.storage["features"]["icebergCatalog"].update(maxTables=20)
    pre.storage["fileSizeLimit"] = 10485760
    pre.postgres = {"statement_timeout": "9s", "work_mem": "8MB"}
    api.project_settings(PROD).postgres = {"max_connections": 90, "statement_timeout": "8s"}
    pre.pooler.update(default_pool_size=20)
    pre.network.update(dbAllowedCidrs=["10.1.0.0/16", "10.0.0.0/8"], dbAllowedCidrsV6=[])
    before = answers(api, PROD)

    plan = envs.run("promote-settings", "--from", "preprod", "--to", "prod", "--dry-run")
    assert plan.code == 0, plan.err
    assert "auth.password_min_length" in plan.out and "would send" in plan.out and writes(api) == []
    unconfirmed = envs.run("promote-settings", "--from", "preprod", "--to", "prod")  # no terminal to type 'prod'
    assert unconfirmed.code == 2 and "'prod' is protected" in unconfirmed.err and writes(api) == []
    result = envs.run("promote-settings", "--from", "preprod", "--to", "prod", "--yes", "--json")
    assert result.code == 0, result.err
    done = json.loads(result.out)
    assert done["applied"] == ["auth", "api", "storage", "database", "pooler", "network"]
    assert {"setting": "auth.site_url", "why": "per environment"} in done["not_sent"]
    assert {"setting": "auth.smtp_pass", "why": "secret: set by hand (unset in prod)"} in done["not_sent"]
    assert "pre-pass-9" not in result.out
    same = envs.run(
        "settings", "--env", "prod,preprod", "--only", "auth,api,storage,database,pooler,network,ssl", "--check"
    )
    assert same.code == 0, same.out
    before_dir = Path(done["run_dir"]) / "before"
    assert stat.S_IMODE(before_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((before_dir / "settings.json").stat().st_mode) == 0o600
    saved = json.loads((before_dir / "settings.json").read_text())
    assert sorted(saved["areas"]) == sorted(done["applied"])
    assert "jwt_secret" not in saved["areas"]["api"] and "smtp_pass" not in saved["areas"]["auth"]
    assert json.loads(answers(api, PROD)["config/auth"])["site_url"] == "https://app.example.com"

    undo = shlex.split(done["undo"])
    assert undo[:2] == ["inv", "promote-settings"] and "--allow-weaker" in undo  # going back lowers the password length
    back = envs.run(*undo[1:], "--yes")
    assert back.code == 0, back.err
    assert answers(api, PROD) == before


def test_a_failing_area_stops_the_run_and_the_undo_restores_what_was_applied(envs, api):
    api.auth[PREPROD] = {"password_min_length": 10}
    api.project_settings(PREPROD).postgrest.update(max_rows=500)
    api.project_settings(PREPROD).pooler.update(default_pool_size=20)
    api.fail_writes = {"postgrest": 500}
    before = answers(api, PROD)
    result = envs.run("promote-settings", "--from", "preprod", "--to", "prod", "--yes", "--json")
    assert result.code == 1, result.err
    done = json.loads(result.out)
    assert done["applied"] == ["auth"] and done["failed"] == "api" and "answered 500" in done["reason"]
    assert ("PATCH", f"/v1/projects/{PROD}/config/database/pooler") not in writes(api)  # stopped before the next area
    assert "applied: auth" in result.err and "undo: inv promote-settings --from-export" in result.err
    assert json.loads(answers(api, PROD)["config/auth"])["password_min_length"] == 10
    journaled = json.loads((envs.root / "ops-journal.jsonl").read_text().splitlines()[-1])
    assert journaled["task"] == "promote-settings" and journaled["exit_code"] == 1
    assert journaled["envs"] == ["preprod", "prod"] and done["run_dir"] in journaled["produced"]
    api.fail_writes = {}
    back = envs.run(*shlex.split(done["undo"])[1:], "--yes")
    assert back.code == 0, back.err
    assert answers(api, PROD) == before


def test_a_429_is_waited_out_and_one_past_its_retry_after_stops_the_run(envs, api):
    api.auth[PREPROD] = {"password_min_length": 10}
    api.project_settings(PREPROD).postgrest.update(max_rows=500)
    api.rate_limit, api.rate_window = 8, 2.0  # prod's 7 reads and one write, then 429 with Retry-After: 2
    result = envs.run("promote-settings", "--from", "preprod", "--to", "prod", "--yes", "--json")
    assert result.code == 0, result.err
    assert api.throttled > 0, "the test must actually hit the limit"
    assert json.loads(result.out)["applied"] == ["auth", "api"]
    api.project_settings(PREPROD).postgrest.update(max_rows=400)
    api.recent.clear()
    api.rate_limit, api.rate_window = 7, 600.0  # prod's 7 reads, then Retry-After: 600, past what a run waits
    stopped = envs.run("promote-settings", "--from", "preprod", "--to", "prod", "--yes", "--json")
    assert stopped.code == 1
    assert json.loads(stopped.out)["failed"] == "api" and "answered 429" in stopped.err


def test_an_unreadable_environment_is_incomplete(envs, api):
    api.projects.discard(PREPROD)  # the token cannot see it
    result = envs.run("settings", "--env", "prod,preprod", "--only", "auth,ssl")
    assert result.code == 1
    assert "INCOMPLETE: could not read preprod (auth, ssl)" in result.out
    assert "answered 404" in result.out


def test_bad_input_is_refused_before_anything_is_read(envs, api):
    for args, message in (
        (["settings", "--only", "auth,nope"], "--only: no area nope"),
        (["promote-settings", "--from", "preprod", "--to", "preprod"], "name two different environments"),
        (["promote-settings", "--to", "prod"], "--from ENV or --from-export"),
        (["promote-settings", "--from-export", "/nowhere/before", "--to", "prod"], "no settings.json there"),
    ):
        result = envs.run(*args)
        assert result.code == 2 and message in result.err, (args, result.err)
    for args in (["settings"], ["promote-settings", "--from", "preprod", "--to", "prod"]):
        result = envs.run(*args, env={"SUPABASE_ACCESS_TOKEN": ""})
        assert result.code == 2 and "no SUPABASE_ACCESS_TOKEN: set it to a personal access token" in result.err
    assert api.requests == []
