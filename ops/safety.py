"""Guards that run before anything changes: protected environments and distinct endpoints."""

from __future__ import annotations

import sys

from ops.config import Environment
from ops.errors import UserError


def will_ask(env: Environment, *, yes: bool) -> bool:
    """Whether writing to `env` needs a typed confirmation (refused at once where nobody can type it)."""
    return env.protected and not yes


def ask(question: str, *, hidden: bool = False) -> str:
    """What the person types (not echoed with `hidden`). End of input (Ctrl-D) is a "no": refused
    (exit 2) before anything changes, never a crash."""
    import getpass

    try:
        return getpass.getpass(question) if hidden else input(question).strip()  # a password is kept as typed
    except EOFError:
        print(file=sys.stderr if hidden else sys.stdout)  # end the prompt's line, so the refusal gets its own
        raise UserError("no answer (end of input): nothing was changed") from None


def confirm_write(env: Environment, *, yes: bool, action: str, plan: str = "") -> None:
    """Ask the user to type a protected environment's name before writing to it, after showing `plan`
    (what will change, computed read-only), as `supabase db push` shows its migrations first."""
    if not will_ask(env, yes=yes):
        return
    if not sys.stdin.isatty():
        raise UserError(
            f"'{env.name}' is protected and there is no terminal to confirm {action}: pass --yes to confirm"
        )
    if plan:
        print(plan, flush=True)
    answer = ask(f"'{env.name}' is protected. Type its name to {action}: ")
    if answer != env.name:
        raise UserError(f"not confirmed ('{answer}' is not '{env.name}'); nothing was changed")


def distinct(source: Environment, target: Environment) -> None:
    if source.name == target.name:
        raise UserError(f"--from and --to are both '{source.name}': name two different environments")
