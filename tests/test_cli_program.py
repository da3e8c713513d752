"""The installed `supabase-ops` program as a user starts it: a process, in a folder of their own."""

from __future__ import annotations

import os
import subprocess
import sys


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
