"""Which backups of a series are kept: restic's `forget` rules, under the rules that guard a wiped project.

One home for the local series and the remote ones (each judged from its own contents):
- a backup is *full* unless it lacks a bucket or holds far less (objects, bytes, or a full
  snapshot's rows per schema or in `auth.users`) than the newest full backup before it; a
  series whose newest backup is not full prunes nothing (a wiped project, the wrong endpoint);
- of the full backups, and separately of the others, the policy keeps the newest `last`, and
  the newest of each of the last `daily` days, `weekly` ISO weeks and `monthly` months that
  have one (UTC, as the backups' names are), as `restic forget --keep-*` does;
- the high-water backup (the newest full one that holds at least as much as every earlier
  one) is kept whatever the policy, until a backup as large supersedes it;
- the backup just made is always kept, and it alone decides whether the run prunes: a backup
  named after it (a clock that ran ahead) is not "the newest". A name that is no backup time
  was not made by this tool: it is never a reference, never kept by a rule, never removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ops.config import RetentionPolicy
from ops.errors import UserError
from ops.report import progress
from ops.stamps import stamp_time

SHRINK_LIMIT = 0.5  # less than half the reference's objects, bytes or rows: not full, it never prunes


@dataclass(frozen=True)
class BackupSize:
    objects: int
    bytes: int
    full: bool
    rows: dict[str, int] | None = None  # rows per table of the database dump (full backups)

    def covers(self, other: BackupSize) -> bool:
        return self.objects >= other.objects and self.bytes >= other.bytes


def backup_size(metadata: dict) -> BackupSize:
    """From a manifest's summary (format 2: its `sizes`) or a whole older manifest."""
    buckets = (metadata.get("sizes") or metadata.get("buckets", {})).values()
    # Manifests from before the `full` field: full unless a bucket was missing.
    full = metadata.get("full", not metadata.get("skipped_buckets"))
    rows = metadata.get("rows")
    return BackupSize(
        sum(b.get("objects", 0) for b in buckets),
        sum(b.get("bytes", 0) for b in buckets),
        bool(full),
        dict(rows) if isinstance(rows, dict) else None,
    )


def row_groups(rows: dict[str, int]) -> dict[str, int]:
    """Rows per schema, and auth.users alone: losing every user is a wipe however full the rest is."""
    groups: dict[str, int] = {"auth.users": rows.get("auth.users", 0)}
    for table, count in rows.items():
        schema = f"schema {table.split('.', 1)[0]}"
        groups[schema] = groups.get(schema, 0) + count
    return groups


def retention_blocked(
    env: str, made: BackupSize, skipped_buckets: list[str], reference: BackupSize | None, name: str
) -> str:
    """Why the backup just made is not full and must not prune ('' when it is full).

    It is compared with the newest *full* backup, never merely the previous run: otherwise the
    second backup of a wiped project would find no drop against the first, and prune every full one.
    """
    if skipped_buckets:
        return f"bucket(s) missing in {env}: {', '.join(skipped_buckets)}"
    if reference is None:
        return ""
    if reference.objects and made.objects < reference.objects * SHRINK_LIMIT:
        return f"{made.objects} objects where the last full backup ({name}) had {reference.objects}"
    if reference.bytes and made.bytes < reference.bytes * SHRINK_LIMIT:
        return f"{made.bytes:,} bytes where the last full backup ({name}) had {reference.bytes:,}"
    if made.rows is not None and reference.rows:
        now = row_groups(made.rows)
        for group, had in row_groups(reference.rows).items():
            if had and now.get(group, 0) < had * SHRINK_LIMIT:
                return f"{now.get(group, 0):,} rows in {group} where the last full backup ({name}) had {had:,}"
    return ""


@dataclass(frozen=True)
class Judged:
    """A backup of a series as retention sees it: its size, when it was made, and why it is not
    full ('' when it is)."""

    name: str
    size: BackupSize
    not_full_because: str
    made: datetime | None = None

    @property
    def full(self) -> bool:
        return not self.not_full_because


def judge_series(env: str, series: list[tuple[str, dict]]) -> list[Judged]:
    """Each backup of a series (name and manifest summary, oldest first), judged against the newest
    full one before it, whatever its manifest says: a copy made on a machine with no earlier backup
    (a fresh CI runner) called a wiped project's backup full, as it had nothing to compare with."""
    judged: list[Judged] = []
    reference: Judged | None = None
    for name, summary in series:
        size = backup_size(summary)
        why = "" if size.full else (summary.get("not_full_because") or "its manifest says it is not full")
        why = why or retention_blocked(
            env,
            size,
            list(summary.get("skipped_buckets") or []),
            reference.size if reference else None,
            reference.name if reference else "",
        )
        judged.append(Judged(name, size, why, stamp_time(name) or recorded_time(summary)))
        if not why and ours(name):
            reference = judged[-1]
    return judged


def ours(name: str) -> bool:
    """Whether a backup's name is one this tool gives (a UTC time); any other was put there by someone else."""
    return stamp_time(name) is not None


def newest_full(judged: list[Judged]) -> Judged | None:
    return next((j for j in reversed(judged) if j.full and ours(j.name)), None)


CALENDAR: tuple[tuple[str, Callable[[datetime], object]], ...] = (
    ("daily", lambda t: t.date()),
    ("weekly", lambda t: t.isocalendar()[:2]),
    ("monthly", lambda t: (t.year, t.month)),
)


def recorded_time(summary: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(str(summary.get("time")))
    except ValueError:
        return None


def high_water(judged: list[Judged]) -> str | None:
    """The newest full backup that holds at least as much as every earlier one."""
    mark, largest = None, BackupSize(0, 0, True)
    for each in judged:
        if each.full and each.size.covers(largest):
            mark, largest = each.name, each.size
        largest = BackupSize(max(largest.objects, each.size.objects), max(largest.bytes, each.size.bytes), True)
    return mark


def keep_reasons(judged: list[Judged], policy: RetentionPolicy) -> dict[str, list[str]]:
    """The rules that keep each backup of a series (oldest first); [] for one retention removes."""
    reasons: dict[str, list[str]] = {each.name: [] for each in judged}
    judged = [each for each in judged if ours(each.name)]
    for full in (True, False):
        newest_first = [each for each in reversed(judged) if each.full is full]
        for each in newest_first[: policy.last]:
            reasons[each.name].append("last")
        for rule, period in CALENDAR:
            left, seen = getattr(policy, rule), None
            for each in newest_first:
                if left <= 0:
                    break
                if each.made is not None and period(each.made) != seen:
                    seen, left = period(each.made), left - 1
                    reasons[each.name].append(rule)
    mark = high_water(judged)
    if mark:
        reasons[mark].append("high-water")
    return reasons


def retention(judged: list[Judged], policy: RetentionPolicy, made: str) -> tuple[list[str], str]:
    """What retention removes from a series judged by `judge_series`, oldest first, after the backup
    `made` (just made, always kept); or nothing, and why, when that backup is not full."""
    just = next((each for each in judged if each.name == made), None)
    if just is None:
        return [], f"the backup just made ({made}) is not in the series"
    if not just.full:
        return [], just.not_full_because
    for each in judged:
        if not ours(each.name):
            progress(f"warning: {each.name} is not a backup name this tool gives (a time): left as it is")
        elif each.made and just.made and each.made > just.made:
            progress(f"warning: {each.name} is named after the backup just made ({made}): a clock ahead?")
    reasons = keep_reasons(judged, policy)
    reasons[made].append("just made")
    return [each.name for each in judged if ours(each.name) and not reasons[each.name]], ""


def policy_from(
    settings: RetentionPolicy,
    *,
    last: int | None = None,
    daily: int | None = None,
    weekly: int | None = None,
    monthly: int | None = None,
) -> RetentionPolicy:
    """The [backup] policy with the flags given on the command line in place of its settings;
    refused (exit 2) when a count is negative or nothing would keep the backup just made."""
    chosen = RetentionPolicy(
        last=settings.last if last is None else last,
        daily=settings.daily if daily is None else daily,
        weekly=settings.weekly if weekly is None else weekly,
        monthly=settings.monthly if monthly is None else monthly,
    )
    negative = [f"--keep-{rule}" for rule in ("last", "daily", "weekly", "monthly") if getattr(chosen, rule) < 0]
    if negative:
        raise UserError(f"{', '.join(negative)} must be 0 or more")
    if not (chosen.last or chosen.daily or chosen.weekly or chosen.monthly):
        raise UserError(
            "retention would keep nothing: set --keep-last (--keep) to at least 1, or a --keep-daily, "
            "--keep-weekly or --keep-monthly (the backup just made is always kept)"
        )
    return chosen
