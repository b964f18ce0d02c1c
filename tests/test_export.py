"""export.py: the export module equals Generator + guided filter; onnxruntime and TorchScript
agree with PyTorch at sizes other than the export size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from export import main
from inference.export import ExportableCartoonizer, guided_filter_export
from models import Generator, guided_filter
from tests.inference import make_checkpoint, make_generator


def test_module_matches_generator_and_guided_filter():
    G = make_generator()
    m = ExportableCartoonizer(G)
    for shape in [(1, 3, 36, 52), (2, 3, 64, 40)]:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
        with torch.no_grad():
            ref = guided_filter(x, G(x), 1, 5e-3).clamp(-1, 1)
            assert (m(x) - ref).abs().max() < 1e-5


def test_pooled_guided_filter_matches_models_guided_filter():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 3, 9, 13, generator=g), torch.randn(1, 3, 9, 13, generator=g)
    for r, eps in [(1, 5e-3), (2, 0.2)]:
        torch.testing.assert_close(guided_filter_export(x, y, r, eps), guided_filter(x, y, r, eps),
                                   atol=1e-5, rtol=1e-5)


def test_bilinear_generator_exports_too():
    torch.manual_seed(0)
    G = Generator(upsample="bilinear").eval()
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert (ExportableCartoonizer(G)(x) - guided_filter(x, G(x), 1, 5e-3).clamp(-1, 1)).abs().max() < 1e-5


def test_cli_writes_onnx_and_torchscript_that_match_pytorch(tmp_path):
    ckpt = make_checkpoint(tmp_path / "G.pt")
    onnx_path, ts_path = tmp_path / "g.onnx", tmp_path / "g.ts"
    result = CliRunner().invoke(main, ["--checkpoint", str(ckpt), "--onnx", str(onnx_path),
                                       "--torchscript", str(ts_path), "--height", "64", "--width", "64"])
    assert result.exit_code == 0, result.output
    G = make_generator()
    x = torch.rand(1, 3, 72, 100, generator=torch.Generator().manual_seed(2)) * 2 - 1  # not 64x64
    with torch.no_grad():
        ref = guided_filter(x, G(x), 1, 5e-3).clamp(-1, 1)
        ts = torch.jit.load(str(ts_path))(x)
    assert (ts - ref).abs().max() < 1e-4
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"photo": x.numpy()})[0]
    assert out.shape == (1, 3, 72, 100)
    assert np.abs(out - ref.numpy()).max() < 1e-4


def test_cli_errors(tmp_path):
    result = CliRunner().invoke(main, ["--checkpoint", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "error: checkpoint not found" in result.output
    ckpt = make_checkpoint(tmp_path / "G.pt")
    result = CliRunner().invoke(main, ["--checkpoint", str(ckpt)])
    assert result.exit_code == 2 and "nothing to do" in result.output
