"""The command line of a task as the person typed it, for resume and re-run hints that keep every
flag they gave (`--dry-run`, `--yes`, `--jobs`...), spelt in the program they ran."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROGRAM = "supabase-ops"


def program() -> str:
    """What the person ran: the installed `supabase-ops`, else Invoke's `inv` (in a checkout)."""
    return PROGRAM if Path(sys.argv[0]).name == PROGRAM else "inv"


@dataclass(frozen=True)
class CommandLine:
    """One task's flags as typed (defaults left out). Inside a workflow, `step` names the step it
    runs: a re-run there is the workflow resumed at that step, since a workflow takes none of its
    steps' own flags (`--only`, `--buckets`)."""

    task: str
    flags: dict[str, Any] = field(default_factory=dict)
    step: str = ""

    def at_step(self, step: str) -> CommandLine:
        return replace(self, step=step)

    def rerun(self, *, drop: tuple[str, ...] = (), add: dict[str, Any] | None = None) -> str:
        """This task again with `add` instead of `drop`; in a workflow step, the workflow resumed there."""
        if self.step:
            return self.render(drop=("resume_at",), add={"resume_at": self.step})
        return self.render(drop=drop, add=add)

    def render(self, *, drop: tuple[str, ...] = (), add: dict[str, Any] | None = None) -> str:
        flags = {k.rstrip("_"): v for k, v in self.flags.items() if k.rstrip("_") not in drop} | (add or {})
        words = [program(), self.task]
        for name, value in flags.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                words.append(flag)
            elif value is False:  # only typed when the default is on (`--no-smoke`)
                words.append("--no-" + name.replace("_", "-"))
            elif value in (None, "", []):
                continue
            elif isinstance(value, list):
                words += [flag, ",".join(str(v) for v in value)]
            else:
                words += [flag, str(value)]
        return shlex.join(words)
