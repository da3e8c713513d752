"""`supabase-ops` (and `python -m ops`): Ctrl-C from the very first instant ends quietly.

Loading Invoke and the tasks takes a noticeable fraction of a second; a Ctrl-C then would show
Python's KeyboardInterrupt traceback. So this module imports nothing heavy at its top: the
handler goes in first, then the imports, then the tasks run with Ctrl-C handled as usual.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    sys.stderr.write("interrupted\n")
    os._exit(130)  # nothing has started yet: nothing to clean up


def main() -> None:
    signal.signal(signal.SIGINT, interrupted_while_starting)
    from ops import cli

    program = cli.program()  # imports Invoke and the tasks
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here a task reports its own Ctrl-C
    program.run()


if __name__ == "__main__":
    main()
