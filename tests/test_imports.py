"""The package's import structure, read from the source (ast), not by importing it: every `import`
and `from ... import` of a module, at the top or inside a function, relative ones resolved.

- No loop: no chain of srcnn_np modules that imports its own start (a loop means two modules
  that cannot be understood, or changed, apart).
- No upward arrow out of a room: io/, cpu/ and gpu/ import their own modules and the foundation
  below them only, never the network, the science, the CLI, the evaluation, the viewer, the
  out-of-core module or each other; the foundation imports only itself.

A failure lists every loop (as a path) and every offending edge (module -> module).
"""
import ast
from pathlib import Path

import srcnn_np

PACKAGE_DIR = Path(srcnn_np.__file__).parent

# What each part of the package may import besides its own modules. A module is in the first
# entry whose name prefixes it; modules in no entry (model, science, cli, eval, ...) may import
# anything, as long as it makes no loop.
FOUNDATION = ("srcnn_np.config", "srcnn_np.errors", "srcnn_np.options",  # no package import
              "srcnn_np.layers", "srcnn_np.geometry", "srcnn_np.bicubic_taps")
MAY_IMPORT = {
    # part of the package         the srcnn_np modules it may import (and its own)
    "srcnn_np.io": ("srcnn_np.config", "srcnn_np.errors", "srcnn_np.options"),
    "srcnn_np.cpu": FOUNDATION,
    "srcnn_np.gpu": FOUNDATION,
    **{name: FOUNDATION for name in FOUNDATION},
}


def module_files() -> dict:
    """{'srcnn_np.io.png': Path, 'srcnn_np.io': Path(.../io/__init__.py), ...} of every module."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(module: str, path: Path):
    """Absolute dotted names that `module` imports anywhere in its file; for `from a import b`
    both a.b (when b is a module) and a are candidates, so this yields a.b (resolved later)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            yield from (f"{source}.{alias.name}" for alias in node.names)


def import_graph() -> dict:
    """{module: set of srcnn_np modules it imports}, each name resolved to the longest module
    it starts with (`from .geometry import HALO` -> srcnn_np.geometry)."""
    modules = module_files()

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in modules.items():
        targets = {resolve(name) for name in imported_names(module, path) if name.split(".")[0] == "srcnn_np"}
        graph[module] = targets - {module, ""}
    return graph


def import_loops(graph: dict) -> list:
    """One loop [a, b, ..., a] per strongly connected group of modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
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
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [loop_through(graph, group) for group in groups]


def loop_through(graph: dict, group: set) -> list:
    """A shortest path from the group's first module back to itself inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    following.append(w)
        frontier = following
    raise AssertionError(f"no loop through {start} in {sorted(group)}")


def part_of(module: str) -> str | None:
    """The MAY_IMPORT entry that rules `module`, or None."""
    return next((part for part in MAY_IMPORT if module == part or module.startswith(part + ".")), None)


def upward_arrows(graph: dict) -> list:
    """'a -> b' for each import the MAY_IMPORT table forbids."""
    bad = []
    for module in sorted(graph):
        part = part_of(module)
        if part is None:
            continue
        allowed = (part, *MAY_IMPORT[part])
        for target in sorted(graph[module]):
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                bad.append(f"{module} -> {target}")
    return bad


def test_the_walker_sees_relative_function_level_and_package_imports():
    """The graph is only as good as the walker: known edges of each kind must be in it."""
    graph = import_graph()
    assert "srcnn_np.layers" in graph["srcnn_np.geometry"], graph["srcnn_np.geometry"]  # from .layers import
    assert "srcnn_np.bicubic_taps" in graph["srcnn_np.cpu.kernels"], graph["srcnn_np.cpu.kernels"]  # from .. import
    assert "srcnn_np.gpu.kernels" in graph["srcnn_np.gpu.runner"], graph["srcnn_np.gpu.runner"]  # inside a function
    assert "srcnn_np.eval.evaluate" in graph["srcnn_np.cli"], graph["srcnn_np.cli"]  # from .eval import evaluate


def test_the_checks_catch_a_loop_and_an_upward_arrow():
    """On a made-up graph: the loop a -> b -> c -> a and io's arrow to model are reported."""
    graph = {"srcnn_np.a": {"srcnn_np.b"}, "srcnn_np.b": {"srcnn_np.c"}, "srcnn_np.c": {"srcnn_np.a"},
             "srcnn_np.io.png": {"srcnn_np.config", "srcnn_np.io.atomic", "srcnn_np.model"},
             "srcnn_np.io.atomic": set(), "srcnn_np.config": set(), "srcnn_np.model": set()}
    assert import_loops(graph) == [["srcnn_np.a", "srcnn_np.b", "srcnn_np.c", "srcnn_np.a"]]
    assert upward_arrows(graph) == ["srcnn_np.io.png -> srcnn_np.model"]


def test_no_import_loop():
    loops = import_loops(import_graph())
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_no_upward_arrow_out_of_the_rooms():
    bad = upward_arrows(import_graph())
    assert not bad, "imports the rooms may not make (see MAY_IMPORT):\n" + "\n".join(bad)
