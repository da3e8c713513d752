"""Print results as tables for people, JSON for CI, and progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return tabulate(list(rows), headers=list(headers), tablefmt="github", intfmt=",")


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
