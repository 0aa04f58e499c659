"""No module reaches into another's private parts.

Every module of the package is private (`_ledger`, `_cli._batch`), so importing one is how the
package is built; what a module offers the others is its names without a leading underscore. A
name with one (`flux._lanes`, `_operation._get_kwargs`, `transport._pool`) belongs to the module
that defines it: reached from elsewhere, it is a seam nobody promised to keep, and an upgrade or
a refactor breaks it silently. The walk is syntactic, like test_layout's: an attribute `x._name`
is fine where `x` is `self` or `cls`, or where this module itself defines `_name`; an import of
`_name` is fine where `_name` is a module. A class and its bases are one family, so a module that
subclasses another module's class shares that module's private names (the two clients are the
drivers of the flows `_base_client` writes; they carry out its steps, on any lane).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import novita_flux
import novita_flux_api

PACKAGE = Path(novita_flux.__file__).resolve().parent
GENERATED = Path(novita_flux_api.__file__).resolve().parent

# Names with a leading underscore that are public by contract: namedtuple's API, os._exit (the
# documented exit without clean-up, after a fork or from a signal handler).
PUBLIC_BY_CONTRACT = frozenset({"_replace", "_asdict", "_fields", "_make", "_exit"})


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_BY_CONTRACT


def defined_here(tree: ast.Module) -> set[str]:
    """The private names this module defines: functions, classes, module and class variables,
    attributes it sets on anything, parameters, and names bound by imports or loops."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            # Set on self or cls, a name is the class's own; set on anything else (a lane, a
            # copy of self) it is this module's too, unless the walk finds it owned elsewhere.
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("attrs.field"):
            pass  # attrs fields are class variables, found as Name stores above
    return {name for name in names if is_private(name)}


def is_module(base: str, name: str) -> bool:
    """Whether `from base import name` imports a module (of this package or the generated one),
    or anything outside both (the standard library's `_thread` is a module too)."""
    for root, package in ((PACKAGE, "novita_flux"), (GENERATED, "novita_flux_api")):
        if base == package or base.startswith(package + "."):
            folder = root.joinpath(*base.split(".")[1:])
            return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()
    return True


def resolved(node: ast.ImportFrom, package: str) -> str:
    base = node.module or ""
    if node.level:
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
    return base


def family(tree: ast.Module, package: str) -> set[str]:
    """The modules of the package whose classes this module's classes subclass."""
    origin = {
        alias.asname or alias.name: resolved(node, package)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    bases = [
        base.value if isinstance(base, ast.Subscript) else base  # Generic[...] too
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for base in node.bases
    ]
    return {
        origin[base.id]
        for base in bases
        if isinstance(base, ast.Name) and origin.get(base.id, "").startswith("novita_flux.")
    }


def source_of(module: str) -> Path:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def reach_ins(tree: ast.Module, package: str) -> list[str]:
    """Every private name this module uses that another module owns."""
    own = defined_here(tree)
    parents = family(tree, package)
    for parent in parents:
        own |= defined_here(ast.parse(source_of(parent).read_text()))
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
            and node.args[1].value not in own
        ):
            # The same reach-in, spelled so that no attribute access shows it.
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            owner = node.value
            if not is_private(node.attr) or node.attr in own:
                continue
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom):
            base = resolved(node, package)
            for alias in node.names:
                if base in parents:
                    continue
                if is_private(alias.name) and not is_module(base, alias.name):
                    found.append(f"line {node.lineno}: from {base} import {alias.name}")
    return found


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def test_no_module_uses_a_private_name_another_module_owns() -> None:
    found = {name: reach_ins(ast.parse(path.read_text()), name) for name, path in modules().items()}
    assert len(found) > 30  # the walk found the package
    assert {name: lines for name, lines in found.items() if lines} == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f(flux):\n    return flux._lanes(4)\n", ["line 2: flux._lanes"]),
        ("from x import y\ny._pool._network_backend = 1\n", ["line 2: y._pool"]),
        (
            "def f(t):\n    return getattr(t, '_pool', None)\n",
            ["line 2: getattr(t, '_pool', None)"],
        ),
        (
            "from novita_flux._deadline import _Guard\n",
            ["line 1: from novita_flux._deadline import _Guard"],
        ),
        (
            "from novita_flux_api.api.default import flux_1_schnell as op\nop._get_kwargs()\n",
            ["line 2: op._get_kwargs"],
        ),
    ],
)
def test_the_walk_sees_a_reach_in(source: str, expected: list[str]) -> None:
    assert reach_ins(ast.parse(source), "novita_flux._x") == expected


@pytest.mark.parametrize(
    "source",
    [
        "class A:\n    def f(self):\n        return self._http\n",
        "def f(lane):\n    lane._http = 1\n    return lane._http\n",  # this module's own name
        "from novita_flux import _deadline, _retry\n",  # modules
        "from novita_flux._cli import _batch\n",
        "import os\nos._exit(1)\n",
        # A subclass of the base client drives its flows, on any lane.
        "from novita_flux._base_client import _BaseClient, _Send\n"
        "class C(_BaseClient[int]):\n    def f(self, lane):\n        return lane._generate_flow\n",
        "def f(row):\n    return row._replace(a=1)\n",
    ],
)
def test_the_walk_lets_a_module_use_what_it_owns(source: str) -> None:
    assert reach_ins(ast.parse(source), "novita_flux._x") == []
