"""The import graph of the project, read from its source (ast), against a table of allowed imports.

ALLOWED names, for each package, the project packages its modules may import (its own package is
always allowed); anything else fails, so the couplings the design forbids (inference importing
training, serving importing evaluation, a low layer importing an entry point) cannot creep in.
No package imports an entry-point script (the top-level ``*.py``: they sit above all packages,
with bench/, tools/ and tests/). There are no cycles between project modules.

Imports inside functions count too (a lazy import is still a dependency), and each one says why
it is not at the top, in a comment on its line or the line above: ``lazy`` / ``heavy`` (it pulls
in torch, cv2 ... only when that function runs), ``cycle`` (the other module imports this one)
or ``optional`` (a dependency that may be missing). Otherwise it belongs in the module's header,
where a reader sees what the module depends on. A call of ``importlib.import_module`` /
``__import__`` / ``runpy`` in a package counts as a function-level import (it needs the same
comment; with a constant name it is checked against the table).

To add a package: give it a row here (what it may import) and add it to the rows that may
import it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "media": {"utils"},                                   # pictures and clips in and out
    "models": {"utils"},
    "faces": {"utils", "media"},
    "representations": {"utils", "models"},
    "datasets": {"utils", "media", "faces"},              # training data only
    "losses": {"utils", "models", "faces", "representations", "datasets"},
    "training": {"utils", "media", "models", "faces", "representations", "datasets", "losses"},
    # never training (its internals) nor evaluation
    "inference": {"utils", "media", "models", "faces", "representations", "datasets"},
    "evaluation": {"utils", "media", "models", "faces", "representations", "datasets", "losses",
                   "training", "inference"},
    # never training nor evaluation
    "serving": {"utils", "media", "faces", "datasets", "inference"},
}
WHY = re.compile(r"#.*\b(lazy|heavy|cycle|optional)\b", re.I)
DYNAMIC = {"import_module", "__import__", "run_module", "run_path"}


def entry_points() -> set[str]:
    return {p.stem for p in ROOT.glob("*.py")}


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in ALLOWED:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods[".".join(parts)] = path
    return mods


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        return [f"{base}.{a.name}" for a in node.names] + [base]
    # importlib.import_module("x"), __import__("x"), runpy.run_module("x") with a constant name
    arg = node.args[0] if node.args else None
    return [arg.value] if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else []


def _is_dynamic(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id in DYNAMIC) or (isinstance(f, ast.Attribute) and f.attr in DYNAMIC)


def read_module(path: Path, module: str, known: set[str]) -> tuple[set[str], list[tuple[int, str]]]:
    """(project modules and entry points imported anywhere in the file, resolved to the longest
    known name; [(line, text)] of function-level project imports without a reason comment)."""
    text = path.read_text()
    lines = text.split("\n")
    tree = ast.parse(text, str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    scripts = entry_points()
    found, unexplained = set(), []
    in_function = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function |= {id(n) for n in ast.walk(fn)}
    for node in ast.walk(tree):
        dynamic = _is_dynamic(node)
        if not (dynamic or isinstance(node, (ast.Import, ast.ImportFrom))):
            continue
        project = dynamic  # a computed name may be anything, an entry point too
        for name in _targets(node, package):
            if name.split(".")[0] in scripts and name.split(".")[0] not in ALLOWED:
                found.add(name.split(".")[0])
                project = True
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
                project = True
        if project and (dynamic or id(node) in in_function):
            here, above = lines[node.lineno - 1], lines[node.lineno - 2] if node.lineno > 1 else ""
            if not (WHY.search(here) or (above.strip().startswith("#") and WHY.search(above))):
                unexplained.append((node.lineno, here.strip()))
    return found, unexplained


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    return {m: read_module(p, m, known)[0] for m, p in mods.items()}


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


def disallowed(g: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    """"a.b imports c.d" for every import the table does not allow (entry points never are)."""
    bad = []
    for mod, deps in g.items():
        pkg = mod.split(".")[0]
        for dep in deps:
            target = dep.split(".")[0]
            if target != pkg and target not in allowed[pkg]:
                bad.append(f"{mod} imports {dep}")
    return sorted(bad)


def test_the_graph_is_read():
    g = graph()
    assert "training.loop" in g and "training.objective" in g["training.loop"]
    assert "losses.registry" in g["training.objective"]
    assert "media.decode" in g and "media.errors" in g["media.decode"]


def test_every_package_has_a_row_and_every_row_names_packages():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name not in ("tests", "bench", "tools")}
    assert packages == set(ALLOWED), f"packages without a row, or rows without a package: {packages ^ set(ALLOWED)}"
    assert all(deps <= set(ALLOWED) for deps in ALLOWED.values())


def test_no_import_cycles():
    cycles = strongly_connected(graph())
    assert not cycles, "import cycles between project modules: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_imports_follow_the_table():
    bad = disallowed(graph(), ALLOWED)
    assert not bad, "imports the table (tests/test_layering.py ALLOWED) does not allow: " + "; ".join(bad)


def test_function_level_imports_say_why():
    mods = project_modules()
    known = set(mods)
    bad = [f"{p.relative_to(ROOT)}:{line}: {text}" for m, p in mods.items()
           for line, text in read_module(p, m, known)[1]]
    assert not bad, ("project imports inside functions without a comment saying why (lazy/heavy, "
                     "cycle, optional) on the line or the line above; else move them to the "
                     "module's header:\n" + "\n".join(bad))


def test_the_table_rejects_the_forbidden_couplings():
    g = {"inference.cartoonizer": {"training.loop"}, "serving.app": {"evaluation.evaluate"},
         "utils.help": {"train"}, "media.decode": {"datasets.folders"}, "training.loop": {"losses.registry"}}
    assert disallowed(g, ALLOWED) == ["inference.cartoonizer imports training.loop",
                                      "media.decode imports datasets.folders",
                                      "serving.app imports evaluation.evaluate", "utils.help imports train"]


def test_entry_points_and_unexplained_lazy_imports_are_found(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("import importlib\n\n\ndef f(script):\n    from utils.io import atomic_write_text\n"
                   "    # lazy: torch only when this runs\n    from models.generator import Generator\n"
                   "    return importlib.import_module(script)\n\n\nfrom train import main\n")
    found, unexplained = read_module(src, "utils.mod", set(project_modules()))
    assert {"train", "utils.io", "models.generator"} <= found
    assert [line for line, _ in unexplained] == [5, 8]


def test_the_checker_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
