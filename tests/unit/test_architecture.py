"""The package's import graph: no circles, no upward imports (docs/architecture.md, "Layers").

Every module under src/tuneforge is parsed with `ast` (nothing is imported). An edge is any import of a tuneforge
module, wherever it is written: at module level or inside a function, `import x.y` or `from x import y` (a name
that is itself a module counts as that module, otherwise as the module it is taken from), relative imports
resolved against the importing package, and `importlib.import_module("tuneforge...")` with a literal name. The
parent packages Python runs on the way (`tuneforge/__init__.py` for every import) are not edges: they are not
something the importing module chose.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "tuneforge"

# Left to right; a unit (a folder, or a module directly under tuneforge/) imports only its own layer or those to
# its left. Inside a layer imports are free, as long as they make no cycle.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "logs", "hardware", "resources"),  # leaves: standard library only (resources/ is data, read by name)
    ("config",),
    ("data",),
    ("model",),
    ("generate",),  # decoding (sampling, stop rules, streaming, the batched engine): used by evaluate, serve, recipes
    ("train",),
    ("evaluate",),
    ("export",),
    ("serve",),
    ("recipes",),
    ("cli", "cli_trust", "cli_generate", "cli_tune", "client", "__init__", "__main__"),  # the entry points
]

# Imports the layer order alone would allow but the rule forbids.
FORBIDDEN: dict[tuple[str, str], str] = {
    ("evaluate", "train"): "evaluation runs without the training loop (serve, export and the evaluate verb use it)",
    ("export", "train"): "an exported folder is built and checked without the training loop",
    ("serve", "train"): "serving loads a model folder; it never trains",
}

# (importer, imported) module pairs allowed to break the rule; each needs its reason. None today.
EXEMPT: dict[tuple[str, str], str] = {}

NOT_IMPORTED_FROM_SRC = ("benchmarks", "tests")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / ROOT).rglob("*.py"))}


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _imported_names(name: str) -> list[str]:
    """Every absolute module name `name` imports (any package, not only tuneforge)."""
    tree = ast.parse(_modules()[name].read_text(encoding="utf-8"), filename=str(_modules()[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                out.append(sub if sub in _modules() else source)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                   or isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))):
            out.append(node.args[0].value)
    return out


def _nearest_module(name: str) -> str | None:
    while name:
        if name in _modules():
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def _graph() -> dict[str, frozenset[str]]:
    graph = {}
    for name in _modules():
        targets = {_nearest_module(t) for t in _imported_names(name) if t == ROOT or t.startswith(ROOT + ".")}
        graph[name] = frozenset(t for t in targets if t is not None and t != name)
    return graph


def _unit(module: str) -> str:
    """The folder or top-level module a module belongs to: tuneforge.serve.app → serve, tuneforge → __init__."""
    parts = module.split(".")[1:]
    return parts[0] if parts else "__init__"


def _layer(unit: str) -> int:
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise KeyError(unit)


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan, then a path inside it)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

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
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for component in components:
        start = min(component)
        # Breadth-first from start back to start, inside the component: the shortest cycle through it.
        previous, frontier, end = {start: None}, [start], None
        while frontier and end is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & component):
                    if w == start:
                        end = v
                        break
                    if w not in previous:
                        previous[w] = v
                        nxt.append(w)
                if end is not None:
                    break
            frontier = nxt
        path, v = [], end
        while v is not None:
            path.append(v)
            v = previous[v]
        cycles.append(path[::-1] + [start])
    return sorted(cycles)


def test_the_parser_sees_the_imports():
    # Guards the other tests against passing on an empty graph.
    graph = _graph()
    assert len(graph) > 50
    assert "tuneforge.cli_trust" in graph["tuneforge.cli"]  # module level
    assert "tuneforge.recipes.finetune" in graph["tuneforge.cli"]  # inside a function
    assert "tuneforge.client" in graph["tuneforge"]  # importlib.import_module("tuneforge.client")
    assert "tuneforge.serve.schemas" in graph["tuneforge.serve.app"]  # from tuneforge.serve import schemas
    assert sum(len(v) for v in graph.values()) > 150


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _modules()}
    placed = {u for layer in LAYERS for u in layer}
    assert units - placed == set(), f"place these in LAYERS: {sorted(units - placed)}"
    assert sum(len(layer) for layer in LAYERS) == len(placed), "a unit is in two layers"
    assert all(a in placed and b in placed for a, b in FORBIDDEN)


def test_no_import_cycles():
    graph = _graph()
    mutual = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph[b]})
    cycles = _cycles(graph)
    longer = [c for c in cycles if len(c) > 3]
    assert not mutual and not cycles, (
        f"{len(mutual)} mutual import pairs, {len(cycles)} import cycles ({len(longer)} through 3+ modules)\n"
        + "".join(f"  mutual: {a} <-> {b}\n" for a, b in mutual)
        + "".join(f"  cycle: {' -> '.join(c)}\n" for c in cycles))


def test_no_upward_imports():
    graph = _graph()
    bad = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            ua, ub = _unit(a), _unit(b)
            if (a, b) in EXEMPT:
                continue
            if _layer(ub) > _layer(ua):
                bad.append(f"  {a} -> {b}: {ub} is above {ua}")
            elif (ua, ub) in FORBIDDEN:
                bad.append(f"  {a} -> {b}: {ua} must not import {ub} ({FORBIDDEN[ua, ub]})")
    assert not bad, f"{len(bad)} upward imports\n" + "\n".join(bad)


def test_exemptions_are_still_needed():
    graph = _graph()
    stale = [pair for pair in EXEMPT if pair[1] not in graph.get(pair[0], ())]
    assert not stale, f"remove these from EXEMPT, the import is gone: {stale}"


def test_src_imports_neither_benchmarks_nor_tests():
    bad = [f"  {m} imports {t}" for m in sorted(_modules()) for t in _imported_names(m)
           if t.split(".")[0] in NOT_IMPORTED_FROM_SRC]
    assert not bad, f"{len(bad)} imports of benchmarks/tests from src/\n" + "\n".join(bad)
