"""`nox -s stack`: the local environments kept up for trying tasks by hand, on free ports when the file's are taken."""

from __future__ import annotations

import errno
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from lib.project import REPO, interruptible

from devstack import localstack
from ops import config as ops_config


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(marker):
            return lines
    said = process.stderr.read() if process.poll() is not None else ""
    raise AssertionError(f"the stack never printed {marker!r}:\n" + "\n".join(lines) + "\n" + said)


def test_the_stack_moves_busy_ports_prints_its_line_and_stops_on_ctrl_c(tmp_path):
    port = ops_config.load(REPO / "devstack" / "environments.ini").env("local-prod").storage_url.rsplit(":", 1)[1]
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", int(port)))
        busy.listen()
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.stack"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TMPDIR": str(tmp_path)},
            preexec_fn=interruptible,
        )
        try:
            lines = read_until(process, "local-prod is protected", timeout=240)
            moved = re.search(rf"in use, free ones used instead: .*\b{port} -> (\d+)", "\n".join(lines))
            assert moved, "\n".join(lines)
            assert any("supabase-ops doctor --env local-prod" in line for line in lines), "\n".join(lines)
            export = next(line for line in lines if line.startswith("export "))
            exported = dict(word.split("=", 1) for word in shlex.split(export)[1:])
            assert {"OPS_ENVIRONMENTS", "OPS_LOCAL_PROD_S3_SECRET_ACCESS_KEY", "OPS_OFFSITE_S3_ACCESS_KEY_ID"} <= set(
                exported
            )
            local = ops_config.load(exported["OPS_ENVIRONMENTS"])
            assert local.env("local-prod").storage_url.endswith(f":{moved[1]}")
            # The pasted line is all a task needs, from any folder.
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            doctor = subprocess.run(
                [sys.executable, "-m", "invoke", "--search-root", str(REPO), "doctor", "--env", "local-prod"],
                cwd=elsewhere,
                env={**os.environ, **exported},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert doctor.returncode == 0, doctor.stdout + doctor.stderr
            assert re.search(r"✓ local-prod\s+storage", doctor.stdout), doctor.stdout  # the moved S3 port answered
        finally:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopping the local stack" in out and "Traceback" not in err
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("ops-stack-", "ops-s3-"))], "its folders are removed"
    served = [e.db_url for e in local.environments.values()] + [e.storage_url for e in local.environments.values()]
    ports = {urlsplit(url).port for url in served if url}
    assert ports and not [p for p in ports if localstack.port_in_use(p)], "every server it started is stopped"


def test_a_port_taken_while_the_stack_starts_starts_it_again(monkeypatch, capsys):
    # The file's ports lie in the ephemeral range: one checked free may be bound by another program a moment later.
    from devstack import stack

    calls = []

    def started(resources, **_):
        calls.append(resources)
        resources.callback(calls.append, "stopped")
        if len(calls) == 1:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return "the stack"

    monkeypatch.setattr(stack, "started", started)
    with stack.running(say=False) as up:
        assert up == "the stack"
        assert calls[1] == "stopped"  # what the first try started was stopped before the second
    assert "starting again" in capsys.readouterr().out
    assert calls[-1] == "stopped"


def test_a_stack_that_cannot_start_for_another_reason_is_not_started_again(monkeypatch):
    from devstack import stack

    tries = []
    monkeypatch.setattr(
        stack, "started", lambda resources, **_: tries.append(1) or (_ for _ in ()).throw(OSError(13, "denied"))
    )
    with pytest.raises(OSError, match="denied"), stack.running(say=False):
        pass
    assert len(tries) == 1


def test_a_port_held_without_a_listener_is_in_use():
    # A client's end of a connection holds its port (picked from the range the stack's ports lie in):
    # a server cannot listen there, though a connection to it is refused.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        assert localstack.port_in_use(held.getsockname()[1])
    assert not localstack.port_in_use(localstack.free_port())
