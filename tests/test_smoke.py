"""`inv smoke` against a local web server that serves some paths and fails others."""

from __future__ import annotations

import json

import pytest
from lib.project import REPO, Project

from devstack.webstub import WebStub

FUNCTIONS = sorted(p.name for p in (REPO / "supabase" / "functions").iterdir() if (p / "index.ts").exists())


@pytest.fixture
def site(tmp_path):
    web = WebStub(
        {
            "/broken": 500,
            "OPTIONS /functions/v1/stripe-webhook": 404,
            "OPTIONS /functions/v1/sync-calendar": 502,
            "/moved": 302,
        }
    )
    project = Project(tmp_path)
    project.envs = {
        "preprod": {
            "ref": "jtzcrirqflfnagceendt",
            "frontend": f"{web.url}/moved",
            "functions_url": f"{web.url}/functions/v1",
        }
    }
    yield project, web
    web.stop()


def outcomes(result) -> dict[str, dict]:
    return {o["check"]: o for o in json.loads(result.out)["outcomes"]}


def test_smoke_names_what_does_not_serve(site):
    project, web = site
    project.extra = f"[smoke]\nurls = {web.url}/health {web.url}/broken\n"
    result = project.run("smoke", "--env", "preprod", "--json")
    assert result.code == 1
    found = outcomes(result)
    assert found["frontend"]["ok"] and found["frontend"]["status"] == 302
    assert not found["function stripe-webhook"]["ok"] and not found["function sync-calendar"]["ok"]
    assert {f"function {name}" for name in FUNCTIONS} <= set(found)
    assert found[f"{web.url}/health"]["ok"] and not found[f"{web.url}/broken"]["ok"]
    assert all(o["latency_ms"] >= 0 for o in found.values())
    assert "stripe-webhook" in result.err and "sync-calendar" in result.err and "calcom-webhook" not in result.err
    assert web.seen.count(("OPTIONS", "/functions/v1/sync-calendar")) == 2, "a 5xx gets one retry"


def test_smoke_overrides_per_function(site):
    project, web = site
    project.extra = "[smoke]\nfunction.stripe-webhook = POST /webhook 201\nfunction.sync-calendar = GET 200\n"
    web.routes["GET /functions/v1/sync-calendar"] = 200
    web.routes["POST /functions/v1/stripe-webhook/webhook"] = 201
    result = project.run("smoke", "--env", "preprod")
    assert result.code == 0, result.out + result.err
    assert ("POST", "/functions/v1/stripe-webhook/webhook") in web.seen
    assert f"{len(FUNCTIONS) + 1}/{len(FUNCTIONS) + 1} checks passed" in result.out
