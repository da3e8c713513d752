"""The command line: one meaning per short flag, value kinds in help, mistyped flags answered (no services)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

import tasks
from ops.cli import SHORT_FLAGS, flag_reference, program

DESTRUCTIVE = {"delete", "prune", "force", "yes", "include_all", "skip_preprod_check"}
REPO = Path(__file__).resolve().parents[2]


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


def run(*args: str) -> tuple[int, str, str]:
    """The supabase-ops program, in this process, on `args`: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            program(tasks.ns).run(["supabase-ops", *args])
        except SystemExit as exited:
            code = int(exited.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def environments(tmp_path, monkeypatch):
    """An environments file with one environment, found through OPS_ENVIRONMENTS."""
    ini = tmp_path / "environments.ini"
    ini.write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    monkeypatch.setenv("OPS_ENVIRONMENTS", str(ini))
    monkeypatch.chdir(tmp_path)
    return ini


def test_help_shows_what_each_flag_takes(environments):
    code, shown, _ = run("--help", "sync-storage")
    assert code == 0 and "--jobs=INT" in shown and "--buckets=BUCKET[,BUCKET...]" in shown and "-b, --buckets" in shown
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
def test_a_mistyped_flag_is_refused_with_the_nearest(environments, args, said):
    code, _, err = run(*args)
    assert code == 2 and said in err and "Nothing was run" in err


def test_the_console_script_is_tasks_main():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="supabase-ops")
    assert script.load() is tasks.main, script.value


def test_the_console_script_runs_from_any_folder_and_finds_environments_ini_upwards(tmp_path, monkeypatch, capsys):
    (tmp_path / "environments.ini").write_text("[prod]\nref = qfdztdgublwlmewobxmx\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.delenv("OPS_ENVIRONMENTS", raising=False)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    monkeypatch.setattr(sys, "argv", ["supabase-ops", "envs", "--json"])
    tasks.main()
    assert '"ref": "qfdztdgublwlmewobxmx"' in capsys.readouterr().out
    code, version, _ = run("--version")
    assert code == 0 and version.startswith("supabase-ops 0.")
    code, completion, _ = run("--print-completion-script", "bash")
    assert code == 0 and "complete" in completion and "supabase-ops" in completion


def test_the_readme_flag_table_is_the_tasks_own():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    written = readme.split("<!-- flags:begin -->\n", 1)[1].split("<!-- flags:end -->", 1)[0]
    assert written.strip() == flag_reference(tasks.ns).strip(), (
        "README's flag table drifted: python -c 'import tasks; from ops.cli import flag_reference; "
        "print(flag_reference(tasks.ns))'"
    )
