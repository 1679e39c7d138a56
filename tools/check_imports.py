#!/usr/bin/env python3
"""Find import circles inside the ``nnforce`` Python package, from the source (AST), without importing it.

Every ``import`` counts, at module level or inside a function (an import moved into a function hides a circle
from the interpreter but not from a reader), except those under ``if TYPE_CHECKING:``. An import of
``pkg.sub`` counts as an edge to ``pkg.sub`` (and, as Python runs it, to ``pkg``'s ``__init__``); a package's
``__init__`` importing its own submodules is the normal direction and is part of the graph like any other edge.

Usage: ``python tools/check_imports.py [PACKAGE_DIR]`` (default ``python/nnforce``); prints each circle and exits 1
if there is one, else prints ``no import circles`` and exits 0.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything ``tree`` imports (``TYPE_CHECKING`` blocks skipped)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        names = _imports(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")
        graph[name] = {n for n in names if n in files and n != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(found)


def _is_parent_edge(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def package_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Circles, not counting a package's ``__init__`` importing its own submodules or a submodule its package.

    ``pkg/__init__.py`` re-exporting ``pkg.x`` while ``pkg.x`` imports ``pkg.y`` is how packages are built (Python
    resolves it: the submodule is loaded first); only circles between modules that are not each other's package
    are reported.
    """
    trimmed = {a: {b for b in bs if not _is_parent_edge(a, b)} for a, bs in graph.items()}
    return circles(trimmed)


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1] / "python" / "nnforce")
    if not (root / "__init__.py").is_file():
        print(f"check_imports: error: {root} is not a package (no __init__.py)", file=sys.stderr)
        return 2
    found = package_circles(import_graph(root))
    for component in found:
        print("import circle: " + " <-> ".join(component))
    if not found:
        print("no import circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
