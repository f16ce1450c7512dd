"""The shape of the house, checked: no import cycle among Vigía's modules, the core free of
the web framework, Celery, Redis and SQL, no module over 600 lines, and the README's layout
section naming every module and package there is.

The import graph is read from the source (every `import` outside `if TYPE_CHECKING:`,
function-level ones included: an import deferred inside a function still ties the two
modules together), so the check needs nothing installed and imports nothing.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = SRC.parent
PACKAGE = SRC / "vigia"
MAX_LINES = 600

#: Outer layers: they may use the frameworks, and nothing in the core may import them.
OUTER = ("vigia.api", "vigia.cli", "vigia.executors.celery", "vigia.web", "vigia.workloads")
#: Third-party packages only the outer layers (and, for SQL, `vigia.store`) may import.
FRAMEWORKS = {"fastapi", "starlette", "uvicorn", "celery", "kombu"}
#: Redis: the Celery executor, and the Redis event bus in `vigia.events`.
REDIS_ALLOWED = ("vigia.executors.celery", "vigia.events")
SQL = {"sqlalchemy", "alembic", "psycopg"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, name: str) -> Iterator[str]:
    """Every module ``path`` imports, as written (absolute, relative ones resolved)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped.update(id(child) for statement in node.body for child in ast.walk(statement))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


@functools.cache
def graph() -> dict[str, set[str]]:
    """Vigía's modules and the Vigía modules each imports (a name imported from a package
    counts as its submodule when there is one, else as the package)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imports_of(path, name):
            if imported in known and imported != name:
                targets.add(imported)
        # `from vigia.x import y` names vigia.x and vigia.x.y: keep the submodule alone.
        targets -= {target for target in targets if any(other.startswith(target + ".") for other in targets)}
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_vigias_modules() -> None:
    edges = graph()
    # Packages re-export their modules: an edge into a package's own modules is no cycle.
    without_reexports = {
        name: {target for target in targets if not target.startswith(name + ".")} for name, targets in edges.items()
    }
    assert cycles(without_reexports) == []


def is_outer(name: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in OUTER)


def third_party(path: Path, name: str) -> set[str]:
    return {imported.split(".")[0] for imported in imports_of(path, name) if not imported.startswith("vigia")}


@pytest.mark.parametrize("name", [name for name in modules() if not is_outer(name)])
def test_the_core_imports_no_framework_and_sql_only_in_the_store(name: str) -> None:
    path = modules()[name]
    used = third_party(path, name)
    assert not used & FRAMEWORKS, f"{name} imports {sorted(used & FRAMEWORKS)}"
    if not name.startswith("vigia.store"):
        assert not used & SQL, f"{name} imports {sorted(used & SQL)}: only vigia.store speaks SQL"
    if not name.startswith(REDIS_ALLOWED):
        assert "redis" not in used, f"{name} imports redis"


@pytest.mark.parametrize("name", [name for name in modules() if not is_outer(name)])
def test_the_core_reaches_no_outer_layer(name: str) -> None:
    reached = {target for target in graph()[name] if is_outer(target)}
    if name == "vigia.wiring":  # the composition root builds the Celery executor, lazily
        reached -= {target for target in reached if target.startswith("vigia.executors.celery")}
    assert not reached, f"{name} imports {sorted(reached)}"


@pytest.mark.parametrize("name", list(modules()))
def test_no_module_is_over_600_lines(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def test_the_readme_layout_names_every_module() -> None:
    """The README's layout section lists each top-level module and package of `vigia`."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, "the README has no '## Layout' section"
    section = match.group(1)
    top = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    top |= {path.name + "/" for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    missing = sorted(name for name in top if not re.search(rf"(?<![\w/]){re.escape(name)}(?:\.py)?(?![\w])", section))
    assert not missing, f"the README's layout does not name {missing}"
    # The entries of the package itself: two spaces in, a name ending in .py or /.
    named = set(re.findall(r"^  ([a-z_]+(?:\.py|/))", section, re.M))
    stale = sorted(entry for entry in named if entry.removesuffix(".py") not in top and entry not in top)
    assert not stale, f"the README's layout names modules that do not exist: {stale}"
