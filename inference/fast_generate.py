"""Generator + final guided filter for inference, without the trainer module's overheads.

:func:`fast_generate` computes ``guided_filter(x, G(x), r, eps)`` for a ``models.Generator``
``G`` (equal to float rounding: max 1e-5 in [-1, 1] in fp32 on the tests' generators), faster on
the CPU. What it changes, measured per 256x256 photo (352x352 with its context) on one core of
these machines (``bench/bench_inference.py --vs-onnxruntime`` times the whole path):

1. channels_last, once. :func:`inference.cartoonizer.pad_context` returns a contiguous (NCHW)
   map, and with an NCHW input every oneDNN convolution of the generator reorders its input to
   its blocked layout and its output back; in channels_last the layers hand each other maps
   oneDNN takes as they are (the generator ran about 15% faster).
2. Convolution, bias and leaky ReLU as one oneDNN primitive, and each residual block's add as
   its second convolution's post-op (``torch.ops.mkldnn._convolution_pointwise``, the op
   ``torch.compile``'s CPU backend emits for the same patterns): no separate pass over every
   activation map. Where a PyTorch build lacks that op (or on CUDA), the same layers run with
   ``F.conv2d`` + ``F.leaky_relu``.
3. TF1's bilinear x2 upsampling written into one preallocated map: about 2.5 passes over the
   output instead of 8 (``torch.cat`` + ``stack`` + ``flatten`` twice), 2-3x faster and
   bit-identical to :func:`models.layers.upsample2x_tf`, which training keeps.
4. The last convolution (32 -> 3 channels, 7x7) in fp32 on 2x2 blocks of pixels
   (:func:`space_to_depth_conv`): oneDNN computes output channels 16 at a time (one AVX-512
   register), so a 3-channel convolution paid for 16 and took 15% of the generator's time;
   on blocks it has 12 outputs per position (55 -> 35 ms at 352x352). In bf16 (AMX) the direct
   convolution is faster and stays.

Under CPU bf16 autocast the convolutions run in bfloat16 (weights cast per call, as autocast
does) and the guided filter in float32, as in the trainer's module. Nothing is cached from the
generator: its current weights are read at every call.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.generator import LRELU_SLOPE, Generator
from models.guided_filter import guided_filter
from models.layers import same_padding


def _pointwise_op():
    """oneDNN's fused convolution op, or None where this build has none."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)


def upsample2x_tf_fast(x: torch.Tensor) -> torch.Tensor:
    """:func:`models.layers.upsample2x_tf` (TF1 ``resize_bilinear`` x2, no half-pixel centres),
    same values bit for bit, written into one (B, C, 2H, 2W) map in ``x``'s memory format.

    Rows first, then columns, as the original: output (2i, 2j) is x[i, j], an odd row is the
    mean of the rows around it, an odd column the mean of the (already interpolated) columns
    around it, and the last row and column repeat the edge.
    """
    b, c, h, w = x.shape
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    y = torch.empty((b, c, 2 * h, 2 * w), dtype=x.dtype, device=x.device, memory_format=fmt)
    even = y[..., 0::2]                            # the input's columns, rows interleaved
    even[..., 0::2, :] = x
    if h > 1:
        mid = even[..., 1:-1:2, :]
        torch.add(x[..., :-1, :], x[..., 1:, :], out=mid)
        mid.mul_(0.5)
    even[..., -1, :] = x[..., -1, :]
    if w > 1:
        mid = y[..., 1:-1:2]
        torch.add(y[..., 0:-2:2], y[..., 2::2], out=mid)
        mid.mul_(0.5)
    y[..., -1] = y[..., -2]
    return y


def fast_generate(generator: Generator, x: torch.Tensor, r: int, eps: float,
                  fuse: bool = True) -> torch.Tensor:
    """``guided_filter(x, generator(x), r, eps)`` for inference (no autograd).

    Args:
        generator: a ``models.Generator`` (its weights are read here, not copied).
        x: (B, 3, H, W) in [-1, 1], H and W multiples of 4, any memory format.
        r, eps: the guided filter's radius and eps.
        fuse: use oneDNN's fused convolutions where available (False: ``F.conv2d`` only).
    Returns:
        (B, 3, H, W) channels_last, in the generator's output dtype (bf16 under CPU bf16
        autocast, else float32), unclamped.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return guided_filter(x, generator_forward(generator, x, fuse), r, eps)


def generator_forward(G: Generator, x: torch.Tensor, fuse: bool = True) -> torch.Tensor:
    """``G(x)`` (same layers and order as ``models.Generator.forward``), for inference: no
    autograd (the maps are written in place)."""
    op = _pointwise_op() if fuse and x.device.type == "cpu" else None
    with torch.no_grad():
        if op is None:
            return _forward(G, x, _Eager())
        if torch.is_autocast_enabled("cpu"):
            x = x.to(torch.get_autocast_dtype("cpu"))
        with torch.autocast("cpu", enabled=False):  # dtypes are chosen here, per conv
            return _forward(G, x, _Fused(op))


def _forward(G: Generator, x: torch.Tensor, conv) -> torch.Tensor:
    # Each map is dropped as soon as it is used up (the skip connections too), so at most two
    # full-resolution 32-channel maps are alive at once: a 1120x1120 map is 160 MB in fp32.
    x0 = conv(G.conv0, x)
    x1 = conv(G.down1b, conv(G.down1a, x0))
    x2 = conv(G.down2b, conv(G.down2a, x1))
    for block in G.blocks:
        x2 = conv(block.conv2, conv(block.conv1, x2), act=False, residual=x2)
    x2 = conv(G.mid, x2)
    up = _up(G, x2).add_(x1)
    del x1, x2
    x3 = conv(G.up1b, conv(G.up1a, up))
    up = _up(G, x3).add_(x0)
    del x0, x3
    out = conv(G.out, conv(G.up2a, up), act=False)
    del up
    if G.output_act == "clip":
        return out.clamp(-1.0, 1.0)
    if G.output_act == "tanh":
        return torch.tanh(out)
    return out


def _up(G: Generator, x: torch.Tensor) -> torch.Tensor:
    if G.upsample == "tf":
        return upsample2x_tf_fast(x)
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _same_padding(conv, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """TF "SAME" padding as ``models.layers.Conv2dSame``: the conv's own (symmetric) padding
    where TF's is symmetric, else an explicit F.pad (stride 2 on an even size: (0, 1))."""
    k, s = conv.kernel_size[0], conv.stride[0]
    top, bottom = same_padding(x.shape[-2], k, s)
    left, right = same_padding(x.shape[-1], k, s)
    if top == bottom and left == right:
        return x, [top, left]
    return F.pad(x, (left, right, top, bottom)), [0, 0]


class _Eager:
    """A generator layer with F.conv2d (+ leaky ReLU, or + the residual)."""

    def __call__(self, conv, x, act: bool = True, residual=None):
        x, pad = _same_padding(conv, x)
        y = F.conv2d(x, conv.weight, conv.bias, conv.stride, pad)
        if residual is not None:
            return residual + y
        return F.leaky_relu(y, LRELU_SLOPE, inplace=True) if act else y


def _block_taps(k: int, r: int) -> tuple[torch.Tensor, int]:
    """For a k x k "same" convolution run on r x r pixel blocks: (index, padding), where
    ``index[o, q, d]`` is the kernel row (or column) linking output phase ``o`` to input phase
    ``q`` of the block ``d - padding`` away, ``k`` where no tap does (a zero weight)."""
    p = k // 2
    offsets = [d for d in range(-k, k + 1)
               if any(0 <= r * d + q - o + p < k for q in range(r) for o in range(r))]
    index = torch.full((r, r, len(offsets)), k, dtype=torch.long)
    for o in range(r):
        for q in range(r):
            for i, d in enumerate(offsets):
                if 0 <= r * d + q - o + p < k:
                    index[o, q, i] = r * d + q - o + p
    return index, -offsets[0]


def space_to_depth_conv(op, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        r: int = 2) -> torch.Tensor:
    """A stride-1 "same" k x k convolution (k odd, zero padding) of a channels_last (B, C, H, W),
    H and W multiples of ``r``, computed on its r x r pixel blocks: the input as
    (B, r*r*C, H/r, W/r), a (r*r*O, r*r*C, K, K) kernel (K = 5 for k = 7, r = 2) whose taps are
    the original weights or zeros, and the output blocks put back. The same sums in another
    order (max 2e-5 apart on outputs near 10 in fp32). ``op``: oneDNN's pointwise convolution.
    """
    b, c, h, w = x.shape
    o, k = weight.shape[0], weight.shape[-1]
    index, pad = _block_taps(k, r)
    n = index.shape[-1]
    iy = index.view(r, r, n, 1, 1, 1).expand(r, r, n, r, r, n)  # (py, qy, dy, px, qx, dx)
    ix = index.view(1, 1, 1, r, r, n).expand(r, r, n, r, r, n)
    blocked = F.pad(weight, (0, 1, 0, 1))[:, :, iy, ix]          # (O, C, py, qy, dy, px, qx, dx)
    # output channels ordered (py, px, o) and input channels (qy, qx, c): the pixel blocks are
    # then plain reshapes and permutes of the NHWC memory, copied once each way
    blocked = blocked.permute(2, 5, 0, 3, 6, 1, 4, 7).reshape(r * r * o, r * r * c, n, n)
    blocked = blocked.contiguous(memory_format=torch.channels_last)
    bias = bias.repeat(r * r) if bias is not None else None
    u = x.permute(0, 2, 3, 1).reshape(b, h // r, r, w // r, r, c).permute(0, 1, 3, 2, 4, 5)
    u = u.reshape(b, h // r, w // r, r * r * c).permute(0, 3, 1, 2)
    y = op(u, blocked, bias, [pad, pad], [1, 1], [1, 1], 1, "none", [], "")
    y = y.permute(0, 2, 3, 1).reshape(b, h // r, w // r, r, r, o).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(b, h, w, o).permute(0, 3, 1, 2)


class _Fused:
    """A generator layer as one oneDNN primitive: conv + bias + leaky ReLU, or conv + bias +
    the residual (sum post-op), in the input's dtype."""

    def __init__(self, op):
        self.op = op

    def __call__(self, conv, x, act: bool = True, residual=None):
        x, pad = _same_padding(conv, x)
        w, b = conv.weight, conv.bias
        if w.dtype != x.dtype:
            w, b = w.to(x.dtype), b.to(x.dtype) if b is not None else None
        stride, dilation = list(conv.stride), [1, 1]
        if (not act and residual is None and x.dtype == torch.float32 and stride == [1, 1]
                and conv.out_channels <= 4 and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0
                and conv.kernel_size[0] % 2 and pad[0] == pad[1] == conv.kernel_size[0] // 2):
            return space_to_depth_conv(self.op, x, w, b)
        if residual is not None:
            return self.op.binary(x, residual, w, b, pad, stride, dilation, 1, "add", None, None,
                                  [], None)
        if act:
            return self.op(x, w, b, pad, stride, dilation, 1, "leaky_relu", [LRELU_SLOPE], "")
        return self.op(x, w, b, pad, stride, dilation, 1, "none", [], "")
