"""The package's runtime import graph is a DAG, and no module imports from a layer above it.

Every ``import`` / ``from ... import`` counts (module level and inside functions) except
those under ``if TYPE_CHECKING:``, which never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import phantom_notebook

PACKAGE = Path(phantom_notebook.__file__).parent
ROOT = PACKAGE.parent

#: lowest first: a module may import from its own layer or any layer listed before it
LAYERS = (
    "phantom_notebook.core.errors",
    "phantom_notebook.core.testing",
    "phantom_notebook.core.config",
    "phantom_notebook.core.model",
    "phantom_notebook.core.backend",
    "phantom_notebook.core.ports",
    "phantom_notebook.core.security",
    "phantom_notebook.core.audit",
    "phantom_notebook.core.observe",
    "phantom_notebook.core.publish",
    "phantom_notebook.core.results",
    "phantom_notebook.core.consume",
    "phantom_notebook.core.admin",
    "phantom_notebook.core.backup",
    "phantom_notebook.core.schedule",
    "phantom_notebook.core.queues",
    "phantom_notebook.core",
    "phantom_notebook.aio",
    "phantom_notebook.intel",
    "phantom_notebook.notebook",
    "phantom_notebook",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The index of the most specific layer ``module`` belongs to."""
    best = -1
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            if best < 0 or len(prefix) > len(LAYERS[best]):
                best = i
    return best


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """(imported phantom_notebook module, line) of every import that runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("phantom_notebook"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("phantom_notebook"):
                continue
            for alias in node.names:  # "from pkg import submodule" imports the submodule
                candidate = f"{target}.{alias.name}"
                if _is_module(candidate):
                    yield candidate, node.lineno
                else:
                    yield target, node.lineno


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        edges.setdefault(me, set())
        for target, _ in imports_of(path):
            if target != me and not me.startswith(target + "."):  # a package's own parents
                edges[me].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a list of modules), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def test_the_runtime_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        mine = layer_of(me)
        for target, line in imports_of(path):
            if me.startswith(target + "."):
                continue  # importing one's own package (e.g. its __init__)
            if layer_of(target) > mine:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, "\n".join(sorted(upward))


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
