"""Retention by restic's `forget` rules, under the rules that keep a wiped project's last full backup."""

from __future__ import annotations

import pytest

from ops.backup.retention import BackupSize, Judged, judge_series, keep_reasons, policy_from, retention
from ops.config import RetentionPolicy
from ops.errors import UserError
from ops.stamps import stamp_time


def backup(name: str, objects: int = 10, why: str = "") -> Judged:
    return Judged(name, BackupSize(objects, objects * 100, not why), why, stamp_time(name))


def test_calendar_rules_keep_the_newest_of_each_period_as_restic_does():
    series = [
        backup("2026-01-05T10-00-00Z"),  # Monday of ISO week 2
        backup("2026-01-05T22-00-00Z"),
        backup("2026-01-06T09-00-00Z"),
        backup("2026-01-13T09-00-00Z"),  # week 3
        backup("2026-02-02T09-00-00Z"),  # February, week 6
        backup("2026-02-02T12-00-00Z"),
    ]
    reasons = keep_reasons(series, RetentionPolicy(last=1, daily=2, weekly=2, monthly=2))
    assert reasons == {
        "2026-01-05T10-00-00Z": [],
        "2026-01-05T22-00-00Z": [],
        "2026-01-06T09-00-00Z": [],
        "2026-01-13T09-00-00Z": ["daily", "weekly", "monthly"],
        "2026-02-02T09-00-00Z": [],
        "2026-02-02T12-00-00Z": ["last", "daily", "weekly", "monthly", "high-water"],
    }
    doomed, blocked = retention(series, RetentionPolicy(last=1, daily=2, weekly=2, monthly=2), series[-1].name)
    assert blocked == "" and doomed == [name for name, why in reasons.items() if not why]
    wider = keep_reasons(series, RetentionPolicy(last=0, daily=7, weekly=0, monthly=0))
    assert [name for name, why in wider.items() if "daily" in why] == [
        "2026-01-05T22-00-00Z",  # the newest of its day, not the first
        "2026-01-06T09-00-00Z",
        "2026-01-13T09-00-00Z",
        "2026-02-02T12-00-00Z",
    ]


def test_a_wiped_night_is_judged_from_its_series_and_prunes_nothing():
    full = {"format": 2, "full": True, "sizes": {"avatars": {"objects": 10, "bytes": 1000}}}
    wiped = {"format": 2, "full": True, "sizes": {"avatars": {"objects": 0, "bytes": 0}}}  # made on an empty runner
    judged = judge_series(
        "prod", [("2026-01-01T02-00-00Z", full), ("2026-01-02T02-00-00Z", full), ("2026-01-03T02-00-00Z", wiped)]
    )
    assert [j.full for j in judged] == [True, True, False]
    assert "0 objects where the last full backup (2026-01-02T02-00-00Z) had 10" in judged[-1].not_full_because
    assert retention(judged, RetentionPolicy(last=1, daily=1), judged[-1].name) == ([], judged[-1].not_full_because)
    # The next full backup prunes by the rules; the wiped night is a series of its own, never kept alone.
    after = judge_series(
        "prod", [*[(j.name, full if j.full else wiped) for j in judged], ("2026-01-04T02-00-00Z", full)]
    )
    doomed, _ = retention(after, RetentionPolicy(last=1, daily=1), after[-1].name)
    assert doomed == ["2026-01-01T02-00-00Z", "2026-01-02T02-00-00Z"]


def test_rows_of_a_full_snapshot_guard_like_storage():
    had = {"format": 2, "full": True, "sizes": {}, "rows": {"auth.users": 40, "public.plans": 9, "public.log": 5000}}
    no_users = {**had, "rows": {"auth.users": 0, "public.plans": 9, "public.log": 5000}}
    judged = judge_series("prod", [("2026-01-01T02-00-00Z", had), ("2026-01-02T02-00-00Z", no_users)])
    assert (
        judged[-1].not_full_because == "0 rows in auth.users where the last full backup (2026-01-01T02-00-00Z) had 40"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [({"last": 0}, "would keep nothing"), ({"daily": -1}, "--keep-daily must be 0 or more")],
    ids=["nothing-kept", "negative"],
)
def test_a_policy_that_keeps_nothing_is_refused(flags, message):
    with pytest.raises(UserError, match=message):
        policy_from(RetentionPolicy(), **flags)


def test_flags_replace_only_the_settings_they_name():
    assert policy_from(RetentionPolicy(last=5, daily=7), last=0, monthly=3) == RetentionPolicy(0, 7, 0, 3)


def test_the_backup_just_made_is_kept_whatever_sorts_after_it():
    series = [
        backup("2026-01-01T02-00-00Z"),
        backup("2026-01-02T02-00-00Z"),  # just made
        backup("2099-01-01T00-00-00Z"),  # a clock that ran ahead
        backup("zz-not-a-time"),  # not ours
    ]
    doomed, blocked = retention(series, RetentionPolicy(last=1), "2026-01-02T02-00-00Z")
    assert (doomed, blocked) == (["2026-01-01T02-00-00Z"], "")
    assert keep_reasons(series, RetentionPolicy(last=1))["zz-not-a-time"] == []
    wiped = [*series[:1], backup("2026-01-02T02-00-00Z", 0, "wiped"), *series[2:]]
    assert retention(wiped, RetentionPolicy(last=1), "2026-01-02T02-00-00Z") == ([], "wiped")
