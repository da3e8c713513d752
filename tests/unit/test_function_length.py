"""No function in ops/ or tasks.py runs over LIMIT lines unless its docstring says why it is kept whole.

A long function hides its steps; split it into named ones. Where one really reads better whole,
its docstring carries a line starting "Long because" that says why.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 80
REASON = "long because"


def too_long(source: str, name: str = "<source>") -> list[str]:
    """Each function over LIMIT lines (its `def` line to its last) without a "Long because" line in its docstring."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        docstring = ast.get_docstring(node) or ""
        explained = any(line.strip().lower().startswith(REASON) for line in docstring.splitlines())
        if length > LIMIT and not explained:
            found.append(f"{name}:{node.lineno} {node.name} is {length} lines")
    return found


def test_no_function_in_ops_or_tasks_is_long_without_a_reason():
    paths = [REPO / "tasks.py", *sorted((REPO / "ops").rglob("*.py"))]
    found = [line for path in paths for line in too_long(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert found == [], "split these into named steps, or say why in a 'Long because' docstring line:\n" + "\n".join(
        found
    )


def function(lines: int, docstring: str) -> str:
    body = "\n".join(f"    x{n} = {n}" for n in range(lines - 2))
    return f'def f():\n    """{docstring}"""\n{body}\n'


def test_a_long_function_is_found_and_one_that_says_why_is_not():
    assert too_long(function(LIMIT, "Short enough.")) == []
    assert too_long(function(LIMIT + 1, "Does things.")) == [f"<source>:1 f is {LIMIT + 1} lines"]
    reason = "Does things.\n\n    Long because each step reads the one before it."
    assert too_long(function(LIMIT + 1, reason)) == []
    nested = textwrap.indent(function(LIMIT + 1, "Inner."), "    ")
    assert too_long(f'def outer():\n    """Outer."""\n{nested}') == [
        f"<source>:1 outer is {LIMIT + 3} lines",
        f"<source>:3 f is {LIMIT + 1} lines",
    ]
