"""The import contract of app/ (DESIGN 2, docs/architecture.md): one-way layers, no cycles.

    foundation  config, db, errors, logging, ids, migrate, compute
        ^
    runtime     runtime/, devqstash/          never imports a domain or a workflow
        ^
    domains     documents/ cases/ ehr/ ...    never import app.workflows, nor another domain's
        ^                                     models (only through that domain's service)
    workflows   workflows/<pipeline>/         the pipelines: workflow + stages
        ^
    wiring      main, services, cli, serving, models, demo/

An import may go down or stay in its layer, never up. Every import counts, also inside functions
and `TYPE_CHECKING` blocks. A package (or top-level module) not named below is a domain.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

LAYERS = {
    "foundation": {"config", "db", "errors", "logging", "ids", "migrate", "compute", "__init__"},
    "runtime": {"runtime", "devqstash"},
    "workflows": {"workflows"},
    "wiring": {"main", "services", "cli", "serving", "models", "demo"},
}
ORDER = ["foundation", "runtime", "domains", "workflows", "wiring"]

Graph = dict[str, set[str]]


def module_name(path: Path, app: Path) -> str:
    parts = path.relative_to(app.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, app: Path, known: set[str]) -> Iterator[str]:
    """The `app.*` modules `path` imports (`from pkg import mod` counts as `pkg.mod`)."""
    module = module_name(path, app)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base


def module_graph(app: Path = APP) -> Graph:
    files = {module_name(path, app): path for path in app.rglob("*.py")}
    graph: Graph = defaultdict(set)
    for module, path in files.items():
        for target in imported_modules(path, app, set(files)):
            if target.startswith("app.") and target != module:
                graph[module].add(target)
    return graph


def unit(module: str) -> str:
    """`app.documents.service` -> `documents`; `app.main` -> `main`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(name: str) -> str:
    return next((layer for layer, units in LAYERS.items() if name in units), "domains")


def package_graph(modules: Graph) -> Graph:
    graph: Graph = defaultdict(set)
    for source, targets in modules.items():
        graph[unit(source)] |= {unit(t) for t in targets} - {unit(source)}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(modules: Graph) -> list[str]:
    wrong = []
    for source, targets in modules.items():
        for target in targets:
            below = ORDER.index(layer(unit(target))) <= ORDER.index(layer(unit(source)))
            if not below:
                wrong.append(f"{source} ({layer(unit(source))}) -> {target} ({layer(unit(target))})")
    return sorted(wrong)


def foreign_models(modules: Graph) -> list[str]:
    """Imports by a domain of another domain's `models` module."""
    return sorted(
        f"{source} -> {target}"
        for source, targets in modules.items()
        for target in targets
        if layer(unit(source)) == "domains"
        and layer(unit(target)) == "domains"
        and target.endswith(".models")
        and unit(source) != unit(target)
    )


def module_cycles(modules: Graph, package: str) -> list[list[str]]:
    """Cycles among the modules of one package (its `__init__` included)."""

    def inside(module: str) -> bool:
        return module == package or module.startswith(package + ".")

    return cycles({source: set(filter(inside, targets)) for source, targets in modules.items() if inside(source)})


def test_no_import_goes_up_a_layer() -> None:
    assert upward_imports(module_graph()) == []


def test_no_package_level_import_cycle() -> None:
    assert cycles(package_graph(module_graph())) == []


def test_domains_reach_other_domains_models_only_through_their_services() -> None:
    assert foreign_models(module_graph()) == []


@pytest.mark.parametrize(
    "package",
    [
        *("app.workflows", "app.documents", "app.cases", "app.ehr", "app.extraction"),
        *("app.matching", "app.storage", "app.auth", "app.procedures", "app.patients", "app.demo"),
        "app.devqstash",
    ],
)
def test_no_module_level_import_cycle_in(package: str) -> None:
    assert module_cycles(module_graph(), package) == []


def test_no_module_level_import_cycle_in_the_runtime() -> None:
    assert module_cycles(module_graph(), "app.runtime") == []


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    """The checker itself: a domain importing a workflow is both upward and a cycle."""
    app = tmp_path / "app"
    for name, source in {
        "__init__.py": "",
        "workflows/__init__.py": "from app.cases import service\n",
        "cases/__init__.py": "",
        "cases/service.py": "def f():\n    from app.workflows import deps\n",
        "workflows/deps.py": "",
    }.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(source)
    modules = module_graph(app)
    assert upward_imports(modules) == ["app.cases.service (domains) -> app.workflows.deps (workflows)"]
    assert cycles(package_graph(modules)) == [["cases", "workflows"]]
