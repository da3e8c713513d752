"""Comparing a restored project with the backup's snapshot: each difference named, none invented."""

from __future__ import annotations

from ops.db.snapshot import acl_of, differences


def snapshot(**changes) -> dict:
    base = {
        "rows": {"public.payouts": 5, "auth.users": 2},
        "rls": {"public.payouts": "off"},
        "policies": {"storage.objects: Anyone can upload": ["PERMISSIVE", ["public"], "INSERT", None, "true"]},
        "triggers": {"auth.users: on_auth_user_created": "CREATE TRIGGER ..."},
        "acl": {"table public.payouts": ["<owner>=arwdDxt", "service_role=arwdDxt"]},
        "publications": {"supabase_realtime": ["public.messages"]},
        "extensions": {"pg_trgm": "extensions"},
    }
    return base | changes


def test_the_same_project_has_no_difference():
    assert differences(snapshot(), snapshot()) == []


def test_each_difference_is_named():
    restored = snapshot(
        rows={"public.payouts": 5, "auth.users": 3},
        policies={},
        triggers={},
        acl={"table public.payouts": ["<owner>=arwdDxt", "anon=arwdDxt", "service_role=arwdDxt"]},
        publications={"supabase_realtime": []},
        extensions={},
    )
    assert differences(snapshot(), restored) == [
        "auth.users: 3 rows, the backup had 2",
        "policy storage.objects: Anyone can upload: missing",
        "trigger auth.users: on_auth_user_created: missing",
        "table public.payouts: privileges differ; granted now, not in the backup: anon=arwdDxt",
        "publication supabase_realtime: public.messages missing",
        "extension pg_trgm: missing (the backup had it in schema extensions)",
    ]


def test_rls_of_a_table_the_backup_did_not_know_is_no_difference():
    assert differences(snapshot(), snapshot(rls={"public.payouts": "off", "storage.newer": "on"})) == []
    assert differences(snapshot(), snapshot(rls={"public.payouts": "on"})) == [
        "row level security public.payouts: on, the backup had off"
    ]


def test_acl_items_lose_their_grantor_and_name_public():
    assert acl_of(["=X/postgres", '"Odd Role"=r/postgres', "anon=arwdDxt/supabase_admin"]) == [
        ("PUBLIC", "X"),
        ("Odd Role", "r"),
        ("anon", "arwdDxt"),
    ]
