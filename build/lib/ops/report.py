"""Print results: tables for people, JSON for CI, progress on stderr.

Every task's result renders itself through one small protocol (`to_dict`, `rows`,
`footer`, `failure`); `emit` prints it and turns a failure into the task's exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ops.errors import OpsError


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]


class Renderable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def rows(self) -> Table | list[Table]: ...

    def footer(self) -> str: ...

    def failure(self) -> OpsError | None: ...


class Result:
    """Defaults for result dataclasses: JSON is the dataclass itself, no footer, no failure."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def footer(self) -> str:
        return ""

    def failure(self) -> OpsError | None:
        return None


def emit(result: Renderable, as_json: bool) -> None:
    """Print a result (a table and its footer, or JSON); raise its failure after printing."""
    if as_json:
        print(dump(result.to_dict()))
    else:
        tables = result.rows()
        for index, part in enumerate(tables if isinstance(tables, list) else [tables]):
            if part.rows or index == 0:
                print(("\n" if index else "") + table(part.rows, part.headers))
        footer = result.footer()
        if footer:
            print(footer)
    error = result.failure()
    if error is not None:
        raise error


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return tabulate(list(rows), headers=list(headers), tablefmt="github", intfmt=",")


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
