"""The installed `supabase-ops` program as a user starts it: a process, in a folder of their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from lib.project import REPO


def supabase_ops(*args: str, cwd, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    from pathlib import Path

    environ = {k: v for k, v in os.environ.items() if k != "OPS_ENVIRONMENTS"} | (env or {})
    script = Path(sys.executable).parent / "supabase-ops"
    return subprocess.run([str(script), *args], cwd=cwd, env=environ, text=True, timeout=60, **kwargs)


def test_no_environments_ini_upwards_is_refused_naming_where_it_looked(tmp_path):
    listed = supabase_ops("envs", "--json", cwd=tmp_path, capture_output=True)
    assert listed.returncode == 2, listed.stdout
    assert str(tmp_path) in listed.stderr and "OPS_ENVIRONMENTS" in listed.stderr
    assert "qfdztdgublwlmewobxmx" not in listed.stdout, "the checkout's own prod section was used"


def test_the_first_line_at_a_terminal_names_a_file_from_another_folder(tmp_path):
    import pty

    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    (tmp_path / "deep").mkdir()
    lines = {}
    for folder in (tmp_path / "deep", tmp_path):
        main, terminal = pty.openpty()
        try:
            done = supabase_ops("envs", cwd=folder, stdout=subprocess.DEVNULL, stderr=terminal)
            os.close(terminal)
            said = b""
            while True:
                try:
                    chunk = os.read(main, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                said += chunk
        finally:
            os.close(main)
        assert done.returncode == 0, said
        lines[folder.name] = said.decode().splitlines()
    assert lines["deep"] and str(tmp_path / "environments.ini") in lines["deep"][0]
    assert not any("environments.ini" in line for line in lines[tmp_path.name]), "the current folder's file: no line"


def test_the_installed_program_names_itself_in_its_messages(tmp_path):
    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    task = supabase_ops("sync-dat", cwd=tmp_path, capture_output=True)
    assert task.returncode == 2 and "`supabase-ops --list`" in task.stderr, task.stderr
    flag = supabase_ops("sync-data", "--form", "prod", cwd=tmp_path, capture_output=True)
    assert flag.returncode == 2 and "`supabase-ops --help sync-data`" in flag.stderr, flag.stderr
    assert "inv " not in task.stderr + flag.stderr


def program(name: str) -> list[str]:
    if name == "inv":
        return [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    return [os.path.join(os.path.dirname(sys.executable), "supabase-ops")]


PIPED = {
    "inv --list": ("inv", "--list"),
    "supabase-ops --help": ("supabase-ops", "--help"),
    "completion": ("supabase-ops", "--print-completion-script", "bash"),
}


@pytest.mark.parametrize("command", PIPED.values(), ids=PIPED.keys())
def test_a_reader_that_leaves_ends_the_output_quietly_with_141(tmp_path, command):
    import shlex

    argv = shlex.join([*program(command[0]), *command[1:]])
    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    for reader in ("(exec 0<&-; sleep 1)", "head -1 >/dev/null"):  # gone before the first write; after a line
        for _ in range(4):
            done = subprocess.run(
                ["bash", "-c", f'{argv} | {reader}; echo "exit=${{PIPESTATUS[0]}}" >&2'],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
            assert "Exception ignored" not in done.stderr, done.stderr
            exits = ["exit=141"] if reader.startswith("(exec") else ["exit=141", "exit=0"]
            assert done.stderr.strip().splitlines()[-1] in exits, done.stderr


def test_ctrl_c_while_starting_is_no_traceback(tmp_path):
    import signal
    import time

    from lib.project import interruptible

    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    # pip compiles an installed wheel's modules; a checkout run with PYTHONDONTWRITEBYTECODE would
    # compile tasks.py at every start, and a Ctrl-C then lands in Python's compiler, before our first line.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "tasks.py"), str(REPO / "ops")], check=True)
    seen_ours = 0
    for delay in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5):
        started = subprocess.Popen(
            [*program("supabase-ops"), "envs"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        time.sleep(delay)
        started.send_signal(signal.SIGINT)
        out, err = started.communicate(timeout=60)
        if "Fatal Python error: init_import_site" in err:
            continue  # still inside Python's own start-up (site-packages' .pth files), before any line of ours
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, f"after {delay}s:\n{err}"
        seen_ours += 1
    assert seen_ours >= 3, "most interrupts must land after Python's own start-up"


@pytest.mark.parametrize(
    "args, code",
    [
        (("envs", "--json"), 2),
        (("journal", "--last", "many", "--json"), 2),  # a flag's value is refused
        (("sync-data", "--form", "prod", "--json"), 2),  # a mistyped flag
    ],
    ids=["config", "flag-value", "parse"],
)
def test_with_json_an_error_is_json_too(tmp_path, args, code):
    import json

    broken = "no_such_key = 1\n" if args[0] == "envs" else ""  # the environments file is malformed
    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n" + broken)
    done = subprocess.run([*program("supabase-ops"), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stdout + done.stderr
    said = json.loads(done.stdout)
    assert said["exit_code"] == code and said["error"] and "\n" not in said["error"], said
