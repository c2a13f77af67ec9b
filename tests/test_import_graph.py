"""The package's import graph has no circles, and the render side imports no compute.

Every `import` statement counts, at module level and inside functions, so an import moved into a
function to hide a circle still shows up here. Modules are the files under `co_ssl_train/`,
`coanalysis/` and `benchmarks/`; an import of a package counts as an edge to its `__init__`.

The coanalysis rooms (subpackages) import only the rooms below them: `ROOMS` is that table, and
each room's `__init__` docstring says the same in words.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("co_ssl_train", "coanalysis", "benchmarks")

# Each coanalysis room and the rooms it may import (its own always). `models` reaches co_ssl_train
# (through the trainer door only, tested below). `models.trainer_io` is the torch-free floor every
# room stands on (`UserError`, atomic writes), the render side and `results` included.
ROOMS = {
    "results": {"models.trainer_io"},
    "models": {"results"},
    "features": {"results", "models"},
    "data": {"results", "models", "features"},
    "probes": {"results", "models", "features"},
    "distributed": {"results", "models", "features", "probes"},
    "analyses": {"results", "models", "features", "data", "probes", "distributed"},
    "figures": {"results", "models.trainer_io"},
    "report": {"results", "figures", "models.trainer_io"},
    "run": {"results", "models", "features", "data", "probes", "distributed", "analyses", "report"},
    "commands": {"results", "models", "features", "data", "probes", "distributed", "analyses", "run",
                 "report", "figures"},
}
ROOT_MODULES = {"coanalysis", "coanalysis.__main__", "coanalysis.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path], *, top_level_only: bool = False) -> set[str]:
    """The package modules `path` imports (`from a.b import c` counts a.b.c when that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_circles():
    graph = _graph()
    # Parent packages import their children (a registry in __init__); a child importing its own
    # package's __init__ back is the circle we forbid, so nothing is exempted here.
    assert _cycles(graph) == []


def test_trainer_never_imports_coanalysis():
    graph = _graph()
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("co_ssl_train") for t in ts
                 if t.startswith("coanalysis"))
    assert bad == []


def test_coanalysis_reaches_the_trainer_through_its_door_only():
    graph = _graph()
    door = {"coanalysis.models.trainer", "coanalysis.models.trainer_io"}
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if m.startswith("coanalysis") and m not in door
                 for t in ts if t.startswith("co_ssl_train"))
    assert bad == []


@pytest.mark.parametrize("side", ["coanalysis.figures", "coanalysis.report"])
def test_render_side_imports_no_compute_at_module_level(side):
    modules = _modules()
    bad = []
    for name, path in modules.items():
        if name == side or name.startswith(side + "."):
            tree = ast.parse(path.read_text())
            for node in tree.body:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                bad += [f"{name}: {n}" for n in names if n.split(".")[0] == "torch"]
            bad += [f"{name}: {t}" for t in _imports(path, modules, top_level_only=True)
                    if t.startswith("coanalysis.analyses")]
    assert bad == []


def _imports_torch(path: Path) -> bool:
    """Whether `path` imports torch at module level (imports inside functions or `if` blocks run later, if ever)."""
    for node in ast.parse(path.read_text()).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if any(n.split(".")[0] == "torch" for n in names):
            return True
    return False


def _loaded_with(name: str, modules: dict[str, Path]) -> list[str]:
    """`name` and its parent packages: importing a module runs every `__init__` above it."""
    parts = name.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in modules]


def test_planted_torch_import_is_found(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from __future__ import annotations\nimport torch.nn as nn\n\ndef f():\n    import os\n")
    assert _imports_torch(module)
    module.write_text("def f():\n    import torch\n")
    assert not _imports_torch(module)


@pytest.mark.parametrize("side", ["coanalysis.figures", "coanalysis.report"])
def test_render_side_never_reaches_torch_through_module_level_imports(side):
    """Following module-level imports from every render-side module (parent packages included)
    reaches neither `coanalysis.analyses` nor any package module that imports torch."""
    modules = _modules()
    start = [m for m in modules if m == side or m.startswith(side + ".")]
    reached: dict[str, str] = {}  # module -> the module that imported it
    queue = [(m, m) for s in start for m in _loaded_with(s, modules)]
    while queue:
        name, parent = queue.pop()
        if name in reached:
            continue
        reached[name] = parent
        for target in _imports(modules[name], modules, top_level_only=True):
            queue += [(m, name) for m in _loaded_with(target, modules) if m not in reached]
    bad = sorted(f"{m} (imported by {reached[m]})" for m in reached
                 if m.startswith("coanalysis.analyses") or _imports_torch(modules[m]))
    assert bad == []


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "coanalysis" and len(parts) > 2 or (len(parts) == 2 and
                                                                        parts[0] == "coanalysis" and parts[1] in ROOMS) else None


def _room_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, ts in graph.items():
        room = _room(m)
        if room is None:
            continue
        allowed = ROOMS[room]
        for t in ts:
            target = _room(t)
            if t.startswith("coanalysis") and target is None:
                bad.append(f"{m} -> {t} (the package root)")
            elif target is not None and target != room and target not in allowed and \
                    not any(t == f"coanalysis.{a}" or t.startswith(f"coanalysis.{a}.") for a in allowed):
                bad.append(f"{m} -> {t}")
    return sorted(bad)


def test_room_rule_finds_a_planted_upward_import():
    graph = {"coanalysis.results.stats": {"coanalysis.analyses.noise"}, "coanalysis.report.data":
             {"coanalysis.models.loading", "coanalysis.models.trainer_io"}, "coanalysis.features.x": {"coanalysis"}}
    assert _room_violations(graph) == ["coanalysis.features.x -> coanalysis (the package root)",
                                       "coanalysis.report.data -> coanalysis.models.loading",
                                       "coanalysis.results.stats -> coanalysis.analyses.noise"]


def test_every_room_imports_only_the_rooms_below_it():
    assert _room_violations(_graph()) == []


def test_the_root_holds_only_init_main_and_cli_and_every_room_is_in_the_table():
    modules = _modules()
    root = {m for m, path in modules.items() if path.parent == ROOT / "coanalysis"}
    assert root == ROOT_MODULES
    rooms = {p.name for p in (ROOT / "coanalysis").iterdir() if (p / "__init__.py").exists()}
    assert rooms == set(ROOMS)


def test_every_room_says_what_it_holds_and_may_import():
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((ROOT / "coanalysis" / room / "__init__.py").read_text())) or ""
        assert "May import" in doc, room
