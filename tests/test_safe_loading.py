"""No loader of a user-supplied file may run code: an audit of the source (ast), and the loaders
themselves against files that would run code (a marker file must never appear)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.errors import ToonFaceError

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", ".venv-numpy2", "build", "checkpoints", "demo_data", ".git"}
# torch.jit.load runs a TorchScript program by design; only the FID extractor uses it, and its
# docstring and test.py --inception's help say so.
JIT_LOAD_ALLOWED = {"evaluation/fid.py"}
PICKLE_ALLOWED = {"utils/safe_pickle.py"}


def _sources(include_tests: bool):
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT)
        if SKIP_DIRS & set(rel.parts[:-1]) or (not include_tests and rel.parts[0] == "tests"):
            continue
        yield rel.as_posix(), ast.parse(p.read_text(), str(p))


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, _dotted(node.func)


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return None


def test_the_audit_sees_the_loaders():
    """The scan finds what it looks for (so the assertions below cannot pass by finding nothing)."""
    names = {name for _, tree in _sources(True) for _, name in _calls(tree)}
    assert {"torch.load", "np.load", "torch.jit.load"} <= names
    assert names & {"yaml.safe_load", "yaml.SafeLoader"}  # study files: a SafeLoader, bounded


def test_every_loader_of_a_file_is_a_safe_one():
    bad = []
    for rel, tree in _sources(include_tests=True):
        for call, name in _calls(tree):
            where = f"{rel}:{call.lineno} {name}"
            if name == "torch.load" and _keyword(call, "weights_only") is not True:
                bad.append(where + " without weights_only=True")
            if rel.startswith("tests/"):
                continue  # tests may pickle their own objects; they never read a user's file
            if name in ("np.load", "numpy.load") and _keyword(call, "allow_pickle") not in (None, False):
                bad.append(where + " with allow_pickle (use utils.safe_pickle.load_pickled_npy)")
            if name.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve") \
                    and rel not in PICKLE_ALLOWED:
                bad.append(where + " (unpickling runs code; use utils.safe_pickle)")
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all",
                        "yaml.Loader", "yaml.UnsafeLoader", "yaml.FullLoader"):
                bad.append(where + " (use yaml.safe_load or yaml.SafeLoader)")
            if name == "torch.jit.load" and rel not in JIT_LOAD_ALLOWED:
                bad.append(where + " (runs code by design: say so where it is offered)")
    assert not bad, "\n".join(bad)


class _Marker:
    """Pickles as a call of ``open(path, "w")``: unpickling it creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_generator_file_that_runs_code_is_refused(tmp_path):
    from models.checkpoint import load_generator

    marker = tmp_path / "ran"
    p = tmp_path / "evil.pt"
    torch.save({"format": "toonface-generator", "generator": _Marker(marker)}, p)
    with pytest.raises(ToonFaceError) as e:
        load_generator(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()


def test_npy_loader_refuses_code_and_reads_arrays(tmp_path):
    from utils.safe_pickle import load_pickled_npy

    marker = tmp_path / "ran"
    np.save(tmp_path / "evil.npy", np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ToonFaceError, match="refused.*io.open"):
        load_pickled_npy(tmp_path / "evil.npy")
    assert not marker.exists()
    arrays = {"a": [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(2)], "b": "text"}
    np.save(tmp_path / "ok.npy", arrays, allow_pickle=True)
    got = load_pickled_npy(tmp_path / "ok.npy").item()
    np.testing.assert_array_equal(got["a"][0], arrays["a"][0])
    assert got["b"] == "text"
    np.save(tmp_path / "plain.npy", np.arange(5))
    np.testing.assert_array_equal(load_pickled_npy(tmp_path / "plain.npy"), np.arange(5))
