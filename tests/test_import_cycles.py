"""No import circles among reclm_dagster's modules, counting lazy (function-level) imports too.

A module that imports ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__`` (unless it lives
inside that package, which is then already being imported); a package's ``__init__`` that
imports its submodules is normal. Everything else that leads back to where it started is a
circle: it works only while the imports stay in a lucky order, or inside functions.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reclm_dagster"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                prefix = ".".join(parts[:i])
                inside = name == prefix or name.startswith(prefix + ".")
                if prefix in modules and prefix != name and (i == len(parts) or not inside):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_detector_finds_a_lazy_circle_through_a_package(tmp_path):
    """store -> pkg (its __init__ imports pkg.cov) -> store, the second import inside a function."""
    root = tmp_path / "reclm_dagster"
    (root / "pkg").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "store.py").write_text("def read():\n    from reclm_dagster.pkg import Graph\n")
    (root / "pkg" / "__init__.py").write_text("from reclm_dagster.pkg.cov import f\nfrom reclm_dagster.pkg.graph import Graph\n")
    (root / "pkg" / "graph.py").write_text("class Graph: ...\n")
    (root / "pkg" / "cov.py").write_text("from reclm_dagster.pkg.graph import Graph\n\ndef f():\n    from reclm_dagster import store\n")
    (root / "ok.py").write_text("from reclm_dagster.pkg.graph import Graph\n")
    graph = import_graph(root)
    assert cycles(graph) == [["reclm_dagster.pkg", "reclm_dagster.pkg.cov", "reclm_dagster.store"]]
    # a submodule importing a sibling is no circle with its own package
    assert "reclm_dagster.pkg" not in graph["reclm_dagster.pkg.cov"]
