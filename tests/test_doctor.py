"""`inv doctor` against healthy and broken local environments."""

from __future__ import annotations

import json

import pytest
from lib.db import TLS_HOST
from lib.project import FAKE_DB_PASSWORD
from lib.s3 import S3_KEYS, s3_secrets

from devstack import localstack
from devstack.mgmt_standin import TOKEN, ManagementAPI

PROD_REF = "qfdztdgublwlmewobxmx"


@pytest.fixture
def clinic(project, storage, pgbouncer, tmp_path, cli):
    """prod healthy; five more environments, each broken in one way."""
    api = ManagementAPI(projects={PROD_REF})
    home = tmp_path / "home"
    home.mkdir()
    project.secrets.update(
        HOME=str(home), SUPABASE_PROFILE=str(api.write_profile(tmp_path / "profile.yaml")), SUPABASE_ACCESS_TOKEN=TOKEN
    )
    prod = project.envs["prod"]
    localstack.set_role_password(prod["db_url"], FAKE_DB_PASSWORD)
    key_id, secret = S3_KEYS["prod"]
    broken = {
        "wrong-password": {"db_url": prod["db_url"].replace("postgres@", f"{localstack.PASSWORD_ROLE}@")},
        "wrong-key": {},
        "no-bucket": {"storage_url": project.envs["preprod"]["storage_url"]},
        "no-tls": {"db_url": f"postgresql://postgres@{TLS_HOST}:{pgbouncer.port}/postgres?hostaddr=127.0.0.1"},
        "ref-mismatch": {"storage_url": "https://jtzcrirqflfnagceendt.storage.supabase.co/storage/v1/s3"},
    }
    for name, changes in broken.items():
        project.envs[name] = {**prod, "protected": "false", **changes}
        project.secrets.update(s3_secrets(name, key_id, secret))
    project.secrets["OPS_WRONG_PASSWORD_DB_PASSWORD"] = "not-the-password"
    project.secrets["OPS_WRONG_KEY_S3_SECRET_ACCESS_KEY"] = "not-the-s3-secret"
    project.secrets.update(s3_secrets("no-bucket", *S3_KEYS["preprod"]))
    storage["preprod"].client().delete_bucket(Bucket="client-badges")
    yield project
    api.stop()


def statuses(result) -> dict[tuple[str, str], str]:
    return {(c["env"], c["check"]): ("ok" if c["ok"] else c["detail"]) for c in json.loads(result.out)["checks"]}


def test_a_healthy_environment_passes_every_check(clinic):
    result = clinic.run("doctor", "--env", "prod", "--json")
    assert result.code == 0, result.out + result.err
    assert set(statuses(result).values()) == {"ok"}
    assert {check for _, check in statuses(result)} == {
        "config",
        "database",
        "pg_dump",
        "passwords",
        "storage",
        "management api",
        "supabase cli",
    }
    table = clinic.run("doctor", "--env", "prod")
    assert "PostgreSQL" in table.out and "as postgres" in table.out and "all 7 checks ok" in table.out
    assert "psycopg: loopback; pg_dump: loopback; psql: loopback; Supabase CLI: loopback" in table.out


def test_each_broken_environment_fails_the_right_check_with_a_hint(clinic):
    result = clinic.run("doctor", "--env", "all", "--json")
    assert result.code == 1
    found = statuses(result)
    assert "password" in found[("wrong-password", "database")]
    assert (
        "refused" in found[("wrong-key", "storage")]
        and "OPS_WRONG_KEY_S3_SECRET_ACCESS_KEY" in found[("wrong-key", "storage")]
    )
    assert "client-badges" in found[("no-bucket", "storage")]
    assert "SSL" in found[("no-tls", "database")]
    # A remote host under an unverified certificate: which clients are protected how, which would be refused.
    assert "Supabase CLI cannot refuse a clear-text" in found[("no-tls", "passwords")]  # pg_dump too, if libpq < 16
    assert "psycopg: SCRAM only (require_auth)" in found[("no-tls", "passwords")]
    assert "jtzcrirqflfnagceendt" in found[("ref-mismatch", "config")]
    assert ("ref-mismatch", "database") not in found, "never connects where the section points elsewhere"
    assert found[("prod", "database")] == "ok" and found[("-", "supabase cli")] == "ok"
    failed = [c for c in json.loads(result.out)["checks"] if not c["ok"]]
    assert all(c["fix"] for c in failed)


def test_doctor_prints_one_line_per_check_and_skips_what_is_not_configured(clinic):
    clinic.envs["bare"] = {"ref": PROD_REF}  # no db_url, no storage_url
    result = clinic.run("doctor", "--env", "prod,bare", env={"PYTHONIOENCODING": "utf-8"})
    assert result.code == 0, result.out + result.err  # nothing failed: what is not configured is skipped
    lines = [line for line in result.out.splitlines() if line.strip()]
    assert any(line.startswith("✓ prod") and "database" in line and "PostgreSQL" in line for line in lines)
    assert any(line.startswith("– bare") and "storage" in line and "add storage_url" in line for line in lines)
    assert lines[-1].startswith("all ") and "not configured" in lines[-1]
    ascii_only = clinic.run("doctor", "--env", "prod", env={"PYTHONIOENCODING": "ascii"})
    assert ascii_only.code == 0 and ascii_only.out.startswith("ok prod")
    checks = json.loads(clinic.run("doctor", "--env", "bare", "--json").out)["checks"]
    assert {c["check"]: c["skipped"] for c in checks if c["env"] == "bare"}["storage"] is True


def check_of(result, env: str, name: str) -> dict:
    return next(c for c in json.loads(result.out)["checks"] if (c["env"], c["check"]) == (env, name))


def test_a_configured_part_missing_its_secret_fails_naming_the_variable(clinic):
    clinic.envs["no-secret"] = {**clinic.envs["prod"], "protected": "false"}
    clinic.secrets["OPS_NO_SECRET_S3_ACCESS_KEY_ID"] = S3_KEYS["prod"][0]  # the secret access key is not set
    result = clinic.run("doctor", "--env", "no-secret", "--json")
    assert result.code == 1, result.out
    storage = check_of(result, "no-secret", "storage")
    assert not storage["ok"] and not storage["skipped"], storage
    assert "OPS_NO_SECRET_S3_SECRET_ACCESS_KEY" in storage["detail"], storage
    text = clinic.run("doctor", "--env", "no-secret", env={"PYTHONIOENCODING": "utf-8"})
    assert text.code == 1 and "not configured" not in text.out and "checks ok" not in text.out, text.out
    assert any(line.startswith("✗ no-secret") and "storage" in line for line in text.out.splitlines()), text.out


@pytest.mark.parametrize(
    "token, said",
    [("sbp_wrong", "malformed"), ("sbp_" + "f" * 40, "rejected")],
    ids=["malformed", "rejected"],
)
def test_an_access_token_set_but_bad_fails_with_the_reason(clinic, token, said):
    result = clinic.run("doctor", "--env", "prod", "--json", env={"SUPABASE_ACCESS_TOKEN": token})
    assert result.code == 1, result.out
    api = check_of(result, "prod", "management api")
    assert not api["ok"] and not api["skipped"], api
    assert said in api["detail"] and "SUPABASE_ACCESS_TOKEN" in api["detail"], api
