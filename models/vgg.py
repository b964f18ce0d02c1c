"""VGG19 features conv1_1 .. conv4_4 (conv4_4 returned before its ReLU), frozen.

Two weight formats are read, each with its own input preprocessing from [-1, 1] RGB:

- torchvision ``vgg19-dcbb9e9d.pth`` (a state dict ``features.<i>.weight/bias``): RGB in [0, 1],
  normalised by the ImageNet mean/std.
- white-box ``vgg19_no_fc.npy`` (a pickled dict ``layer name -> [HWIO weight, bias]``): Caffe
  order, BGR in 0..255 minus the Caffe channel means. Read by a restricted unpickler
  (utils/safe_pickle.py): a file that would run code when loaded is refused.

Weight lookup (:func:`resolve_vgg_weights`): ``--vgg-weights PATH``, then the torch hub cache,
then ``checkpoints/``; a download is tried only where the network answers; otherwise a
``ToonFaceError`` says exactly which file to put where. ``"random"`` (demo and tests only)
gives seeded random features and says so in the log.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import ToonFaceError
from utils.safe_pickle import load_pickled_npy

log = logging.getLogger(__name__)

# (name, in, out) for every conv up to conv4_4; "pool" marks a 2x2 max pool.
VGG19_LAYERS = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256), "pool",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512),
]
CONV_NAMES = [layer[0] for layer in VGG19_LAYERS if layer != "pool"]
# torchvision's features.<index> for each conv (ReLUs and pools take the other indices).
TORCHVISION_INDEX = dict(zip(CONV_NAMES, [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25]))

TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
WHITEBOX_FILE = "vgg19_no_fc.npy"
TORCHVISION_URL = "https://download.pytorch.org/models/" + TORCHVISION_FILE
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
FORMATS = ("torchvision", "npy", "random")


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2, 2)``; on the CPU without autograd, as the maximum of 4 strided views.

    Same values (odd sizes drop the last row/column, as max_pool2d does). On 2 CPU cores the
    views are 2-5x faster: ATen's channels_last max pool runs a (B, 64, 128, 128) bf16 map in
    10 ms with 2 threads (3.6 ms with one), the views in 2 ms. With autograd the ATen kernel
    stays: its backward routes each gradient to one element, as TF's does.
    """
    if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
        return F.max_pool2d(x, 2, 2)
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class VGG19Features(nn.Module):
    """conv4_4 (pre-ReLU) features of VGG19; parameters are frozen (no gradients).

    Args:
        fmt: "torchvision", "npy" or "random": selects the input preprocessing.
    Input (B, 3, H, W) RGB in [-1, 1]; output (B, 512, H/8, W/8).
    Build it with :meth:`from_file`, :meth:`random` or :func:`build_vgg`.
    """

    def __init__(self, fmt: str = "torchvision"):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"VGG19Features format must be one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt
        self.convs = nn.ModuleDict({name: nn.Conv2d(cin, cout, 3, padding=1)
                                    for name, cin, cout in (l for l in VGG19_LAYERS if l != "pool")})
        if fmt == "npy":
            mean, std = torch.tensor(CAFFE_MEAN_BGR), torch.ones(3)
        else:  # random features use the torchvision preprocessing
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        # Frozen feature extractor: always in eval mode, whatever the trainer asks.
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] RGB -> the network's input space (see the module docstring)."""
        if self.fmt == "npy":
            x = (x.flip(1) + 1.0) * 127.5  # RGB -> BGR, 0..255
        else:
            x = (x + 1.0) * 0.5
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features expects (B, 3, H, W) RGB in [-1, 1], got {tuple(x.shape)}")
        x = self.preprocess(x)
        for layer in VGG19_LAYERS:
            if layer == "pool":
                x = max_pool2x2(x)
                continue
            x = self.convs[layer[0]](x)
            if layer[0] != "conv4_4":
                x = F.relu(x, inplace=True)  # fresh conv output; backward needs only the result
        return x

    @classmethod
    def random(cls, seed: int = 0) -> "VGG19Features":
        """Seeded random features (He init), for demos and tests only."""
        net = cls("random")
        gen = torch.Generator().manual_seed(seed)
        for conv in net.convs.values():
            fan_in = conv.weight[0].numel()
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            conv.bias.zero_()
        return net

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "VGG19Features":
        """Load white-box ``.npy`` (by suffix) or torchvision ``.pth`` (anything else) weights."""
        path = Path(path)
        if not path.is_file():
            raise ToonFaceError(f"VGG weights file not found: {path}")
        if path.suffix == ".npy":
            return cls._from_npy(path)
        return cls._from_torchvision(path)

    @classmethod
    def _from_torchvision(cls, path: Path) -> "VGG19Features":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
            raise ToonFaceError(
                f"{path}: not a readable torchvision VGG19 state dict ({type(exc).__name__}); "
                f"expected {TORCHVISION_FILE} with keys features.<i>.weight/bias"
            ) from None
        if not isinstance(state, dict):
            raise ToonFaceError(f"{path}: expected a VGG19 state dict, got {type(state).__name__}")
        net = cls("torchvision")
        for name, index in TORCHVISION_INDEX.items():
            conv = net.convs[name]
            for attr in ("weight", "bias"):
                key = f"features.{index}.{attr}"
                _copy_checked(path, key, state.get(key), getattr(conv, attr))
        return net

    @classmethod
    def _from_npy(cls, path: Path) -> "VGG19Features":
        # A pickle: read by the restricted unpickler, which admits arrays and builtin containers
        # only, so a file cannot run code (as np.load(allow_pickle=True) would let it).
        data = load_pickled_npy(path, encoding="latin1", what=f"white-box {WHITEBOX_FILE} (a "
                                "pickled dict of layer name -> [HWIO weight, bias])")
        if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
            data = data.item()
        if not isinstance(data, dict):
            raise ToonFaceError(f"{path}: expected a dict of layer name -> [HWIO weight, bias]")
        net = cls("npy")
        for name in CONV_NAMES:
            entry = data.get(name)
            conv = net.convs[name]
            hwio = tuple(conv.weight.shape[i] for i in (2, 3, 1, 0))
            try:
                weight = np.asarray(entry[0], dtype=np.float32)
                bias = torch.from_numpy(np.asarray(entry[1], dtype=np.float32))
                if len(entry) != 2 or weight.ndim != 4:
                    raise ValueError
            except (TypeError, ValueError, IndexError, KeyError):
                raise ToonFaceError(f"{path}: layer {name} missing or malformed; expected "
                                    f"[HWIO weight {hwio}, bias ({conv.out_channels},)]") from None
            weight = torch.from_numpy(weight).permute(3, 2, 0, 1)
            _copy_checked(path, name + " weight (as OIHW)", weight, net.convs[name].weight)
            _copy_checked(path, name + " bias", bias, net.convs[name].bias)
        return net


def _copy_checked(path: Path, key: str, value, target: torch.Tensor) -> None:
    if value is None:
        raise ToonFaceError(f"{path}: missing {key}; expected shape {tuple(target.shape)}")
    if not torch.is_tensor(value):
        raise ToonFaceError(f"{path}: {key} is a {type(value).__name__}, expected a tensor of "
                            f"shape {tuple(target.shape)}")
    if tuple(value.shape) != tuple(target.shape):
        raise ToonFaceError(
            f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
        )
    target.copy_(value.to(target.dtype))


def hub_checkpoint_dir() -> Path:
    """torch hub's cache folder for weights ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _network_available(host: str = "download.pytorch.org", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_vgg_weights(spec: str | None, checkpoints_dir: str | os.PathLike = "checkpoints",
                        allow_download: bool = True) -> str:
    """Return the path of the VGG weights to use, or "random" when asked for explicitly.

    Order: ``spec`` (a path, or "random"), the torch hub cache, ``checkpoints_dir``, then a
    download of torchvision's file into the hub cache where the network answers.
    """
    if spec == "random":
        return "random"
    if spec:
        if not Path(spec).is_file():
            raise ToonFaceError(f"--vgg-weights {spec}: file not found")
        return str(spec)
    candidates = [hub_checkpoint_dir() / TORCHVISION_FILE,
                  Path(checkpoints_dir) / TORCHVISION_FILE, Path(checkpoints_dir) / WHITEBOX_FILE]
    for cand in candidates:
        if cand.is_file():
            return str(cand)
    if allow_download and _network_available():
        target = hub_checkpoint_dir() / TORCHVISION_FILE
        log.info("downloading VGG19 weights to %s", target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # download_url_to_file does not
            torch.hub.download_url_to_file(TORCHVISION_URL, str(target), progress=True)
            return str(target)
        except Exception as exc:  # noqa: BLE001
            log.warning("VGG19 download failed: %s", exc)
    raise ToonFaceError(
        f"VGG19 weights not found: put torchvision's {TORCHVISION_FILE} in {candidates[0].parent}/ "
        f"or {Path(checkpoints_dir)}/, or white-box's {WHITEBOX_FILE} in {Path(checkpoints_dir)}/, "
        "or pass --vgg-weights PATH (--vgg-weights random only for demos)"
    )


def build_vgg(spec: str | None, checkpoints_dir: str | os.PathLike = "checkpoints",
              seed: int = 0, allow_download: bool = True) -> VGG19Features:
    """Resolve and load the VGG19 feature extractor (see :func:`resolve_vgg_weights`)."""
    resolved = resolve_vgg_weights(spec, checkpoints_dir, allow_download)
    if resolved == "random":
        log.warning("VGG19 uses RANDOM weights (--vgg-weights random): content and structure "
                    "losses are not perceptual; use real weights for real training")
        return VGG19Features.random(seed)
    log.info("VGG19 weights: %s", resolved)
    return VGG19Features.from_file(resolved)
