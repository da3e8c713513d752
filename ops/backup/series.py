"""`inv backups`: one environment's backups, local or on a backup target, and the rule that keeps each.

Read only: it shows what the next backup's retention would do with the policy given (the [backup]
settings, or the flags in their place), "would be pruned" for what it would remove.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ops.backup import manifest
from ops.backup.retention import Judged, judge_series, keep_reasons, ours, policy_from
from ops.backup.store import PARTIAL_PREFIX, complete_backups, env_folder, some_buckets_series
from ops.config import Config, Environment, RetentionPolicy
from ops.report import Result, Table


@dataclass
class BackupsReport(Result):
    env: str
    where: str
    policy: dict[str, int]
    backups: list[dict] = field(default_factory=list)

    def rows(self) -> Table:
        headers = ["series", "backup", "objects", "MiB", "rows", "state", "verified", "kept by"]
        return Table(
            headers,
            [
                [
                    b["series"],
                    b["name"],
                    b["objects"],
                    f"{b['bytes'] / 2**20:,.1f}",
                    "" if b["rows"] is None else b["rows"],
                    b["state"],
                    checked(b.get("verified")),
                    ", ".join(b["kept_by"]) or ("would be pruned" if b["prunable"] else "-"),
                ]
                for b in self.backups
            ],
        )

    def footer(self) -> str:
        rules = ", ".join(f"--keep-{rule} {n}" for rule, n in self.policy.items() if n)
        pruned = sum(b["prunable"] for b in self.backups)
        return (
            f"{self.env} at {self.where}: {len(self.backups)} backup(s); with {rules} the next backup's retention "
            f"would remove {pruned} (nothing was removed)"
        )


def list_backups(
    config: Config, *, env: str | None, target: str | None, keep: dict[str, int | None] | None = None
) -> BackupsReport:
    policy = policy_from(config.backup.retention, **(keep or {}))
    environment = config.env(env or config.workflows.prod)
    folder = environment.folder
    if target:
        from ops.backup import offsite, records
        from ops.s3 import objects as s3objects

        where = config.target(target)
        s3 = s3objects.client(where.store, max_pool=config.storage.jobs * 2)
        report = BackupsReport(environment.name, f"{where.name} ({where.bucket})", vars(policy))
        for series, base in offsite.remote_series_bases(s3, where, environment):
            start = len(report.backups)
            add_series(report, series, offsite.remote_series(s3, where, base, environment.name), policy)
            for name in offsite.unsealed_remote(s3, where, base):
                report.backups.append(unsealed(series, name))
            found = records.listed(s3, where, base)
            for backup in report.backups[start:]:
                backup["verified"] = records.newest_check(s3, where, found, backup["name"])
        return report
    report = BackupsReport(environment.name, "this machine", vars(policy))
    storage = env_folder(config, environment)
    local = [("storage", storage), ("full", config.backup.dir / folder)]
    local += [(f"storage+{buckets}", path) for buckets, path in some_buckets_series(storage)]
    for series, path in local:
        add_series(report, series, local_series(environment, path), policy)
        for partial in sorted(path.glob(PARTIAL_PREFIX + "*")) if path.is_dir() else []:
            report.backups.append(unsealed(series, partial.name.removeprefix(PARTIAL_PREFIX)))
    return report


def local_series(env: Environment, folder: Path) -> list[Judged]:
    return judge_series(env.name, [(p.name, manifest.summary(p)) for p in complete_backups(folder)])


def add_series(report: BackupsReport, series: str, judged: list[Judged], policy: RetentionPolicy) -> None:
    """Each backup of a series with the rules that keep it; one is prunable only when the series'
    newest backup is full (otherwise retention removes nothing)."""
    reasons = keep_reasons(judged, policy)
    prunes = bool(judged) and judged[-1].full
    for each in judged:
        rows = sum(each.size.rows.values()) if each.size.rows is not None else None
        report.backups.append(
            {
                "series": series,
                "name": each.name,
                "objects": each.size.objects,
                "bytes": each.size.bytes,
                "rows": rows,
                "state": "sealed, full" if each.full else f"sealed, not full: {each.not_full_because}",
                "kept_by": reasons[each.name],
                "prunable": prunes and not reasons[each.name] and ours(each.name),  # others are never removed
                "verified": None,  # the newest verify or drill recorded at a backup target
            }
        )


def unsealed(series: str, name: str) -> dict:
    return {
        "series": series,
        "name": name,
        "objects": 0,
        "bytes": 0,
        "rows": None,
        "state": "unsealed (being made, or interrupted: the next backup removes it)",
        "kept_by": [],
        "prunable": False,
        "verified": None,
    }


def checked(verified: dict | None) -> str:
    """`ok by drill into scratch, 2026-12-07T21:04:11+00:00`, or `-` for a backup nobody checked."""
    if not verified:
        return "-"
    return f"{'ok' if verified['ok'] else 'FAILED'} by {verified['by']}, {verified['time']}"
