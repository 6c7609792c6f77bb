"""No import cycle among headaudit's modules (issue 15 item 6).

Every module under ``headaudit/`` is parsed with :mod:`ast`; every ``import`` and
``from ... import`` anywhere in it (module level, inside functions, under
``if TYPE_CHECKING:``) that names a headaudit module is an edge, relative imports
resolved. ``from M import x`` is an edge to ``M.x`` when that is a module, else to ``M``.
A function-level import does not dodge a cycle here: the modules still depend on each other.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import headaudit

ROOT = Path(headaudit.__file__).parent


def _modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package)."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """Module -> {imported headaudit module: line of the first such import}."""
    modules = _modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in modules else module)
            for target in targets:
                if target in modules and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)) + f" -> {cycle[-1]}"


def test_no_import_cycle_among_headaudit_modules() -> None:
    graph = import_graph()
    assert "headaudit.render.markdown" in graph
    assert "headaudit.astscan._analysis" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + _describe(graph, cycle or [])


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "headaudit" / "render"
    pkg.mkdir(parents=True)
    (tmp_path / "headaudit" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def x():\n    from headaudit.render import a\n    return a\n")
    graph = import_graph(tmp_path / "headaudit")
    assert graph["headaudit.render.a"] == {"headaudit.render.b": 1}
    assert graph["headaudit.render.b"] == {"headaudit.render.a": 2}
    assert find_cycle(graph) == ["headaudit.render.a", "headaudit.render.b", "headaudit.render.a"]
