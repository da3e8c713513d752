"""`nox -s bench`: our tasks against the reference tools, in the same run, on the same local services.

Prints one line per comparison with the ratio and its target (bench/targets.py), writes
bench/results.json, and exits 1 when a line missed its target.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.targets import line, print_table, result, verdict
from devstack import localstack
from devstack.mgmt_standin import TOKEN, ManagementAPI
from ops import config as ops_config
from ops import supabase_cli

BULK_SQL = """
INSERT INTO public.module_types (key, label) SELECT 'type_' || g, 'Type ' || g FROM generate_series(1, 10) g;
INSERT INTO public.plans (key, name, description, tier_level, metadata)
  SELECT 'plan_' || g, 'Plan ' || g, repeat('d', 80), g % 5, jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
INSERT INTO public.features (key, name, config) SELECT 'feature_' || g, 'Feature ' || g, json_build_object('g', g)
  FROM generate_series(1, 5000) g;
INSERT INTO public.plan_features (plan_id, feature_id, limit_value)
  SELECT p.id, f.id, 10 FROM (SELECT id, row_number() OVER () r FROM public.plans) p
  JOIN (SELECT id, row_number() OVER () r FROM public.features) f ON f.r BETWEEN p.r AND p.r + 3;
INSERT INTO public.plan_prices (plan_id, billing_interval, amount)
  SELECT id, i::public.billing_interval, 9.99 FROM public.plans, unnest(ARRAY['month', 'year']) i;
INSERT INTO public.programs (slug, name, description, tags, duration)
  SELECT 'program-' || g, 'Program ' || g, repeat('p', 200), ARRAY['a', 'b'], '6 weeks' FROM generate_series(1, 10000) g;
INSERT INTO public.program_modules (program_id, module_type, title, content, order_index)
  SELECT p.id, 'type_' || (1 + g % 10), 'Module ' || g, repeat('lorem ', 40), g FROM public.programs p, generate_series(1, 6) g;
INSERT INTO public.tracks (key, name) SELECT 'track_' || g, 'Track ' || g FROM generate_series(1, 1000) g;
INSERT INTO public.track_features SELECT t.id, f.id FROM (SELECT id, row_number() OVER () r FROM public.tracks) t
  JOIN (SELECT id, row_number() OVER () r FROM public.features) f ON f.r BETWEEN t.r AND t.r + 4;
INSERT INTO public.session_types (key, name, default_price) SELECT 'st_' || g, 'Session ' || g, 50 FROM generate_series(1, 2000) g;
INSERT INTO public.session_type_roles SELECT id, r FROM public.session_types, unnest(ARRAY['coach', 'client']) r;
INSERT INTO public.credit_services (key, name, credit_cost) SELECT 'cs_' || g, 'Service ' || g, g % 100 FROM generate_series(1, 5000) g;
INSERT INTO public.credit_topup_packages (name, credits, price_cents) SELECT 'Pack ' || g, g, g * 10 FROM generate_series(1, 2000) g;
INSERT INTO public.org_credit_packages (name, credits, price) SELECT 'Org ' || g, g, g FROM generate_series(1, 2000) g;
INSERT INTO public.org_platform_tiers (key, name, features) SELECT 'tier_' || g, 'Tier ' || g, '{"sso": true}' FROM generate_series(1, 1000) g;
INSERT INTO public.notification_categories (key, name) SELECT 'nc_' || g, 'Cat ' || g FROM generate_series(1, 500) g;
INSERT INTO public.notification_types (key, category_id, name)
  SELECT 'nt_' || g, (SELECT id FROM public.notification_categories ORDER BY key LIMIT 1), 'Type ' || g FROM generate_series(1, 10000) g;
INSERT INTO public.assessment_categories (name) SELECT 'Category ' || g FROM generate_series(1, 1000) g;
INSERT INTO public.assessment_families (slug, name) SELECT 'family-' || g, 'Family ' || g FROM generate_series(1, 5000) g;
INSERT INTO public.assessment_domains (family_id, name) SELECT id, 'Domain ' || g FROM public.assessment_families, generate_series(1, 4) g;
INSERT INTO public.assessment_questions (domain_id, question_text, options, weight)
  SELECT id, 'Question ' || g || ' about ' || name, '{"min": 1, "max": 10}', 1.5 FROM public.assessment_domains, generate_series(1, 3) g;
INSERT INTO public.system_settings (key, value) SELECT 'setting_' || g, to_jsonb(g) FROM generate_series(1, 5000) g;
INSERT INTO public.wheel_categories (key, name, sort_order) SELECT 'wheel_' || g, 'Wheel ' || g, g FROM generate_series(1, 5000) g;
INSERT INTO public.platform_terms (version, title, content, effective_from) SELECT 'v' || g, 'Terms', repeat('t', 300), '2025-01-01' FROM generate_series(1, 2000) g;
INSERT INTO public.email_templates (key, subject, html_body) SELECT 'tpl_' || g, 'Subject ' || g, repeat('<p>x</p>', 30) FROM generate_series(1, 5000) g;
INSERT INTO public.resource_categories (key, name) SELECT 'rc_' || g, 'Resource ' || g FROM generate_series(1, 5000) g;
"""


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.results: list[dict] = []
        self.environ = dict(os.environ)

    def record(
        self,
        target: str,
        what: str,
        ours: float,
        reference: float,
        reference_tool: str,
        unit: str = "s",
        also: bool = True,
    ) -> None:
        """One line against `target`, a key of bench/targets.py's TARGETS (`also`: its extra condition)."""
        self.results.append(result(target, what, ours, reference, reference_tool, unit, also))
        print(line(self.results[-1]), flush=True)

    def inv(self, *args: str) -> float:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
            cwd=self.work,
            env=self.environ,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"inv {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return elapsed

    def inv_measured(self, *args: str) -> tuple[float, float]:
        """Wall seconds and peak RSS (MiB) of one run, as a user would see it."""
        return measured(
            [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], cwd=self.work, env=self.environ
        )

    def inv_peak_memory(self, *args: str) -> int:
        """Peak RSS (KiB) of one run."""
        return int(self.inv_measured(*args)[1] * 1024)


# The command runs under this small process: a child forked from the bench itself would count the
# bench's own memory, copied at fork, in its peak (ru_maxrss keeps the high-water mark across exec).
PEAK_OF = (
    "import os, sys; pid = os.spawnvp(os.P_NOWAIT, sys.argv[1], sys.argv[1:]); _, status, usage = os.wait4(pid, 0); "
    "print(f'peak-rss-kib={usage.ru_maxrss}', file=sys.stderr); sys.exit(os.waitstatus_to_exitcode(status))"
)


def measured(argv: list[str], **kwargs) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a command (its own process: servers are not counted)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        **kwargs,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} failed: {done.stderr[-2000:]}")
    peak = int(done.stderr.rsplit("peak-rss-kib=", 1)[1].strip())
    return elapsed, peak / 1024


def timed(argv, **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kwargs)
    return time.perf_counter() - started


def write_ini(path: Path, envs: dict[str, dict], supabase_dir: Path) -> None:
    base = ops_config.load(REPO / "environments.ini")
    lines = ["[project]", f"supabase_dir = {supabase_dir}", ""]
    for name, values in envs.items():
        lines += [f"[{name}]", *[f"{k} = {v}" for k, v in values.items()], ""]
    lines += [
        "[sync-data]",
        "safe_tables = " + " ".join(base.sync_data.safe_tables),
        "blocked_tables = " + " ".join(base.sync_data.blocked_tables),
        "",
        "[storage]",
        "buckets = " + " ".join(base.storage.buckets),
        "jobs = 4",
        "",
    ]
    path.write_text("\n".join(lines))


KILLS_PER_TASK = 25  # 100 SIGKILLs over sync-data, sync-storage, backup-storage and restore-storage


def run_kill_loop() -> None:
    """The kill test of the suite at full size: every kill followed by its checks; fails the bench if one fails."""
    print(f"kill loop: {KILLS_PER_TASK} SIGKILLs per task at seeded random moments", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_kills.py"],
        cwd=REPO,
        check=True,
        env={**os.environ, "OPS_KILLS": str(KILLS_PER_TASK)},
    )


GROUPS = ("sync-data", "storage", "scale", "deploy", "list", "kills")


def main() -> int:
    unknown = sorted(set(sys.argv[1:]) - set(GROUPS))
    if unknown:
        print(f"bench: no group {', '.join(unknown)}; choose from {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    supabase_cli.install_pinned()
    # Our runs start as an installed package's do, from bytecode (pip compiles it at install): with
    # PYTHONDONTWRITEBYTECODE set, as on this machine, each run would compile ops/ again (15-20 ms).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "ops"), str(REPO / "tasks.py")], check=True)
    work = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    bench = Bench(work)
    pg: localstack.LocalPostgres | None = None
    servers: list[localstack.LocalS3] = []
    api = ManagementAPI(
        deploy_delay=1.0, projects={"benchdeployxxxxxxxxx", "benchdeployoursxxxxx", "benchdeployfailxxxxx"}
    )
    chosen = set(sys.argv[1:]) or set(GROUPS)  # `nox -s bench -- sync-data`
    ini = work / "environments.ini"
    write_ini(ini, {}, REPO / "supabase")
    bench.environ["OPS_ENVIRONMENTS"] = str(ini)
    try:
        if "sync-data" in chosen:
            pg = localstack.start_postgres()
            bench_sync_data(bench, pg)
            pg.stop()  # idle or vacuuming, it would take CPU from the groups after it
        if "storage" in chosen:
            bench_storage(bench, servers)
        if "scale" in chosen:
            bench_scale(bench, servers)
        if "deploy" in chosen:
            bench_deploy(bench, api)
        if "list" in chosen:
            bench_list(bench)
        if "kills" in chosen:
            run_kill_loop()
    finally:
        api.stop()
        for server in servers:
            server.stop()
        if pg:
            pg.stop()
            shutil.rmtree(pg.datadir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    out = REPO / "bench" / "results.json"
    out.write_text(json.dumps({"results": bench.results}, indent=2) + "\n")
    print_table(bench.results)
    print(f"wrote {out}")
    return verdict(bench.results)


# ---------------------------------------------------------------- 1-3 sync-data

# Every config row changed in the target (one text column per table), so every row is an update.
EVERY_ROW_DIFFERS = r"""
DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT c.table_name, min(c.column_name) AS col FROM information_schema.columns c
           JOIN information_schema.tables x USING (table_schema, table_name)
           WHERE c.table_schema = 'public' AND x.table_type = 'BASE TABLE'
             AND c.data_type IN ('text', 'character varying') AND c.column_name NOT IN ('id', 'key', 'slug')
             AND c.is_generated = 'NEVER'
           GROUP BY c.table_name LOOP
    EXECUTE format('UPDATE public.%I SET %I = %I || %L', t.table_name, t.col, t.col, '~');
  END LOOP;
END $$;
"""


def bench_sync_data(bench: Bench, pg: localstack.LocalPostgres) -> None:
    template = pg.create_database("bench_template")
    localstack.push_migrations(template)
    source = clone(pg, "bench_src")
    localstack.run_sql(source, BULK_SQL)
    vacuum(source)
    rows = count_rows(source)
    print(f"sync-data source: {rows:,} rows in 26 tables", flush=True)
    ours_target, reference_target = clone(pg, "bench_ours"), clone(pg, "bench_ref")
    envs = {
        "src": {"ref": "benchsrcxxxxxxxxxxxx", "db_url": source},
        "ours": {"ref": "benchoursxxxxxxxxxxx", "db_url": ours_target},
    }
    ini = bench.work / "environments.ini"
    write_ini(ini, envs, REPO / "supabase")
    bench.environ["OPS_ENVIRONMENTS"] = str(ini)

    tables = [f"public.{t}" for t in ops_config.load(ini).sync_data.safe_tables]
    pg_dump, psql = tool("pg_dump"), tool("psql")
    dump_argv = [pg_dump, "--data-only", "--no-owner", "-d", plain(source)] + [f"-t{t}" for t in tables]
    started = time.perf_counter()
    dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE)
    subprocess.run(
        [psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", plain(reference_target)],
        stdin=dump.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    dump.wait()
    reference = time.perf_counter() - started
    fresh = bench.inv("sync-data", "--from", "src", "--to", "ours")
    bench.record("sync-data fresh copy", f"sync-data fresh copy, {rows:,} rows", fresh, reference, "pg_dump | psql")
    vacuum(ours_target)
    again = bench.inv("sync-data", "--from", "src", "--to", "ours")
    bench.record("sync-data second run", "sync-data second run, nothing changed", again, fresh, "our fresh copy")
    localstack.run_sql(ours_target, EVERY_ROW_DIFFERS)
    vacuum(ours_target)  # the state a live database is in: no autovacuum landing in the timed run
    updates = bench.inv("sync-data", "--from", "src", "--to", "ours")
    bench.record(
        "sync-data, every row differs",
        "sync-data into a target whose rows all differ",
        updates,
        reference,
        "pg_dump | psql",
    )

    small, large = clone(pg, "bench_small"), clone(pg, "bench_large")
    localstack.run_sql(
        small,
        "INSERT INTO public.wheel_categories (key, name, color, sort_order) "
        "SELECT 'w' || g, 'Wheel category ' || g, '#abcdef', g FROM generate_series(1, 100000) g",
    )
    localstack.run_sql(
        large,
        "INSERT INTO public.wheel_categories (key, name, color, sort_order) "
        "SELECT 'w' || g, 'Wheel category ' || g, '#abcdef', g FROM generate_series(1, 2000000) g",
    )
    vacuum(small)
    vacuum(large)
    envs.update(
        {
            "small": {"ref": "benchsmallxxxxxxxxxx", "db_url": small},
            "large": {"ref": "benchlargexxxxxxxxxx", "db_url": large},
            "sink1": {"ref": "benchsinkaxxxxxxxxxx", "db_url": clone(pg, "bench_sink1")},
            "sink2": {"ref": "benchsinkbxxxxxxxxxx", "db_url": clone(pg, "bench_sink2")},
        }
    )
    write_ini(ini, envs, REPO / "supabase")
    small_rss = bench.inv_peak_memory("sync-data", "--from", "small", "--to", "sink1", "--tables", "wheel_categories")
    envs["sink3"] = {"ref": "benchsinkcxxxxxxxxxx", "db_url": clone(pg, "bench_sink3")}
    write_ini(ini, envs, REPO / "supabase")
    started = time.perf_counter()
    dump = subprocess.Popen(
        [pg_dump, "--data-only", "--no-owner", "-d", plain(large), "-tpublic.wheel_categories"], stdout=subprocess.PIPE
    )
    subprocess.run(
        [psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", plain(envs["sink3"]["db_url"])],
        stdin=dump.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    dump.wait()
    table_reference = time.perf_counter() - started
    seconds, large_rss = bench.inv_measured(
        "sync-data", "--from", "large", "--to", "sink2", "--tables", "wheel_categories"
    )
    bench.record(
        "sync-data, one large table",
        "sync-data fresh copy of one 2,000,000-row table",
        seconds,
        table_reference,
        "pg_dump | psql",
    )
    bench.record(
        "sync-data peak RSS, 20x the rows",
        "sync-data peak RSS, 2,000,000 vs 100,000 rows",
        large_rss,
        small_rss / 1024,
        "100k-row run",
        unit=" MiB",
    )


def vacuum(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def clone(pg: localstack.LocalPostgres, name: str) -> str:
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE bench_template')
    return pg.url(name)


def count_rows(url: str) -> int:
    import psycopg

    tables = ops_config.load(REPO / "environments.ini").sync_data.safe_tables
    with psycopg.connect(url) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0] for t in tables)


def plain(url: str) -> str:
    return url.replace("?sslmode=disable", "")


def tool(name: str) -> str:
    candidate = localstack.postgres_bindir() / name
    return str(candidate) if candidate.exists() else name


# ---------------------------------------------------------------- 4-6 storage


def fill_on_disk(root: Path, objects: dict[str, int], seed: int = 0) -> int:
    """Objects written straight into an S3 server's folder before it starts (key -> size); returns bytes."""
    import random

    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    for key, size in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(len(block))
        data = (block[start:] + block[:start]) * (size // len(block) + 1)
        path.write_bytes(rng.randbytes(16) + data[: size - 16])  # every object unique
    return sum(objects.values())


class Pair:
    """A source and a target S3 server (rclone serve s3), the source filled before it starts."""

    def __init__(self, bench: Bench, servers: list, name: str, objects: dict[str, int], one_way: float = 0.0):
        from delayproxy import DelayProxy  # beside this script

        self.bench, self.name = bench, name
        self.envs = {"src": f"{name}src", "dst": f"{name}dst"}
        self.total = 0
        self.urls: dict[str, str] = {}
        self.proxies: list[DelayProxy] = []
        self.servers = {}
        for side in ("src", "dst"):
            env = self.envs[side]
            key_id, secret = f"BENCH{env.upper()}{secrets.token_hex(4).upper()}", secrets.token_urlsafe(20)
            root = bench.work / env
            for bucket in ("avatars", "resource-library"):
                (root / bucket).mkdir(parents=True, exist_ok=True)
            if side == "src":
                self.total = fill_on_disk(root, objects)
            server = localstack.start_s3(key_id, secret, root=root)
            servers.append(server)
            self.servers[side] = server
            url = server.url
            if one_way:
                proxy = DelayProxy(server.port, one_way)
                self.proxies.append(proxy)
                url = proxy.url
            self.urls[side] = url
            prefix = f"OPS_{env.upper()}"
            bench.environ[f"{prefix}_S3_ACCESS_KEY_ID"], bench.environ[f"{prefix}_S3_SECRET_ACCESS_KEY"] = (
                key_id,
                secret,
            )
        ini = Path(bench.environ["OPS_ENVIRONMENTS"])
        sections = "".join(
            f"[{self.envs[side]}]\nref = {('bench' + self.envs[side] + 'x' * 20)[:20]}\n"
            f"storage_url = {self.urls[side]}\n\n"
            for side in ("src", "dst")
        )
        ini.write_text(ini.read_text().replace("[sync-data]", sections + "[sync-data]"))
        self.rclone_env = {**os.environ, "RCLONE_CONFIG": str(bench.work / "none.conf")}
        for side in ("src", "dst"):
            upper, server = side.upper(), self.servers[side]
            self.rclone_env.update(
                {
                    f"RCLONE_CONFIG_{upper}_TYPE": "s3",
                    f"RCLONE_CONFIG_{upper}_PROVIDER": "Other",
                    f"RCLONE_CONFIG_{upper}_ENDPOINT": self.urls[side],
                    f"RCLONE_CONFIG_{upper}_ACCESS_KEY_ID": server.key_id,
                    f"RCLONE_CONFIG_{upper}_SECRET_ACCESS_KEY": server.secret,
                    f"RCLONE_CONFIG_{upper}_FORCE_PATH_STYLE": "true",
                }
            )

    def rclone(self, *args: str) -> float:
        return timed(
            [localstack.tool("rclone"), *args],
            env=self.rclone_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def nothing_to_do(self, target: str, ours: Callable[[], float]) -> tuple[float, float]:
        """A typical run of each with nothing to copy (the median of three, taken in turn; rclone's best mode)."""
        our_times, rclone_times = [], []
        for _ in range(3):
            rclone_times.append(
                min(self.rclone("copy", "--transfers", "4", *mode, "src:", target) for mode in ([], ["--checksum"]))
            )
            our_times.append(ours())
        return statistics.median(our_times), statistics.median(rclone_times)

    def full_copies(self) -> tuple[float, float]:
        """A typical full copy of each: the median of three, taken in turn (rclone in both its modes).

        In turn, because a server pair slows down over repeated runs: whichever tool went last
        would pay for it. The median, because that is the run a user sees; single runs on these
        2 cores vary by about 8 %. The target is left full.
        """
        ours, rclone = [], []
        for mode in ([], ["--checksum"], []):
            self.empty_target()
            rclone.append(self.rclone("copy", "--transfers", "4", *mode, "src:", "dst:"))
            self.empty_target()
            ours.append(self.ours())
        return statistics.median(ours), statistics.median(rclone)

    def empty_target(self) -> None:
        for bucket in ("avatars", "resource-library"):
            self.rclone("delete", f"dst:{bucket}")

    def sync_args(self, *extra: str) -> tuple[str, ...]:
        return (
            "sync-storage",
            "--from",
            self.envs["src"],
            "--to",
            self.envs["dst"],
            "--buckets",
            "avatars,resource-library",
            "--jobs",
            "4",
            "--yes",
            *extra,
        )

    def ours(self, *extra: str) -> float:
        return self.bench.inv(*self.sync_args(*extra))

    def restart_target(self) -> None:
        """A fresh `rclone serve s3` on the target's folder, on the same port.

        After 100,000 uploads in under a minute, rclone's server has been seen (twice in three
        scale runs here) answering a listing and a GET of one just-written 1 KiB object from a
        stale cache: a GET cut short on every retry. A fresh server on the same files lists and
        serves them correctly, so both tools' no-change runs start from one.
        """
        server = self.servers["dst"]
        server.stop()
        server.start()

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()


def bench_storage(bench: Bench, servers: list) -> None:
    small = {f"avatars/users/{i:04d}/avatar.png": 64 << 10 for i in range(1000)}
    large = {f"resource-library/videos/{i}.mp4": 16 << 20 for i in range(10)}
    pair = Pair(bench, servers, "local", small | large)
    mib = pair.total / 2**20
    full, reference = pair.full_copies()
    bench.record(
        "sync-storage full copy",
        f"sync-storage 1,000 x 64 KiB + 10 x 16 MiB ({mib:.0f} MiB/{reference:.1f}s rclone)",
        full,
        reference,
        "rclone copy --transfers 4",
    )
    again, rclone_again = pair.nothing_to_do("dst:", pair.ours)
    bench.record(
        "sync-storage second run",
        "sync-storage second run, nothing changed",
        again,
        rclone_again,
        "rclone copy, nothing to do",
    )

    backup_env = pair.envs["src"]
    bench.inv("backup-storage", "--env", backup_env, "--buckets", "avatars,resource-library")
    disk_one = du(bench.work / "backups")
    bench.inv("backup-storage", "--env", backup_env, "--buckets", "avatars,resource-library")
    disk_two = du(bench.work / "backups")
    local = bench.work / "rclone-local"
    pair.rclone("copy", "--transfers", "4", "src:", str(local))
    second, rclone_local = pair.nothing_to_do(
        str(local), lambda: bench.inv("backup-storage", "--env", backup_env, "--buckets", "avatars,resource-library")
    )
    bench.record(
        "backup-storage second run",
        "backup-storage second run, nothing changed",
        second,
        rclone_local,
        "rclone copy to a local folder, nothing to do",
    )
    bench.record(
        "backup-storage disk, two backups",
        "backup-storage disk for two backups vs one",
        disk_two / 2**20,
        disk_one / 2**20,
        "one full backup",
        unit=" MiB",
    )
    pair.stop()

    many = Pair(bench, servers, "many", {f"avatars/u/{i:05d}.png": 1024 for i in range(20000)})
    full = many.ours()
    again = many.ours()
    bench.record(
        "sync-storage second run, 20,000 objects",
        "sync-storage, 20,000 objects, nothing changed vs our full run",
        again,
        full,
        "our full run",
    )
    many.stop()

    remote = Pair(
        bench,
        servers,
        "far",
        {f"avatars/users/{i:04d}/avatar.png": 64 << 10 for i in range(300)}
        | {f"resource-library/videos/{i}.mp4": 8 << 20 for i in range(4)},
        one_way=0.010,
    )
    full, reference = remote.full_copies()
    bench.record(
        "sync-storage full copy, 20 ms away",
        "sync-storage over 20 ms round trips, 300 x 64 KiB + 4 x 8 MiB",
        full,
        reference,
        "rclone copy --transfers 4, same link",
    )
    again, rclone_again = remote.nothing_to_do("dst:", remote.ours)
    bench.record(
        "sync-storage second run, 20 ms away",
        "sync-storage over 20 ms round trips, nothing changed",
        again,
        rclone_again,
        "rclone copy, nothing to do, same link",
    )
    remote.stop()


# ---------------------------------------------------------------- 10 storage at scale

SCALE = 100_000


def scale_objects(count: int) -> dict[str, int]:
    """User uploads as an app keeps them: a folder per user (1,000 users here), 1 KiB each."""
    return {f"avatars/users/{i % 1000:04d}/{i:06d}.png": 1024 for i in range(count)}


def bench_scale(bench: Bench, servers: list) -> None:
    """100,000 objects: one run of each tool as a user would see it (time and peak RSS), in turn.

    Each tool copies into a fresh target of its own (emptying 100,000 objects would take longer
    than the copy): rclone's pair and ours hold the same source.
    """
    objects = scale_objects(SCALE) | {f"resource-library/v/{i}.mp4": 16 << 20 for i in range(5)}
    theirs, ours = Pair(bench, servers, "scalercl", objects), Pair(bench, servers, "scaleops", objects)
    what = f"{SCALE:,} x 1 KiB + 5 x 16 MiB"
    rclone_full = measured(
        [localstack.tool("rclone"), "copy", "--transfers", "4", "--checkers", "8", "src:", "dst:"],
        env=theirs.rclone_env,
    )
    full = bench.inv_measured(*ours.sync_args())
    bench.record(
        "scale: sync-storage full copy",
        f"sync-storage {what}, full copy",
        full[0],
        rclone_full[0],
        "rclone copy --transfers 4 --checkers 8",
    )
    bench.record(
        "scale: sync-storage full copy, peak RSS",
        "  peak RSS of that copy",
        full[1],
        rclone_full[1],
        "rclone's",
        unit=" MiB",
    )
    theirs.restart_target()
    ours.restart_target()
    rclone_again = measured(
        [localstack.tool("rclone"), "copy", "--transfers", "4", "--checkers", "8", "src:", "dst:"],
        env=theirs.rclone_env,
    )
    again = bench.inv_measured(*ours.sync_args())
    bench.record(
        "scale: sync-storage second run",
        f"sync-storage {what}, nothing changed",
        again[0],
        rclone_again[0],
        "rclone, nothing to do",
    )
    bench.record(
        "scale: sync-storage second run, peak RSS",
        "  peak RSS of that run",
        again[1],
        rclone_again[1],
        "rclone's",
        unit=" MiB",
    )

    env = ours.envs["src"]
    buckets = ("--buckets", "avatars,resource-library")
    backup_full = bench.inv_measured("backup-storage", "--env", env, *buckets)
    backup_again = bench.inv_measured("backup-storage", "--env", env, *buckets)
    bench.record(
        "scale: backup-storage full, peak RSS",
        f"backup-storage {what}, full: peak RSS",
        backup_full[1],
        again[1],
        "our no-change sync",
        unit=" MiB",
    )
    bench.record(
        "scale: backup-storage second run, peak RSS",
        "backup-storage, nothing changed: peak RSS",
        backup_again[1],
        again[1],
        "our no-change sync",
        unit=" MiB",
    )
    bench.record(
        "scale: backup-storage second run",
        "backup-storage, nothing changed: time",
        backup_again[0],
        backup_full[0],
        "our full backup",
    )
    newest = max(
        (m.parent for m in (bench.work / "backups").rglob("_backup_metadata.json") if env in str(m)),
        key=lambda folder: folder.name,
    )
    verify = bench.inv_measured("verify-backup", "--backup", str(newest))
    bench.record(
        "scale: verify-backup, peak RSS",
        f"verify-backup of {what}: peak RSS",
        verify[1],
        100,
        "the 100 MiB ceiling",
        unit=" MiB",
    )
    theirs.stop()
    ours.stop()

    tenth = Pair(
        bench,
        servers,
        "scaletenth",
        scale_objects(SCALE // 10) | {f"resource-library/v/{i}.mp4": 16 << 20 for i in range(5)},
    )
    small = bench.inv_measured(*tenth.sync_args())
    bench.record(
        "scale: sync-storage peak RSS, 10x the objects",
        f"sync-storage peak RSS, {SCALE:,} vs {SCALE // 10:,} objects (full copy)",
        full[1],
        small[1],
        f"the {SCALE // 10:,}-object copy",
        unit=" MiB",
    )
    tenth.stop()


def du(path: Path) -> int:
    """Bytes on disk, counting each hard-linked file once (as `du` does)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


# ---------------------------------------------------------------- 7 deploy-functions


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


# ---------------------------------------------------------------- 8 inv --list


def bench_list(bench: Bench) -> None:
    bare = bench.work / "bare"
    bare.mkdir()
    (bare / "tasks.py").write_text('from invoke import task\n\n\n@task\ndef hello(c):\n    """Say hello."""\n')

    def best_of(cwd: Path, runs: int = 7) -> float:
        return min(
            timed([sys.executable, "-m", "invoke", "--list"], cwd=cwd, stdout=subprocess.DEVNULL) for _ in range(runs)
        )

    reference, ours = best_of(bare), best_of(REPO)
    bench.record("inv --list", "inv --list", ours, reference, "a bare invoke task file")


if __name__ == "__main__":
    sys.exit(main())
