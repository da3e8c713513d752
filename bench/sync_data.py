"""Lines 1-3: sync-data against pg_dump | psql on one local PostgreSQL."""

from __future__ import annotations

import subprocess
import time

from bench.harness import REPO, Bench, plain, tool, write_ini
from devstack import localstack
from ops import config as ops_config

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
