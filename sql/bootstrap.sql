-- The platform's part of a new Supabase project, condensed from how Supabase builds one:
-- supabase/postgres (migrations/db/init-scripts, then migrations/db/migrations), then the
-- auth and storage services' own migrations, run as supabase_auth_admin and
-- supabase_storage_admin. Only the facts a backup and restore depend on: who owns what, what
-- `postgres` (no superuser) may and may not do, the API roles' default privileges, RLS state,
-- the supabase_realtime publication, the tables the backup guide excludes.
-- Run by the superuser (supabase_admin) once per new database; roles are shared by the cluster.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN BYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
    CREATE ROLE authenticator LOGIN NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
    CREATE ROLE supabase_auth_admin LOGIN NOINHERIT CREATEROLE NOREPLICATION;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'supabase_storage_admin') THEN
    CREATE ROLE supabase_storage_admin LOGIN NOINHERIT CREATEROLE NOREPLICATION;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dashboard_user') THEN
    CREATE ROLE dashboard_user NOSUPERUSER CREATEDB CREATEROLE REPLICATION;
  END IF;
END
$$;
ALTER ROLE supabase_auth_admin SET search_path = auth;
ALTER ROLE supabase_storage_admin SET search_path = storage;
GRANT anon, authenticated, service_role TO authenticator;
-- The services switch to the API roles; postgres may act as them (and read everything).
GRANT anon, authenticated, service_role TO supabase_storage_admin;
GRANT anon, authenticated, service_role TO postgres;
GRANT pg_read_all_data, pg_signal_backend TO postgres;
-- Not members any more (2025): postgres works on auth and storage through grants alone.
REVOKE supabase_auth_admin, supabase_storage_admin FROM postgres;

-- Realtime's publication, empty, owned by postgres (the init scripts ran as postgres).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
    CREATE PUBLICATION supabase_realtime;
    ALTER PUBLICATION supabase_realtime OWNER TO postgres;
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS extensions AUTHORIZATION postgres;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
GRANT USAGE ON SCHEMA public, extensions TO postgres, anon, authenticated, service_role;

-- What postgres creates in public is the API roles' to use: the Data API then filters by RLS.
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;

-- auth: the schema is the superuser's, its tables the auth service's.
CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_admin;
GRANT ALL ON SCHEMA auth TO supabase_auth_admin;
GRANT USAGE ON SCHEMA auth TO postgres, anon, authenticated, service_role, dashboard_user;
REVOKE CREATE ON SCHEMA auth FROM postgres;
-- What the auth service creates, postgres may read, write and put triggers on (not alter or own).
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_auth_admin IN SCHEMA auth GRANT ALL ON TABLES TO postgres, dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_auth_admin IN SCHEMA auth GRANT ALL ON SEQUENCES TO postgres, dashboard_user;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_auth_admin IN SCHEMA auth GRANT ALL ON ROUTINES TO postgres, dashboard_user;

SET ROLE supabase_auth_admin;
CREATE TABLE IF NOT EXISTS auth.users (
  instance_id uuid,
  id uuid NOT NULL PRIMARY KEY,
  aud varchar(255),
  role varchar(255),
  email varchar(255) UNIQUE,
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  recovery_token varchar(255),
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text UNIQUE,
  is_anonymous boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS auth.identities (
  provider_id text NOT NULL,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  identity_data jsonb NOT NULL,
  provider text NOT NULL,
  created_at timestamptz,
  updated_at timestamptz,
  id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  UNIQUE (provider_id, provider)
);
CREATE TABLE IF NOT EXISTS auth.schema_migrations (version varchar(255) PRIMARY KEY);
INSERT INTO auth.schema_migrations VALUES ('20171026211738'), ('20240612123726') ON CONFLICT DO NOTHING;
ALTER TABLE auth.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.schema_migrations ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON auth.users, auth.identities TO postgres WITH GRANT OPTION;

CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;
RESET ROLE;
-- Its own migration history is the auth service's alone (2025).
REVOKE ALL ON auth.schema_migrations FROM postgres, dashboard_user;

-- storage: the schema is the superuser's, its tables the storage service's.
CREATE SCHEMA IF NOT EXISTS storage AUTHORIZATION supabase_admin;
GRANT ALL ON SCHEMA storage TO supabase_storage_admin;
GRANT USAGE ON SCHEMA storage TO anon, authenticated, service_role, dashboard_user;
GRANT USAGE ON SCHEMA storage TO postgres WITH GRANT OPTION;
REVOKE CREATE ON SCHEMA storage FROM postgres;

SET ROLE supabase_storage_admin;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_type WHERE typname = 'buckettype' AND typnamespace = 'storage'::regnamespace) THEN
    CREATE TYPE storage.buckettype AS ENUM ('STANDARD', 'ANALYTICS', 'VECTOR');
  END IF;
END
$$;
CREATE TABLE IF NOT EXISTS storage.buckets (
  id text PRIMARY KEY,
  name text NOT NULL,
  owner uuid,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  public boolean DEFAULT false,
  avif_autodetection boolean DEFAULT false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text,
  type storage.buckettype NOT NULL DEFAULT 'STANDARD'
);
CREATE UNIQUE INDEX IF NOT EXISTS bname ON storage.buckets (name);
CREATE TABLE IF NOT EXISTS storage.objects (
  id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  bucket_id text REFERENCES storage.buckets (id),
  name text,
  owner uuid,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  last_accessed_at timestamptz DEFAULT now(),
  metadata jsonb,
  path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
  version text,
  owner_id text,
  user_metadata jsonb
);
CREATE UNIQUE INDEX IF NOT EXISTS bucketid_objname ON storage.objects (bucket_id, name);
CREATE TABLE IF NOT EXISTS storage.migrations (
  id integer PRIMARY KEY,
  name varchar(100) UNIQUE NOT NULL,
  hash varchar(40) NOT NULL,
  executed_at timestamp DEFAULT current_timestamp
);
-- Vector buckets (2025): the API roles may read them; postgres was given nothing on them, so a
-- restore that writes their rows fails ("permission denied for table buckets_vectors").
CREATE TABLE IF NOT EXISTS storage.buckets_vectors (
  id text NOT NULL PRIMARY KEY,
  type storage.buckettype NOT NULL DEFAULT 'VECTOR',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS storage.vector_indexes (
  id text PRIMARY KEY DEFAULT gen_random_uuid(),
  name text COLLATE "C" NOT NULL,
  bucket_id text NOT NULL REFERENCES storage.buckets_vectors (id),
  data_type text NOT NULL,
  dimension integer NOT NULL,
  distance_metric text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE storage.buckets ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.migrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.buckets_vectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage.vector_indexes ENABLE ROW LEVEL SECURITY;
GRANT ALL ON storage.buckets, storage.objects TO anon, authenticated, service_role;
GRANT ALL ON storage.buckets, storage.objects TO postgres WITH GRANT OPTION;
GRANT SELECT ON storage.buckets_vectors, storage.vector_indexes TO anon, authenticated, service_role;

CREATE OR REPLACE FUNCTION storage.foldername(name text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE _parts text[];
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  RETURN _parts[1:array_length(_parts, 1) - 1];
END
$$;
CREATE OR REPLACE FUNCTION storage.filename(name text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE _parts text[];
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  RETURN _parts[array_length(_parts, 1)];
END
$$;
CREATE OR REPLACE FUNCTION storage.update_updated_at_column() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at = now();
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS update_objects_updated_at ON storage.objects;
CREATE TRIGGER update_objects_updated_at BEFORE UPDATE ON storage.objects
  FOR EACH ROW EXECUTE FUNCTION storage.update_updated_at_column();
RESET ROLE;
REVOKE ALL ON storage.migrations FROM anon, authenticated, service_role, postgres;

-- The platform's supautils extension (`supautils.policy_grants`) lets postgres create, alter and
-- drop RLS policies on these tables without owning them. This stand-in lends postgres the owner's
-- role for one policy statement only and refuses a policy on any other platform table.
CREATE TABLE IF NOT EXISTS extensions.policy_grants (tablename regclass PRIMARY KEY);
REVOKE ALL ON extensions.policy_grants FROM PUBLIC, postgres, anon, authenticated, service_role;
INSERT INTO extensions.policy_grants VALUES ('auth.users'), ('auth.identities'), ('storage.buckets'),
  ('storage.objects') ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION extensions.policy_grants_lend() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  GRANT supabase_auth_admin, supabase_storage_admin TO postgres;
  PERFORM set_config('supautils.policy_grants_lent', 'on', true);  -- a later statement: the grant is seen
END
$$;
CREATE OR REPLACE FUNCTION extensions.policy_grants_return() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE refused text;
BEGIN
  SELECT string_agg(p.polrelid::regclass::text, ', ') INTO refused
  FROM pg_event_trigger_ddl_commands() c JOIN pg_policy p ON p.oid = c.objid
  JOIN pg_class t ON t.oid = p.polrelid
  WHERE c.classid = 'pg_policy'::regclass
    AND pg_get_userbyid(t.relowner) IN ('supabase_auth_admin', 'supabase_storage_admin')
    AND NOT EXISTS (SELECT FROM extensions.policy_grants g WHERE g.tablename = p.polrelid);
  IF refused IS NOT NULL THEN
    RAISE EXCEPTION 'must be owner of table %', refused;
  END IF;
  REVOKE supabase_auth_admin, supabase_storage_admin FROM postgres;
END
$$;
DROP EVENT TRIGGER IF EXISTS policy_grants_lend;
DROP EVENT TRIGGER IF EXISTS policy_grants_return;
CREATE EVENT TRIGGER policy_grants_lend ON ddl_command_start
  WHEN TAG IN ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY') EXECUTE FUNCTION extensions.policy_grants_lend();
CREATE EVENT TRIGGER policy_grants_return ON ddl_command_end
  WHEN TAG IN ('CREATE POLICY', 'ALTER POLICY', 'DROP POLICY') EXECUTE FUNCTION extensions.policy_grants_return();

-- A platform schema of the superuser's (as vault is): never in a backup's schema or data.
CREATE SCHEMA IF NOT EXISTS vault AUTHORIZATION supabase_admin;
CREATE TABLE IF NOT EXISTS vault.secrets (id uuid PRIMARY KEY, secret text);

-- The CLI's migration history lives in a schema postgres may create in.
CREATE SCHEMA IF NOT EXISTS supabase_migrations AUTHORIZATION supabase_admin;
GRANT USAGE, CREATE ON SCHEMA supabase_migrations TO postgres;

-- As supautils's privileged_role_allowed_configs does: postgres may load data without triggers
-- and FK checks (the migration guide's `SET session_replication_role = replica`).
GRANT SET ON PARAMETER session_replication_role TO postgres;
