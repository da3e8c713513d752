"""Line 7: deploy-functions against the Supabase CLI's own bulk deploy, on the Management API stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

from bench.harness import REPO, Bench, timed, write_ini
from devstack.mgmt_standin import TOKEN, ManagementAPI
from ops.platform import supabase_cli


def bench_deploy(bench: Bench, api: ManagementAPI) -> None:
    app = bench.work / "app"
    functions = app / "supabase" / "functions"
    shutil.copytree(REPO / "supabase" / "functions" / "_shared", functions / "_shared")
    shutil.copy(REPO / "supabase" / "config.toml", app / "supabase" / "config.toml")
    names = [f"function-{i:02d}" for i in range(76)]
    for name in names:
        (functions / name).mkdir(parents=True)
        (functions / name / "index.ts").write_text(
            'import { corsHeaders } from "../_shared/cors.ts";\n'
            f'Deno.serve(() => new Response("{name}", {{ headers: corsHeaders }}));\n'
        )
    home = bench.work / "home"
    home.mkdir()
    # One project per run: each starts with a fresh rate-limit window (120 requests/min per project).
    ref, ours_ref, failing_ref = "benchdeployxxxxxxxxx", "benchdeployoursxxxxx", "benchdeployfailxxxxx"
    bench.environ.update(
        HOME=str(home),
        SUPABASE_PROFILE=str(api.write_profile(bench.work / "profile.yaml")),
        SUPABASE_ACCESS_TOKEN=TOKEN,
    )
    ini = bench.work / "deploy.ini"
    write_ini(ini, {"deploy": {"ref": ours_ref}, "failing": {"ref": failing_ref}}, app / "supabase")
    reference = timed(
        [
            supabase_cli.binary(),
            "functions",
            "deploy",
            "--project-ref",
            ref,
            "--no-verify-jwt",
            "--use-api",
            "--jobs",
            "4",
            "--workdir",
            str(app),
        ],
        env=bench.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    environ = bench.environ
    bench.environ = {**environ, "OPS_ENVIRONMENTS": str(ini)}
    ours = bench.inv("deploy-functions", "--env", "deploy", "--jobs", "4")
    bench.record(
        "deploy-functions",
        "deploy-functions, 76 functions, 1 s per deploy, 4 jobs",
        ours,
        reference,
        "supabase functions deploy --jobs 4",
    )
    api.fail_slugs = {"function-07", "function-42"}
    started = time.perf_counter()
    failing = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(REPO),
            "deploy-functions",
            "--env",
            "failing",
            "--jobs",
            "4",
            "--json",
        ],
        cwd=bench.work,
        env=bench.environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    with_failures = time.perf_counter() - started
    named = json.loads(failing.stdout)["failed"] if failing.stdout.strip() else []
    bench.record(
        "deploy-functions, some failing",
        f"deploy-functions with 2 failing, named exactly: {named}",
        with_failures,
        reference,
        "supabase functions deploy --jobs 4 (names none)",
        also=named == sorted(api.fail_slugs),
    )
    bench.environ = environ
