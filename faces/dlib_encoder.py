"""dlib's face-recognition ResNet and its face-chip alignment, rebuilt in PyTorch.

Sources: Davis E. King's dlib (Boost Software License; http://dlib.net): the network type
``anet_type`` of ``examples/dnn_face_recognition_ex.cpp``, the layer arithmetic of
``dlib/dnn/layers.h`` and ``dlib/cuda/cpu_dlib.cpp``, and the chip geometry of
``get_face_chip_details`` / ``extract_image_chips`` (``dlib/image_transforms/interpolation.h``,
``image_pyramid.h``). The weights are King's ``dlib_face_recognition_resnet_model_v1.dat``
(public domain / CC0 1.0), shipped in ``face-recognition-models==0.3.0`` and read here by the
pure-Python reader of :mod:`faces.dlib_serialize`. The network is a residual network (He et
al., "Deep Residual Learning for Image Recognition", CVPR 2016) trained by King with a metric
loss on about 3 million faces; two faces belong to one person when their 128-D descriptors are
less than 0.6 apart (99.38% on LFW).

The network (input 150x150 RGB; ``(pixel - avg) / 256`` with the file's avg = (122.782,
117.001, 104.298)):

- stem: conv 7x7 stride 2 (32 channels) -> affine -> ReLU -> max pool 3x3 stride 2;
- residual blocks ``relu(branch(x) + shortcut(x))`` with branch = conv3x3 (stride s) -> affine
  -> ReLU -> conv3x3 -> affine: 3 of 32 channels; a down-block + 3 of 64; a down-block + 2 of
  128; a down-block + 2 of 256; one more down-block of 256. A down-block's branch has stride 2
  and its shortcut is a 2x2 stride-2 average pool;
- head: global average pool, fc 256 -> 128 without bias; the raw output is the descriptor.

What decides exactness (each is dlib's behaviour, not a choice): stride-2 convolutions and pools
have no padding (stride-1 3x3 convolutions pad 1); the residual add is dlib's ``add_prev``,
which zero-pads both tensors at the end to the larger channel count and size (the shortcut has
no 1x1 projection, and in the last two levels a 3x3 branch meets a 4x4 pooled shortcut, then a
1x1 branch a 2x2 one); dlib's ``affine`` layers (batch norm frozen into a scale and shift) are
folded here into the convolutions before them, which changes results by float rounding only.

Measured against dlib 20.0.1 (tests/faces/test_dlib_encoder.py): chips from uint8 pixels equal
``dlib.get_face_chip`` on all 95 fixture faces (and 3x enlarged, through dlib's pyramid);
descriptors differ from ``compute_face_descriptor`` by at most 4e-7 from those chips and 2e-5
from float32 images in [-1, 1] (a few chip values one level off).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faces.dlib_serialize import Layer, read_network
from utils.errors import ToonFaceError
from utils.package_files import PackageFile

RESNET_FILE = PackageFile(
    package="face_recognition_models", distribution="face-recognition-models==0.3.0",
    relpath="models/dlib_face_recognition_resnet_model_v1.dat", size=22_466_066,
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    install="pip install face-recognition-models==0.3.0")

CHIP_SIZE = 150       # the input layer is input_rgb_image_sized<150>
CHIP_PADDING = 0.25   # compute_face_descriptor's default padding around the mean face
DESCRIPTOR_SIZE = 128
# (channels, down-block first?, blocks) of the residual levels, input side first.
LEVELS = ((32, False, 3), (64, True, 4), (128, True, 3), (256, True, 3), (256, True, 1))

# dlib's mean face (get_face_chip_details): points 17..67 of the iBUG 300-W markup in a unit
# square, of which the chip fit uses 27..54 and 60..64 (brows and lower lip left out).
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689)
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182)
FIT_POINTS_68 = tuple(i for i in range(27, 68) if not (55 <= i <= 59 or 65 <= i <= 67))
# dlib's 5-point markup (shape_predictor_5_face_landmarks): the two corners of each eye
# (right eye outer, inner; left eye outer, inner) and the bottom of the nose.
_MEAN_FACE_5 = ((0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                (0.4901123135679, 0.6277975316475))


def mean_face(num_points: int, size: int = CHIP_SIZE, padding: float = CHIP_PADDING):
    """(indices, template): which of the ``num_points`` (68 or 5) landmarks the chip fit uses,
    and where dlib puts them in a ``size`` chip with ``padding`` (float64 (K, 2), pixels)."""
    if num_points == 68:
        idx = FIT_POINTS_68
        pts = [(_MEAN_FACE_X[i - 17], _MEAN_FACE_Y[i - 17]) for i in idx]
    elif num_points == 5:
        idx, pts = tuple(range(5)), _MEAN_FACE_5
    else:
        raise ToonFaceError(f"face chips need 68 (iBUG 300-W) or 5 (dlib) landmarks, got "
                            f"{num_points}")
    tpl = (torch.tensor(pts, dtype=torch.float64) + padding) / (2 * padding + 1) * size
    return idx, tpl


def network_type() -> list[Layer]:
    """``anet_type`` as :func:`faces.dlib_serialize.read_network` walks it: the layers from
    the loss to the first convolution, nested as the C++ template type nests them."""
    def con(n, k, stride):  # dlib's con_ pads k/2 at stride 1 and 0 otherwise
        pad = k // 2 if stride == 1 else 0
        return Layer("con", (n, k, k, stride, stride, pad, pad))

    def block(n, stride):  # affine<con<relu<affine<con<stride>>>>>
        return [Layer("affine"), con(n, 3, 1), Layer("relu"), Layer("affine"), con(n, 3, stride)]

    def ares(n):  # relu<add_prev1<block<tag1<...>>>>
        return [Layer("relu"), Layer("add_prev", (1,)), *block(n, 1), Layer("tag", (1,))]

    def ares_down(n):  # relu<add_prev2<avg_pool<skip1<tag2<block<2, tag1<...>>>>>>>
        return [Layer("relu"), Layer("add_prev", (2,)), Layer("avg_pool", (2, 2, 2, 2, 0, 0)),
                Layer("skip", (1,)), Layer("tag", (2,)), *block(n, 2), Layer("tag", (1,))]

    net = [Layer("loss_metric"), Layer("fc", (DESCRIPTOR_SIZE,)),
           Layer("avg_pool", (0, 0, 1, 1, 0, 0))]
    for channels, down, blocks in reversed(LEVELS):
        net += [x for _ in range(blocks - down) for x in ares(channels)]
        net += ares_down(channels) if down else []
    return net + [Layer("max_pool", (3, 3, 2, 2, 0, 0)), Layer("relu"), Layer("affine"),
                  con(32, 7, 2)]


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two (B, C, H, W) tensors, each zero-padded at the end
    (channels, rows, columns) to the larger of the two sizes."""
    if a.shape == b.shape:
        return a + b
    size = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:])]

    def pad(t):
        c, h, w = (s - n for s, n in zip(size, t.shape[1:]))
        return F.pad(t, (0, w, 0, h, 0, c)) if c or h or w else t

    return pad(a) + pad(b)


def _conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, as a matrix product where the output is a single pixel: both convolutions
    of the last down-block (3x3 stride 2 of a 4x4 input, then 3x3 padded of that 1x1).

    Why: oneDNN's backward pass of a convolution with a 1x1 output splits its sum over
    threads in a varying order, so with 2 threads the input gradient of a single face
    changed in its last bits from one call to the next (36 of 50 calls differed; PyTorch 2.13
    CPU, fp32), and the identity term was not bitwise across ``--resume``. The matrix product
    over the same (zero-padded) window is the same sum in another order (fp32 results differ
    from the convolution's by up to 7e-7, so descriptors moved in their last bits with this
    change, and a run with the identity term resumed across it is not bitwise) and repeats bit
    for bit. Any other convolution (another output size, padding mode, or an unbatched input)
    is ``conv(x)`` itself.
    """
    if (x.dim() != 4 or conv.groups != 1 or conv.dilation != (1, 1)
            or conv.padding_mode != "zeros" or not isinstance(conv.padding, tuple)):
        return conv(x)
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    h, w = x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw
    if h < kh or w < kw or (h - kh) // sh != 0 or (w - kw) // sw != 0:
        return conv(x)
    window = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    patch = window[:, :, :kh, :kw].reshape(x.shape[0], -1)
    weight = conv.weight.reshape(conv.out_channels, -1)
    return F.linear(patch, weight, conv.bias)[:, :, None, None]


class _Residual(nn.Module):
    """relu(add_prev(affine(conv(relu(affine(conv_s(x))))), shortcut(x))), affines folded."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        y = _conv(self.conv2, F.relu(_conv(self.conv1, x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_prev(y, shortcut))


class DlibFaceEncoder(nn.Module):
    """dlib's face-recognition ResNet (frozen, always in eval mode) with its face-chip alignment.

    - :meth:`forward`: ready chips (B, 3, 150, 150) RGB on dlib's pixel scale, [0, 255] -> (B,
      128) descriptors (float32), the raw output of dlib's network: same person when two are
      less than 0.6 apart.
    - :meth:`chip`: images (B, 3, H, W) RGB in [-1, 1] and landmarks (B, 68, 2) or (B, 5, 2)
      in pixels (x, y) -> (B, 3, 150, 150) chips in [0, 255], dlib's ``get_face_chip``.
    - :meth:`descriptor`: both, ``images, landmarks -> (B, 128)``.

    Every step is differentiable in the images (and in the landmarks); the weights are frozen.
    The module runs in float32, bfloat16 (``.to(torch.bfloat16)`` or CPU/CUDA autocast: the
    descriptor moves by about 1e-2, against 0.6 between persons) or float64. Build it with
    :meth:`from_package` (or :meth:`from_file`); ``DlibFaceEncoder()`` has zero weights.
    """

    def __init__(self, avg_rgb=(122.782, 117.001, 104.298)):
        super().__init__()
        # A plain tuple, not a buffer: .to(torch.bfloat16) would round 122.782 to 123.
        self.avg_rgb = tuple(float(v) for v in avg_rgb)
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        blocks, cin = [], 32
        for channels, down, count in LEVELS:
            for i in range(count):
                blocks.append(_Residual(cin, channels, down and i == 0))
                cin = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(256, DESCRIPTOR_SIZE, bias=False)
        nn.init.zeros_(self.fc.weight)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "DlibFaceEncoder":
        return super().train(False)  # frozen: no batch statistics to update, ever

    # ------------------------------------------------------------------ weights

    @classmethod
    def from_package(cls) -> "DlibFaceEncoder":
        """The encoder with the weights of ``face-recognition-models==0.3.0``, located without
        importing the package and checked by size and sha256 first. Raises ToonFaceError (one
        line naming the file and how to install it) when it is missing, truncated or altered."""
        return cls.from_file(RESNET_FILE.path())

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "DlibFaceEncoder":
        """The encoder with the weights of a dlib ``anet_type`` file (no checksum: any file
        with this network type, e.g. a retrained one). Raises ToonFaceError (one line) for a
        file that is missing, unreadable or not this network."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ToonFaceError(f"{path}: cannot read it "
                                f"({exc.strerror or type(exc).__name__})") from None
        parsed = read_network(data, network_type(), str(path), (CHIP_SIZE, CHIP_SIZE))
        net = cls(parsed.avg_rgb)
        net._load(parsed.layers, str(path))
        return net.to(memory_format=torch.channels_last)

    def _load(self, layers, source: str) -> None:
        """Copy the parsed layers (input side first) into the modules, folding each affine
        (y = gamma * x + beta) into the convolution before it, in float64. Raises
        ToonFaceError when a weight's shape is not this network's."""
        def tensor(arrays, key, target_shape):
            value = torch.from_numpy(np.array(arrays[key], np.float64))
            if tuple(value.shape) != tuple(target_shape):
                raise ToonFaceError(f"{source}: {key} of shape {tuple(value.shape)} where the "
                                    f"network has {tuple(target_shape)}")
            return value

        convs = iter([self.stem] + [c for b in self.blocks for c in (b.conv1, b.conv2)])
        for layer, arrays in layers:
            if layer.kind == "con":
                conv = next(convs)
                w = tensor(arrays, "weight", conv.weight.shape)
                b = tensor(arrays, "bias", conv.bias.shape)
            elif layer.kind == "affine":
                gamma = tensor(arrays, "gamma", conv.bias.shape)
                beta = tensor(arrays, "beta", conv.bias.shape)
                conv.weight.copy_(w * gamma.view(-1, 1, 1, 1))
                conv.bias.copy_(b * gamma + beta)
            elif layer.kind == "fc":  # stored (inputs, outputs)
                self.fc.weight.copy_(tensor(arrays, "weight", self.fc.weight.shape[::-1]).t())

    # ------------------------------------------------------------------ network

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """(B, 3, 150, 150) RGB chips in [0, 255] (dlib's uint8 scale, any float dtype) ->
        (B, 128) float32 descriptors. Raises ValueError for another shape."""
        if chips.dim() != 4 or tuple(chips.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"DlibFaceEncoder expects (B, 3, {CHIP_SIZE}, {CHIP_SIZE}) RGB chips "
                             f"in [0, 255], got {tuple(chips.shape)}")
        dtype = self.stem.weight.dtype
        work = torch.float64 if dtype == torch.float64 else torch.float32
        avg = torch.tensor(self.avg_rgb, dtype=work, device=chips.device).view(1, 3, 1, 1)
        x = ((chips.to(work) - avg) / 256.0).to(dtype)  # dlib's input layer
        # One memory format whatever the caller's strides: oneDNN sums in another order for
        # each, and channels_last is the faster (bf16 about 1.7x on 2 cores).
        x = x.contiguous(memory_format=torch.channels_last)
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean((2, 3))).float()

    # ------------------------------------------------------------------ alignment

    def chip(self, images: torch.Tensor, landmarks: torch.Tensor, truncate: bool = True
             ) -> torch.Tensor:
        """dlib's 150x150 face chips (``get_face_chip(img, shape, 150, 0.25)``).

        images: (B, 3, H, W) RGB in [-1, 1]; landmarks: (B, 68, 2) iBUG 300-W or (B, 5, 2)
        dlib 5-point, pixels (x, y) of the images. Returns (B, 3, 150, 150) RGB in [0, 255],
        float32 (float64 for float64 images). truncate: round down to whole levels as dlib's
        uint8 chip does (the gradient passes straight through); False keeps the bilinear
        values. Computed in float64 (see :func:`extract_face_chips`); from images that were
        uint8, about 2e-5 of the chip's values differ from dlib's, by one level.
        Raises ValueError for other shapes.
        """
        check_images(images, landmarks)
        chips = extract_face_chips(images, landmarks, truncate=truncate,
                                   tolerance=FLOAT_TOLERANCE, value_range=(-1.0, 1.0))
        return chips if images.dtype == torch.float64 else chips.float()

    def descriptor(self, images: torch.Tensor, landmarks: torch.Tensor,
                   truncate: bool = True) -> torch.Tensor:
        """(B, 3, H, W) RGB images in [-1, 1] and (B, 68 or 5, 2) pixel landmarks (x, y) ->
        (B, 128) float32 descriptors, as ``compute_face_descriptor(img, shape)`` (no jitter)."""
        return self(self.chip(images, landmarks, truncate=truncate))


def check_images(images: torch.Tensor, landmarks: torch.Tensor) -> None:
    """Raise ValueError unless images are float (B, 3, H, W) and landmarks (B, 68 or 5, 2)."""
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (B, 3, H, W) RGB in [-1, 1], got "
                         f"{tuple(images.shape)} {images.dtype}")
    if (landmarks.dim() != 3 or landmarks.shape[0] != images.shape[0]
            or landmarks.shape[1] not in (68, 5) or landmarks.shape[2] != 2):
        raise ValueError(f"landmarks must be (B, 68, 2) or (B, 5, 2) pixels (x, y) for "
                         f"{images.shape[0]} images, got {tuple(landmarks.shape)}")


# ---------------------------------------------------------------------------------- chips

def chip_geometry(landmarks: torch.Tensor, size: int = CHIP_SIZE, padding: float = CHIP_PADDING):
    """dlib's ``get_face_chip_details``: the similarity transform from the mean face to the
    landmarks (Umeyama's least squares, which in 2-D has a closed form), as the chip's
    (center (B, 2), angle (B,), scale (B,)), float64. dlib's chip rectangle is
    ``centered_drect(center, size * scale, size * scale)``, rotated by ``angle``."""
    idx, tpl = mean_face(landmarks.shape[1], size, padding)
    to = landmarks[:, list(idx)].to(torch.float64)
    tpl = tpl.to(to.device)
    p = tpl - tpl.mean(0)
    q = to - to.mean(1, keepdim=True)
    sigma = (p ** 2).sum(1).mean()
    cov = torch.einsum("bki,kj->bij", q, p) / p.shape[0]  # mean of q p^T
    a = (cov[:, 0, 0] + cov[:, 1, 1]) / sigma  # c*R = [[a, -b], [b, a]]
    b = (cov[:, 1, 0] - cov[:, 0, 1]) / sigma
    m = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)
    t = to.mean(1) - m @ tpl.mean(0)
    center = m @ torch.tensor([size / 2.0, size / 2.0], dtype=torch.float64, device=to.device) + t
    return center, torch.atan2(b, a), torch.sqrt(a * a + b * b)


# Levels added before rounding a chip down when its pixels carry float error: a uint8 image
# stored as float32 in [-1, 1] comes back as 37 +- 1.5e-5 on dlib's scale (measured on the 95
# fixture faces: 0.65% of the chip's values one level low without it, 0.0016% one level off
# with it).
FLOAT_TOLERANCE = 1e-5


def _floor_st(x: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """floor(x + tolerance) forward, identity backward (straight-through)."""
    return x + (torch.floor(x + tolerance) - x).detach()


def pyramid_down(pixels: torch.Tensor, truncate: bool = True, tolerance: float = 0.0
                 ) -> torch.Tensor:
    """dlib's ``pyramid_down<2>`` of (N, 3, H, W) pixels in [0, 255]: a 5x5 binomial filter
    ([1 4 6 4 1] / 16 each way) without padding, keeping every other row and column, so
    ((H-3)//2, (W-3)//2) out; uint8 division rounds down (truncate, see
    :func:`extract_face_chips` for tolerance)."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=pixels.dtype, device=pixels.device)
    k = (k1[:, None] * k1[None, :] / 256.0).expand(3, 1, 5, 5)
    out = F.conv2d(pixels, k, stride=2, groups=3)
    return _floor_st(out, tolerance) if truncate else out


def _bilinear(images: torch.Tensor, points: torch.Tensor, lo: float, gain: float) -> torch.Tensor:
    """dlib's ``interpolate_bilinear`` of (b, 3, H, W) images at (b, N, 2) points (x, y), on
    dlib's scale ``(value - lo) * gain``, in float64: 0 wherever a neighbour (floor or
    floor + 1) falls outside the image, as dlib leaves such chip pixels black. -> (b, 3, N)."""
    b, _, h, w = images.shape
    n = points.shape[1]
    if h < 2 or w < 2:
        return torch.zeros(b, 3, n, dtype=torch.float64, device=images.device)
    x, y = points[..., 0], points[..., 1]
    left, top = torch.floor(x).detach(), torch.floor(y).detach()
    fx, fy = (x - left)[:, None], (y - top)[:, None]
    inside = ((left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h))[:, None]
    index = (top.clamp(0, h - 2) * w + left.clamp(0, w - 2)).long()
    index = torch.cat([index, index + 1, index + w, index + w + 1], 1)  # tl, tr, bl, br
    vals = images.reshape(b, 3, h * w).gather(2, index[:, None].expand(b, 3, 4 * n))
    vals = vals.to(torch.float64)
    if lo != 0.0 or gain != 1.0:
        vals = (vals - lo) * gain
    tl, tr, bl, br = vals.split(n, 2)
    # dlib's order of operations, so that whole-level results round down as dlib's do.
    top_row = (1 - fx) * tl + fx * tr
    bottom_row = (1 - fx) * bl + fx * br
    return ((1 - fy) * top_row + fy * bottom_row) * inside


def _point_down(p: torch.Tensor) -> torch.Tensor:
    """``pyramid_down<2>::point_down``: where an image point lands one level down."""
    return p / 2.0 - torch.tensor([1.25, 0.75], dtype=p.dtype, device=p.device)


def _rotated_corners(rect: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(b, 4, 2) corners tl, tr, bl, br of (b, 2, 2) rectangles (tl, br), rotated about their
    centres by the angle of (cos, sin) (dlib's ``rotate_point``)."""
    (l, t), (r, bt) = rect[:, 0].unbind(-1), rect[:, 1].unbind(-1)
    corners = torch.stack([torch.stack([l, t], -1), torch.stack([r, t], -1),
                           torch.stack([l, bt], -1), torch.stack([r, bt], -1)], 1)
    c = rect.mean(1, keepdim=True)
    d = corners - c
    rot = torch.stack([cos[:, None] * d[..., 0] - sin[:, None] * d[..., 1],
                       sin[:, None] * d[..., 0] + cos[:, None] * d[..., 1]], -1)
    return rot + c


def _chip_points(rect: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, size: int
                 ) -> torch.Tensor:
    """Where each chip pixel samples, (b, size * size, 2) (x, y), row-major: dlib maps the
    chip's corners (0, 0), (size - 1, 0), (0, size - 1) onto the rotated rectangle's tl, tr, bl
    (``find_affine_transform`` of three points)."""
    tl, tr, bl, _ = _rotated_corners(rect, cos, sin).unbind(1)
    g = torch.arange(size, dtype=torch.float64, device=rect.device) / (size - 1)
    pts = (tl[:, None, None] + g[None, None, :, None] * (tr - tl)[:, None, None]
           + g[None, :, None, None] * (bl - tl)[:, None, None])
    return pts.reshape(rect.shape[0], size * size, 2)


def extract_face_chips(images: torch.Tensor, landmarks: torch.Tensor, size: int = CHIP_SIZE,
                       padding: float = CHIP_PADDING, truncate: bool = True,
                       tolerance: float = 0.0, value_range: tuple[float, float] = (0.0, 255.0)
                       ) -> torch.Tensor:
    """dlib's ``extract_image_chips(img, get_face_chip_details(shape, size, padding))``.

    images: (B, 3, H, W) RGB whose ``value_range`` maps linearly onto dlib's [0, 255] (any
    float dtype; the chip is computed in float64 from the gathered values, so float64 or
    float32 copies of uint8 images give dlib's chips exactly: all 95 fixture faces, small and
    3x enlarged, identical); landmarks: (B, 68 or 5, 2) pixels (x, y). Returns (B, 3, size,
    size) float64 in [0, 255]. truncate: round down to whole levels as dlib's uint8 chip does
    (a straight-through gradient); tolerance: levels added before that rounding, for values
    that carry float error (:data:`FLOAT_TOLERANCE`). Differentiable in the images and the
    landmarks (landmarks all at one point, no face, give a zero-size chip and NaN gradients:
    leave such faces out). Raises ValueError for non-finite landmarks.

    dlib's steps, each reproduced: chip pixel (c, r) samples the image at the rotated chip
    rectangle's corners interpolated (the rectangle is ``size * scale`` wide from corner to
    corner *inclusive*, so one chip pixel is ``(size * scale - 1) / (size - 1)`` image pixels);
    bilinear interpolation, black where a neighbour is outside the image; truncation to uint8.
    When the rectangle is more than about twice the chip (``scale`` > 1.99), dlib first halves
    the region around the face with ``pyramid_down<2>`` as often as needed (its own, slightly
    offset point mapping included), so that large faces are low-pass filtered, not aliased.
    """
    if not bool(torch.isfinite(landmarks).all()):
        raise ValueError("face chips need finite landmarks")
    lo, hi = value_range
    gain = 255.0 / (hi - lo)
    center, angle, scale = chip_geometry(landmarks, size, padding)
    half = (size * scale - 1) / 2  # centered_drect: right - left = width - 1
    rect = torch.stack([center - half[:, None], center + half[:, None]], 1)  # (B, tl/br, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    levels = [_pyramid_levels(2 * h + 1, size) for h in half.tolist()]
    parts = {}
    direct = [i for i, n in enumerate(levels) if n == 0]
    if direct:
        pts = _chip_points(rect[direct], cos[direct], sin[direct], size)
        for i, v in zip(direct, _bilinear(images[direct], pts, lo, gain)):
            parts[i] = v
    for i, n in enumerate(levels):
        if n:
            region, r = _pyramid_region(images[i], rect[i], cos[i], sin[i], n, lo, gain,
                                        truncate, tolerance)
            pts = _chip_points(r[None], cos[i:i + 1], sin[i:i + 1], size)
            parts[i] = _bilinear(region[None], pts, 0.0, 1.0)[0]
    out = torch.stack([parts[i] for i in range(len(levels))]).reshape(-1, 3, size, size)
    return _floor_st(out, tolerance) if truncate else out


def _pyramid_levels(width: float, size: int) -> int:
    """How many ``pyramid_down<2>`` steps dlib takes for a square chip rectangle ``width``
    pixels wide (corner to corner inclusive): while one more step leaves it above size**2."""
    levels = 0
    while True:
        width = (width - 1) / 2 + 1  # rect_down: corners halved
        if width * width <= size * size:
            return levels
        levels += 1


def _pyramid_region(image, rect, cos, sin, levels, lo, gain, truncate, tolerance):
    """The pyramid level dlib samples for a large face, on its [0, 255] scale, and the chip
    rectangle (tl, br) in that level's frame.

    dlib crops the image to the rotated rectangle's bounding box grown by 6, 14, 30...
    pixels (``grow = 2 * grow + 2`` per level, from 2), clipped to the image and rounded to
    whole pixels, then halves that crop ``levels`` times; the rectangle follows by
    ``point_down``.
    """
    grow = 2.0
    for _ in range(levels):
        grow = grow * 2 + 2
    h, w = image.shape[-2:]
    with torch.no_grad():
        pts = _rotated_corners(rect[None], cos[None], sin[None])[0]
        (x0, y0) = (pts.min(0).values - grow).tolist()
        (x1, y1) = (pts.max(0).values + grow).tolist()
        box = [_lround(max(x0, 0.0)), _lround(max(y0, 0.0)), _lround(min(x1, w - 1.0)),
               _lround(min(y1, h - 1.0))]
    region = image[None, :, box[1]:box[3] + 1, box[0]:box[2] + 1].to(torch.float64)
    region = (region - lo) * gain if (lo, gain) != (0.0, 1.0) else region
    rect = rect - torch.tensor([box[0], box[1]], dtype=rect.dtype, device=rect.device)
    for _ in range(levels):
        if min(region.shape[-2:]) <= 8:  # dlib's pyramid_down leaves an empty image
            region = region[..., :0, :0]
            break
        region = pyramid_down(region, truncate, tolerance)
    for _ in range(levels):
        rect = _point_down(rect)
    return region[0], rect


def _lround(v: float) -> int:
    """C's lround: halves away from zero."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)
