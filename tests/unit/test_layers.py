"""ops/ and tasks.py import in layers: no module reaches back up to one that imports it, lazily or not.

tasks.py sits on top: it imports ops, and nothing in ops imports it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
TESTS = REPO / "tests"


def modules() -> dict[str, Path]:
    found = {"tasks": REPO / "tasks.py"}
    for path in OPS.rglob("*.py"):
        name = ".".join(("ops", *path.relative_to(OPS).with_suffix("").parts)).removesuffix(".__init__")
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every ops module (or tasks) `path` imports, at its top or inside a function (TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("ops", "tasks"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ops.") or alias.name == "tasks"}
    return {name for name in found if name in known and name != "ops"}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each module (ops's and tasks) -> the modules it imports."""
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def test_ops_and_tasks_imports_have_no_cycle():
    graph = import_graph()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in visiting:
            cycle = visiting[visiting.index(name) :] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert len(graph) > 40 and graph["tasks"]  # every module was read, tasks.py among them


def test_ops_never_imports_tasks():
    """ops is the library under the task file: a console script or a flag table is given the collection."""
    reaching = sorted(name for name, imported in import_graph().items() if "tasks" in imported)
    assert not reaching, f"ops modules importing tasks.py: {reaching}"


def test_tests_import_helpers_from_tests_lib_never_from_another_test_module():
    test_modules = {path.stem for path in TESTS.rglob("test_*.py")}
    reaching = set()
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module}
            elif isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            else:
                continue
            reaching |= {
                f"{path.relative_to(TESTS)} imports {name}" for name in names if name.split(".")[-1] in test_modules
            }
    assert len(test_modules) > 30 and not reaching, sorted(reaching)
