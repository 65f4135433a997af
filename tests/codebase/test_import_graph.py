"""The modules of ``sporthub/`` import each other without a circle.

A circle (``a`` imports ``b``, which imports ``a``, perhaps only for a type or inside a function)
ties two modules into one: neither can be read, tested or changed alone, and the order of imports
starts to matter. Every import counts here, also one inside a function or under
``TYPE_CHECKING``: each is a dependency a reader must follow.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sporthub"
COACH = PACKAGE.parent / "extensions" / "sporthub-coach" / "sporthub_coach"
# what the Coach, in people's servers, takes from sporthub: rules that must not differ between
# the hub's pages and the server's (docs/architecture.md), none of the hub's own machinery
COACH_TAKES = {"sporthub.i18n"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the sporthub modules it imports (``from pkg import sub`` counts ``pkg.sub``)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                targets.add(source)
                targets.update(f"{source}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    assert "sporthub.settings" in graph["sporthub.hub.config"]
    assert "sporthub.gateway.scheduler" in graph["sporthub.gateway.app"]


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_sporthub_has_no_import_circle():
    assert cycles(import_graph()) == []


def test_the_gateway_never_imports_the_hub():
    """The gateway is a process of its own that talks to the hub over HTTP only."""
    graph = import_graph()
    reached = {name: {t for t in targets if t.startswith("sporthub.hub")}
               for name, targets in graph.items() if name.startswith("sporthub.gateway")}
    assert {name: targets for name, targets in reached.items() if targets} == {}


def test_the_coach_takes_from_sporthub_only_rules_that_import_nothing_else_of_it():
    taken = set()
    for path in COACH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            taken.update(n for n in names if n == "sporthub" or n.startswith("sporthub."))
    assert taken == COACH_TAKES
    graph = import_graph()
    assert all(graph[name] == set() for name in COACH_TAKES), {n: graph[n] for n in COACH_TAKES}
