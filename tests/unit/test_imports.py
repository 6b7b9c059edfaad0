"""The import graph of `app/`, read from the source (AST, nothing imported): no cycles between modules or
between packages, every package imports only what docs/ARCHITECTURE.md's "May import" column allows, and
the gateway never imports the sandbox's own dependencies (the `sandbox` extra) unless it starts one.

Every `import` counts, wherever it is: at the top, inside a function (a lazy import is still a
dependency) and under `if TYPE_CHECKING:` (a type-only import is one too: the layers hold for types as
well). Importing `app.x.y` also runs `app/__init__.py` and `app/x/__init__.py`, so a package `__init__`
that imports its own modules is a cycle with them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"

#: Package-level cycles tolerated for now, each naming the imports that close it (none: the test fails on
#: any cycle; an entry that no longer closes a cycle fails too, so the list cannot go stale).
KNOWN_CYCLES: dict[str, set[tuple[str, str]]] = {}
#: Rows of the packages table not checked against the imports (none).
ROWS_NOT_YET_CHECKED: set[str] = set()
#: Third-party modules of the `sandbox` extra (pyproject.toml): only the sandbox may import them.
SANDBOX_EXTRA = {"numpy"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(APP.rglob("*.py"))}


@dataclass
class Imports:
    #: The app modules it names (each `from x import y` resolved to the module `x.y` when there is one).
    app: set[str] = field(default_factory=set)
    #: Their packages, whose `__init__` runs first.
    packages: set[str] = field(default_factory=set)
    #: The app modules it imports when it is loaded (not in a function, not only for type checking).
    app_at_load: set[str] = field(default_factory=set)
    #: Top-level names of what it imports from outside `app`, at module level (not in a function).
    third_party_at_load: set[str] = field(default_factory=set)


def _ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


def _known(name: str) -> str | None:
    """The app module `name` is, or is in (`app.x.Thing` → `app.x`)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, package: str, at_load: bool) -> Iterator[tuple[str, bool]]:
    """(imported name, imported when the module loads) for every import under `node`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from ((alias.name, at_load) for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in child.names:
                full = f"{base}.{alias.name}"
                yield (full if full in modules() else base), at_load
        else:
            lazy = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            type_only = isinstance(child, ast.If) and _is_type_checking(child)
            yield from _imports(child, package, at_load and not lazy and not type_only)


@cache
def imports_of(name: str) -> Imports:
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = Imports()
    for imported, at_load in _imports(ast.parse(path.read_text(), str(path)), package, True):
        if imported == "app" or imported.startswith("app."):
            target = _known(imported)
            if target is not None and target != name:
                found.app.add(target)
                found.packages.update(p for p in _ancestors(target) if p != name)
                if at_load:
                    found.app_at_load.add(target)
        elif at_load:
            found.third_party_at_load.add(imported.split(".")[0])
    return found


def module_graph() -> dict[str, set[str]]:
    return {name: imports_of(name).app | imports_of(name).packages for name in modules()}


def unit(name: str) -> str:
    """The package (or top-level module) a module belongs to; each provider is one of its own."""
    parts = name.split(".")
    return ".".join(parts[:3] if parts[1:2] == ["providers"] and len(parts) > 2 else parts[:2])


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in modules():
        graph.setdefault(unit(name), set()).update(
            unit(target) for target in imports_of(name).app if unit(target) != unit(name)
        )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(graph: dict[str, set[str]], component: Iterable[str]) -> str:
    members = set(component)
    edges = sorted((a, b) for a in members for b in graph.get(a, ()) if b in members)
    return ", ".join(f"{a} → {b}" for a, b in edges)


def test_no_module_imports_itself_through_others() -> None:
    graph = module_graph()
    assert len(graph) > 50, "the AST walk found too few modules"
    found = cycles(graph)
    assert not found, "import cycles between modules:\n" + "\n".join(_describe(graph, c) for c in found)


def test_no_package_imports_itself_through_others() -> None:
    graph = package_graph()
    allowed = set().union(*KNOWN_CYCLES.values())
    without_known = {a: {b for b in targets if (a, b) not in allowed} for a, targets in graph.items()}
    found = cycles(without_known)
    assert not found, "import cycles between packages:\n" + "\n".join(
        _describe(without_known, c) for c in found
    )
    components = cycles(graph)
    for name, edges in KNOWN_CYCLES.items():
        closing = [
            (a, b) for a, b in edges if b in graph.get(a, ()) and any({a, b} <= set(c) for c in components)
        ]
        assert closing, f"KNOWN_CYCLES[{name!r}] closes no cycle any more: delete the entry"


def test_the_cycle_check_sees_cycles() -> None:
    """The checks above cannot pass by finding nothing: a package `__init__` re-exporting its modules (as
    the sandbox's did) and two modules importing each other are both cycles."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    graph = module_graph()
    graph["app.sandbox"] = {"app.sandbox.server"}  # `from app.sandbox.server import SandboxServer` there
    assert any({"app.sandbox", "app.sandbox.server"} <= set(c) for c in cycles(graph))


@dataclass(frozen=True)
class Row:
    unit: str
    allowed: frozenset[str] | None  # None: everything


def _unit_of_row(cell: str) -> str | None:
    path = cell.strip().strip("`").rstrip("/")
    if not path.startswith("app"):
        return None  # e.g. migrations/
    return path.removesuffix(".py").replace("/", ".")


def table_rows() -> list[Row]:
    text = ARCHITECTURE.read_text()
    section = text.split("## Packages", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name = _unit_of_row(cells[0])
        if name is None:
            continue
        may = cells[2]
        if may == "everything":
            rows.append(Row(name, None))
        else:
            names = re.findall(r"`([a-z_.]+)`", may)
            assert names or may == "—", f"unreadable May import cell for {name}: {may!r}"
            rows.append(Row(name, frozenset(f"app.{n}" for n in names)))
    return rows


def test_the_packages_table_covers_every_package() -> None:
    documented = {row.unit for row in table_rows()}
    units = {unit(name) for name in modules()} - {"app", "app.providers"}  # two docstring-only __init__s
    assert units - documented == set(), "packages missing from docs/ARCHITECTURE.md's table"
    assert documented - units == set(), "rows of docs/ARCHITECTURE.md's table for packages that are gone"


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: row.unit)
def test_each_package_imports_only_what_the_table_allows(row: Row) -> None:
    if row.allowed is None or row.unit in ROWS_NOT_YET_CHECKED:
        return
    allowed = row.allowed
    extra: set[str] = set()
    for name in modules():
        if unit(name) != row.unit:
            continue
        for target in imports_of(name).app:
            if unit(target) == row.unit or target in ("app", "app.providers"):
                continue
            if not any(target == a or target.startswith(f"{a}.") for a in allowed):
                extra.add(f"{name} → {target}")
    assert not extra, f"{row.unit} imports what its May import column does not list: {sorted(extra)}"


def test_only_the_sandbox_needs_the_sandbox_extra() -> None:
    """A gateway installed without `wan-gateway[sandbox]` loads: no module outside app/sandbox imports
    numpy, nor does any module the entry points load (the sandbox's settings and
    config among them); the emulator itself is imported only when a sandbox is started."""
    outside = {
        name
        for name in modules()
        if unit(name) != "app.sandbox" and imports_of(name).third_party_at_load & SANDBOX_EXTRA
    }
    assert outside == set()
    loaded: set[str] = set()
    pending = ["app.main", "app.cli", "app.workers.process", "app.workers.__main__"]
    while pending:
        name = pending.pop()
        if name not in loaded:
            loaded.add(name)
            pending += [m for target in imports_of(name).app_at_load for m in (target, *_ancestors(target))]
    assert {"app.config", "app.sandbox.settings", "app.sandbox.config", "app.sandbox.extra"} <= loaded
    assert {name for name in loaded if imports_of(name).third_party_at_load & SANDBOX_EXTRA} == set()
    assert "app.sandbox.server" not in loaded
