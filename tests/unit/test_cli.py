"""The command line: one meaning per short flag, value kinds in help, mistyped flags answered (no services)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tasks
from ops.cli import SHORT_FLAGS

DESTRUCTIVE = {"delete", "prune", "force", "yes", "include_all", "skip_preprod_check"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def arguments():
    for name, task in tasks.ns.tasks.items():
        for argument in task.get_arguments():
            yield name, argument


def test_a_short_flag_means_the_same_in_every_task():
    meaning: dict[str, set[str]] = {}
    for _, argument in arguments():
        key = {"envs": "env"}.get(argument.name, (argument.attr_name or argument.name).rstrip("_"))
        for short in (n for n in argument.names if len(n) == 1):
            meaning.setdefault(short, set()).add(key)
    assert meaning, "no short flags at all"
    mixed = {short: keys for short, keys in meaning.items() if len(keys) > 1}
    assert not mixed, f"short flags with several meanings: {mixed}"


def test_destructive_flags_have_no_short_form():
    for task, argument in arguments():
        if (argument.attr_name or argument.name) in DESTRUCTIVE:
            assert [n for n in argument.names if len(n) > 1] == list(argument.names), (task, argument.names)
    assert not DESTRUCTIVE & set(SHORT_FLAGS)


def inv(*args: str, tmp_path) -> subprocess.CompletedProcess:
    ini = tmp_path / "environments.ini"
    ini.write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", REPO, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OPS_ENVIRONMENTS": str(ini)},
        cwd=tmp_path,
        timeout=60,
    )


def test_help_shows_what_each_flag_takes(tmp_path):
    shown = inv("--help", "sync-storage", tmp_path=tmp_path).stdout
    assert "--jobs=INT" in shown and "--buckets=BUCKET[,BUCKET...]" in shown and "-b, --buckets" in shown
    assert "STRING" not in shown


@pytest.mark.parametrize(
    "args, said",
    [
        (("sync-data", "--form", "prod"), "no such flag --form; did you mean --from?"),
        (("sync-storage", "--from", "prod", "--dryrun"), "no such flag --dryrun; did you mean --dry-run?"),
        (("sync-dat",), "did you mean sync-data?"),
    ],
    ids=["--form", "--dryrun", "task"],
)
def test_a_mistyped_flag_is_refused_with_the_nearest(tmp_path, args, said):
    result = inv(*args, tmp_path=tmp_path)
    assert result.returncode == 2 and said in result.stderr and "Nothing was run" in result.stderr


def test_the_console_script_runs_from_any_folder_and_finds_environments_ini_upwards(tmp_path):
    from pathlib import Path

    script = Path(sys.executable).parent / "supabase-ops"
    assert script.exists(), "pip install -e . installs the supabase-ops console script"
    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    environ = {k: v for k, v in os.environ.items() if k != "OPS_ENVIRONMENTS"}
    listed = subprocess.run(
        [str(script), "envs", "--json"],
        cwd=tmp_path / "deep" / "er",
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert '"ref": "qfdztdgublwlmewobxmx"' in listed.stdout
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("supabase-ops 0.")
    completion = subprocess.run(
        [str(script), "--print-completion-script", "bash"], capture_output=True, text=True, timeout=60
    )
    assert "complete" in completion.stdout and "supabase-ops" in completion.stdout


def test_the_readme_flag_table_is_the_tasks_own():
    from pathlib import Path

    from ops.cli import flag_reference

    readme = (Path(REPO) / "README.md").read_text(encoding="utf-8")
    written = readme.split("<!-- flags:begin -->\n", 1)[1].split("<!-- flags:end -->", 1)[0]
    assert written.strip() == flag_reference().strip(), "README's flag table drifted: run python -m ops.cli"


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
