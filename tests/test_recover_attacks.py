"""`recover-rows --where` under attack: whatever the condition, both databases stay byte-identical, the
task exits 1 or 2 with one line, and nothing else the source's sessions can see happens."""

from __future__ import annotations

import psycopg
from lib.db import sql
from lib.recovery import GRACE, HOSTILE, everything, restored_copy

WHERE = ("recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", "public.profiles", "--where")
ADMIN = ("//postgres@", "//supabase_admin@")

# Objects a restored project may hold: what its developers wrote, labels and all.
SOURCE_OBJECTS = """
CREATE FUNCTION public.notifies() RETURNS boolean LANGUAGE sql IMMUTABLE
AS $$ SELECT pg_notify('pgrst', 'reload schema') IS NOT NULL $$;
CREATE FUNCTION public.terminates() RETURNS boolean LANGUAGE plpgsql STABLE
AS $$ BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim';
RETURN true; END $$;
CREATE FUNCTION public.dynamic_write() RETURNS boolean LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN EXECUTE 'UPDATE public.profiles SET full_name = ''x'''; RETURN true; END $$;
CREATE FUNCTION public.counts() RETURNS boolean LANGUAGE plpgsql VOLATILE
AS $$ BEGIN PERFORM nextval('public.audit_log_id_seq'); RETURN true; END $$;
CREATE FUNCTION public.counts_when_writable() RETURNS boolean LANGUAGE plpgsql
AS $$ BEGIN IF current_setting('transaction_read_only') = 'off' THEN PERFORM nextval('public.audit_log_id_seq');
END IF; RETURN true; END $$;
CREATE DOMAIN public.counted AS int CHECK (public.counts_when_writable());
CREATE DOMAIN public.notifying AS int CHECK (public.notifies());
CREATE DOMAIN public.terminating AS int CHECK (public.terminates());
CREATE TYPE public.wrapped AS (v public.counted);
CREATE FUNCTION public.stable_eq(text, text) RETURNS boolean LANGUAGE sql STABLE
AS $$ SELECT pg_notify('pgrst', 'reload schema') IS NOT NULL $$;
CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = public.stable_eq);
CREATE FUNCTION public.to_bool_notifying(int) RETURNS boolean LANGUAGE sql IMMUTABLE
AS $$ SELECT pg_notify('pgrst', 'reload schema') IS NOT NULL $$;
CREATE TYPE public.flag AS ENUM ('on');
CREATE FUNCTION public.flag_of(public.flag) RETURNS boolean LANGUAGE sql IMMUTABLE
AS $$ SELECT pg_notify('flagcast', 'cast') IS NOT NULL $$;
CREATE CAST (public.flag AS boolean) WITH FUNCTION public.flag_of(public.flag);
CREATE FUNCTION public.remote_write() RETURNS boolean LANGUAGE sql IMMUTABLE SECURITY DEFINER
AS $$ SELECT dblink_exec('PROD', 'DELETE FROM public.profiles') IS NOT NULL $$;
CREATE VIEW public.notifying_view AS SELECT public.notifies() AS n;
"""

ATTACKS = {
    # the lexer: quoting that might hide a second statement or the end of the wrapper
    "standard_conforming_strings off": "set_config('standard_conforming_strings', 'off', true) = 'off'",
    "backslash in a plain string": "full_name = 'a\\')) k; DELETE FROM public.profiles; --'",
    "U& identifier with UESCAPE": "U&\"!0066ull_name\" UESCAPE '!' IS NULL)) k; DELETE FROM public.profiles; --",
    "nested comment left open": "true /* /* */ )) k; DELETE FROM public.profiles; --",
    "escaping the wrapper: not a key": "true)) k UNION ALL SELECT '[1]' WHERE ((true",
    "escaping the wrapper: other columns": 'true)) k UNION ALL SELECT \'{"full_name": "x"}\' WHERE ((true',
    "unterminated quote": "full_name = 'abc",
    "unterminated dollar quote": "full_name = $$abc",
    # transaction control and statements
    "commit as an expression": "true)) k; COMMIT; --",
    "savepoint release": "true)) k; RELEASE SAVEPOINT x; --",
    "begin read write": "true)) k; BEGIN READ WRITE; --",
    "lock table": "true)) k; LOCK public.profiles; --",
    "set session": "true)) k; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; --",
    # volatile builtins, directly
    "setval": "setval('public.audit_log_id_seq', 100) > 0",
    "pg_cancel_backend": "pg_cancel_backend(pg_backend_pid())",
    "pg_notify": "pg_notify('pgrst', 'reload schema') IS NOT NULL",
    "lo_create": "lo_create(0) > 0",
    "lo_unlink": "lo_unlink(1) = 1",
    "txid_current": "txid_current() > 0",
    "pg_current_xact_id": "pg_current_xact_id() IS NOT NULL",
    "pg_sleep": "pg_sleep(3600) IS NULL",
    "pg_try_advisory_lock": "pg_try_advisory_lock(1)",
    "pg_advisory_xact_lock": "pg_advisory_xact_lock(1) IS NULL",
    "set_config session role": "set_config('role', 'postgres', false) IS NOT NULL",
    "set_config statement_timeout off": "set_config('statement_timeout', '0', false) = '0'",
    "dblink": "dblink_exec('dbname=postgres', 'DELETE FROM public.profiles') = 'OK'",
    "volatile in a scalar subquery": "(SELECT nextval('public.audit_log_id_seq')) > 0",
    "volatile in a lateral": "EXISTS (SELECT 1 FROM generate_series(1, 1) g, LATERAL (SELECT random()) r)",
    # mislabelled functions in the source, and ways to reach one without naming it
    "an immutable function that notifies": "public.notifies()",
    "a stable function that terminates another session": "public.terminates()",
    "an immutable function writing through EXECUTE": "public.dynamic_write()",
    "a domain check calling a volatile function": "1::public.counted = 1",
    "a domain check run at parse time (array literal)": "'{1}'::public.counted[] IS NOT NULL",
    "a domain check run at parse time (composite literal)": "'(1)'::public.wrapped IS NOT NULL",
    "a domain check that notifies": "2::public.notifying = 2",
    "a domain check that terminates": "3::public.terminating = 3",
    "an operator over a stable function that notifies": "full_name === 'x'",
    "a cast with an immutable function that notifies": "'on'::public.flag::boolean",
    "a view that calls a mislabelled function": "EXISTS (SELECT 1 FROM public.notifying_view)",
    "an immutable security definer function writing to the target": "public.remote_write()",
    "a conversion through a mislabelled function": "public.to_bool_notifying(1)",
    "a stable builtin that reads a view (table_to_xml)": "table_to_xml('public.notifying_view', true, false, '') IS NOT NULL",
    "a stable builtin that reads a schema (schema_to_xml)": "schema_to_xml('public', true, false, '') IS NOT NULL",
    "a stable builtin that reads everything (database_to_xml)": "database_to_xml(true, false, '') IS NOT NULL",
    # placeholders and odd input
    "percent s": "full_name = %s",
    "dollar one in text": "full_name = '$1' OR id = $1",
    "huge input": "true OR " * 10000 + "true)) k; DELETE FROM public.profiles; --",
    "resource exhaustion": "(SELECT count(*) FROM generate_series(1, 100000000000) a) < 0",
    "not boolean, a set": "generate_series(1, 2) > 0",
}


def test_hostile_conditions_change_nothing_and_do_nothing(project, pg):
    prod, pitr = project.url("prod"), restored_copy(project, pg)
    sql(pitr.replace(*ADMIN), "CREATE EXTENSION IF NOT EXISTS dblink")
    sql(pitr.replace(*ADMIN), SOURCE_OBJECTS.replace("PROD", prod.replace(*ADMIN).replace("?sslmode=disable", "")))
    before = {prod: everything(prod), pitr: everything(pitr)}
    failures = []
    with (
        psycopg.connect(pitr, autocommit=True, application_name="victim") as victim,
        psycopg.connect(pitr, autocommit=True) as listener,
    ):
        listener.execute("LISTEN pgrst")
        listener.execute("LISTEN flagcast")
        for name, condition in {**ATTACKS, **HOSTILE}.items():
            try:
                result = project.run(*WHERE, condition, "--dry-run")
            except AssertionError as printed:  # a traceback
                failures.append(f"{name}: {str(printed)[-300:]}")
                continue
            reason = [line for line in result.err.splitlines() if line.strip()]
            if result.code not in (1, 2) or len(reason) != 1 or "Traceback" in result.err:
                failures.append(f"{name}: exit {result.code}, {result.err.strip()[:300]!r}")
            for url, dumped in before.items():
                if everything(url) != dumped:
                    failures.append(f"{name}: {'prod' if url == prod else 'prod-pitr'} changed")
                    before[url] = everything(url)
            heard = list(listener.notifies(timeout=0.2))
            if heard:
                failures.append(f"{name}: sent NOTIFY {[(n.channel, n.payload) for n in heard]}")
            try:
                victim.execute("SELECT 1")
            except psycopg.OperationalError:
                failures.append(f"{name}: terminated another session of the source")
                victim = psycopg.connect(pitr, autocommit=True, application_name="victim")
    assert not failures, "\n".join(failures)


# Quoting that keeps the would-be injection inside one literal: a valid condition, run as one.
LITERALLY = {
    "E string, backslash-escaped quote": "full_name = E'\\\\'')) k; DELETE FROM public.profiles; --'",
    "dollar quote with a tag": "full_name = $a$')) k; DELETE FROM public.profiles; --$a$",
    "U& string with UESCAPE": "full_name = U&'!0027)) k; DELETE FROM public.profiles; --' UESCAPE '!'",
    "line comment before the wrapper's end": "full_name IS NULL -- )) k; DELETE FROM public.profiles",
}


def test_quoted_injections_stay_literals(project, pg):
    prod, pitr = project.url("prod"), restored_copy(project, pg)
    before = {prod: everything(prod), pitr: everything(pitr)}
    for name, condition in LITERALLY.items():
        for mode in ("--dry-run", "--yes"):
            result = project.run(*WHERE, condition, mode)
            assert result.code == 0 and " 0 row(s) into prod" in result.out, (name, result.err)
            assert {url: everything(url) for url in before} == before, name


KEYS = ("recover-rows", "--from", "prod-pitr", "--to", "prod", "--table", "public.profiles", "--dry-run", "--keys")


def test_a_non_utf8_condition_is_one_line(project, pg):
    restored_copy(project, pg)
    prod = project.url("prod")
    before = everything(prod)
    # A NUL byte cannot reach the task at all (argv is C strings); non-UTF-8 bytes can.
    for condition in ("full_name = '\udcff'", "\udcff\udcfe", "full_name = E'\\xff'"):
        result = project.run(*WHERE, condition, "--dry-run")
        reason = [line for line in result.err.splitlines() if line.strip()]
        assert result.code in (1, 2) and len(reason) == 1 and "Traceback" not in result.err, result.err
    keyed = project.run(*KEYS, "id=\udcff")
    assert keyed.code == 2 and len(keyed.err.strip().splitlines()) == 1, keyed.err
    assert everything(prod) == before


def test_keys_that_are_malformed_are_refused_in_one_line(project, pg):
    restored_copy(project, pg)
    prod = project.url("prod")
    before = everything(prod)
    for keys in ("id=", "=x", "id=not-a-uuid", "id=1,2", "'; DELETE FROM public.profiles; --", "id=a,b=c"):
        result = project.run(*KEYS, keys)
        reason = [line for line in result.err.splitlines() if line.strip()]
        assert result.code == 2 and len(reason) == 1 and "Traceback" not in result.err, (keys, result.err)
    both = project.run(*KEYS, GRACE, "--where", "true")
    assert both.code == 2 and "either --where or --keys" in both.err
    pruned = project.run(*WHERE, "true", "--prune", "--dry-run")
    assert pruned.code == 2 and "--prune" in pruned.err
    assert everything(prod) == before


def test_a_row_security_policy_is_judged_like_the_condition(project, pg):
    """A policy's USING expression joins the query when it is rewritten: its functions are judged too."""
    prod, pitr = project.url("prod"), restored_copy(project, pg)
    sql(
        pitr.replace(*ADMIN),
        """
        CREATE FUNCTION public.notifies() RETURNS boolean LANGUAGE sql IMMUTABLE
        AS $$ SELECT pg_notify('pgrst', 'reload schema') IS NOT NULL $$;
        ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
        CREATE POLICY everyone ON public.profiles USING (public.notifies());""",
    )
    before = {prod: everything(prod), pitr: everything(pitr)}
    with psycopg.connect(pitr, autocommit=True) as listener:
        listener.execute("LISTEN pgrst")
        result = project.run(*WHERE, "full_name IS NOT NULL", "--dry-run")
        heard = list(listener.notifies(timeout=0.5))
    assert not heard, "the policy's function ran"
    assert {url: everything(url) for url in before} == before
    # Refused when the role is under the policy; run without it when the role bypasses row security.
    bypasses = sql(pitr, "SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user")[0][0]
    assert (result.code, "public.notifies()" in result.err) == ((0, False) if bypasses else (2, True)), result.err


def test_an_ordinary_condition_on_two_tables_still_selects(project, pg):
    """What --where is for still works after all the refusals: builtins, subqueries, both tables."""
    prod = project.url("prod")
    sql(prod, f"INSERT INTO public.profiles (id, full_name) VALUES ('{GRACE}', 'Grace')")
    restored_copy(project, pg)
    sql(prod, f"DELETE FROM auth.users WHERE id = '{GRACE}'")
    condition = f"lower(id::text) = '{GRACE}' AND id IN (SELECT DISTINCT id FROM auth.users ORDER BY id) AND now() > now() - interval '1 day'"
    planned = project.run(
        "recover-rows",
        "--from",
        "prod-pitr",
        "--to",
        "prod",
        "--table",
        "auth.users,public.profiles",
        "--dry-run",
        "--where",
        condition,
    )
    assert planned.code == 0, planned.err
    assert f"+ auth.users[{GRACE}]" in planned.out and f"+ profiles[{GRACE}]" in planned.out
