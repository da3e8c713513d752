"""Print results: tables for people, JSON for CI, progress on stderr.

Every task's result renders itself through one small protocol (`to_dict`, `rows`,
`footer`, `failure`); `emit` prints it and turns a failure into the task's exit code.
"""

from __future__ import annotations

import json
import sys
import threading
import time
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
    elif hasattr(result, "text"):  # a result that reads better as lines than as a table
        print(result.text())
        footer = result.footer()
        if footer:
            print(footer)
    else:
        tables = result.rows()
        for index, part in enumerate(tables if isinstance(tables, list) else [tables]):
            if part.rows or index == 0:
                print(("\n" if index else "") + fitted(part.rows, part.headers))
        footer = result.footer()
        if footer:
            print(footer)
    error = result.failure()
    if error is not None:
        error.in_summary = as_json
        raise error


def printable(fancy: str, plain: str) -> str:
    """`fancy` where standard output can show it, else `plain` (a C locale, a log file in ASCII)."""
    try:
        fancy.encode(getattr(sys.stdout, "encoding", None) or "ascii")
        return fancy
    except (UnicodeEncodeError, LookupError):
        return plain


UNPRINTABLE = dict.fromkeys([*range(32), *range(127, 160)], "?")  # control characters, C0 and C1


def fitted(rows: list[list[Any]], headers: Sequence[str]) -> str:
    """A table, or, when it is wider than the terminal, one block per row (a field a line)."""
    import shutil

    # Cells may hold names and words read from elsewhere (a backup target anyone can write to): no
    # escape sequence or line break in them reaches the terminal.
    rows = [[v.translate(UNPRINTABLE) if isinstance(v, str) else v for v in row] for row in rows]
    text = table(rows, headers)
    width = shutil.get_terminal_size((0, 0)).columns  # 0: not a terminal and no COLUMNS: no limit
    if not width or max(map(len, text.splitlines()), default=0) <= width or not rows:
        return text
    label = max(len(str(h)) for h in headers)
    blocks = []
    for row in rows:
        lines = [f"{str(h):<{label}}  {'' if v is None else v}" for h, v in zip(headers[1:], row[1:], strict=False)]
        rule = printable("─", "-")
        blocks.append(
            f"{rule * 2} {row[0]} " + rule * max(0, min(width, 60) - len(str(row[0])) - 4) + "\n" + "\n".join(lines)
        )
    return "\n\n".join(blocks)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return tabulate(list(rows), headers=list(headers), tablefmt="github", intfmt=",")


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class ProgressStyle:
    """How progress shows in this process (stderr is the process's): `plain` is set by the running
    task for --json, whose stderr then keeps plain lines whatever it is."""

    plain: bool = False

    def live(self) -> bool:
        """A live bar only for a person at a terminal; CI, pipes and --json get plain lines."""
        return not self.plain and sys.stderr.isatty()


PROGRESS = ProgressStyle()


class Meter:
    """Progress of long work: a live bar (tqdm) on a terminal, else a plain stderr line at most once a second.

    Totals may grow while the work runs (`expect`: copies found by a listing still under way).
    """

    def __init__(self, label: str, total: int, unit: str, total_bytes: int | None = None) -> None:
        self.label, self.total, self.unit, self.total_bytes = label, total, unit, total_bytes
        self.done = self.bytes = 0
        self.last = 0.0
        self.said = -1  # the count of the last plain line
        self.lock = threading.Lock()
        self.bar: Any = None
        self.live = PROGRESS.live()  # asked once: `expect` comes once an object, 100,000 times a listing
        if total:
            self._open_bar()

    def _open_bar(self) -> None:
        if not self.live:
            return
        from tqdm import tqdm

        if self.total_bytes is not None:
            # "iB" with powers of 1024: the bar says MiB, as every plain line does.
            self.bar = tqdm(
                total=self.total_bytes,
                desc=self.label,
                unit="iB",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=True,
            )
        else:
            self.bar = tqdm(total=self.total, desc=self.label, unit=f" {self.unit}", file=sys.stderr, leave=True)

    def expect(self, count: int, size: int = 0) -> None:
        """More to do than the totals said (a bar opens with the first of it, where none was)."""
        with self.lock:
            self.total += count
            if self.total_bytes is not None:
                self.total_bytes += size
            if self.bar is None:
                self._open_bar()
            else:
                self.bar.total = self.total if self.total_bytes is None else self.total_bytes

    def add(self, count: int = 1, size: int = 0) -> None:
        with self.lock:
            self.done += count
            self.bytes += size
            if self.bar is not None:
                self.bar.update(size if self.total_bytes is not None else count)
                if self.total_bytes is not None:
                    self.bar.set_postfix_str(f"{self.done:,}/{self.total:,} {self.unit}", refresh=False)
                return
            now = time.monotonic()
            # Done with all it knows of is no reason to say so: work that keeps up with a listing is, after
            # each object. The last line is said at close.
            if now - self.last >= 1:
                self.last = now
                self._say()

    def _say(self) -> None:
        sizes = (
            f", {self.bytes / 2**20:,.1f}/{self.total_bytes / 2**20:,.1f} MiB" if self.total_bytes is not None else ""
        )
        self.said = self.done
        progress(f"{self.label} {self.done:,}/{self.total:,} {self.unit}{sizes}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.done and self.said != self.done:
            self._say()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unread_line(envs: list[Any]) -> tuple[list[str], str]:
    """What could not be read, per environment (each with `.env` and `.errors`), and the INCOMPLETE line
    that says so ("" when everything was read): a part not read is unknown, never a match."""
    unread = [f"{e.env} ({', '.join(e.errors)})" for e in envs if e.errors]
    line = f"INCOMPLETE: could not read {', '.join(unread)}; what is shown for them is unknown, not a match"
    return unread, line if unread else ""
