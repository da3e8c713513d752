"""`nox -s demo`: start the local environments of environments.ini and run the toolkit between them.

It starts one PostgreSQL cluster (a database per local environment), applies the app's
migrations with the real Supabase CLI, loads demo content into local-prod, runs the
tasks a release person would, and stops everything again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from urllib.parse import urlsplit

from ops import config as ops_config
from ops import localstack
from ops.config import REPO_ROOT

LOCAL_ENVS = ["local-prod", "local-preprod", "local-sandbox"]


def inv(*args: str) -> int:
    print(f"\n$ inv {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO_ROOT, stdin=subprocess.DEVNULL).returncode


def main() -> int:
    config = ops_config.load(REPO_ROOT / "environments.ini")
    envs = [config.env(name) for name in LOCAL_ENVS]
    port = urlsplit(envs[0].db_url).port
    print(f"starting PostgreSQL on 127.0.0.1:{port} for {', '.join(LOCAL_ENVS)}", flush=True)
    server = localstack.start_postgres(port=port)
    try:
        for env in envs:
            url = server.create_database(urlsplit(env.db_url).path.lstrip("/"))
            localstack.push_migrations(url)
        localstack.run_sql(envs[0].db_url, (REPO_ROOT / "sql" / "demo_prod.sql").read_text(encoding="utf-8"))
        print("migrations applied with the Supabase CLI; demo content loaded into local-prod", flush=True)
        steps = [
            ("envs",),
            ("sync-data", "--from", "local-prod", "--to", "local-preprod", "--dry-run", "--tables", "plans,features,plan_features"),
            ("sync-data", "--from", "local-prod", "--to", "local-preprod"),
            ("sync-data", "--from", "local-prod", "--to", "local-preprod", "--tables", "plans,programs"),
        ]
        for step in steps:
            code = inv(*step)
            if code != 0:
                print(f"demo step failed with exit code {code}", file=sys.stderr)
                return code
        return 0
    finally:
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
