"""`inv backup` then `inv restore-db` into a new project built as the platform builds one: the
restored project behaves as the source did (triggers, policies, privileges, publication)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from lib.db import new_database, sql
from lib.project import Project
from lib.s3 import s3_secrets

from devstack import localstack
from devstack.mgmt_standin import TOKEN, ManagementAPI
from ops import config as ops_config

REFS = {"prod": "qfdztdgublwlmewobxmx", "fresh": "jtzcrirqflfnagceendt"}
ADA = "00000000-0000-4000-8000-000000000001"

# Supabase's "user management starter" (profiles come from the app's migrations), plus the
# privileges, publication and column kinds a restore must give back.
APP_SQL = """
CREATE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO public.profiles (id, full_name, avatar_url)
  VALUES (new.id, new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'avatar_url');
  RETURN new;
END
$$;
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();

INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', true), ('private-files', 'private-files', false);
CREATE POLICY "Avatar images are publicly accessible." ON storage.objects FOR SELECT USING (bucket_id = 'avatars');
CREATE POLICY "Anyone can upload an avatar." ON storage.objects FOR INSERT WITH CHECK (bucket_id = 'avatars');
CREATE POLICY "Owners read their files" ON storage.objects FOR SELECT TO authenticated
  USING (bucket_id = 'private-files' AND owner = auth.uid());

CREATE TABLE public.payouts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  amount_cents integer NOT NULL,
  amount_eur numeric GENERATED ALWAYS AS (amount_cents / 100.0) STORED
);
REVOKE ALL ON public.payouts FROM anon, authenticated;
INSERT INTO public.payouts (amount_cents) SELECT 100 * g FROM generate_series(1, 5) g;

CREATE TABLE public.admin_audit (id bigserial PRIMARY KEY, what text NOT NULL);
REVOKE ALL ON public.admin_audit FROM anon;
INSERT INTO public.admin_audit (what) VALUES ('created'), ('checked');

CREATE FUNCTION public.grant_credits(who uuid, credits integer) RETURNS integer LANGUAGE sql SECURITY DEFINER
  SET search_path = '' AS $$ SELECT credits $$;
REVOKE EXECUTE ON FUNCTION public.grant_credits(uuid, integer) FROM PUBLIC, anon, authenticated;

DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reporting') THEN CREATE ROLE reporting NOLOGIN; END IF; END $$;
GRANT USAGE ON SCHEMA public TO reporting;
GRANT SELECT ON public.payouts TO reporting;
GRANT USAGE ON SCHEMA storage TO reporting;
GRANT SELECT ON storage.buckets TO reporting;

CREATE TABLE public.messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text NOT NULL);
ALTER PUBLICATION supabase_realtime ADD TABLE public.messages;

CREATE TYPE public.mood AS ENUM ('low', 'ok', 'great');
CREATE TABLE public.check_ins (
  user_id uuid NOT NULL REFERENCES auth.users (id),
  day date NOT NULL,
  mood public.mood NOT NULL,
  PRIMARY KEY (user_id, day)
);
CREATE MATERIALIZED VIEW public.mood_counts AS SELECT mood, count(*) AS n FROM public.check_ins GROUP BY mood;
"""

# What the services do, as the services' roles: a sign-up, a check-in, an upload.
SERVICE_SQL = f"""
SET ROLE supabase_auth_admin;
INSERT INTO auth.users (id, email, raw_user_meta_data)
  VALUES ('{ADA}', 'ada@example.com', '{{"full_name": "Ada"}}');
RESET ROLE;
INSERT INTO public.check_ins VALUES ('{ADA}', '2026-01-01', 'great'), ('{ADA}', '2026-01-02', 'ok');
REFRESH MATERIALIZED VIEW public.mood_counts;
SET ROLE supabase_storage_admin;
INSERT INTO storage.objects (bucket_id, name, owner) VALUES ('private-files', '{ADA}/notes.txt', '{ADA}');
RESET ROLE;
"""


@dataclass
class Trip:
    project: Project
    source: str
    target: str
    target_admin: str
    backup: Path
    made: object
    restored: object


def build(pg, tmp_path, *, extra_app: str = "", extra_service: str = "", target_sql: str = "") -> Trip:
    """A migrated source with the starter app on it, a new bootstrapped project, a backup, a restore."""
    source = new_database(pg, "faithful_src")
    localstack.run_sql(source, APP_SQL + extra_app)
    name = urlname(source)
    localstack.run_sql(pg.admin_url(name), SERVICE_SQL + extra_service)
    target_name = f"faithful_new_{uuid.uuid4().hex[:8]}"
    target = pg.create_database(target_name)
    if target_sql:
        localstack.run_sql(pg.admin_url(target_name), target_sql)
    api = ManagementAPI(projects=set(REFS.values()))
    home = tmp_path / "home"
    home.mkdir()
    project = Project(tmp_path)
    project.secrets = {
        "HOME": str(home),
        "SUPABASE_PROFILE": str(api.write_profile(tmp_path / "profile.yaml")),
        "SUPABASE_ACCESS_TOKEN": TOKEN,
    }
    servers = []
    try:
        buckets = ops_config.load(Path(__file__).parents[1] / "environments.ini").storage.buckets
        for env, url in (("prod", source), ("fresh", target)):
            key_id, secret = f"AKIAFAITHFUL{env.upper()}01", f"faithful-secret-{env}-4711"
            server = localstack.start_s3(key_id, secret, root=tmp_path / f"s3-{env}")
            servers.append(server)
            server.create_buckets(buckets)
            project.envs[env] = {
                "ref": REFS[env],
                "db_url": url,
                "storage_url": server.url,
                "storage_region": "us-east-1",
                "protected": "false",
            }
            project.secrets.update(s3_secrets(env, key_id, secret))
        made = project.run("backup", "--env", "prod", "--json")
        assert made.code == 0, made.err
        folder = Path(json.loads(made.out)["steps"][0]["detail"].split(" (")[0])
        restored = project.run("restore-db", "--backup", str(folder), "--to", "fresh", "--env", "prod")
    finally:
        api.stop()
        for server in servers:
            server.stop()
    return Trip(project, source, target, pg.admin_url(target_name), folder, made, restored)


def urlname(url: str) -> str:
    return url.split("/")[-1].split("?")[0]


@pytest.fixture(scope="module")
def trip(pg, cli, tmp_path_factory) -> Trip:
    done = build(pg, tmp_path_factory.mktemp("faithful"))
    assert done.restored.code == 0, done.restored.err + done.restored.out
    done.project.audit()  # built before the per-test audit starts: audited here
    return done


def as_role(admin_url: str, role: str, text: str, claims: dict | None = None) -> list[tuple]:
    """`text` as the API or service role `role` (as PostgREST and the services switch to it)."""
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.transaction():
        if claims:
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        conn.execute(f"SET LOCAL ROLE {role}")
        cur = conn.execute(text)
        return cur.fetchall() if cur.description else []


def refused(admin_url: str, role: str, text: str, claims: dict | None = None) -> str:
    try:
        as_role(admin_url, role, text, claims)
    except psycopg.Error as error:
        return str(error).splitlines()[0]
    return "allowed"


def test_the_restore_says_ok_and_checks_it(trip):
    assert trip.restored.out.strip().splitlines()[-1].startswith("OK:"), trip.restored.out


def test_a_sign_up_creates_a_profile(trip):
    user = str(uuid.uuid4())
    as_role(
        trip.target_admin,
        "supabase_auth_admin",
        f"INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES ('{user}', 'new@example.com', "
        '\'{"full_name": "New Person"}\')',
    )
    assert sql(trip.target, f"SELECT full_name FROM public.profiles WHERE id = '{user}'") == [("New Person",)]


def test_uploads_and_private_files_follow_the_storage_policies(trip):
    claims = {"sub": ADA, "role": "authenticated"}
    upload = "INSERT INTO storage.objects (bucket_id, name, owner) VALUES ('avatars', 'ada.png', auth.uid())"
    assert refused(trip.target_admin, "authenticated", upload, claims) == "allowed"
    private = "SELECT name FROM storage.objects WHERE bucket_id = 'private-files'"
    assert as_role(trip.target_admin, "authenticated", private, claims) == [(f"{ADA}/notes.txt",)]
    stranger = {"sub": str(uuid.uuid4()), "role": "authenticated"}
    assert as_role(trip.target_admin, "authenticated", private, stranger) == []
    elsewhere = "INSERT INTO storage.objects (bucket_id, name) VALUES ('private-files', 'x.txt')"
    assert "row-level security" in refused(trip.target_admin, "anon", elsewhere)


def test_anon_gets_nothing_from_a_service_role_only_table(trip):
    assert "permission denied" in refused(trip.target_admin, "anon", "SELECT * FROM public.payouts")
    assert "permission denied" in refused(trip.target_admin, "authenticated", "SELECT * FROM public.payouts")
    assert as_role(trip.target_admin, "service_role", "SELECT count(*) FROM public.payouts") == [(5,)]


def test_anon_may_not_truncate_the_audit_table(trip):
    assert "permission denied" in refused(trip.target_admin, "anon", "TRUNCATE public.admin_audit")
    assert "permission denied" in refused(trip.target_admin, "anon", "SELECT * FROM public.admin_audit")


def test_a_security_definer_function_stays_closed_to_anon(trip):
    call = f"SELECT public.grant_credits('{ADA}', 10)"
    assert "permission denied" in refused(trip.target_admin, "anon", call)
    assert "permission denied" in refused(trip.target_admin, "authenticated", call)
    assert as_role(trip.target_admin, "service_role", call) == [(10,)]


def test_a_project_roles_grants_come_back(trip):
    assert as_role(trip.target_admin, "reporting", "SELECT sum(amount_cents) FROM public.payouts") == [(1500,)]
    # ...those on the platform's tables too: a new project's storage.buckets is not the reporting role's.
    held = (
        "SELECT has_schema_privilege('reporting', 'storage', 'USAGE'), "
        "has_table_privilege('reporting', 'storage.buckets', 'SELECT'), "
        "has_table_privilege('reporting', 'storage.objects', 'SELECT')"
    )
    assert sql(trip.target, held) == sql(trip.source, held) == [(True, True, False)]
    assert refused(trip.target_admin, "reporting", "SELECT id FROM storage.buckets") == "allowed"
    assert "permission denied" in refused(trip.target_admin, "reporting", "SELECT * FROM public.admin_audit")


def test_the_realtime_publication_holds_the_table(trip):
    query = "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
    assert sql(trip.target, query) == sql(trip.source, query) == [("public.messages",)]


def test_identity_generated_enum_composite_key_and_matview(trip):
    sql(trip.target, "INSERT INTO public.payouts (amount_cents) VALUES (250)")
    assert sql(trip.target, "SELECT id, amount_eur FROM public.payouts ORDER BY id DESC LIMIT 1") == [
        (6, sql(trip.target, "SELECT 2.5::numeric")[0][0])
    ]
    assert sql(trip.target, "SELECT mood::text, n FROM public.mood_counts ORDER BY 1") == [("great", 1), ("ok", 1)]
    duplicate = f"INSERT INTO public.check_ins VALUES ('{ADA}', '2026-01-01', 'low')"
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql(trip.target, duplicate)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        sql(trip.target, f"INSERT INTO public.check_ins VALUES ('{ADA}', '2026-02-01', 'furious')")


VECTORS_APP = """
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extensions;
CREATE TABLE public.notes (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, body text NOT NULL);
CREATE INDEX notes_body_trgm ON public.notes USING gin (body extensions.gin_trgm_ops);
INSERT INTO public.notes (body) VALUES ('restore'), ('faithful');
"""
VECTORS_SERVICE = """
SET ROLE supabase_storage_admin;
INSERT INTO storage.buckets_vectors (id) VALUES ('embeddings');
RESET ROLE;
"""


def test_vector_buckets_are_left_out_and_app_extensions_come_back(pg, cli, tmp_path):
    done = build(pg, tmp_path, extra_app=VECTORS_APP, extra_service=VECTORS_SERVICE)
    assert done.restored.code == 0, done.restored.err
    assert sql(done.target, "SELECT count(*) FROM storage.buckets_vectors") == [(0,)]
    assert sql(done.target, "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'") == [
        ("extensions",)
    ]
    assert sql(done.target, "SELECT body FROM public.notes WHERE extensions.similarity(body, 'faithfull') > 0.5") == [
        ("faithful",)
    ]
    assert "storage.buckets_vectors" in done.made.out + done.made.err, "the backup says what it left out"


def test_a_restore_that_differs_names_each_difference(pg, cli, tmp_path):
    # A project where someone signed up before the restore: the restored rows are not the backup's.
    signed_up = f"""
    SET ROLE supabase_auth_admin;
    INSERT INTO auth.users (id, email) VALUES ('{uuid.uuid4()}', 'early@example.com');
    RESET ROLE;
    ALTER PUBLICATION supabase_realtime ADD TABLE vault.secrets;
    REVOKE GRANT OPTION FOR ALL ON storage.buckets FROM postgres CASCADE;
    """
    done = build(pg, tmp_path, target_sql=signed_up)
    assert done.restored.code == 1, done.restored.out
    told = done.restored.err + done.restored.out
    assert "auth.users: 2 rows, the backup had 1" in told
    assert "publication supabase_realtime: vault.secrets not in the backup" in told
    assert "table storage.buckets: grant to reporting SELECT missing" in told  # the platform refused it
    assert "OK" not in told
