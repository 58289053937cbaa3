"""The import structure of ``src/alt_lightning``: no import cycles between files, and the layer rules of the design.

The imports are read from the source with :mod:`ast` (nothing is imported): every ``import`` and ``from ... import``
statement of a module counts, at module level or inside a function, except those under ``if TYPE_CHECKING:``, which
never run. ``from package import name`` is an edge to ``package.name`` when that is a module of ours, else to
``package`` (its ``__init__``). Only edges written as import statements are seen: ``importlib.import_module`` and
``class_path`` strings are not. Importing a submodule also runs its parent packages' ``__init__``; those implicit edges
are not counted (a package ``__init__`` that re-exports its modules would otherwise be in a cycle with each of them).

Layers, from the top (issue 12's design), each allowed to import itself and the layers listed, nothing else of ours::

    cli.py, __main__.py -> commands
    commands     -> protocols, lightning, datamodules, explain, model, text, data
    protocols    -> lightning, datamodules, model, text, data
    lightning    -> datamodules, explain, model, text, data
    explain      -> model, text, data
    datamodules  -> data, text            (never model/: what it needs from the model comes by duck typing)
    model        -> text                  (pure torch; never data/)
    text         -> data                  (never model/)
    data         -> (nothing of ours)

and the package root (``alt_lightning/__init__.py``, the version) and ``alt_lightning/errors.py`` (``UserError``, the
user's mistakes, raised in every layer) may be imported by every layer and import nothing of ours.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "alt_lightning"

#: layer -> the other layers it may import. A module's layer is the first name after the package
#: (``alt_lightning.model.alt`` -> ``model``; ``alt_lightning.cli`` -> ``cli``); :data:`LAYER_OF_TOP_MODULE` maps
#: the few top-level modules that are not layers of their own.
LAYERS: dict[str, frozenset[str]] = {
    "cli": frozenset({"commands"}),
    "commands": frozenset({"protocols", "lightning", "datamodules", "explain", "model", "text", "data"}),
    "protocols": frozenset({"lightning", "datamodules", "model", "text", "data"}),
    "lightning": frozenset({"datamodules", "explain", "model", "text", "data"}),
    "explain": frozenset({"model", "text", "data"}),
    "datamodules": frozenset({"data", "text"}),
    "model": frozenset({"text"}),
    "text": frozenset({"data"}),
    "data": frozenset(),
}
#: The package root: importable by every layer, imports nothing of ours.
ROOT_LAYER = "root"
LAYER_OF_TOP_MODULE = {"__main__": "cli", "errors": ROOT_LAYER}

# Known violations: none left (issue 12 removed them). A new one fails `test_only_the_known_violations_remain` and the
# two strict tests below; list one here only with the issue that removes it.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
KNOWN_LAYER_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


# ------------------------------------------------------------------------------------------------------- the checker


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` (both dotted module names) at ``line`` of the importer's file."""

    importer: str
    imported: str
    line: int


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``src/package`` (``__init__.py`` is its package)."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree`` at any depth, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is one of ``modules`` (``a.b.func`` -> ``a.b``), or ``None``."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    return None


def import_edges(src: Path, package: str) -> list[Edge]:
    """The import edges between the modules of ``src/package`` (see the module docstring for what counts)."""
    modules = module_files(src, package)
    edges = set()
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the importer's package, one level up per extra dot
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
                ]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    edges.add(Edge(name, resolved, node.lineno))
    return sorted(edges, key=lambda e: (e.importer, e.imported, e.line))


def import_cycles(edges: Iterable[Edge]) -> set[frozenset[str]]:
    """The modules of each import cycle: the strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_path(edges: Iterable[Edge], component: frozenset[str]) -> list[Edge]:
    """One shortest cycle through the first module (by name) of ``component``, as its edges (for messages)."""
    by_importer: dict[str, list[Edge]] = {}
    for e in edges:
        if e.importer in component and e.imported in component:
            by_importer.setdefault(e.importer, []).append(e)
    start = min(component)
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for e in by_importer.get(v, []):
                if e.imported == start:
                    return [*paths[v], e]
                if e.imported not in paths:
                    paths[e.imported] = [*paths[v], e]
                    nxt.append(e.imported)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def layer_of(module: str, package: str = PACKAGE) -> str:
    """The layer of a dotted module name (see :data:`LAYERS`)."""
    parts = module.split(".")
    if parts == [package]:
        return ROOT_LAYER
    return LAYER_OF_TOP_MODULE.get(parts[1], parts[1])


def layer_violations(
    edges: Iterable[Edge], layers: Mapping[str, frozenset[str]] = LAYERS, package: str = PACKAGE
) -> list[Edge]:
    """The edges that import a layer their importer may not import, and every edge of a module in no layer."""
    bad = []
    for e in edges:
        a, b = layer_of(e.importer, package), layer_of(e.imported, package)
        in_layers = a in layers and (b in layers or b == ROOT_LAYER)  # the root is in no layer: it imports nothing
        if not in_layers or not (a == b or b == ROOT_LAYER or b in layers[a]):
            bad.append(e)
    return bad


def _describe(edges: Iterable[Edge]) -> str:
    return "\n".join(f"  {e.importer} -> {e.imported} (line {e.line})" for e in edges)


# ------------------------------------------------------------------------------------------- the checker, checked


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FAKE_LAYERS = {"top": frozenset({"low"}), "low": frozenset()}


def test_checker_finds_cycles_and_a_layer_violation(tmp_path: Path) -> None:
    src = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "top/__init__.py": "",
            "top/a.py": "from pkg.low import b\n",  # allowed: top -> low
            "top/x.py": "import pkg.top.y\n",  # x -> y -> z -> x: a cycle of three
            "top/y.py": "from pkg.top.z import f\n",
            "top/z.py": "from .x import g\n",
            "low/__init__.py": "",
            "low/b.py": "def f():\n    from pkg.low.c import g\n",  # function-level import: counts
            "low/c.py": "from . import b\n",  # a relative import closes b <-> c
            "low/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import a\n",  # ignored
            "low/e.py": "import os\n\n\ndef h():\n    import pkg.top.a\n",  # low -> top: a layer violation
        },
    )
    edges = import_edges(src, "pkg")
    assert [(e.importer, e.imported, e.line) for e in edges] == [
        ("pkg.low.b", "pkg.low.c", 2),
        ("pkg.low.c", "pkg.low.b", 1),
        ("pkg.low.e", "pkg.top.a", 5),
        ("pkg.top.a", "pkg.low.b", 1),
        ("pkg.top.x", "pkg.top.y", 1),
        ("pkg.top.y", "pkg.top.z", 1),
        ("pkg.top.z", "pkg.top.x", 1),
    ]
    cycles = import_cycles(edges)
    assert cycles == {frozenset({"pkg.low.b", "pkg.low.c"}), frozenset({"pkg.top.x", "pkg.top.y", "pkg.top.z"})}
    path = cycle_path(edges, frozenset({"pkg.top.x", "pkg.top.y", "pkg.top.z"}))
    assert [(e.importer, e.imported) for e in path] == [
        ("pkg.top.x", "pkg.top.y"),
        ("pkg.top.y", "pkg.top.z"),
        ("pkg.top.z", "pkg.top.x"),
    ]
    assert [(e.importer, e.imported) for e in layer_violations(edges, FAKE_LAYERS, "pkg")] == [
        ("pkg.low.e", "pkg.top.a")
    ]


def test_checker_passes_a_clean_package_and_flags_unknown_layers(tmp_path: Path) -> None:
    src = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "top/__init__.py": "from pkg.top.a import x\n",
            "top/a.py": "import os\nfrom pkg.low.b import y\nfrom pkg import low\nfrom pkg.low import b as bb\n",
            "low/__init__.py": "",
            "low/b.py": "import pkg\nfrom pkg.low import c\n",  # the package root is importable by all
            "low/c.py": "",
        },
    )
    edges = import_edges(src, "pkg")
    assert {(e.importer, e.imported) for e in edges} == {
        ("pkg.top", "pkg.top.a"),
        ("pkg.top.a", "pkg.low.b"),
        ("pkg.top.a", "pkg.low"),
        ("pkg.low.b", "pkg"),
        ("pkg.low.b", "pkg.low.c"),
    }
    assert import_cycles(edges) == set()
    assert layer_violations(edges, FAKE_LAYERS, "pkg") == []
    (src / "pkg" / "extra.py").write_text("from pkg.low import c\n")  # a module in no layer is reported
    edges = import_edges(src, "pkg")
    assert [(e.importer, e.imported) for e in layer_violations(edges, FAKE_LAYERS, "pkg")] == [
        ("pkg.extra", "pkg.low.c")
    ]


# -------------------------------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    found = import_edges(SRC, PACKAGE)
    assert len(found) > 50  # the tree was read
    return found


def test_only_the_known_violations_remain(edges: list[Edge]) -> None:
    cycles = import_cycles(edges)
    violations = {(e.importer, e.imported) for e in layer_violations(edges)}
    new_cycles = [c for c in cycles if c not in KNOWN_CYCLES]
    message = ""
    for c in sorted(new_cycles, key=sorted):
        message += f"new import cycle {sorted(c)}, e.g.:\n{_describe(cycle_path(edges, c))}\n"
    for c in sorted(KNOWN_CYCLES - cycles, key=sorted):
        message += f"cycle {sorted(c)} is gone: remove it from KNOWN_CYCLES\n"
    new = [e for e in layer_violations(edges) if (e.importer, e.imported) not in KNOWN_LAYER_VIOLATIONS]
    if new:
        message += f"new layer violations (see the rules in this file's docstring):\n{_describe(new)}\n"
    for a, b in sorted(KNOWN_LAYER_VIOLATIONS - violations):
        message += f"layer violation {a} -> {b} is gone: remove it from KNOWN_LAYER_VIOLATIONS\n"
    assert not message, message


def test_no_import_cycles(edges: list[Edge]) -> None:
    cycles = import_cycles(edges)
    assert not cycles, "\n".join(_describe(cycle_path(edges, c)) for c in sorted(cycles, key=sorted))


def test_imports_follow_the_layers(edges: list[Edge]) -> None:
    bad = layer_violations(edges)
    assert not bad, _describe(bad)
