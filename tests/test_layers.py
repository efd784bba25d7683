"""The architecture's contract, read from the source: layers tui -> db -> engine (never
back), the engine imports no front end, SQL or terminal library, db none of the interface,
and no module cycles, lazy imports inside functions included. Checked statically from the
source, as import-linter would (it is not among the packages this project installs)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "db", "tui")
LAYER = {"engine": 0, "db": 1, "tui": 2}
ENGINE_FORBIDDEN = ("textual", "typer", "rich", "sqlite_utils", "sqlite3")
DB_FORBIDDEN = ("textual", "typer", "rich")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path):
    """(imported module, at module level?) for every import of ``path``, relative ones made
    absolute within the project."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    top = {id(n) for n in tree.body} | {id(n) for stmt in tree.body if isinstance(stmt, ast.If)
                                          for n in stmt.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _local(alias.name), id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = _local(node.module or "")
            names = [f"{target}.{a.name}" for a in node.names]
            yield target, id(node) in top
            for name in names:  # "from . import render": the submodule itself
                if (ROOT / Path(*name.split("."))).with_suffix(".py").is_file() or \
                        (ROOT / Path(*name.split("."))).is_dir():
                    yield name, id(node) in top


def _local(name: str) -> str:
    return name[len("saferlab."):] if name.startswith("saferlab.") else name


def graph():
    edges: dict[str, set[tuple[str, bool]]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            edges[module_name(path)] = set(imports(path))
    return edges


def test_layers_point_one_way_and_the_engine_imports_no_front_end():
    broken = []
    for module, targets in graph().items():
        layer = LAYER[module.split(".")[0]]
        for target, _ in targets:
            head = target.split(".")[0]
            if head in LAYER and LAYER[head] > layer:
                broken.append(f"{module} -> {target}")
            if layer == 0 and head in ENGINE_FORBIDDEN:
                broken.append(f"{module} -> {target}")
            if layer == 1 and head in DB_FORBIDDEN:
                broken.append(f"{module} -> {target}")
    assert not broken, broken


def test_no_import_cycles():
    edges = graph()
    known = set(edges)

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    adjacency = {m: {t for target, _ in ts if (t := resolve(target)) and t != m}
                 for m, ts in edges.items()}
    # A package's __init__ re-exporting its own submodules is not a cycle.
    for module, targets in adjacency.items():
        targets -= {t for t in targets if t.startswith(module + ".")}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in adjacency.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(adjacency):
        if module not in state:
            visit(module, [])
    assert not cycles, cycles
