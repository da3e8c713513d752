-- Configuration and content tables: safe to sync between environments.

CREATE TYPE public.billing_interval AS ENUM ('month', 'year', 'one_time');
CREATE TYPE public.question_type AS ENUM ('rating', 'single_choice', 'multi_choice', 'free_text');

CREATE TABLE public.plans (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  description text,
  tier_level integer NOT NULL DEFAULT 0,
  is_active boolean NOT NULL DEFAULT true,
  is_public boolean NOT NULL DEFAULT true,
  metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.features (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  description text,
  is_consumable boolean NOT NULL DEFAULT false,
  config json,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.plan_features (
  plan_id uuid NOT NULL REFERENCES public.plans (id) ON DELETE CASCADE,
  feature_id uuid NOT NULL REFERENCES public.features (id) ON DELETE CASCADE,
  enabled boolean NOT NULL DEFAULT true,
  limit_value integer,
  PRIMARY KEY (plan_id, feature_id)
);

CREATE TABLE public.plan_prices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  plan_id uuid NOT NULL REFERENCES public.plans (id) ON DELETE CASCADE,
  billing_interval public.billing_interval NOT NULL,
  amount numeric(12, 2) NOT NULL CHECK (amount >= 0),
  amount_cents bigint GENERATED ALWAYS AS ((amount * 100)::bigint) STORED,
  currency char(3) NOT NULL DEFAULT 'EUR',
  stripe_price_id text,
  UNIQUE (plan_id, billing_interval, currency)
);

CREATE TABLE public.module_types (
  key text PRIMARY KEY,
  label text NOT NULL,
  description text,
  icon text
);

CREATE TABLE public.programs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug text NOT NULL UNIQUE,
  name text NOT NULL,
  description text,
  category text,
  tags text[] NOT NULL DEFAULT '{}',
  duration interval,
  is_published boolean NOT NULL DEFAULT false,
  created_by uuid REFERENCES auth.users (id),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.program_modules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  program_id uuid NOT NULL REFERENCES public.programs (id) ON DELETE CASCADE,
  module_type text REFERENCES public.module_types (key),
  title text NOT NULL,
  content text,
  order_index integer NOT NULL DEFAULT 0,
  estimated_minutes integer,
  resources jsonb NOT NULL DEFAULT '[]'
);

CREATE TABLE public.tracks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  description text,
  sort_order integer NOT NULL DEFAULT 0
);

CREATE TABLE public.track_features (
  track_id uuid NOT NULL REFERENCES public.tracks (id) ON DELETE CASCADE,
  feature_id uuid NOT NULL REFERENCES public.features (id) ON DELETE CASCADE,
  PRIMARY KEY (track_id, feature_id)
);

CREATE TABLE public.session_types (
  id serial PRIMARY KEY,
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  duration_minutes integer NOT NULL DEFAULT 60,
  default_price numeric(10, 2),
  color text
);

CREATE TABLE public.session_type_roles (
  session_type_id integer NOT NULL REFERENCES public.session_types (id) ON DELETE CASCADE,
  role text NOT NULL,
  PRIMARY KEY (session_type_id, role)
);

CREATE TABLE public.credit_services (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  category text,
  credit_cost integer NOT NULL CHECK (credit_cost >= 0),
  feature_id uuid REFERENCES public.features (id),
  is_active boolean NOT NULL DEFAULT true
);

CREATE TABLE public.credit_topup_packages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  credits integer NOT NULL,
  price_cents integer NOT NULL,
  currency char(3) NOT NULL DEFAULT 'EUR',
  is_active boolean NOT NULL DEFAULT true
);

CREATE TABLE public.org_credit_packages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  credits integer NOT NULL,
  price numeric(12, 2) NOT NULL,
  valid_days integer
);

CREATE TABLE public.org_platform_tiers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  max_seats integer,
  annual_fee numeric(12, 2),
  features jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE public.notification_categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  sort_order integer NOT NULL DEFAULT 0
);

CREATE TABLE public.notification_types (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  category_id uuid REFERENCES public.notification_categories (id),
  name text NOT NULL,
  default_channels text[] NOT NULL DEFAULT '{email}',
  is_critical boolean NOT NULL DEFAULT false
);

CREATE TABLE public.assessment_categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  description text
);

CREATE TABLE public.assessment_families (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  category_id uuid REFERENCES public.assessment_categories (id),
  parent_family_id uuid REFERENCES public.assessment_families (id),
  slug text NOT NULL UNIQUE,
  name text NOT NULL
);

CREATE TABLE public.assessment_domains (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  family_id uuid NOT NULL REFERENCES public.assessment_families (id) ON DELETE CASCADE,
  category_id uuid REFERENCES public.assessment_categories (id),
  name text NOT NULL,
  sort_order integer NOT NULL DEFAULT 0
);

CREATE TABLE public.assessment_questions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  domain_id uuid NOT NULL REFERENCES public.assessment_domains (id) ON DELETE CASCADE,
  question_text text NOT NULL,
  question_type public.question_type NOT NULL DEFAULT 'rating',
  options jsonb,
  weight numeric(6, 3) NOT NULL DEFAULT 1.000,
  sort_order integer NOT NULL DEFAULT 0
);

CREATE TABLE public.system_settings (
  key text PRIMARY KEY,
  value jsonb,
  description text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.wheel_categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  color text,
  icon text,
  sort_order integer NOT NULL DEFAULT 0
);

CREATE TABLE public.platform_terms (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  version text NOT NULL UNIQUE,
  title text NOT NULL,
  content text NOT NULL,
  content_hash bytea,
  effective_from date NOT NULL,
  is_current boolean NOT NULL DEFAULT false
);

CREATE TABLE public.email_templates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  subject text NOT NULL,
  html_body text NOT NULL,
  text_body text,
  variables text[] NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.resource_categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key text NOT NULL UNIQUE,
  name text NOT NULL,
  parent_id uuid REFERENCES public.resource_categories (id),
  sort_order integer NOT NULL DEFAULT 0
);

ALTER TABLE public.plans ENABLE ROW LEVEL SECURITY;
CREATE POLICY "plans are readable by everyone" ON public.plans FOR SELECT USING (is_public);
GRANT SELECT ON ALL TABLES IN SCHEMA public TO anon, authenticated;
