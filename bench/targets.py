"""The bench's targets, each written once, and the verdict on a run's results.

A target is the most our figure (seconds, MiB of memory or of disk) may be as a multiple of the
reference's; a few also name a condition the benchmark checks itself. `number` is the line's
number in README's performance table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    number: int
    most: float  # met when ours <= most * reference
    also: str = ""  # a condition beyond the ratio, checked by the benchmark

    def __str__(self) -> str:
        return f"<= {self.most}x" + (f" and {self.also}" if self.also else "")

    def met(self, ours: float, reference: float, also: bool = True) -> bool:
        return ours <= self.most * reference and also


TARGETS = {
    "sync-data fresh copy": Target(1, 1.0),
    "sync-data second run": Target(2, 0.5),
    "sync-data, every row differs": Target(2, 1.3),
    "sync-data, one large table": Target(3, 1.0),
    "sync-data peak RSS, 20x the rows": Target(3, 1.3),
    "sync-storage full copy": Target(4, 0.8),
    "sync-storage second run": Target(5, 0.7),
    "sync-storage second run, 20,000 objects": Target(5, 0.1),
    "backup-storage second run": Target(6, 1.0),
    "backup-storage disk, two backups": Target(6, 1.05),
    "deploy-functions": Target(7, 1.5),
    "deploy-functions, some failing": Target(7, 1.5, also="names both"),
    "inv --list": Target(8, 1.3),
    "sync-storage full copy, 20 ms away": Target(9, 0.5),
    "sync-storage second run, 20 ms away": Target(9, 0.4),
    "scale: sync-storage full copy": Target(10, 0.8),
    "scale: sync-storage full copy, peak RSS": Target(10, 1.2),
    "scale: sync-storage second run": Target(10, 0.3),
    "scale: sync-storage second run, peak RSS": Target(10, 1.0),
    "scale: backup-storage full, peak RSS": Target(11, 1.5),
    "scale: backup-storage second run, peak RSS": Target(11, 1.5),
    "scale: backup-storage second run": Target(11, 0.15),
    "scale: verify-backup, peak RSS": Target(11, 1.0),
    "scale: sync-storage peak RSS, 10x the objects": Target(12, 1.5),
    "remote: backup --to, 1 % changed": Target(13, 0.1),
    "remote: backup --to, objects read": Target(13, 1.0, also="the very changed keys, each read once"),
    "remote: backup --to, peak RSS": Target(13, 1.5),
    "remote: drill": Target(14, 1.3),
}


def result(
    target: str, what: str, ours: float, reference: float, reference_tool: str, unit: str = "s", also: bool = True
) -> dict[str, Any]:
    """One measured line against the target named `target` (a key of TARGETS)."""
    goal = TARGETS[target]
    return {
        "n": goal.number,
        "target_name": target,
        "what": what,
        "ours": round(ours, 3),
        "reference": round(reference, 3),
        "reference_tool": reference_tool,
        "ratio": round(ours / reference, 3) if reference else float("inf"),
        "target": str(goal),
        "met": goal.met(ours, reference, also),
        "unit": unit,
    }


def line(r: dict[str, Any]) -> str:
    return (
        f"{r['n']}. {r['what']}: ours {r['ours']:.2f}{r['unit']}, {r['reference_tool']} {r['reference']:.2f}{r['unit']}, "
        f"ratio {r['ratio']:.2f} (target {r['target']}) {'OK' if r['met'] else 'MISSED'}"
    )


def verdict(results: list[dict[str, Any]]) -> int:
    """The bench's exit code: 0 when every line met its target, else 1 after naming each missed line."""
    missed = [r for r in results if not r["met"]]
    for r in missed:
        print(f"MISSED {line(r)}", file=sys.stderr)
    if missed:
        print(f"bench: {len(missed)} of {len(results)} lines missed their target", file=sys.stderr)
    return 1 if missed else 0


def print_table(results: list[dict[str, Any]]) -> None:
    from tabulate import tabulate

    rows = [
        [
            r["n"],
            r["what"],
            f"{r['ours']}{r['unit']}",
            f"{r['reference']}{r['unit']} ({r['reference_tool']})",
            r["ratio"],
            r["target"],
            "yes" if r["met"] else "NO",
        ]
        for r in results
    ]
    print(tabulate(rows, headers=["#", "benchmark", "ours", "reference", "ratio", "target", "met"], tablefmt="github"))
