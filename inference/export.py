"""Export generator + final guided filter to ONNX (dynamic H, W) and TorchScript.

The exported graph maps a photo (N, 3, H, W) in [-1, 1], any H and W, to the guided-filtered
cartoon (N, 3, H, W) clamped to [-1, 1]: exactly ``Cartoonizer.forward`` then the clamp,
including its context padding (``CONTEXT`` px of repeated edge pixels on every side, the
bottom/right padding to a multiple of 4, the crop back; see inference/cartoonizer.py), so the
files give the Python path's result at every size, border included. Pre/post-processing
(x / 127.5 - 1, uint8) stays with the caller; tiling does too (the files take the whole image).

Why a separate module instead of tracing ``Generator`` itself: the trainer's code reads sizes
(``b, c, h, w = x.shape`` and ``reshape`` in the TF-style upsampling, ``ones(1, 1, h, w)`` in
the guided filter), which a trace freezes to the example's size, so the ONNX graph would fail
on any other size. :class:`ExportableCartoonizer` computes the same function with size-free
ops: ``stack`` + ``flatten`` for the upsampling, and ``avg_pool2d(count_include_pad=False)``
for the guided filter's normalised box mean (it averages only the pixels that exist, as
``box_filter(x) / box_filter(ones)`` does). The stride-2 "SAME" padding of an even size is
always (0, 1), so the constant a trace records is right for every multiple of 4, which is what
the padding makes of every size; the padding itself is size arithmetic a trace records
(:func:`inference.cartoonizer.pad_context`). Tests check it against ``Generator`` +
``guided_filter`` and onnxruntime and TorchScript against the Python path at odd sizes.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inference.cartoonizer import CONTEXT, GUIDED_FILTER_R, INFERENCE_EPS, pad_context
from models.generator import LRELU_SLOPE, Generator
from utils.errors import ToonFaceError
from utils.numbers import finite
from utils.io import atomic_save, atomic_write_bytes

ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "photo", "cartoon"


def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """TF "SAME" conv for H, W multiples of 4 (stride 2 on an even size pads (0, 1))."""
    k, s = conv.kernel_size[0], conv.stride[0]
    if s == 1:
        return F.conv2d(x, conv.weight, conv.bias, 1, k // 2)
    pad = k - 2  # total (k - s) for even sizes, all of it after (TF puts the extra at the end)
    return F.conv2d(F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)), conv.weight, conv.bias, s)


def _up_tf(x: torch.Tensor) -> torch.Tensor:
    """TF1 bilinear x2 (align_corners=False, no half-pixel centres), without reading sizes."""
    xp = F.pad(x, (0, 1, 0, 0), mode="replicate")
    x = torch.stack((x, (xp[..., :-1] + xp[..., 1:]) * 0.5), dim=-1).flatten(-2)
    xp = F.pad(x, (0, 0, 0, 1), mode="replicate")
    return torch.stack((x, (xp[..., :-1, :] + xp[..., 1:, :]) * 0.5), dim=-2).flatten(-3, -2)


def _mean(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def guided_filter_export(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """``models.guided_filter`` with pooling means (same values, no size-dependent tensors)."""
    mean_x, mean_y = _mean(guide, r), _mean(src, r)
    cov_xy = _mean(guide * src, r) - mean_x * mean_y
    var_x = _mean(guide * guide, r) - mean_x * mean_x
    a = cov_xy / (var_x + eps)
    b = mean_y - a * mean_x
    return _mean(a, r) * guide + _mean(b, r)


class ExportableCartoonizer(nn.Module):
    """Context padding + generator + guided filter (r=1) + crop + clamp, in export-friendly ops.

    Input (B, 3, H, W) in [-1, 1], any H and W >= 1; output the same shape in [-1, 1], equal to
    ``Cartoonizer.forward(x).clamp(-1, 1)``. :meth:`generate` is the part without the padding
    (H and W multiples of 4).
    """

    def __init__(self, generator: Generator, eps: float = INFERENCE_EPS):
        super().__init__()
        if not isinstance(generator, Generator):
            raise TypeError(f"expected models.Generator, got {type(generator).__name__}")
        # a NaN or inf eps would be baked into the graph: every output NaN (or the raw G)
        self.G, self.eps = generator.eval(), finite(eps, "eps", 0.0, low_open=True)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.G.upsample == "tf":
            return _up_tf(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        out = self.generate(pad_context(x))[..., CONTEXT:CONTEXT + h, CONTEXT:CONTEXT + w].clamp(-1.0, 1.0)
        # ONNX shape inference loses every dimension of a Slice with computed bounds, and the
        # exporter then names the output's channel axis 'Clipcartoon_dim_1': a reshape to the
        # generator's (constant) channel count states it (no copy; dims 0, 2, 3 stay dynamic)
        return out.reshape(b, self.G.out.out_channels, h, w)

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """Generator + guided filter of (B, 3, H, W) in [-1, 1], H and W multiples of 4; unclamped."""
        G, act = self.G, lambda t: F.leaky_relu(t, LRELU_SLOPE)
        x0 = act(_conv(G.conv0, x))
        x1 = act(_conv(G.down1b, act(_conv(G.down1a, x0))))
        x2 = act(_conv(G.down2b, act(_conv(G.down2a, x1))))
        for block in G.blocks:
            x2 = x2 + _conv(block.conv2, act(_conv(block.conv1, x2)))
        x2 = act(_conv(G.mid, x2))
        x3 = act(_conv(G.up1b, act(_conv(G.up1a, self._up(x2) + x1))))
        raw = _conv(G.out, act(_conv(G.up2a, self._up(x3) + x0)))
        if G.output_act == "clip":
            raw = raw.clamp(-1.0, 1.0)
        elif G.output_act == "tanh":
            raw = torch.tanh(raw)
        return guided_filter_export(x, raw, GUIDED_FILTER_R, self.eps)


class ExportableGenerate(nn.Module):
    """:meth:`ExportableCartoonizer.generate` alone: (B, 3, H, W) in [-1, 1], H and W multiples of
    4, already given its context (a padded photo or a tile of one) -> the guided-filtered cartoon,
    unclamped. The graph ``--engine onnxruntime`` runs in place of ``Cartoonizer._generate``, so
    padding, tiling, portrait mode and strength stay in the Python path (inference/onnx_engine.py).
    """

    def __init__(self, generator: Generator, eps: float = INFERENCE_EPS):
        super().__init__()
        self.inner = ExportableCartoonizer(generator, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.generate(x)


def example_input(height: int = 256, width: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, height, width, generator=g) * 2 - 1


def export_onnx(module: nn.Module, path: str | os.PathLike, height: int = 256,
                width: int = 256, opset: int = ONNX_OPSET) -> Path:
    """Write an ONNX file of ``module`` (:class:`ExportableCartoonizer` or
    :class:`ExportableGenerate`) with dynamic batch, height and width (TorchScript-based
    exporter: no onnxscript needed)."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation / tracer notes
        torch.onnx.export(module.eval(), (example_input(height, width),), buf, dynamo=False,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                                        OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}})
    atomic_write_bytes(path, buf.getvalue())
    return path


def export_torchscript(module: ExportableCartoonizer, path: str | os.PathLike, height: int = 256,
                       width: int = 256) -> Path:
    """Write a traced TorchScript file (``torch.jit.load``); any H, W."""
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module.eval(), (example_input(height, width),), check_trace=False)
    atomic_save(path, lambda f: torch.jit.save(traced, f))
    return path


def check_size(height: int, width: int) -> None:
    if height % 4 or width % 4 or height < 4 or width < 4:
        raise ToonFaceError(f"export size must be multiples of 4, got {height}x{width}")
