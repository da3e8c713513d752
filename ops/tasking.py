"""What a task is here: `OpsTask`, the Invoke task class every task in tasks.py is made with.

A task body parses its flags (the helpers below), calls one function in ops and returns that
result; the class does the rest, the same for every task: prints the result (a table, or JSON
with --json), journals the run of a task that writes, and turns every way a run can end into one
line and its exit code, never a traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invoke import Argument, Context, Exit, Task, task

from ops.cli import COMMAND_LINE, ONE_ENV_TASKS, SHORT_FLAGS, TARGET_TO_TASKS, VALUE_KINDS

if TYPE_CHECKING:
    from ops.config import Config
    from ops.journal import Entry
    from ops.report import Renderable

LIST_HELP = "repeat the flag or separate with commas"
RETENTION_HELP = {
    "keep": "the same as --keep-last",
    "keep_last": "keep the newest N full backups (default: [backup] keep_last, else [storage] keep, 5)",
    "keep_daily": "and the newest of each of the last N days that have one (UTC; default: [backup] keep_daily)",
    "keep_weekly": "and the newest of each of the last N ISO weeks that have one (default: [backup] keep_weekly)",
    "keep_monthly": "and the newest of each of the last N months that have one (default: [backup] keep_monthly)",
}
CRASH_ADVICE = (
    "This is a bug in the toolkit: please report it with the output of "
    "the same command run with OPS_DEBUG=1 (which shows where it happened)."
)


class OpsTask(Task):
    """A task whose flags follow the tables in ops/cli.py and whose every run ends as one result or
    one line with its exit code. With `journal`, the task writes: its run is appended to the ops
    journal, however it ends (an unexpected exception as `crashed: <type>: <message>`, never as done)."""

    def __init__(self, body: Callable[..., Renderable], *, journal: bool = False, **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self.journal = journal

    @property
    def command(self) -> str:
        return str(self.name).replace("_", "-")

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        short = SHORT_FLAGS.get(name)
        if short and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        # The task's own command line, handed in by __call__: not a flag.
        arguments = [a for a in super().get_arguments(ignore_unknown_help) if a.name != COMMAND_LINE]
        for argument in arguments:
            key = str(argument.attr_name or argument.name)
            kind = VALUE_KINDS.get(key)
            if key == "env" and self.command in ONE_ENV_TASKS:
                kind = "ENV"
            elif key == "to" and self.command in TARGET_TO_TASKS:
                kind = "TARGET"
            argument.value_kind = kind  # type: ignore[attr-defined]
        return arguments

    def __call__(self, c: Context, *args: Any, **flags: Any) -> None:
        from ops import journal, report

        as_json = bool(flags.get("json"))
        report.PROGRESS.plain = as_json  # --json: stderr keeps plain lines, never a bar
        entry = journal.begin(self.command, flags) if self.journal else None
        defaults = {name: p.default for name, p in inspect.signature(self.body).parameters.items()}
        if COMMAND_LINE in defaults:  # the task's own command line, for its re-run hints
            from ops.invocation import CommandLine

            typed = {k: v for k, v in flags.items() if v != defaults.get(k)}  # as typed: no defaults
            flags[COMMAND_LINE] = CommandLine(self.command, typed)
        code, failure = 1, "crashed"
        try:
            self.show(super().__call__(c, *args, **flags), as_json, entry)
            code, failure = 0, ""
        except BaseException as error:
            code, failure, refusal = self.ending(error, as_json)
            if refusal is None:
                raise
            raise refusal from None
        finally:
            if entry is not None:
                journal.finish(entry, code, failure)

    @staticmethod
    def show(result: Renderable, as_json: bool, entry: Entry | None) -> None:
        """Print the body's result and raise its failure; the journal line takes its outcome."""
        from ops import journal, report

        if entry is not None:
            journal.note(entry, result)
        report.emit(result, as_json)

    @staticmethod
    def ending(error: BaseException, as_json: bool) -> tuple[int, str, Exit | None]:
        """How a run that raised ends: its exit code, the journal's outcome, and the Exit to raise
        instead (None: let the error itself through, as with OPS_DEBUG=1)."""
        import os
        import sys

        from ops.errors import OpsError, first_line

        def refuse(message: str, exit_code: int, *, reported: bool = False) -> Exit:
            """The one line on stderr; with --json, the same as JSON on stdout unless a summary said it."""
            from ops.cli import json_error

            if as_json and not reported:
                json_error(message, exit_code)
            return Exit(message, code=exit_code)

        if isinstance(error, OpsError):
            return error.exit_code, str(error), refuse(f"error: {error}", error.exit_code, reported=error.in_summary)
        if isinstance(error, KeyboardInterrupt):
            return 130, "interrupted (Ctrl-C)", refuse("interrupted", 130)
        if isinstance(error, Exit):
            if error.message and error.code:
                return error.code, str(error.message), refuse(str(error.message), error.code)
            return error.code, str(error.message or ""), None
        if isinstance(error, BrokenPipeError):
            # The reader left (`inv journal | head`): stop quietly, as git does, and let nothing
            # write to the closed pipe again on the way out (the journal entry is still written).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141, "output pipe closed by the reader", Exit(code=141)
        if not isinstance(error, Exception):  # SystemExit and the like: on their way
            return 1, "crashed", None
        failure = f"crashed: {first_line(error, typed=True)}"
        if os.environ.get("OPS_DEBUG"):
            return 1, failure, None
        return 1, failure, refuse(f"error: {failure}\n{CRASH_ADVICE}", 1)


def ops_task(*args: Any, journal: bool = False, **kwargs: Any) -> Callable[[Callable[..., Renderable]], Task]:
    """`@task` for tasks.py: an OpsTask, short flags only from ops/cli.py's table."""
    return task(*args, klass=OpsTask, journal=journal, auto_shortflags=False, **kwargs)


def comma_list(values: list[str] | None) -> list[str]:
    """A list flag, repeated or comma-separated (`--only a --only b,c`), as one list."""
    from ops.config import split_list

    return [name for value in values or [] for name in split_list(value)]


def number_flag(value: str | int | None, flag: str) -> int | None:
    """A whole-number flag; a clear exit 2 instead of a traceback for anything else."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Exit(f"error: {flag} takes a whole number, not {value!r}", code=2) from None


def retention_flags(
    keep: str | None, keep_last: str | None, keep_daily: str | None, keep_weekly: str | None, keep_monthly: str | None
) -> dict[str, int | None]:
    """The retention flags given, as whole numbers (`--keep` is `--keep-last`)."""
    last, alias = number_flag(keep_last, "--keep-last"), number_flag(keep, "--keep")
    if last is not None and alias is not None and last != alias:
        raise Exit("error: --keep is --keep-last: give one of them", code=2)
    return {
        "last": alias if last is None else last,
        "daily": number_flag(keep_daily, "--keep-daily"),
        "weekly": number_flag(keep_weekly, "--keep-weekly"),
        "monthly": number_flag(keep_monthly, "--keep-monthly"),
    }


def load_config(*, check_refs: bool = True) -> Config:
    """environments.ini (looked up from here), its path said once when it is not this folder's."""
    from ops import config

    loaded = config.load(check_refs=check_refs)
    config.announce(loaded.path)
    return loaded
