"""serve.py --engine: the onnxruntime engine answers the torch engine's image (plain, strength,
portrait, blends, videos' frames) through the ASGI client, and its setting errors are one line
at start."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from tests.conftest import fixtures_dir
from tests.serving import H, W, decode, encode, png

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def clients(styles_dir, cache, tmp_path_factory):
    """{engine name: a running ASGI client of a service with that engine}."""
    from serving.app import create_app
    from serving.config import ServeConfig

    clients = {}
    for engine in ("torch", "onnxruntime"):
        config = ServeConfig(styles_dir=styles_dir, device="cpu", engine=engine, cache_dir=cache,
                             tmp_dir=tmp_path_factory.mktemp(engine))
        clients[engine] = TestClient(create_app(config))
        clients[engine].__enter__()
    yield clients
    for c in clients.values():
        c.__exit__(None, None, None)


def both(clients, data: bytes, **fields) -> dict[str, np.ndarray]:
    out = {}
    for engine, client in clients.items():
        r = client.post("/api/cartoonize", files={"image": ("a.png", data, "image/png")},
                        data={k: str(v) for k, v in fields.items()})
        assert r.status_code == 200, r.text
        out[engine] = np.asarray(decode(r.content)).astype(int)
    return out


def test_the_service_runs_the_engine_it_was_given(clients, cache):
    from serving.engine import OnnxRuntimeEngine, TorchEngine

    assert isinstance(clients["torch"].app.state.service.engine, TorchEngine)
    assert isinstance(clients["onnxruntime"].app.state.service.engine, OnnxRuntimeEngine)
    assert clients["onnxruntime"].get("/healthz").status_code == 200


@pytest.mark.parametrize("fields", [{}, {"strength": 0.4}, {"style": "soft=0.5,hard=0.5"},
                                    {"portrait": "true"}])
def test_onnxruntime_answers_the_torch_image(clients, cache, fields):
    """Plain, blended with the photo, a blend of styles (its own export), and portrait mode on a
    picture without a face (the whole image at its own scale)."""
    data = png()
    got = both(clients, data, **fields)
    assert got["torch"].shape == (H, W, 3)
    assert np.abs(got["onnxruntime"] - got["torch"]).max() <= 1
    # one exported file per generator loaded (Hard, the default; the blend has its own weights)
    svc = clients["onnxruntime"].app.state.service
    used = [s._toon.runtime.path.name for s in svc.cache._items.values()]
    assert len(set(used)) == len(used) == svc.cache.loads
    assert set(used) <= {p.name for p in cache.glob("*.onnx")}


def test_portrait_mode_on_a_face(clients):
    """A real face: portrait mode scales it to the style's face size; both engines agree."""
    path = fixtures_dir("scenes", "wb_actress2.jpg")
    rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    rgb = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // 4, rgb.shape[0] // 4)))
    data = encode(rgb)
    got = both(clients, data, portrait="true")
    diff = np.abs(got["onnxruntime"] - got["torch"])
    assert got["torch"].shape == rgb.shape and diff.max() <= 1, diff.max()
    r = clients["onnxruntime"].post("/api/cartoonize", files={"image": ("a.png", data, "image/png")},
                                    data={"portrait": "true"}, headers={"Accept": "application/json"})
    assert r.status_code == 200 and not any("no face" in n for n in r.json()["notices"]), r.text


def test_video_frames_go_through_the_engine(styles_dir, cache):
    from serving.engine import OnnxRuntimeEngine, TorchEngine
    from tests.inference import make_picture

    frames = [make_picture(H, W, seed=s) for s in range(2)]
    ort = OnnxRuntimeEngine(styles_dir, "cpu", cache_dir=cache).load("Soft")
    ref = TorchEngine(styles_dir, "cpu").load("Soft")
    for a, b in zip(ort.frames(frames, strength=0.7), ref.frames(frames, strength=0.7)):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert ort._toon.runtime.calls >= 1


def test_blends_do_not_fill_the_disk(styles_dir, tmp_path):
    """Every distinct blend weight is another exported file: the service's cache keeps at most
    --cache-max-files of them (least recently used out), and every request is still answered."""
    from serving.app import create_app
    from serving.config import ServeConfig

    cache = tmp_path / "cache"
    config = ServeConfig(styles_dir=styles_dir, device="cpu", engine="onnxruntime", cache_dir=cache,
                         cache_max_files=2, max_loaded_styles=1, tmp_dir=tmp_path)
    with TestClient(create_app(config)) as c:
        for weight in (0.1, 0.2, 0.3, 0.4, 0.5):
            r = c.post("/api/cartoonize", files={"image": ("a.png", png(), "image/png")},
                       data={"style": f"soft={weight},hard={1 - weight}"})
            assert r.status_code == 200, r.text
            assert len(list(cache.glob("*.onnx"))) <= 2
    assert len(list(cache.iterdir())) == 2  # and no temporary file left


def run(*args):
    from serve import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_bf16_with_onnxruntime_fails_at_start_with_one_line(styles_dir, tmp_path):
    code, out = run("--styles-dir", styles_dir, "--engine", "onnxruntime", "--precision", "bf16",
                    "--cache-dir", tmp_path)
    assert code == 2 and out == ("error: --precision bf16 is not supported with --engine "
                                 "onnxruntime (the exported model is float32); use --precision "
                                 "fp32 or --engine torch\n"), out


def test_missing_onnxruntime_fails_at_start_with_one_line(styles_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, out = run("--styles-dir", styles_dir, "--engine", "onnxruntime", "--cache-dir", tmp_path)
    assert code == 2 and out == ("error: --engine onnxruntime needs the onnxruntime package (pip "
                                 "install onnxruntime), or use --engine torch\n"), out


def test_an_unwritable_cache_fails_at_start_with_one_line(styles_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, out = run("--styles-dir", styles_dir, "--engine", "onnxruntime", "--cache-dir",
                        locked / "cache")
    finally:
        locked.chmod(0o755)
    assert code == 2 and out.startswith("error: --cache-dir ") and "read-only" in out, out
    assert out.count("\n") == 1
    code, out = run("--styles-dir", styles_dir, "--engine", "tvm")
    assert code == 2 and "Invalid value for '--engine'" in out
