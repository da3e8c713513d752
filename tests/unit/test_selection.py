"""Choosing tables, buckets and flags: refusals come before anything runs (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke import Context, Exit

import tasks
from ops import tasking
from ops.config import StorageSettings, SyncDataSettings
from ops.errors import UserError
from ops.sync.plan import select_tables

SETTINGS = SyncDataSettings(
    safe_tables=["plans", "public.features"], blocked_tables=["profiles"], export_dir=Path("tmp")
)


def test_all_safe_tables_by_default_qualified():
    assert select_tables(SETTINGS, None) == ["public.plans", "public.features"]


def test_blocked_table_is_refused_as_user_data():
    with pytest.raises(UserError, match="user data"):
        select_tables(SETTINGS, ["public.profiles"])


def test_unknown_table_points_at_safe_tables():
    with pytest.raises(UserError, match="safe_tables"):
        select_tables(SETTINGS, ["coupons"])


def test_duplicates_collapse_in_request_order():
    assert select_tables(SETTINGS, ["features", "plans", "public.features"]) == ["public.features", "public.plans"]


def test_unknown_bucket_is_refused():
    from ops.storage.sync import select_buckets

    class FakeConfig:
        storage = StorageSettings(buckets=["avatars", "program-logos"], backup_dir=Path("b"))

    assert select_buckets(FakeConfig(), None) == ["avatars", "program-logos"]  # type: ignore[arg-type]
    with pytest.raises(UserError, match="selfies"):
        select_buckets(FakeConfig(), ["selfies"])  # type: ignore[arg-type]


def test_list_flags_accept_repeats_and_commas():
    assert tasking.comma_list(["a,b", "c", " d , e "]) == ["a", "b", "c", "d", "e"]
    assert tasking.comma_list(None) == []


def test_whole_number_flags():
    assert tasking.number_flag("4", "--jobs") == 4 and tasking.number_flag(None, "--jobs") is None
    with pytest.raises(Exit) as caught:
        tasking.number_flag("four", "--jobs")
    assert caught.value.code == 2


def test_a_mistyped_table_bucket_or_function_gets_the_nearest_name():
    from ops.config import Config, load
    from ops.platform.functions import select_functions
    from ops.storage.sync import select_buckets

    with pytest.raises(UserError, match="did you mean plans"):
        select_tables(SETTINGS, ["plan"])

    class FakeConfig:
        storage = StorageSettings(buckets=["avatars", "program-logos"], backup_dir=Path("b"))

    with pytest.raises(UserError, match="did you mean program-logos"):
        select_buckets(FakeConfig(), ["program-logo"])  # type: ignore[arg-type]
    repo = Path(__file__).resolve().parents[2]
    config: Config = load(repo / "environments.ini")
    with pytest.raises(UserError, match="did you mean stripe-webhook"):
        select_functions(config, ["stripe-webhok"], None)


@pytest.mark.parametrize("last", ["-5", "0"])
def test_journal_last_takes_one_or_more(tmp_path, monkeypatch, capsys, last):
    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    monkeypatch.setenv("OPS_ENVIRONMENTS", str(tmp_path / "environments.ini"))
    with pytest.raises(Exit) as caught:
        tasks.journal(Context(), last=last)
    assert caught.value.code == 2 and "--last" in str(caught.value.message)
