"""Live progress: a bar for a person at a terminal, plain lines for CI, pipes and --json."""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from lib.s3 import fill


def on_a_terminal(project, *args: str) -> str:
    """Run a task with stderr on a pseudo-terminal, as a person would; return what the terminal showed."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column window
    process = project.start(*args, stderr=terminal)
    os.close(terminal)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the task is done
            break
        if not chunk:
            break
        shown.extend(chunk)
    os.close(controller)
    process.communicate(timeout=120)
    assert process.returncode == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def test_a_terminal_gets_a_live_bar_and_everyone_else_plain_lines(project, storage):
    fill(storage["prod"].client(), "avatars", 40, size=64 << 10)
    shown = on_a_terminal(project, "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars")
    assert "copied: 100%|" in shown and "40/40 objects" in shown and "/s" in shown
    assert "MiB/s" in shown and "MB" not in shown, "one unit style: MiB, as the plain lines"
    piped = project.run("sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--force")
    assert piped.code == 0 and "copied 40/40 objects" in piped.err and "%|" not in piped.err
    as_json = on_a_terminal(
        project, "sync-storage", "--from", "prod", "--to", "preprod", "--buckets", "avatars", "--force", "--json"
    )
    assert "%|" not in as_json and "copied 40/40 objects" in as_json
