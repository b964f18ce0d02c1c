"""export.py: the export module equals the Python path (context padding + Generator + guided
filter); onnxruntime and TorchScript agree with it at sizes other than the export size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from export import main
from inference.cartoonizer import Cartoonizer
from inference.export import ExportableCartoonizer, guided_filter_export
from models import Generator, guided_filter
from tests.inference import make_checkpoint, make_generator, make_trained_like_generator
from tests.oserrors import disk_full


def test_module_matches_generator_and_guided_filter():
    G = make_generator()
    m = ExportableCartoonizer(G)
    for shape in [(1, 3, 36, 52), (2, 3, 64, 40)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
        with torch.no_grad():
            assert (m.generate(x) - guided_filter(x, G(x), 1, 5e-3)).abs().max() < 1e-5


@pytest.mark.parametrize("shape", [(1, 3, 101, 150), (2, 3, 5, 7), (1, 3, 1, 1), (1, 3, 64, 64)])
def test_module_equals_the_python_path_at_any_size(shape):
    """Context padding, the multiple-of-4 padding and the crop are in the module, as in
    Cartoonizer.forward."""
    G = make_trained_like_generator()
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        out = ExportableCartoonizer(G)(x)
    assert out.shape == x.shape
    assert (out - Cartoonizer(G, tile=0)._forward_padded(x)).abs().max() < 1e-5


def test_pooled_guided_filter_matches_models_guided_filter():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 3, 9, 13, generator=g), torch.randn(1, 3, 9, 13, generator=g)
    for r, eps in [(1, 5e-3), (2, 0.2)]:
        torch.testing.assert_close(guided_filter_export(x, y, r, eps), guided_filter(x, y, r, eps),
                                   atol=1e-5, rtol=1e-5)


def test_bilinear_generator_exports_too():
    torch.manual_seed(0)
    G = Generator(upsample="bilinear").eval()
    x = torch.rand(1, 3, 30, 45) * 2 - 1
    with torch.no_grad():
        assert (ExportableCartoonizer(G)(x) - Cartoonizer(G, tile=0)._forward_padded(x)).abs().max() < 1e-5


def test_cli_writes_onnx_and_torchscript_that_match_the_python_path(tmp_path):
    """Both files take sizes other than the trace's, odd ones included (101x150 used to fail in
    onnxruntime with a broadcast error), and give cartoonize.py's result there."""
    ckpt = make_checkpoint(tmp_path / "G.pt")
    onnx_path, ts_path = tmp_path / "g.onnx", tmp_path / "g.ts"
    result = CliRunner().invoke(main, ["--checkpoint", str(ckpt), "--onnx", str(onnx_path),
                                       "--torchscript", str(ts_path), "--height", "64", "--width", "64"])
    assert result.exit_code == 0, result.output
    toon = Cartoonizer.from_checkpoint(ckpt, tile=0)
    ts = torch.jit.load(str(ts_path))
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 101, 150), (2, 3, 5, 7), (1, 3, 72, 100)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
        ref = toon._forward_padded(x)
        with torch.no_grad():
            assert (ts(x) - ref).abs().max() < 1e-4
        out = sess.run(None, {"photo": x.numpy()})[0]
        assert out.shape == shape and np.abs(out - ref.numpy()).max() < 1e-4
    # the declared shapes: named dynamic axes, and 3 channels on both sides (the output's was
    # named 'Clipcartoon_dim_1')
    dims = {v.name: list(v.shape)
            for v in [*sess.get_inputs(), *sess.get_outputs()]}
    assert dims == {"photo": ["batch", 3, "height", "width"], "cartoon": ["batch", 3, "height", "width"]}


def test_cli_errors(tmp_path):
    result = CliRunner().invoke(main, ["--checkpoint", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "error: checkpoint not found" in result.output
    ckpt = make_checkpoint(tmp_path / "G.pt")
    result = CliRunner().invoke(main, ["--checkpoint", str(ckpt)])
    assert result.exit_code == 2 and "nothing to do" in result.output


def _export(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def _one_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def test_existing_output_is_kept_without_overwrite(tmp_path):
    ckpt = make_checkpoint(tmp_path / "G.pt")
    (tmp_path / "g.onnx").write_text("keep")
    code, out = _export("--checkpoint", ckpt, "--onnx", tmp_path / "g.onnx", "--height", 32, "--width", 32)
    assert code == 2 and "--overwrite" in _one_error(out)
    assert (tmp_path / "g.onnx").read_text() == "keep"
    code, out = _export("--checkpoint", ckpt, "--onnx", tmp_path / "g.onnx", "--height", 32, "--width", 32,
                        "--overwrite")
    assert code == 0, out
    assert (tmp_path / "g.onnx").read_bytes() != b"keep"
    code, out = _export("--checkpoint", ckpt, "--onnx", tmp_path / "same", "--torchscript", tmp_path / "same")
    assert code == 2 and "same file" in _one_error(out)


@pytest.mark.parametrize("content", ["tensor", "list", "no generator_config", "no weights"])
def test_malformed_checkpoint_is_one_line(tmp_path, content):
    obj = {"tensor": torch.zeros(3), "list": [torch.zeros(3)],
           "no generator_config": {"format": "toonface-generator", "generator": {}},
           "no weights": {"G": None, "generator_config": {}}}[content]
    torch.save(obj, tmp_path / "bad.pt")
    code, out = _export("--checkpoint", tmp_path / "bad.pt", "--onnx", tmp_path / "g.onnx")
    assert code == 2 and str(tmp_path / "bad.pt") in _one_error(out)
    assert not (tmp_path / "g.onnx").exists()


def test_unwritable_output_is_one_line_before_loading(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # read-only by intent: refused even where root could write
    try:
        code, out = _export("--checkpoint", tmp_path / "none.pt", "--onnx", locked / "g.onnx")
    finally:
        locked.chmod(0o755)
    line = _one_error(out)
    assert code == 2 and "--onnx" in line and "read-only" in line  # not "checkpoint not found"


def test_disk_full_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    """ENOSPC (simulated, see tests/oserrors.py)."""
    ckpt = make_checkpoint(tmp_path / "G.pt")
    (tmp_path / "o").mkdir()
    disk_full(monkeypatch)
    code, out = _export("--checkpoint", ckpt, "--torchscript", tmp_path / "o" / "g.ts", "--height", 32, "--width", 32)
    assert code == 2 and "No space left on device" in _one_error(out)
    assert list((tmp_path / "o").iterdir()) == []
