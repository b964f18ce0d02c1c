"""The import graph of the project, read from its source (ast): no cycles between project
modules and no upward imports between the layers

    utils <- models <- representations, datasets, faces <- losses <- training <- inference <- evaluation
          <- serving

(entry points, bench/ and tests/ sit above all of them). Imports inside functions count too:
a lazy import is still a dependency."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

LAYERS = {"utils": 0, "models": 1, "faces": 2, "representations": 2, "datasets": 2, "losses": 3,
          "training": 4, "inference": 5, "evaluation": 6, "serving": 7}


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in LAYERS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods[".".join(parts)] = path
    return mods


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (resolved to the longest known name)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    return {m: imports_of(p, m, known) for m, p in mods.items()}


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module are cycles."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def test_the_graph_is_read():
    g = graph()
    assert "training.loop" in g and "training.objective" in g["training.loop"]
    assert "losses.registry" in g["training.objective"]


def test_no_import_cycles():
    cycles = strongly_connected(graph())
    assert not cycles, "import cycles between project modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_upward_imports():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if LAYERS[dep.split(".")[0]] > LAYERS[mod.split(".")[0]]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "upward imports: " + "; ".join(sorted(bad))


def test_the_checker_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
