"""The first thing `tasks.py` does: a Ctrl-C while Invoke and the tasks load ends quietly.

Loading them takes a noticeable fraction of a second, and a Ctrl-C then would show Python's
KeyboardInterrupt traceback. This module imports nothing heavy, so tasks.py can install the
handler before its own imports and hand Ctrl-C back to the tasks once they are loaded.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def interrupted_while_loading(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("interrupted\n")
    os._exit(130)  # nothing has started yet: nothing to clean up


def loading() -> None:
    signal.signal(signal.SIGINT, interrupted_while_loading)


def loaded() -> None:
    """From here a task reports its own Ctrl-C (Invoke's and the tasks' handling of KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
