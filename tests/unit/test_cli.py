"""The command line: one meaning per short flag, value kinds in help, mistyped flags answered (no services)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

import tasks
from ops import cli
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


def test_importing_ops_and_tasks_leaves_invokes_classes_as_they_are():
    from invoke.parser import ParserContext
    from invoke.program import Program

    for cls, name in ((Program, "parse_tasks"), (Program, "_make_parser"), (ParserContext, "help_for")):
        method = cls.__dict__[name]
        assert method.__module__.startswith("invoke.") and method.__qualname__ == f"{cls.__name__}.{name}", method


def test_what_serve_inv_relies_on_is_still_in_invoke():
    """cli.serve_inv and OpsProgram lean on these parts of Invoke; an upgrade that changes one fails here."""
    import inspect

    import invoke.main
    from invoke.collection import Collection
    from invoke.parser import Parser, ParserContext
    from invoke.program import Program

    assert type(invoke.main.program) is Program  # `inv` runs this one plain Program
    assert list(inspect.signature(Program._make_parser).parameters) == ["self"]
    assert list(inspect.signature(Program.parse_tasks).parameters) == ["self"]
    assert list(inspect.signature(ParserContext.help_for).parameters) == ["self", "flag"]
    assert {"initial", "contexts"} <= set(inspect.signature(Parser).parameters)
    assert {"name", "aliases", "args"} <= set(inspect.signature(ParserContext).parameters)
    assert "ignore_unknown_help" in inspect.signature(Collection.to_contexts).parameters
    assert not vars(cli.OpsProgram).keys() & {"__init__", "__slots__"}, "serve_inv swaps a class that keeps no state"


@pytest.fixture
def inv(monkeypatch, environments):
    """Invoke's own `inv` program as `python -m invoke` runs it, fresh; it loads tasks.py (which calls serve_inv)."""
    import invoke.main
    from invoke import Program, __version__

    plain = Program(name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"], version=__version__)
    monkeypatch.setattr(invoke.main, "program", plain)
    monkeypatch.setattr(cli, "guard_closed_pipe", lambda: None)  # this process's stdout is pytest's

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                plain.run(["inv", "--search-root", str(REPO), *args])
            except SystemExit as exited:
                code = int(exited.code or 0)
        return code, out.getvalue(), err.getvalue()

    return run


def test_under_inv_flags_are_answered_as_by_supabase_ops(inv):
    code, _, err = inv("sync-data", "--form", "prod")
    assert code == 2 and "no such flag --form; did you mean --from?" in err and "Nothing was run" in err
    code, shown, _ = inv("--help", "sync-storage")
    assert code == 0 and "--jobs=INT" in shown and "-b, --buckets=BUCKET[,BUCKET...]" in shown


def test_tasks_py_defines_tasks_and_the_console_script_only():
    import inspect

    functions = [name for name, f in inspect.getmembers(tasks, inspect.isfunction) if f.__module__ == "tasks"]
    defined = {name for name, value in vars(tasks).items() if getattr(value, "__module__", None) == "tasks"}
    assert functions == ["main"], f"helpers belong in ops (ops/tasking.py): {functions}"
    assert {t.body.__name__ for t in tasks.ns.tasks.values()} | {"main"} == defined
