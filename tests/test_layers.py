"""The packages are layers and imports go only downward; ``import actors`` stays light.

A module may import from its own package and from the layers below its own, never from a
layer above or beside it, not even inside a function. Imports under ``if TYPE_CHECKING:``
(annotations only) are exempt. The modules' import graph has no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. Packages on one line are siblings: none imports another.
LAYERS: list[set[str]] = [
    {"supervision"},
    {"actors.errors"},
    {"actors.runtime"},
    {"actors.core"},
    {"actors.executors", "actors.durability", "actors.observe"},
    {"actors.system"},
    {"actors.handle"},
    {"actors.manager"},
    {"actors.compat"},
    {"actors.dashboard"},  # the browser's view, on the manager (an extra: Starlette)
    {"actors.messages", "actors.otel", "actors.__main__"},  # public modules (re-exports)
    {"actors"},  # the public names
]


def _unit(module: str) -> str:
    """The layer unit a module belongs to: the longest name in LAYERS that prefixes it."""
    names = [n for layer in LAYERS for n in layer if module == n or module.startswith(n + ".")]
    return max(names, key=len)


def _rank(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) for each import of ours in the tree, outside TYPE_CHECKING blocks."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # ``from actors import messages`` imports the submodule; a name defined in a
            # package's __init__ is resolved in _graph.
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
            found.append((node.lineno, module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, list[tuple[int, str]]]:
    modules = {
        _module_name(p): p for top in ("actors", "supervision") for p in (ROOT / top).rglob("*.py")
    }
    graph: dict[str, list[tuple[int, str]]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: list[tuple[int, str]] = []
        imports = _imports(ast.parse(path.read_text()), package)
        for i, (line, target) in enumerate(imports):
            if target not in modules or target == name:
                continue
            # ``from P import x`` also lists P itself (last): it counts only if no x
            # named a submodule of P
            submodules = [t for ln, t in imports[:i] if ln == line and t.startswith(target + ".")]
            if any(t in modules for t in submodules):
                continue
            edges.append((line, target))
        graph[name] = edges
    return graph


GRAPH = _graph()


def test_every_module_has_a_layer() -> None:
    assert len(GRAPH) > 40  # the walk found the code
    for module in GRAPH:
        assert _unit(module)


def test_imports_go_only_downward() -> None:
    wrong = []
    for module, edges in GRAPH.items():
        unit = _unit(module)
        for line, target in edges:
            other = _unit(target)
            if other != unit and _rank(other) >= _rank(unit):
                wrong.append(f"{module}:{line} imports {target} ({other} is not below {unit})")
    assert wrong == []


def test_the_import_graph_has_no_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def walk(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for _, target in GRAPH[module]:
            walk(target)
        path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        walk(module)


def test_import_actors_leaves_the_heavy_modules_alone() -> None:
    """The journal's sqlite3, the process pool's multiprocessing, the interrupt's ctypes and
    the config's tomllib load when first used (as concurrent.futures imports its process
    pool), not with ``import actors``."""
    heavy = ["sqlite3", "multiprocessing", "ctypes", "tomllib", "distributed", "opentelemetry"]
    heavy += ["starlette", "uvicorn"]  # the dashboard's (an extra, imported with actors.dashboard)
    # What our dependencies load themselves (structlog imports colorama, and colorama
    # ctypes, where colorama is installed) is theirs: only what actors adds counts.
    code = (
        "import sys, pykka, structlog; before = set(sys.modules); import actors; "
        f"print([m for m in {heavy!r} if m in sys.modules and m not in before])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == "[]"


def test_the_lazy_names_are_there_when_asked_for() -> None:
    import actors

    assert {"ProcessExecutor", "DaskExecutor", "JsonLinesEventLog"} <= set(dir(actors))
    assert actors.ProcessExecutor.kind == "process"
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        actors.Nothing  # noqa: B018
