"""Guards that run before anything changes: protected environments and distinct endpoints."""

from __future__ import annotations

import sys

from ops.config import Environment
from ops.errors import UserError


def will_ask(env: Environment, *, yes: bool) -> bool:
    """Whether writing to `env` needs a typed confirmation (refused at once where nobody can type it)."""
    return env.protected and not yes


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
    answer = input(f"'{env.name}' is protected. Type its name to {action}: ").strip()
    if answer != env.name:
        raise UserError(f"not confirmed ('{answer}' is not '{env.name}'); nothing was changed")


def distinct(source: Environment, target: Environment) -> None:
    if source.name == target.name:
        raise UserError(f"--from and --to are both '{source.name}': name two different environments")
