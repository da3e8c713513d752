"""The command line itself: one meaning per flag, help that shows each value's kind, mistyped flags
answered with the nearest one (exit 2), and the `supabase-ops` program (the same tasks, from anywhere).

Invoke derives short flags from each task's parameter names, so `-e` meant --env in one task and
--delete in another. Here short flags come from one table, and a flag that deletes, overwrites or
skips a confirmation has none. Invoke shows list flags as if they were booleans (`-o, --only`);
help here says what each takes (`--only=NAME[,NAME...]`).

The tables are read by the task class (ops.tasking.OpsTask); the help and the parse errors are
OpsProgram's, a `Program` given the task collection. `inv`, Invoke's own program, gets them
through serve_inv, which tasks.py calls; importing this module changes nothing in Invoke.
"""

from __future__ import annotations

import os
import re
import sys
from types import TracebackType
from typing import NoReturn

from invoke import Collection, Exit
from invoke.exceptions import ParseError
from invoke.parser import Parser, ParserContext
from invoke.program import Program

# The same letter means the same thing in every task; destructive flags (--delete, --prune,
# --force, --yes, --include-all, --skip-preprod-check) are spelt out in full, always.
SHORT_FLAGS = {
    "env": "e",
    "envs": "e",
    "from_": "f",
    "to": "t",
    "tables": "T",
    "buckets": "b",
    "only": "o",
    "dry_run": "n",
    "jobs": "j",
    "keep": "k",
    "last": "l",
    "since": "s",
    "verbose": "v",
}
VALUE_KINDS = {
    "env": "ENV[,ENV...]|all",
    "envs": "ENV[,ENV...]",
    "from_": "ENV",
    "to": "ENV",
    "into": "ENV",
    "sandbox": "ENV",
    "preprod": "ENV",
    "prod": "ENV",
    "tables": "TABLE[,TABLE...]",
    "buckets": "BUCKET[,BUCKET...]",
    "only": "NAME[,NAME...]",
    "jobs": "INT",
    "keep": "INT",
    "keep_last": "INT",
    "keep_daily": "INT",
    "keep_weekly": "INT",
    "keep_monthly": "INT",
    "last": "INT",
    "max_delete": "INT",
    "since": "7d|24h|30m|DATE",
    "backup": "FOLDER|latest",
    "resume_at": "STEP",
    "changed_since": "GITREF",
    "at": "GITREF",
    "from_export": "FOLDER",
    "task": "TASK",
    "table": "TABLE[,TABLE...]",
    "where": "SQL",
    "keys": "VALUE[,VALUE...]",
    "allow_weaker": "KEY[,KEY...]",
    "copy_to": "TARGET",
}
COMMAND_LINE = "command_line"  # a task parameter ops.tasking.OpsTask fills with the task's own command line
ONE_ENV_TASKS = {
    "backups",
    "journal",
    "smoke",
    "sync-data",
    "sync-storage",
    "restore-storage",
    "restore-db",
    "deploy-functions",
    "release",
    "verify-backup",
    "drill",
}  # their --env names one environment
TARGET_TO_TASKS = {"backup", "backup-storage"}  # their --to names a backup target, not an environment


class OpsParserContext(ParserContext):
    """A task's flags as the parser holds them, whose help says what each flag takes."""

    def help_for(self, flag: str) -> tuple[str, str]:
        names, text = super().help_for(flag)
        kind = getattr(self.flags[flag], "value_kind", None)  # set by ops.tasking.OpsTask
        if not kind:
            return names, text
        # The kind once, on the long name: `-b, --buckets=BUCKET[,BUCKET...]`.
        spelled = [name if len(name.strip("-")) == 1 else f"{name}={kind}" for name in self.names_for(flag)]
        return ", ".join(sorted(spelled, key=len)), text


def wants_json() -> bool:
    """`--json` anywhere on the command line: every outcome, errors too, is JSON on stdout."""
    return "--json" in sys.argv[1:]


def json_error(message: str, code: int) -> None:
    """An error as CI reads it, on stdout (the one line for people stays on stderr)."""
    import json

    print(json.dumps({"error": message.removeprefix("error: ").splitlines()[0], "exit_code": code}), flush=True)


def leave_closed_pipe() -> NoReturn:
    """The reader left (`| head`): stop at once and quietly, with the 141 a shell shows for SIGPIPE
    (as git does). Nothing may write to the closed pipe again on the way out."""
    try:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os._exit(141)


def guard_closed_pipe() -> None:
    """Invoke's own output (`--list`, `--help`, completion) is written outside any task, and mostly
    only when Python flushes standard output on the way out: both places end as leave_closed_pipe."""
    import atexit

    def flush_at_exit() -> None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            leave_closed_pipe()

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, BrokenPipeError):
            leave_closed_pipe()
        plain_hook(kind, error, trace)

    plain_hook = sys.excepthook
    sys.excepthook = hook
    atexit.register(flush_at_exit)


def refused(error: ParseError, program: Program) -> Exit:
    """A command line that cannot be parsed: one line, the nearest flag or task, exit 2 (nothing ran)."""
    from ops.invocation import program as ran
    from ops.spelling import did_you_mean as nearest

    message = str(error)
    unknown = re.fullmatch(r"No idea what '(.+)' is!", message)
    context = getattr(error, "context", None)
    if unknown and context is not None and context.name:
        flags = [name for name in context.flags if name.startswith("--")]
        message = (
            f"{context.name}: no such flag {unknown[1]}{nearest(unknown[1], flags)} "
            f"(`{ran()} --help {context.name}` lists them)"
        )
    elif unknown:
        tasks = list(program.collection.task_names) if program.collection else []
        message = f"no such task or flag {unknown[1]}{nearest(unknown[1], tasks)} (`{ran()} --list` lists the tasks)"
    message = f"error: {message}. Nothing was run."
    if wants_json():
        json_error(message, 2)
    return Exit(message, code=2)


class OpsProgram(Program):
    """Invoke's program with this command line's help and parse errors: each task's help shows what
    its flags take, and a command line that cannot be parsed is refused in one line with the
    nearest flag or task (exit 2), where Invoke prints its parser's words and exits 1."""

    def _make_parser(self) -> Parser:
        # Invoke's own, with OpsParserContext for Collection.to_contexts' ParserContext.
        contexts = [
            OpsParserContext(
                name=name,
                aliases=aliases,
                args=self.collection[name].get_arguments(ignore_unknown_help=self.config.tasks.ignore_unknown_help),
            )
            for name, aliases in self.collection.task_names.items()
        ]
        return Parser(initial=self.initial_context, contexts=contexts)

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as error:
            raise refused(error, self) from None


def serve_inv() -> None:
    """Under `inv`, the same command line as `supabase-ops`; tasks.py calls this once as it loads.

    `inv` is Invoke's own program (`invoke.main.program`, a plain `Program`), which imports tasks.py
    before it parses the task flags: the one moment this can still be taught. That one running
    program becomes an OpsProgram (its class, nothing else: OpsProgram keeps no state of its own),
    and its output pipe is guarded. Invoke's classes are left as they are, and nothing happens
    when no `inv` runs (an import, a test, the supabase-ops script).
    tests/unit/test_cli.py fails if an Invoke release changes what this relies on.
    """
    running = getattr(sys.modules.get("invoke.main"), "program", None)
    if type(running) is Program:
        running.__class__ = OpsProgram
        guard_closed_pipe()


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("supabase-ops")
    except PackageNotFoundError:
        return "unknown (not installed)"


def program(namespace: Collection) -> OpsProgram:
    """`supabase-ops TASK ...`: the given tasks from any folder (environments.ini is looked up).

    The collection is given, not imported: tasks.py imports this module, never the other way.
    """
    return OpsProgram(
        namespace=namespace,
        version=version(),
        name="supabase-ops",
        binary="supabase-ops",
        binary_names=["supabase-ops"],
    )


def run(namespace: Collection) -> None:
    """The `supabase-ops` console script: the program on this process's command line, its output
    pipe guarded."""
    guard_closed_pipe()
    program(namespace).run()


def flag_reference(namespace: Collection) -> str:
    """The README's flag table, from the tasks themselves (tests/unit/test_cli.py keeps them equal)."""
    lines = ["| task | flags |", "|---|---|"]
    for name in sorted(namespace.task_names):
        task = namespace[name]
        flags = []
        for argument in sorted(task.get_arguments(), key=lambda a: str(a.name)):
            short = [f"-{n}" for n in argument.names if len(n) == 1]
            kind = getattr(argument, "value_kind", None)
            long = "--" + next(n for n in argument.names if len(n) > 1) + (f"={kind}" if kind else "")
            flags.append(f"`{long}`".replace("|", "\\|") + (f" (`{short[0]}`)" if short else ""))
        lines.append(f"| `{name}` | {', '.join(flags)} |")
    return "\n".join(lines)
