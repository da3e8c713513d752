-- Demo content for the local "prod" environment: config rows worth syncing, and user
-- rows (profiles, enrollments) that sync-data must never copy.

INSERT INTO auth.users (id, email) VALUES
  ('00000000-0000-4000-8000-000000000001', 'ada@example.com'),
  ('00000000-0000-4000-8000-000000000002', 'grace@example.com');

INSERT INTO public.plans (id, key, name, description, tier_level, metadata) VALUES
  ('10000000-0000-4000-8000-000000000001', 'free', 'Free', 'Try the platform', 0, '{"trial_days": null}'),
  ('10000000-0000-4000-8000-000000000002', 'pro', 'Pro', 'For individual clients', 1, '{"badge": "popular", "limits": {"programs": 5}}'),
  ('10000000-0000-4000-8000-000000000003', 'enterprise', 'Enterprise', 'Teams & "orgs" \ with SSO', 2, 'null');

INSERT INTO public.features (id, key, name, is_consumable, config)
SELECT ('20000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'feature_' || g, 'Feature ' || g,
       g % 3 = 0, json_build_object('weight', g, 'tags', json_build_array('a', 'b'))
FROM generate_series(1, 12) g;

INSERT INTO public.plan_features (plan_id, feature_id, limit_value)
SELECT p.id, f.id, CASE WHEN f.is_consumable THEN 10 * p.tier_level END
FROM public.plans p JOIN public.features f ON (right(f.key, 1)::int % 3) <= p.tier_level;

INSERT INTO public.plan_prices (plan_id, billing_interval, amount, currency, stripe_price_id) VALUES
  ('10000000-0000-4000-8000-000000000002', 'month', 29.00, 'EUR', 'price_pro_m'),
  ('10000000-0000-4000-8000-000000000002', 'year', 290.00, 'EUR', 'price_pro_y'),
  ('10000000-0000-4000-8000-000000000003', 'year', 4990.99, 'EUR', NULL);

INSERT INTO public.module_types (key, label, description) VALUES
  ('video', 'Video', 'A recorded lesson'), ('reading', 'Reading', NULL), ('exercise', 'Exercise', 'Hands-on work');

INSERT INTO public.programs (id, slug, name, description, category, tags, duration, is_published) VALUES
  ('30000000-0000-4000-8000-000000000001', 'leadership-101', 'Leadership 101', E'Line one\nLine two', 'leadership', '{core,"with space"}', '6 weeks', true),
  ('30000000-0000-4000-8000-000000000002', 'coaching-basics', 'Coaching Basics', 'Ünïcödé – ✓', 'coaching', '{}', '1 mon 2 days', false);

INSERT INTO public.program_modules (program_id, module_type, title, order_index, estimated_minutes, resources)
SELECT p.id, (ARRAY['video', 'reading', 'exercise'])[1 + g % 3], p.name || ' module ' || g, g, 15 * g,
       jsonb_build_array(jsonb_build_object('title', 'Resource ' || g))
FROM public.programs p, generate_series(1, 8) g;

INSERT INTO public.tracks (key, name, sort_order) VALUES ('core', 'Core', 1), ('advanced', 'Advanced', 2);
INSERT INTO public.track_features SELECT t.id, f.id FROM public.tracks t, public.features f WHERE f.is_consumable;

INSERT INTO public.session_types (key, name, duration_minutes, default_price) VALUES
  ('coaching', '1:1 Coaching', 60, 120.00), ('group', 'Group session', 90, 45.50), ('intro', 'Intro call', 20, NULL);
INSERT INTO public.session_type_roles SELECT id, r FROM public.session_types, unnest(ARRAY['coach', 'client']) r;

INSERT INTO public.credit_services (key, name, category, credit_cost, feature_id)
SELECT 'service_' || g, 'Service ' || g, 'ai', g * 5, ('20000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid
FROM generate_series(1, 5) g;
INSERT INTO public.credit_topup_packages (name, credits, price_cents) VALUES ('Small', 50, 900), ('Large', 500, 7900);
INSERT INTO public.org_credit_packages (name, credits, price, valid_days) VALUES ('Team', 5000, 499.00, 365);
INSERT INTO public.org_platform_tiers (key, name, max_seats, annual_fee, features) VALUES
  ('team', 'Team', 25, 4999.00, '{"sso": false}'), ('org', 'Organisation', NULL, 19999.00, '{"sso": true}');

INSERT INTO public.notification_categories (key, name, sort_order) VALUES ('sessions', 'Sessions', 1), ('billing', 'Billing', 2);
INSERT INTO public.notification_types (key, category_id, name, default_channels, is_critical)
SELECT c.key || '_' || g, c.id, c.name || ' ' || g, ARRAY['email', 'in_app'], g = 1
FROM public.notification_categories c, generate_series(1, 4) g;

INSERT INTO public.assessment_categories (id, name) VALUES ('40000000-0000-4000-8000-000000000001', 'Personality');
INSERT INTO public.assessment_families (id, category_id, parent_family_id, slug, name) VALUES
  ('41000000-0000-4000-8000-000000000002', '40000000-0000-4000-8000-000000000001', NULL, 'big-five', 'Big Five'),
  ('41000000-0000-4000-8000-000000000001', '40000000-0000-4000-8000-000000000001', '41000000-0000-4000-8000-000000000002', 'big-five-short', 'Big Five (short)');
INSERT INTO public.assessment_domains (family_id, category_id, name, sort_order)
SELECT '41000000-0000-4000-8000-000000000002', '40000000-0000-4000-8000-000000000001', d, o
FROM unnest(ARRAY['Openness', 'Conscientiousness', 'Extraversion', 'Agreeableness', 'Neuroticism']) WITH ORDINALITY x(d, o);
INSERT INTO public.assessment_questions (domain_id, question_text, question_type, options, weight, sort_order)
SELECT d.id, 'How much do you agree: statement ' || g || ' about ' || d.name || '?', 'rating',
       jsonb_build_object('min', 1, 'max', 10), 1.25, g
FROM public.assessment_domains d, generate_series(1, 6) g;

INSERT INTO public.system_settings (key, value, description) VALUES
  ('maintenance_mode', 'false', 'Show the maintenance banner'),
  ('support_email', '"support@example.com"', NULL),
  ('limits', '{"upload_mb": 50, "ratio": 0.125}', 'Upload limits');
INSERT INTO public.wheel_categories (key, name, color, sort_order)
SELECT 'wheel_' || g, 'Life area ' || g, '#' || lpad(to_hex(g * 1000000), 6, '0'), g FROM generate_series(1, 8) g;
INSERT INTO public.platform_terms (version, title, content, content_hash, effective_from, is_current) VALUES
  ('2025-01', 'Terms of service', 'You agree to $$ everything $$.', '\xdeadbeef', '2025-01-01', true);
INSERT INTO public.email_templates (key, subject, html_body, text_body, variables) VALUES
  ('welcome', 'Welcome, {{name}}!', '<p>Hello {{name}}, it''s great to have you.</p>', E'Hello {{name}}\\n', '{name}'),
  ('reset', 'Reset your password', '<a href="{{link}}">Reset</a>', NULL, '{link}');
INSERT INTO public.resource_categories (id, key, name, parent_id) VALUES
  ('50000000-0000-4000-8000-000000000001', 'guides', 'Guides', NULL),
  ('50000000-0000-4000-8000-000000000002', 'guides-video', 'Video guides', '50000000-0000-4000-8000-000000000001');

-- User data that must stay in prod.
INSERT INTO public.profiles (id, full_name, plan_id) VALUES
  ('00000000-0000-4000-8000-000000000001', 'Ada', '10000000-0000-4000-8000-000000000002');
INSERT INTO public.client_enrollments (user_id, program_id) VALUES
  ('00000000-0000-4000-8000-000000000001', '30000000-0000-4000-8000-000000000001');
INSERT INTO public.audit_log (actor_id, action, details) VALUES
  ('00000000-0000-4000-8000-000000000001', 'login', '{"ip": "127.0.0.1"}');
