"""ops/ and tasks.py import in layers: no module reaches back up to one that imports it, lazily or not.

`LAYERS` is the tree, top first, as README.md's layout block draws it: tasks.py on top, then the
sub-packages of ops/, then its small shared modules. A module imports from its own package or a
lower layer, never a sibling package on its own layer; nothing in ops imports tasks.py.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
TESTS = REPO / "tests"
SHARED = {
    "cli", "tasking", "startup", "journal", "invocation", "config", "conninfo", "safety", "report", "errors",
    "spelling", "stamps", "owner", "childenv", "git", "digest",
}  # fmt: skip
LAYERS: list[set[str]] = [
    {"tasks"},
    {"settings", "workflows"},
    {"views"},
    {"backup"},
    {"storage", "sync", "platform"},
    {"db", "s3"},
    SHARED,
]


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


def room(module: str) -> str:
    """`tasks`, a sub-package's name (`ops.s3.client` -> `s3`), or a shared module's (`ops.config` -> `config`)."""
    return module if module == "tasks" else module.split(".")[1]


def layer(name: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if name in rooms)


def test_the_tree_is_the_documented_one():
    """Every package and top module of ops/ is in LAYERS and in README.md's layout block, and nothing else."""
    found = {room(name) for name in modules() if name != "ops"}
    assert found == set().union(*LAYERS)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("Layout: `tasks.py`") :]
    block = block[block.index("```\n") + 4 :]
    block = block[: block.index("```")]
    words = set(re.findall(r"[\w.]+", block))
    for name, path in modules().items():
        if name in ("ops", "tasks") or path.name == "__init__.py":
            continue
        parts = name.split(".")
        drawn = f"{parts[1]}/" in block and parts[2] in words if len(parts) == 3 else f"{parts[1]}.py" in words
        assert drawn, f"{path.relative_to(REPO)} is not in README.md's layout block"
    assert "tasks.py" in words


def test_imports_go_down_the_layers():
    upward = sorted(
        f"{name} -> {imported}"
        for name, imports_ in import_graph().items()
        for imported in imports_
        if room(name) != room(imported)
        and (
            layer(room(imported)) < layer(room(name))
            or (layer(room(imported)) == layer(room(name)) and room(name) not in SHARED)
        )
    )
    assert not upward, upward


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
