"""The package's layering, read from the source: no import cycles between modules, and
imports only go downwards between folders (docs/architecture.md).

Imports inside functions count; imports under ``if TYPE_CHECKING:`` do not.
``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "xsys"

#: Layer of each top-level part of the package; a module may import its own layer and the
#: ones below (lower numbers), subject to ``SERVICE_EDGES`` between services.
LAYERS: dict[str, int] = {
    # 0 ground
    "xsys": 0, "protocol": 0, "config": 0, "units": 0, "bounds": 0, "namedpipe": 0,
    # 1 services and the client
    "host": 1, "fs": 1, "watch": 1, "alerts": 1, "monitor": 1, "client": 1, "metrics": 1,
    "checks": 1, "live": 1, "push": 1, "proc": 1,
    # 2 framework
    "server": 2,
    # 3 front doors
    "handlers": 3, "http": 3,
    # 4 top
    "daemon": 4, "cli": 4, "docs": 4, "__main__": 4,
}
SERVICES = {"host", "fs", "watch", "alerts", "monitor", "client", "metrics", "checks",
            "live", "push", "proc"}
#: The only imports allowed from one service to another.
SERVICE_EDGES = {("watch", "fs"), ("monitor", "alerts"), ("monitor", "host"),
                 ("live", "host"), ("push", "live"), ("push", "host"), ("proc", "fs")}
#: Front doors never import each other.
FRONT_DOORS = {"handlers", "http"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in mods else base)
            for target in targets:
                found = owner(target)
                if found is not None and found != mod and found.startswith("xsys"):
                    edges[mod].add(found)
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "xsys"
    return parts[1]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[-1] == "config":
        return 0  # a part's own config section is ground (xsys.config assembles them)
    return LAYERS.get(_part(module))


def _cycles(edges: dict[str, set[str]], nodes: list[str]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


MODS = _modules()
EDGES = _edges(MODS)


def test_the_analysis_sees_the_package() -> None:
    assert "xsys.protocol" in MODS and "xsys.fs.sandbox" in MODS
    assert "xsys.protocol" in EDGES["xsys.fs.sandbox"]


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(EDGES, sorted(MODS)) == []


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODS if _layer(m) is None] == []


def test_imports_only_go_downwards() -> None:
    bad: list[str] = []
    for mod, targets in sorted(EDGES.items()):
        src_layer, src = _layer(mod), _part(mod)
        for target in sorted(targets):
            dst_layer, dst = _layer(target), _part(target)
            if src_layer is None or dst_layer is None or src == dst:
                continue
            if dst_layer > src_layer:
                bad.append(f"{mod} -> {target} (upwards: {src} is below {dst})")
            elif (src in SERVICES and dst in SERVICES and dst_layer == src_layer
                  and (src, dst) not in SERVICE_EDGES):
                bad.append(f"{mod} -> {target} (service to service)")
            elif src in FRONT_DOORS and dst in FRONT_DOORS:
                bad.append(f"{mod} -> {target} (front door to front door)")
    assert bad == []


@pytest.mark.parametrize("module", ["xsys.client", "xsys.protocol"])
def test_the_client_side_stays_light(module: str) -> None:
    """What a client imports reaches only the protocol (msgpack and the stdlib), and on
    Windows ``namedpipe`` (stdlib and the protocol; pywin32 loaded only when used)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(EDGES.get(m, ()))
    assert {_part(m) for m in seen} <= {"client", "protocol", "xsys", "namedpipe"}
    assert EDGES.get("xsys.namedpipe", set()) <= {"xsys.protocol"}
