"""The package's shape: no import cycle between its modules (counting imports inside functions,
which only postpone a cycle), and the public face it promises."""

from __future__ import annotations

import ast
from pathlib import Path

import novita_flux

PACKAGE = Path(novita_flux.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Every novita_flux module this module imports at run time, anywhere in it."""
    found: set[str] = set()
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(child) for child in ast.walk(node)}
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {module for module in found if module.startswith("novita_flux")}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: imported(ast.parse(path.read_text()), name, path.name == "__init__.py")
        & set(files) - {name}
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            # A package importing its own modules is how a package's face is built, not a cycle.
            if nxt.startswith(node + "."):
                continue
            if state[nxt] == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node)
    return found


def test_no_module_of_the_package_imports_itself_round_a_circle() -> None:
    graph = import_graph()
    assert len(graph) > 30  # the walk found the package
    assert "novita_flux._ledger" in graph["novita_flux._cli._batch"]
    assert cycles(graph) == []


def test_the_walk_would_see_a_cycle_through_an_import_inside_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    source = "def f():\n    from novita_flux import _cli\n"
    assert imported(ast.parse(source), "novita_flux._x", False) == {
        "novita_flux",
        "novita_flux._cli",
    }
    typing_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import novita_flux._x\n"
    assert imported(ast.parse(typing_only), "novita_flux._y", False) == set()
