"""Layering of the code base, read from the import statements themselves (``ast``),
every import counted (top-level and inside functions, where a cycle would hide).

Theorem-like statements checked:
1. the engine ``dynamics`` never imports ``proofs_check`` (the engine does not know
   about the checks built on it);
2. the package graph has no cycle: with one node per subpackage or top-level module
   of ``dynamics`` and of ``proofs_check`` (``dynamics.gradients``,
   ``dynamics._fixed_point``, ``proofs_check.checks``, ...), no strongly connected
   component has more than one node.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dynamics", "proofs_check")


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    base = Path(next(iter(spec.submodule_search_locations))).parent
    out = {}
    for path in sorted((base / package).rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = {name: path for pkg in PACKAGES for name, path in _modules(pkg).items()}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (``from pkg import sub`` counts ``pkg.sub``
    when ``sub`` is a module)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            subs = {f"{target}.{a.name}" for a in node.names}
            found.update(subs & MODULES.keys())
            # ``from pkg import sub`` reads ``pkg`` itself only for non-module names.
            if not subs <= MODULES.keys():
                found.add(target)
    return found


def unit(module: str) -> str | None:
    """The layering unit of a module: its package plus one more component."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    return ".".join(parts[:2])


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        src = unit(module)
        edges = graph.setdefault(src, set())
        for target in imports_of(module):
            dst = unit(target)
            if dst is not None and dst != src:
                edges.add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_engine_never_imports_the_checks():
    """No module of ``dynamics`` imports ``proofs_check`` (anywhere in its body)."""
    bad = {
        module: sorted(
            t for t in imports_of(module) if t.split(".")[0] == "proofs_check"
        )
        for module in MODULES
        if module.split(".")[0] == "dynamics"
    }
    assert {m: t for m, t in bad.items() if t} == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_cycles(package):
    """The unit graph (subpackages and top-level modules) is acyclic, for the
    engine and for the checks; cross-package edges are part of the graph."""
    graph = unit_graph()
    assert any(u.split(".")[0] == package for u in graph), "no modules found"
    found = [c for c in cycles(graph) if any(u.split(".")[0] == package for u in c)]
    assert found == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder_finds_cycles(graph, expected):
    """The checker itself can fail: it reports a planted cycle."""
    assert cycles(graph) == expected


def test_hidden_import_is_seen(tmp_path):
    """An import inside a function body is an edge too (that is where cycles hide)."""
    src = "def f():\n    from ..gradients import JFB\n    return JFB\n"
    tree = ast.parse(src)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    path = tmp_path / "layer.py"
    assert _resolve("dynamics.batched.layer", path, node) == "dynamics.gradients"
