"""Which process wrote a piece of state, and whether it is still running (so leftovers are told from work)."""

from __future__ import annotations

import os
import socket
from typing import Any


def stamp() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def alive(record: Any) -> bool:
    """Whether the writer of `record` may still be at work: another machine's always may."""
    try:
        pid, host = int(record["pid"]), str(record["host"])
    except (ValueError, KeyError, TypeError):
        return False  # unreadable: written by a run cut off mid-write
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
