"""The `before/` undo export of a sync-data run: marked uncommitted until the import's COMMIT returns.

A run killed between writing before/ and its COMMIT would otherwise leave a complete-looking
undo of changes that never happened. The marker holds the writer's host and process id, so a
later run removes the leftovers of writers that are gone, never those of a sync still running.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ops import owner
from ops.errors import UserError
from ops.report import progress

MARKER = "UNCOMMITTED"
COMMITTING = "COMMITTING"  # COMMIT sent, its answer not yet back: the change may have landed


def mark_uncommitted(before_dir: Path) -> None:
    before_dir.mkdir(parents=True, exist_ok=True)
    record = {**owner.stamp(), "note": "written by a sync-data whose import has not committed: not an undo"}
    (before_dir / MARKER).write_text(json.dumps(record) + "\n", encoding="utf-8")


def mark_committing(before_dir: Path) -> None:
    """From here on a kill leaves the commit in doubt: before/ is then a true undo either way."""
    marker = before_dir / MARKER
    if marker.exists():
        marker.rename(before_dir / COMMITTING)


def mark_committed(before_dir: Path) -> None:
    (before_dir / MARKER).unlink(missing_ok=True)
    (before_dir / COMMITTING).unlink(missing_ok=True)


def refuse_uncommitted(folder: Path) -> None:
    if (folder / MARKER).exists() or (folder / COMMITTING).exists():
        raise UserError(
            f"{folder} was written by a sync-data that never committed (it was killed or failed): the "
            "target never changed, so there is nothing to undo. Nothing was changed."
        )


def _writer_alive(marker: Path) -> bool:
    try:
        return owner.alive(json.loads(marker.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False  # unreadable: written by a run cut off mid-write


def clean_stale(export_dir: Path) -> int:
    """Remove the before/ folders of syncs that died before their COMMIT; return how many."""
    removed = 0
    for marker in export_dir.glob(f"*/*/before/{MARKER}"):
        if not _writer_alive(marker):
            shutil.rmtree(marker.parent, ignore_errors=True)
            removed += 1
    if removed:
        progress(
            f"removed {removed} before/ folder(s) of earlier syncs that were cut off before their COMMIT "
            "(their targets never changed)"
        )
    for marker in export_dir.glob(f"*/*/before/{COMMITTING}"):
        if not _writer_alive(marker):
            # Restoring it undoes the change if the commit landed, and changes nothing if it did not.
            marker.unlink(missing_ok=True)
            progress(
                f"kept {marker.parent}: a sync was cut off while committing, so its change may have landed; "
                f"it undoes that change either way"
            )
    return removed
