"""The import graph of actors/, runtime/ and config/ has no circle.

Every ``import`` and ``from ... import`` counts, wherever it is written: at the top of a module,
inside a function (a lazy import is still a dependency) or under ``TYPE_CHECKING``. An edge goes
to the module named; ``from package import name`` goes to ``package.name`` when that is a module
and to the package otherwise, so a submodule is not tied to its own package merely by being in
it. Only modules of the three packages are nodes: the standard library and third parties cannot
close a circle through us.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("actors", "runtime", "config")

#: Circles known and being removed elsewhere; each must name why it may stay for now.
KNOWN_CIRCLES: frozenset[frozenset[str]] = frozenset()


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")
    }


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The modules of ``known`` that ``name`` (the module at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def circles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                target = pending.pop()
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, sorted(graph[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_circles_finds_a_circle_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [frozenset({"a", "b", "c"})]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_is_read_from_the_sources() -> None:
    graph = import_graph()
    assert "actors.chain.actor" in graph and "runtime.actor" in graph and "config.load" in graph
    assert "runtime.actor" in graph["actors.chain.actor"]
    assert "actors.chain.actor" in graph["actors.metrics"]  # metrics reads the chain's record
    assert not any(name.startswith("actors") for name in graph["runtime.actor"])


def test_actors_runtime_and_config_have_no_import_circle() -> None:
    found = set(circles(import_graph()))
    assert found - KNOWN_CIRCLES == set(), sorted(sorted(circle) for circle in found)


def test_the_runtime_imports_nothing_of_the_grid() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("runtime"):
            assert all(target.startswith("runtime") for target in targets), (name, targets)
