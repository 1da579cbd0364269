"""The package's layering rules, read from the import statements of every module (lazy imports too).

Wings are the sub-packages and top-level modules of ``vlbench``; a wing may import only wings below it.
Imports under ``if TYPE_CHECKING:`` are annotations only (never executed) and are not counted.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import vlbench

PACKAGE = Path(vlbench.__file__).parent


def _wing(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def _type_checking_only(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return ids


def _imported_wings(path: Path) -> set[str]:
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "vlbench":  # from vlbench import paths
                modules = [f"vlbench.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {module.split(".")[1] for module in modules if module.startswith("vlbench.")}
    return found


def wing_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        wing = _wing(path)
        graph[wing] |= _imported_wings(path) - {wing}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_cycle_between_wings():
    graph = wing_graph()
    assert {"spec", "kinds", "models", "results", "run", "encoding", "datasets", "cli", "api"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle between wings: {' -> '.join(_cycle(graph) or [])}"


def test_the_library_face_is_the_top_wing():
    """vlbench.api is imported by nothing but the package itself (lazily: ``vlbench.evaluate``)."""
    assert {wing for wing, imported in wing_graph().items() if "api" in imported} == {"__init__"}


def test_results_import_nothing_from_models():
    assert "models" not in wing_graph()["results"]


def test_task_files_and_the_catalog_import_no_kind_model_or_dataset_code():
    assert wing_graph()["spec"] & {"kinds", "models", "datasets", "encoding", "results", "run", "cli", "console"} == set()


def test_the_bottom_layer_imports_no_wing():
    graph = wing_graph()
    bottom = {"errors", "paths", "registry", "registries", "stamps", "hub_access", "metrics", "bootstrap", "signals", "distributed"}
    for module in bottom:
        assert graph[module] <= bottom, f"{module} imports {sorted(graph[module] - bottom)}"
