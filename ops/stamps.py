"""Timestamped run folders: the one place that writes and reads their names.

A name is the UTC time to the second (`2026-11-28T08-23-29Z`), with `-1`, `-2` ... for
runs made within the same second, so sorting by `stamp_order` is the order they were made.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from ops.errors import OperationFailed

MAX_SAME_SECOND = 1000


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")


def next_stamp(names: set[str]) -> str:
    """A name for a run made now, after every name of this second in `names` (runs listed elsewhere)."""
    stamp = utc_stamp()
    counters = [stamp_order(Path(name))[1] for name in names if name == stamp or name.startswith(f"{stamp}-")]
    return f"{stamp}-{max(counters) + 1}" if counters else stamp


def stamp_order(path: Path) -> tuple[str, int]:
    """Sort key: the stamp, then the same-second counter as a number (so -10 comes after -9)."""
    base, dash, n = path.name.rpartition("-")
    return (base, int(n)) if dash and n.isdigit() and base.endswith("Z") else (path.name, 0)


def stamp_time(name: str) -> datetime | None:
    """When a run folder was made, from its name (None for a name that is no stamp)."""
    base = stamp_order(Path(name))[0]
    try:
        return datetime.strptime(base, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def candidate_names(base: Path, also: str = "") -> list[str]:
    """Names for a run made now, each after every name this second already has under `base`.

    After the highest counter, not in the first gap: a run pruned within the second it was made
    leaves a gap, and a newer run given that name would sort before older ones (a backup taken
    for an older one by retention, a sync export by the next run looking for the latest).
    """
    stamp = utc_stamp()
    counters = [
        stamp_order(Path(name))[1]
        for name in (path.name.removeprefix(also) if also else path.name for path in _listed(base))
        if name == stamp or name.startswith(f"{stamp}-")
    ]
    first = max(counters) + 1 if counters else 0
    return [stamp if n == 0 else f"{stamp}-{n}" for n in range(first, first + MAX_SAME_SECOND)]


def _listed(base: Path) -> list[Path]:
    try:
        return list(base.iterdir())
    except FileNotFoundError:
        return []


def new_run_dir(base: Path) -> Path:
    """Create and return a new, empty run folder under `base` (exclusive: never reused)."""
    base.mkdir(parents=True, exist_ok=True)
    for name in candidate_names(base):
        folder = base / name
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise OperationFailed(f"cannot create a run folder under {base}")


def unused_name(base: Path, *, also: str = "") -> str:
    """A run name not yet taken under `base` (neither `name` nor `also + name` exists)."""
    for name in candidate_names(base, also):
        if not (base / name).exists() and not (also and (base / f"{also}{name}").exists()):
            return name
    raise OperationFailed(f"cannot find a free run name under {base}")


def seal_private(folder: Path) -> None:
    """Folders 0700 and files 0600 throughout, whatever wrote them (pg_dump, the umask)."""
    os.chmod(folder, 0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            os.chmod(os.path.join(root, name), 0o600)
