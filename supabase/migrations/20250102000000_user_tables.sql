-- User data: never synced between environments (the blocked list of environments.ini).

CREATE TABLE public.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  full_name text,
  avatar_url text,
  plan_id uuid REFERENCES public.plans (id),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.user_roles (
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  role text NOT NULL,
  PRIMARY KEY (user_id, role)
);

CREATE TABLE public.client_enrollments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  program_id uuid NOT NULL REFERENCES public.programs (id),
  status text NOT NULL DEFAULT 'active',
  enrolled_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.module_progress (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  enrollment_id uuid NOT NULL REFERENCES public.client_enrollments (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES public.program_modules (id),
  completed_at timestamptz,
  notes text
);

CREATE TABLE public.user_credit_balances (
  user_id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  balance integer NOT NULL DEFAULT 0
);

CREATE TABLE public.org_credit_balances (
  org_id uuid PRIMARY KEY,
  balance integer NOT NULL DEFAULT 0,
  package_id uuid REFERENCES public.org_credit_packages (id)
);

CREATE TABLE public.client_coaches (
  client_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  coach_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  PRIMARY KEY (client_id, coach_id)
);

CREATE TABLE public.sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_type_id integer REFERENCES public.session_types (id),
  client_id uuid REFERENCES auth.users (id),
  coach_id uuid REFERENCES auth.users (id),
  starts_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'scheduled'
);

CREATE TABLE public.notifications (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  notification_type_id uuid REFERENCES public.notification_types (id),
  payload jsonb,
  read_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.user_notification_preferences (
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  notification_type_id uuid NOT NULL REFERENCES public.notification_types (id),
  email_enabled boolean NOT NULL DEFAULT true,
  PRIMARY KEY (user_id, notification_type_id)
);

CREATE TABLE public.oauth_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  provider text NOT NULL,
  access_token text NOT NULL,
  expires_at timestamptz
);

CREATE TABLE public.audit_log (
  id bigserial PRIMARY KEY,
  actor_id uuid REFERENCES auth.users (id),
  action text NOT NULL,
  details jsonb,
  at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.assessment_snapshots (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  family_id uuid REFERENCES public.assessment_families (id),
  taken_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.assessment_ratings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  snapshot_id uuid NOT NULL REFERENCES public.assessment_snapshots (id) ON DELETE CASCADE,
  question_id uuid NOT NULL REFERENCES public.assessment_questions (id),
  rating integer CHECK (rating BETWEEN 1 AND 10)
);

ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY "own profile" ON public.profiles FOR ALL USING (auth.uid() = id);
ALTER TABLE public.notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY "own notifications" ON public.notifications FOR SELECT USING (auth.uid() = user_id);
