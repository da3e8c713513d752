"""Names the user typed: the nearest known one to a mistyped name, and choosing by name (tasks, flags, tables,
buckets, functions)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from ops.errors import UserError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean plans?`, or '' when no known name is close."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {found[0]}?" if found else ""


def choose(requested: Iterable[str] | None, known: list[str], unknown: Callable[[list[str]], str]) -> list[str]:
    """The names asked for (each once, in order), or every known one; a name not known is refused
    with `unknown(names)`, before anything is read or written."""
    if not requested:
        return list(known)
    asked = list(dict.fromkeys(requested))
    strangers = [name for name in asked if name not in known]
    if strangers:
        raise UserError(unknown(strangers) + did_you_mean(strangers[0], known))
    return asked
