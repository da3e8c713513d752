"""`inv deploy-functions` and `inv secrets`: the real CLI against a local Management API stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from lib.project import REPO, Project

from devstack.mgmt_standin import PLATFORM_SECRETS, TOKEN, ManagementAPI

PREPROD, PROD, SANDBOX = "jtzcrirqflfnagceendt", "qfdztdgublwlmewobxmx", "cezlnvdjildzxpyxyabb"
ALL_FUNCTIONS = sorted(p.name for p in (REPO / "supabase" / "functions").iterdir() if (p / "index.ts").exists())
EMAIL_USERS = ["send-auth-email", "send-welcome-email"]


@pytest.fixture
def api():
    server = ManagementAPI(projects={PREPROD, PROD, SANDBOX})
    yield server
    server.stop()


@pytest.fixture
def app(tmp_path, api, cli) -> Project:
    """A git checkout of the demo app, and the CLI pointed at the stand-in through a profile."""
    root = tmp_path / "app"
    shutil.copytree(REPO / "supabase", root / "supabase", ignore=shutil.ignore_patterns(".temp"))
    (root / "supabase" / ".temp").mkdir()
    (root / "supabase" / ".temp" / "project-ref").write_text(SANDBOX)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    home = tmp_path / "home"
    home.mkdir()
    project = Project(tmp_path, supabase_dir=root / "supabase")
    project.envs = {
        "prod": {"ref": PROD, "protected": "true"},
        "preprod": {"ref": PREPROD, "protected": "false"},
        "sandbox": {"ref": SANDBOX, "protected": "false"},
    }
    project.secrets = {
        "HOME": str(home),
        "SUPABASE_PROFILE": str(api.write_profile(tmp_path / "profile.yaml")),
        "SUPABASE_ACCESS_TOKEN": TOKEN,
    }
    return project


def test_deploys_every_function_once_without_jwt_check(app, api):
    link = (app.supabase_dir / ".temp" / "project-ref").read_bytes()
    result = app.run("deploy-functions", "--env", "preprod", "--json")
    assert result.code == 0, result.err
    assert api.deployed(PREPROD) == ALL_FUNCTIONS
    assert all(d.metadata["verify_jwt"] is False for d in api.deploys)
    email = next(d for d in api.deploys if d.slug == "send-auth-email")
    assert "supabase/functions/_shared/email.ts" in email.files and "supabase/functions/_shared/cors.ts" in email.files
    assert json.loads(result.out)["deployed"] == ALL_FUNCTIONS
    assert "deploying" in result.err and f"/{len(ALL_FUNCTIONS)}" in result.err
    assert (app.supabase_dir / ".temp" / "project-ref").read_bytes() == link
    assert TOKEN not in app.argv_log.read_text() + result.out + result.err
    assert "link" not in app.argv_log.read_text().split()


def test_config_toml_verify_jwt_overrides_the_card_where_set(app, api):
    config = app.supabase_dir / "config.toml"
    config.write_text(
        config.read_text() + "\n[functions.stripe-webhook]\nverify_jwt = true\n"
        "\n[functions.calcom-webhook]\nverify_jwt = false\n"
    )
    result = app.run("deploy-functions", "--env", "preprod", "--json")
    assert result.code == 0, result.err
    checked = {d.slug: d.metadata["verify_jwt"] for d in api.deploys}
    assert checked.pop("stripe-webhook") is True
    assert set(checked.values()) == {False} and len(checked) == len(ALL_FUNCTIONS) - 1


def test_only_deploys_the_named(app, api):
    result = app.run("deploy-functions", "--env", "preprod", "--only", "calcom-webhook", "--only", "stripe-webhook")
    assert result.code == 0, result.err
    assert api.deployed() == ["calcom-webhook", "stripe-webhook"]


def test_failures_are_named_with_a_rerun_command(app, api):
    api.fail_slugs = {"stripe-webhook", "sync-calendar"}
    result = app.run("deploy-functions", "--env", "preprod", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["failed"] == ["stripe-webhook", "sync-calendar"]
    assert "inv deploy-functions --env preprod --json --only stripe-webhook,sync-calendar" in result.err  # flags kept
    assert api.deployed() == sorted(set(ALL_FUNCTIONS) - api.fail_slugs)
    api.fail_slugs = set()
    rerun = app.run("deploy-functions", "--env", "preprod", "--only", "stripe-webhook,sync-calendar")
    assert rerun.code == 0, rerun.err


def test_rate_limited_deploy_names_only_the_real_failures(app, api):
    """The platform answers 429 past its rate; bundles go live only through the bulk update."""
    api.rate_limit, api.rate_window = 6, 2.0
    api.fail_slugs = {"stripe-webhook", "sync-calendar"}
    result = app.run("deploy-functions", "--env", "preprod", "--json")
    assert result.code == 1
    assert api.throttled > 0, "the test must actually hit the limit"
    data = json.loads(result.out)
    assert data["failed"] == ["stripe-webhook", "sync-calendar"]
    live = {slug for slug, f in api.functions[PREPROD].items() if f["status"] == "ACTIVE"}
    assert live == set(ALL_FUNCTIONS) - api.fail_slugs
    assert not api.bundles.get(PREPROD), "every uploaded bundle was activated"


def test_changed_since_follows_shared_imports(app, api):
    (app.supabase_dir / "functions" / "_shared" / "email.ts").write_text(
        (app.supabase_dir / "functions" / "_shared" / "email.ts").read_text() + "\n// tweak\n"
    )
    (app.supabase_dir / "functions" / "calcom-webhook" / "handler.ts").write_text("export const x = 1;\n")
    dry = app.run("deploy-functions", "--env", "preprod", "--changed-since", "HEAD", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["functions"] == ["calcom-webhook", *EMAIL_USERS]
    cors = app.supabase_dir / "functions" / "_shared" / "cors.ts"
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=app.supabase_dir.parent, check=True)
    (app.supabase_dir / "functions" / "calcom-webhook" / "handler.ts").unlink()
    cors.write_text(cors.read_text() + "\n")
    every = app.run("deploy-functions", "--env", "preprod", "--changed-since", "HEAD", "--json")
    assert every.code == 0, every.err
    assert api.deployed() == ALL_FUNCTIONS, "cors.ts reaches every function, directly or through email.ts"


def test_dry_run_sends_nothing(app, api):
    result = app.run("deploy-functions", "--env", "prod", "--dry-run")
    assert result.code == 0, result.err
    assert "would deploy" in result.out
    assert api.requests == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "send-auth-email,nope"], "nope"),
        (["--changed-since", "no-such-ref"], "no-such-ref"),
        (["--env", "qa"], "unknown environment"),
    ],
    ids=["unknown-function", "unknown-ref", "unknown-env"],
)
def test_bad_input_exit_2_and_sends_nothing(app, api, args, message):
    result = (
        app.run("deploy-functions", "--env", "preprod", *args)
        if "--env" not in args
        else app.run("deploy-functions", *args)
    )
    assert result.code == 2
    assert message in result.err
    assert api.requests == []


def test_protected_env_needs_yes(app, api):
    refused = app.run("deploy-functions", "--env", "prod")
    assert refused.code == 2 and "--yes" in refused.err
    assert api.requests == []
    allowed = app.run("deploy-functions", "--env", "prod", "--yes", "--only", "calcom-webhook")
    assert allowed.code == 0, allowed.err
    assert api.deployed(PROD) == ["calcom-webhook"]


def test_secrets_names_and_matrix(app, api):
    api.secrets = {
        PROD: {"STRIPE_SECRET_KEY": "a" * 64, "RESEND_API_KEY": "b" * 64},
        PREPROD: {"STRIPE_SECRET_KEY": "c" * 64, "RESEND_API_KEY": "b" * 64, "CALCOM_TOKEN": "d" * 64},
        SANDBOX: {},
    }
    one = app.run("secrets", "--env", "prod", "--json")
    assert one.code == 0, one.err
    digests = json.loads(one.out)["envs"][0]["digests"]
    assert {k: digests[k] for k in api.secrets[PROD]} == api.secrets[PROD]
    assert set(digests) - set(api.secrets[PROD]) == set(PLATFORM_SECRETS)  # every project has them
    matrix = app.run("secrets", "--env", "all")
    assert matrix.code == 0, matrix.err
    lines = {line.split("|")[1].strip(): line for line in matrix.out.splitlines() if line.startswith("| ")}
    assert "missing in prod, sandbox" in lines["CALCOM_TOKEN"]
    assert "digests differ" in lines["STRIPE_SECRET_KEY"]
    assert "MISSING" in lines["RESEND_API_KEY"] and "missing in sandbox" in lines["RESEND_API_KEY"]
    assert "platform default" in lines["SUPABASE_SERVICE_ROLE_KEY"]
    assert "digests differ" not in lines["SUPABASE_SERVICE_ROLE_KEY"]
    assert TOKEN not in app.argv_log.read_text()


def test_at_deploys_the_functions_of_a_past_commit_and_leaves_the_tree_alone(app, api):
    root = app.supabase_dir.parent
    index = app.supabase_dir / "functions" / "calcom-webhook" / "index.ts"
    old_source = index.read_bytes()
    index.write_text("export default () => new Response('v2');\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "commit", "-qam", "v2"], cwd=root, check=True)
    index.write_text("// work in progress, not committed\n")
    tree_before = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    head = subprocess.run(["git", "rev-parse", "HEAD~1"], cwd=root, capture_output=True, text=True).stdout.strip()
    result = app.run("deploy-functions", "--env", "preprod", "--only", "calcom-webhook", "--at", "HEAD~1", "--json")
    assert result.code == 0, result.err
    (deploy,) = api.deploys
    assert deploy.sources["supabase/functions/calcom-webhook/index.ts"] == old_source
    assert json.loads(result.out)["commit"] == head
    assert index.read_text() == "// work in progress, not committed\n"
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout == tree_before
    )
    unknown = app.run("deploy-functions", "--env", "preprod", "--at", "no-such-ref")
    assert unknown.code == 2 and "no-such-ref" in unknown.err


@pytest.mark.parametrize(
    "token, shown",
    [("", "SUPABASE_ACCESS_TOKEN is missing"), ("sbp_" + "f" * 40, "SUPABASE_ACCESS_TOKEN is rejected")],
    ids=["missing", "rejected"],
)
def test_a_token_problem_stops_the_deploy_at_once_with_its_reason(app, api, token, shown):
    result = app.run("deploy-functions", "--env", "preprod", "--json", env={"SUPABASE_ACCESS_TOKEN": token})
    assert result.code == 2, result.err
    assert shown in result.err and "Nothing was deployed" in result.err
    assert api.deploys == []
    assert app.argv_log.read_text().count("functions deploy") == 0, "no deploy may be tried with a bad token"


def test_a_failed_function_shows_the_clis_reason(app, api):
    api.fail_slugs = {"calcom-webhook"}
    result = app.run("deploy-functions", "--env", "preprod", "--only", "calcom-webhook,send-welcome-email", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["failed"] == ["calcom-webhook"]
    reason = report["reasons"]["calcom-webhook"]
    assert reason and "exit" not in reason.split()[0], reason
    assert f"calcom-webhook: {reason}" in result.err
