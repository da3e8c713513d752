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


def program(name: str) -> list[str]:
    if name == "inv":
        return [sys.executable, "-m", "invoke", "--search-root", REPO]
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
