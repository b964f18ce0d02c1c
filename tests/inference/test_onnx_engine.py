"""--engine onnxruntime (inference/onnx_engine.py): the same image as PyTorch (tiles, strength,
batches), the export cached by the weights' hash, and one-line errors."""
from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from inference.cartoonizer import INFERENCE_EPS, Cartoonizer
from tests.inference import make_checkpoint, make_picture, make_trained_like_generator
from utils.errors import ToonFaceError

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def G():
    return make_trained_like_generator(1)


@pytest.fixture(scope="module")
def runtime(G, tmp_path_factory):
    from inference.onnx_engine import OnnxGenerate

    return OnnxGenerate.for_generator(G, INFERENCE_EPS, tmp_path_factory.mktemp("cache"))


def levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("shape,tile", [((37, 53), 1024), ((150, 131), 208)])
def test_same_image_as_torch_whole_and_in_tiles(G, runtime, shape, tile):
    """Untiled and tiled (150 + 96 px of context > 208: 2 x 2 tiles), odd sizes, strength 0.5;
    the runtime really runs (its call count grows) and the cartoon is not the photo."""
    photo = make_picture(*shape, seed=3)
    calls = runtime.calls
    for strength in (1.0, 0.5):
        ref = Cartoonizer(G, tile=tile, overlap=104, strength=strength)(photo)
        got = Cartoonizer(G, tile=tile, overlap=104, strength=strength, runtime=runtime)(photo)
        assert got.shape == photo.shape and levels(got, ref) <= 1
    assert runtime.calls - calls == (2 if tile == 1024 else 8)
    assert levels(ref, photo) > 20


def test_batches_of_frames_run_as_one_call(G, runtime):
    frames = [make_picture(40, 44, seed=s) for s in range(3)]
    calls = runtime.calls
    got = Cartoonizer(G, runtime=runtime).stylize_batch(frames)
    assert runtime.calls - calls == 1
    for g, r in zip(got, Cartoonizer(G).stylize_batch(frames)):
        assert levels(g, r) <= 1


def test_the_export_is_cached_by_the_weights(G, tmp_path, monkeypatch):
    from inference import onnx_engine
    from inference.onnx_engine import OnnxGenerate, cached_onnx

    first = cached_onnx(G, INFERENCE_EPS, tmp_path)
    assert first.parent == tmp_path and first.suffix == ".onnx"
    # The same weights in another module (a reloaded file) reuse the file: no second export.
    monkeypatch.setattr("inference.export.export_onnx", lambda *a, **k: pytest.fail("exported twice"))
    assert OnnxGenerate.for_generator(copy.deepcopy(G), INFERENCE_EPS, tmp_path).path == first
    monkeypatch.undo()
    changed = copy.deepcopy(G)
    with torch.no_grad():
        changed.out.bias.add_(1e-3)
    keys = {first.name, cached_onnx(changed, INFERENCE_EPS, tmp_path).name,
            cached_onnx(G, 2 * INFERENCE_EPS, tmp_path).name}
    assert len(keys) == 3 and sorted(p.name for p in tmp_path.iterdir()) == sorted(keys)
    assert onnx_engine.generator_key(G, INFERENCE_EPS) in first.name


def test_a_damaged_cache_file_is_exported_again(G, tmp_path):
    from inference.onnx_engine import OnnxGenerate, cached_onnx

    path = cached_onnx(G, INFERENCE_EPS, tmp_path)
    path.write_bytes(b"not an onnx file")
    rt = OnnxGenerate.for_generator(G, INFERENCE_EPS, tmp_path)
    photo = make_picture(24, 20)
    assert levels(Cartoonizer(G, runtime=rt)(photo), Cartoonizer(G)(photo)) <= 1


def test_the_cache_keeps_the_most_recently_used_files_within_its_bounds(tmp_path):
    """Every distinct weight is a file: the cache keeps max_files / max_bytes of them, least
    recently used out first (a hit counts as a use), and leaves other files alone."""
    import os
    import time

    from inference.onnx_engine import cached_onnx, prune_cache
    from tests.serving import tiny_generator

    gens = [tiny_generator(seed) for seed in range(5)]
    (tmp_path / "notes.txt").write_text("not ours")
    paths = []
    for i, g in enumerate(gens[:4]):
        paths.append(cached_onnx(g, INFERENCE_EPS, tmp_path, max_files=3))
        os.utime(paths[-1], (time.time() - 100 + i, time.time() - 100 + i))  # distinct mtimes
    cached = sorted(tmp_path.glob("generator-*.onnx"))
    assert cached == sorted(paths[1:]) and (tmp_path / "notes.txt").exists()
    assert cached_onnx(gens[1], INFERENCE_EPS, tmp_path, max_files=3) == paths[1]  # a hit: used now
    fifth = cached_onnx(gens[4], INFERENCE_EPS, tmp_path, max_files=3)
    assert sorted(tmp_path.glob("generator-*.onnx")) == sorted([paths[1], paths[3], fifth])
    size = fifth.stat().st_size
    # bytes: room for two files; the file just used stays even alone over the bound
    prune_cache(tmp_path, keep=fifth, max_files=10, max_bytes=2 * size + size // 2)
    assert sorted(tmp_path.glob("generator-*.onnx")) == sorted([paths[1], fifth])
    prune_cache(tmp_path, keep=fifth, max_files=10, max_bytes=1)
    assert list(tmp_path.glob("generator-*.onnx")) == [fifth]
    # a killed write's temporary file goes once it is an hour old, not before
    old, new = tmp_path / f".{fifth.name}.1234abcd.tmp", tmp_path / f".{fifth.name}.5678abcd.tmp"
    old.write_bytes(b"x"), new.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    prune_cache(tmp_path, keep=fifth)
    assert not old.exists() and new.exists() and (tmp_path / "notes.txt").exists()


def test_missing_onnxruntime_or_onnx_is_one_line(monkeypatch):
    from inference.onnx_engine import import_onnxruntime

    monkeypatch.setitem(sys.modules, "onnx", None)  # import raises ImportError
    with pytest.raises(ToonFaceError, match=r"^--engine onnxruntime needs the onnx package "
                                            r"\(pip install onnx\), or use --engine torch$"):
        import_onnxruntime()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ToonFaceError, match=r"needs the onnxruntime and onnx packages "
                                            r"\(pip install onnxruntime onnx\)"):
        import_onnxruntime()


def test_bf16_unknown_engines_and_unwritable_caches_are_one_line(G, tmp_path):
    from inference.onnx_engine import cached_onnx, check_engine

    check_engine("onnxruntime", "fp32")
    check_engine("torch", "bf16")
    with pytest.raises(ToonFaceError, match="--precision bf16 is not supported with --engine onnxruntime"):
        check_engine("onnxruntime", "bf16")
    with pytest.raises(ToonFaceError, match="--engine tvm: expected one of torch, onnxruntime"):
        check_engine("tvm")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ToonFaceError, match="--cache-dir .*read-only"):
            cached_onnx(G, INFERENCE_EPS, locked / "cache")
    finally:
        locked.chmod(0o755)


def test_cartoonize_cli_engines_write_the_same_image(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from cartoonize import main

    ckpt = make_checkpoint(tmp_path / "G.pt")
    Image.fromarray(make_picture(45, 62, seed=5)).save(tmp_path / "photo.png")
    outs = {}
    for engine in ("torch", "onnxruntime"):
        result = CliRunner().invoke(main, [str(tmp_path / "photo.png"), "--checkpoint", str(ckpt),
                                           "--out", str(tmp_path / engine), "--engine", engine,
                                           "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
        assert result.exit_code == 0, result.output
        outs[engine] = np.asarray(Image.open(tmp_path / engine / "photo.png"))
    assert outs["torch"].shape == (45, 62, 3) and levels(outs["torch"], outs["onnxruntime"]) <= 1
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 1


def test_cartoonize_cli_without_onnxruntime_exits_2_with_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from cartoonize import main

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    ckpt = make_checkpoint(tmp_path / "G.pt")
    result = CliRunner().invoke(main, [str(ckpt), "--checkpoint", str(ckpt), "--out",
                                       str(tmp_path / "out"), "--engine", "onnxruntime"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --engine onnxruntime needs the onnxruntime package (pip install onnxruntime), "
        "or use --engine torch"]
