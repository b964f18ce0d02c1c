"""mediapipe's FaceMesh landmark network, rebuilt in PyTorch from the ``.tflite`` file that the
mediapipe 0.10.21 wheel ships, plus the face crop that feeds it.

Source: Kartynnik, Ablavatski, Grishchenko, Grundmann, "Real-time Facial Surface Geometry from
Monocular Video on Mobile GPUs" (CVPR Workshops 2019, arXiv:1907.06724); the model file is
``mediapipe/modules/face_landmark/face_landmark.tflite`` (Apache 2.0), 1,242,398 bytes, its
sha256 pinned below.

The network (:class:`FaceMeshNet`): a 192x192 RGB crop in [0, 1] to 468 3-D landmarks in crop
pixels and a face-presence logit. It is a residual MobileNet-like stack of 210 TFLite operators:
DEQUANTIZE (fp16 constants to fp32), CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D and PAD
(channel padding of the pooled shortcuts). The graph is not written out by hand: the module is a
graph walker built from the file's own operator list (read with the pure-Python ``tflite``
flatbuffers package), so what runs is what the file says. Two layout facts decide exactness:
TFLite is NHWC with OHWI convolution kernels and 1HWC depthwise kernels (converted to PyTorch's
OIHW once, at build time), and TFLite's "SAME" padding puts the extra row/column of a stride-2
layer at the bottom/right (applied with ``F.pad`` before an unpadded convolution).

Measured against the LiteRT interpreter (``ai_edge_litert``) on FFHQ crops and noise: see
:class:`FaceMeshNet`.

The crop (:func:`face_boxes`, :func:`crop_faces`, :func:`crop_to_image`): mediapipe's own
pipeline (``FaceLandmarkLandmarksToRoi``) takes the axis-aligned box around the landmarks,
rotates it so that the line from point 33 to point 263 (the outer eye corners) is horizontal,
makes it square on its longer side and scales it by 1.5 (a 25% margin on each side), then
samples that square to 192x192 with the border replicated. The helpers do the same, from 468
FaceMesh points or dlib's 68 points (outer eye corners 36 and 45), with ``grid_sample``, so the
crop is differentiable with respect to the images (the landmark losses need that).

Coordinates are continuous pixels, as in ``faces``: pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``; crop coordinate ``u`` in ``[0, 192]`` spans the box edge to edge
(mediapipe's normalised landmark times 192).

Nothing is downloaded and nothing is unpickled; ``import faces.facemesh`` imports torch and
numpy only (``tflite`` when a model is built).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import ToonFaceError
from utils.package_files import PackageFile

FACE_LANDMARK_FILE = PackageFile(
    package="mediapipe",
    distribution="mediapipe==0.10.21",
    relpath="modules/face_landmark/face_landmark.tflite",
    size=1_242_398,
    sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    install="pip install mediapipe==0.10.21 'numpy<2' (Python < 3.13)",
)
TFLITE_REQUIREMENT = "tflite==2.18.0"

CROP_SIZE = 192               # the network's input side, pixels
NUM_LANDMARKS = 468
LANDMARKS_TENSOR = "conv2d_21"  # (1, 1, 1, 1404): 468 x (x, y, z) in crop pixels
LOGIT_TENSOR = "conv2d_31"      # (1, 1, 1, 1): face presence, before the sigmoid
# mediapipe's FaceLandmarkLandmarksToRoi: RectTransformationCalculator scale_x = scale_y = 1.5,
# square_long; DetectionsToRectsCalculator rotation from keypoint 33 to 263, target angle 0.
BOX_SCALE = 1.5
# Outer eye corners (image-left, image-right) that set the box's rotation, by topology size:
# FaceMesh 33/263 (faces/topology.py), iBUG-68 36/45. Repeated here so that importing the
# network imports no image decoding (faces/__init__.py imports the landmark modules).
EYE_CORNERS = {468: (33, 263), 68: (36, 45)}

# TFLite's tensor types that can hold constants here (schema.fbs TensorType).
_TFLITE_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
_SUPPORTED_OPS = ("DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "ADD", "MAX_POOL_2D", "PAD")
# schema.fbs ActivationFunctionType: the fused activations this walker applies.
_ACTIVATIONS = {0: None, 1: "RELU", 3: "RELU6"}
_PADDING_SAME, _PADDING_VALID = 0, 1


# ---------------------------------------------------------------------------------------------
# Reading the .tflite file (plain data: numpy arrays and tuples)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of the graph: name, NHWC shape, and its constant value (or None)."""
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None


@dataclass(frozen=True)
class TFLiteOp:
    """One operator: builtin name, input and output tensor indices (-1: absent optional input),
    and the options this walker reads (padding, strides, fused activation, ...)."""
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class TFLiteGraph:
    """Subgraph 0 of a ``.tflite`` model: tensors, operators in execution order, graph inputs
    and outputs (tensor indices). ``source`` names the file in error messages."""
    source: str
    tensors: tuple[TFLiteTensor, ...]
    ops: tuple[TFLiteOp, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def index(self, name: str) -> int:
        """Index of the tensor called ``name``; ToonFaceError if there is none."""
        for i, t in enumerate(self.tensors):
            if t.name == name:
                return i
        raise ToonFaceError(f"{self.source}: no tensor named {name} (not mediapipe's FaceMesh model)")


def _read_options(tflite, op, kind: str) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "ADD") and table is None:
        raise ValueError(f"{kind} without options")
    if kind == "CONV_2D":
        o = tflite.Conv2DOptions()
    elif kind == "DEPTHWISE_CONV_2D":
        o = tflite.DepthwiseConv2DOptions()
    elif kind == "MAX_POOL_2D":
        o = tflite.Pool2DOptions()
    elif kind == "ADD":
        o = tflite.AddOptions()
    else:
        return {}
    o.Init(table.Bytes, table.Pos)
    opts = {"activation": o.FusedActivationFunction()}
    if kind != "ADD":
        opts.update(padding=o.Padding(), stride=(o.StrideH(), o.StrideW()))
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opts["dilation"] = (o.DilationHFactor(), o.DilationWFactor())
    if kind == "DEPTHWISE_CONV_2D":
        opts["multiplier"] = o.DepthMultiplier()
    if kind == "MAX_POOL_2D":
        opts["filter"] = (o.FilterHeight(), o.FilterWidth())
    return opts


def _parse_tflite(buf: bytes, source: str) -> TFLiteGraph:
    import tflite  # pure-Python flatbuffers reader; imported here, not at module import

    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{model.SubgraphsLength()} subgraphs, expected 1")
    builtin_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    kinds = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.CustomCode():
            kinds.append("CUSTOM:" + code.CustomCode().decode(errors="replace"))
        else:
            # Codes above 127 live in BuiltinCode; older files keep theirs in the deprecated byte.
            number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kinds.append(builtin_names.get(number, f"builtin #{number}"))
    graph = model.Subgraphs(0)
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = None
        raw = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() < model.BuffersLength() else 0
        if isinstance(raw, np.ndarray) and raw.size:
            if t.Type() not in _TFLITE_DTYPES:
                raise ValueError(f"constant tensor {t.Name()!r} of TFLite type {t.Type()}")
            dtype = np.dtype(_TFLITE_DTYPES[t.Type()]).newbyteorder("<")
            data = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape)
        tensors.append(TFLiteTensor(t.Name().decode(errors="replace"), shape, data))
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        kind = kinds[op.OpcodeIndex()]
        ops.append(TFLiteOp(kind, tuple(int(j) for j in op.InputsAsNumpy()),
                            tuple(int(j) for j in op.OutputsAsNumpy()),
                            _read_options(tflite, op, kind) if kind in _SUPPORTED_OPS else {}))
    return TFLiteGraph(source, tuple(tensors), tuple(ops),
                       tuple(int(j) for j in graph.InputsAsNumpy()),
                       tuple(int(j) for j in graph.OutputsAsNumpy()))


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, size: int, mtime_ns: int) -> TFLiteGraph:
    # Keyed by size and mtime too, so a file replaced on disk is read again.
    try:
        buf = Path(path).read_bytes()
    except OSError as exc:
        raise ToonFaceError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ToonFaceError(f"{path}: not a TFLite model (no TFL3 identifier)")
    try:
        return _parse_tflite(buf, Path(path).name)
    except ImportError:
        raise ToonFaceError(f"reading {Path(path).name} needs the tflite package "
                            f"(pip install {TFLITE_REQUIREMENT})") from None
    except ToonFaceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer fails in many ways, one line
        raise ToonFaceError(f"{path}: not a readable TFLite model (damaged or truncated: "
                            f"{type(exc).__name__})") from None


def read_tflite(path: str | os.PathLike) -> TFLiteGraph:
    """Parse a ``.tflite`` file into a :class:`TFLiteGraph` (cached per path, size and mtime).

    Raises ToonFaceError (one line) when the file cannot be read, is not a TFLite flatbuffer,
    is damaged, or when the ``tflite`` package is missing.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ToonFaceError(f"{path}: cannot read it ({exc.strerror})") from None
    return _read_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------------------------------------
# The operators, as modules (NCHW inside; the walker converts the layouts once at build time)
# ---------------------------------------------------------------------------------------------
def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite/TF "SAME": output ceil(size / stride); the odd padded row goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32 and float64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _activate(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation == "RELU":
        return F.relu(x)
    if activation == "RELU6":
        return F.relu6(x)
    return x


class _Step(nn.Module):
    """One operator: ``inputs`` tensor indices in, tensor ``output`` out."""

    def __init__(self, inputs: tuple[int, ...], output: int):
        super().__init__()
        self.inputs = inputs
        self.output = output


class _Conv(_Step):
    """CONV_2D (OHWI kernel) or DEPTHWISE_CONV_2D (1HWC kernel), TF padding, fused activation.

    ``fp32``: run in float32 even under autocast (the output heads: in bf16 a landmark near
    x = 150 px would be rounded to a whole pixel).
    """

    def __init__(self, inputs, output, weight: np.ndarray, bias: np.ndarray | None,
                 in_hw: tuple[int, int], opts: dict, depthwise: bool, fp32: bool = False):
        super().__init__(inputs, output)
        w = torch.from_numpy(np.array(weight, dtype=np.float32))
        if depthwise:  # (1, KH, KW, C*M) -> (C*M, 1, KH, KW), one group per input channel
            cin = w.shape[3] // opts["multiplier"]
            w, groups = w.permute(3, 0, 1, 2), cin
        else:          # (O, KH, KW, I) -> (O, I, KH, KW)
            w, groups = w.permute(0, 3, 1, 2), 1
            cin = w.shape[1]
        kh, kw = w.shape[2:]
        self.conv = nn.Conv2d(cin, w.shape[0], (kh, kw), stride=opts["stride"],
                              dilation=opts["dilation"], groups=groups, bias=bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(w)
            if bias is not None:
                self.conv.bias.copy_(torch.from_numpy(np.array(bias, dtype=np.float32)))
        self.pad = (0, 0, 0, 0)
        if opts["padding"] == _PADDING_SAME:
            top, bottom = _same_padding(in_hw[0], kh, opts["stride"][0], opts["dilation"][0])
            left, right = _same_padding(in_hw[1], kw, opts["stride"][1], opts["dilation"][1])
            if top == bottom and left == right:   # symmetric: let the convolution pad
                self.conv.padding = (top, left)
            else:
                self.pad = (left, right, top, bottom)
        self.activation = _ACTIVATIONS[opts["activation"]]
        self.fp32 = fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp32:
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self._run(_at_least_fp32(x))
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return _activate(self.conv(x), self.activation)


class _PReLU(_Step):
    """PRELU with one slope per channel (alpha of shape (C,), (1, C) or (1, 1, C))."""

    def __init__(self, inputs, output, alpha: np.ndarray):
        super().__init__(inputs, output)
        self.weight = nn.Parameter(torch.from_numpy(np.array(alpha, dtype=np.float32).reshape(-1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.weight.to(x.dtype)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return F.prelu(x, alpha)
        # With autograd, not F.prelu: its backward always computes the (frozen) slopes'
        # gradient too (30% of a CPU forward+backward). x * slope, the slope 1 or alpha by a
        # lerp whose weight is 0 or 1 (exact at both ends, unlike a + w * (1 - a)), is the same
        # function, and its backward is one multiply: 1.6x faster than F.prelu's on 16 crops.
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return x * torch.lerp(alpha.view(1, -1, 1, 1), one, (x >= 0).to(x.dtype))


class _Add(_Step):
    def __init__(self, inputs, output, activation: int):
        super().__init__(inputs, output)
        self.activation = _ACTIVATIONS[activation]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _activate(a + b, self.activation)


class _MaxPool(_Step):
    def __init__(self, inputs, output, in_hw: tuple[int, int], opts: dict):
        super().__init__(inputs, output)
        self.kernel, self.stride = opts["filter"], opts["stride"]
        self.pad = (0, 0, 0, 0)
        if opts["padding"] == _PADDING_SAME:
            top, bottom = _same_padding(in_hw[0], self.kernel[0], self.stride[0], 1)
            left, right = _same_padding(in_hw[1], self.kernel[1], self.stride[1], 1)
            self.pad = (left, right, top, bottom)
        self.activation = _ACTIVATIONS[opts["activation"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):  # TFLite's padded cells never win the maximum
            x = F.pad(x, self.pad, value=float("-inf"))
        return _activate(F.max_pool2d(x, self.kernel, self.stride), self.activation)


class _Pad(_Step):
    """PAD with constant zeros; TFLite's NHWC paddings (4, 2) mapped to NCHW."""

    def __init__(self, inputs, output, paddings: np.ndarray):
        super().__init__(inputs, output)
        (nb, na), (hb, ha), (wb, wa), (cb, ca) = (tuple(int(v) for v in row) for row in paddings)
        self.pad = (wb, wa, hb, ha, cb, ca, nb, na)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------
class FaceMeshNet(nn.Module):
    """mediapipe's FaceMesh landmark network (Kartynnik et al. 2019) as a frozen PyTorch module.

    Input: crops ``(B, 3, 192, 192)`` RGB in [0, 1] (float32, or anything under autocast), a
    face centred with a 25% margin (:func:`crop_faces` makes them).
    Output: ``(landmarks, logit)``:

    - ``landmarks`` ``(B, 468, 3)`` float32: x, y in crop pixels (continuous, 0..192 spans the
      crop), z in the same pixel units, relative to the face's centre (smaller is nearer the
      camera). :func:`crop_to_image` maps them to image pixels.
    - ``logit`` ``(B,)`` float32: face presence before the sigmoid (mediapipe keeps a face whose
      ``sigmoid(logit)`` clears its threshold).

    Parameters are frozen (``requires_grad=False``) and the module stays in eval mode; gradients
    flow to the input. Build it with :meth:`from_package` (finds and checks the file in the
    mediapipe wheel) or :meth:`from_file`.

    Agreement with the LiteRT interpreter (``ai_edge_litert``) on the same file
    (bench/bench_facemesh.py; tests/faces/test_facemesh.py asserts 1e-3 px): on the 49
    ffhq-mini photos resized to 192, landmarks within 7.6e-5 px (max abs), logit within 2.7e-5.
    Under CPU bf16 autocast (the trunk in bf16, the two output heads kept in fp32: in bf16 a
    coordinate near 150 px has a 1-px step) x, y land 0.054 px from fp32 on average, 0.16 px
    for the worst crop's mean, 0.83 px at most; the logit moves by up to 0.25. With bf16 heads
    the mean error was 3x larger. Cost: 0.070 GFLOP per face forward, 0.14 with the input
    gradient. Speed on 2-core CPUs: 3-4x slower per crop than LiteRT's XNNPACK forward (see the
    benchmark); bf16 autocast does not speed it up there.

    Raises ValueError for a tensor of the wrong shape; ToonFaceError (one line) for a graph this
    walker does not implement (an unknown operator, options or constant layout).
    """

    def __init__(self, graph: TFLiteGraph):
        super().__init__()
        self.source = graph.source
        if len(graph.inputs) != 1:
            raise ToonFaceError(f"{graph.source}: {len(graph.inputs)} inputs, expected one image")
        self.input_index = graph.inputs[0]
        in_shape = graph.tensors[self.input_index].shape
        if in_shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
            raise ToonFaceError(f"{graph.source}: input shape {in_shape}, expected "
                                f"(1, {CROP_SIZE}, {CROP_SIZE}, 3)")
        self.landmarks_index = graph.index(LANDMARKS_TENSOR)
        self.logit_index = graph.index(LOGIT_TENSOR)
        if {self.landmarks_index, self.logit_index} != set(graph.outputs):
            raise ToonFaceError(f"{graph.source}: outputs are not {LANDMARKS_TENSOR} and "
                                f"{LOGIT_TENSOR} (not mediapipe's FaceMesh model)")
        self.steps = nn.ModuleList(self._build(graph))
        self.requires_grad_(False)
        self.eval()

    def _build(self, graph: TFLiteGraph) -> list[_Step]:
        consts = {i: t.data for i, t in enumerate(graph.tensors) if t.data is not None}
        steps: list[_Step] = []

        def const(op_i: int, op: TFLiteOp, j: int, what: str) -> np.ndarray:
            index = op.inputs[j]
            if index not in consts:
                raise ToonFaceError(f"{graph.source}: operator #{op_i} {op.kind} has a computed "
                                    f"{what} (tensor {index}); faces.facemesh reads constant ones only")
            return consts[index]

        for i, op in enumerate(graph.ops):
            kind = op.kind
            if kind not in _SUPPORTED_OPS:
                raise ToonFaceError(f"{graph.source}: operator #{i} {kind} is not supported by "
                                    f"faces.facemesh (it runs {', '.join(_SUPPORTED_OPS)})")
            act = op.options.get("activation", 0)
            if act not in _ACTIVATIONS:
                raise ToonFaceError(f"{graph.source}: operator #{i} {kind} has fused activation "
                                    f"#{act}, which faces.facemesh does not apply")
            out = op.outputs[0]
            if kind == "DEQUANTIZE":   # fp16 constant -> fp32 constant, folded now
                consts[out] = const(i, op, 0, "input").astype(np.float32)
                continue
            x_shape = graph.tensors[op.inputs[0]].shape
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                bias = const(i, op, 2, "bias") if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
                steps.append(_Conv(op.inputs[:1], out, const(i, op, 1, "kernel"), bias,
                                   x_shape[1:3], op.options, depthwise=kind == "DEPTHWISE_CONV_2D",
                                   fp32=out in graph.outputs))
            elif kind == "PRELU":
                alpha = const(i, op, 1, "alpha")
                if alpha.size != x_shape[-1]:
                    raise ToonFaceError(f"{graph.source}: operator #{i} PRELU has alpha of shape "
                                        f"{alpha.shape}; faces.facemesh reads one slope per channel")
                steps.append(_PReLU(op.inputs[:1], out, alpha))
            elif kind == "ADD":
                if any(j in consts for j in op.inputs):
                    raise ToonFaceError(f"{graph.source}: operator #{i} ADD has a constant "
                                        "operand; faces.facemesh adds computed tensors only")
                steps.append(_Add(op.inputs, out, act))
            elif kind == "MAX_POOL_2D":
                steps.append(_MaxPool(op.inputs, out, x_shape[1:3], op.options))
            elif kind == "PAD":
                steps.append(_Pad(op.inputs[:1], out, const(i, op, 1, "paddings")))
        return steps

    def train(self, mode: bool = True) -> "FaceMeshNet":
        # Frozen network: always in eval mode, whatever the trainer asks.
        return super().train(False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if crops.dim() != 4 or tuple(crops.shape[1:]) != (3, CROP_SIZE, CROP_SIZE):
            raise ValueError(f"FaceMeshNet expects crops (B, 3, {CROP_SIZE}, {CROP_SIZE}) RGB in "
                             f"[0, 1], got {tuple(crops.shape)}")
        # Channels-last: PyTorch's depthwise and 1x1 convolutions, PReLU and the adds run about
        # 2x faster on it on the CPU (16 crops: 59 ms against 128 ms, one thread).
        values = {self.input_index: crops.contiguous(memory_format=torch.channels_last)}
        for step in self.steps:
            values[step.output] = step(*(values[j] for j in step.inputs))
        batch = crops.shape[0]
        landmarks = _at_least_fp32(values[self.landmarks_index]).reshape(batch, NUM_LANDMARKS, 3)
        logit = _at_least_fp32(values[self.logit_index]).reshape(batch)
        return landmarks, logit

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "FaceMeshNet":
        """Build from a ``face_landmark.tflite`` file (no checksum: :meth:`from_package` checks).

        Raises ToonFaceError (one line) for a file that is unreadable, not a TFLite model, or a
        graph the walker does not implement.
        """
        graph = read_tflite(path)
        try:
            return cls(graph)
        except (IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            # A flatbuffer damaged past its header can still parse into a graph that makes no
            # sense (an index out of range, a weight that does not fit its shape).
            raise ToonFaceError(f"{path}: not mediapipe's FaceMesh graph (damaged, or another "
                                f"model: {type(exc).__name__})") from None

    @classmethod
    def from_package(cls, package_file: PackageFile = FACE_LANDMARK_FILE) -> "FaceMeshNet":
        """Build from the ``face_landmark.tflite`` inside the installed mediapipe 0.10.21 wheel.

        The file is found without importing mediapipe and its size and sha256 are checked first.
        Raises ToonFaceError (one line naming the file, the package and the install command)
        when mediapipe or the file is missing, truncated or altered.
        """
        return cls.from_file(package_file.path())


# ---------------------------------------------------------------------------------------------
# The crop: box from landmarks, differentiable resampling, and the way back
# ---------------------------------------------------------------------------------------------
def face_boxes(points: torch.Tensor, scale: float = BOX_SCALE, rotate: bool = True) -> torch.Tensor:
    """mediapipe's face box from landmarks: ``(B, N, 2 or 3)`` pixel points -> ``(B, 4)`` boxes
    ``(cx, cy, side, angle)``.

    Centre: the centre of the points' axis-aligned bounding box; side: its longer side times
    ``scale`` (1.5 = mediapipe's 25% margin on each side); angle (radians, image axes with y
    down): the direction from the image-left to the image-right outer eye corner (FaceMesh
    33 -> 263, iBUG-68 36 -> 45), or 0 when ``rotate`` is false or N is neither 468 nor 68.

    With 68 dlib points the box sits lower and tighter than with 468 FaceMesh points (the 68
    points stop at the brows, the mesh reaches the forehead); FaceMesh still finds the face but
    the crop differs from mediapipe's own. Degenerate boxes (side 0) are the caller's problem.
    """
    if points.dim() != 3 or points.shape[-1] not in (2, 3):
        raise ValueError(f"face_boxes expects (B, N, 2) pixel points, got {tuple(points.shape)}")
    xy = points[..., :2]
    lo, hi = xy.amin(dim=1), xy.amax(dim=1)
    centre = (lo + hi) / 2
    side = (hi - lo).amax(dim=1) * scale
    angle = torch.zeros_like(side)
    corners = EYE_CORNERS.get(points.shape[1])
    if rotate and corners is not None:
        d = xy[:, corners[1]] - xy[:, corners[0]]
        angle = torch.atan2(d[:, 1], d[:, 0])
    return torch.stack([centre[:, 0], centre[:, 1], side, angle], dim=1)


def box_transforms(boxes: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """``(B, 4)`` boxes ``(cx, cy, side, angle)`` -> ``(B, 2, 3)`` affine maps from crop pixels to
    image pixels: ``p = A[:, :, :2] @ u + A[:, :, 2]``, crop ``(0, 0)..(size, size)`` spanning the
    rotated square edge to edge (mediapipe's LandmarkProjectionCalculator, in pixels)."""
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (B, 4) (cx, cy, side, angle), got {tuple(boxes.shape)}")
    cx, cy, side, angle = boxes.unbind(1)
    s = side / size
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    # p = c + R(angle) @ (u - size/2) * side/size
    tx = cx - (cos - sin) * size / 2
    ty = cy - (sin + cos) * size / 2
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def crop_faces(images: torch.Tensor, boxes: torch.Tensor,
               size: int = CROP_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable face crops for :class:`FaceMeshNet`.

    Args:
        images: ``(B, 3, H, W)`` RGB in [-1, 1] (the generator's range).
        boxes: ``(B, 4)`` boxes ``(cx, cy, side, angle)`` in image pixels / radians (from
            :func:`face_boxes`), or ``(B, N, 2)`` landmarks in pixels (boxed with its defaults:
            mediapipe's 1.5 scale, rotated by the eye corners).
        size: output side (192 for FaceMeshNet).
    Returns:
        ``crops`` ``(B, 3, size, size)`` RGB in [0, 1], bilinear (``grid_sample``), the image
        border replicated outside it as mediapipe does; differentiable with respect to
        ``images`` (and the boxes). ``transform`` ``(B, 2, 3)``: crop pixels -> image pixels
        (:func:`crop_to_image`, :func:`image_to_crop`).

    Rows whose box is not finite or has no area (a face the detector missed: the landmark
    cache holds NaN points for it) are cropped from the whole image instead (a centred square,
    no rotation), so crops, transforms and gradients stay finite; leave those rows out of the
    loss with ``torch.where`` on the caller's own validity mask.

    No antialiasing: a box much larger than ``size`` (over ~2x) aliases; downscale such images
    first. Raises ValueError for mismatched shapes.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"crop_faces expects images (B, 3, H, W) RGB in [-1, 1], got {tuple(images.shape)}")
    if boxes.dim() == 3:
        boxes = face_boxes(boxes)
    if boxes.shape[0] != images.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes for {images.shape[0]} images")
    h, w = images.shape[-2:]
    boxes = boxes.to(images.dtype)
    usable = torch.isfinite(boxes).all(dim=1) & (boxes[:, 2] > 0)
    whole = torch.tensor([w / 2, h / 2, min(h, w), 0.0], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.where(usable[:, None], boxes, whole)
    transform = box_transforms(boxes, size)
    centres = torch.arange(size, device=images.device, dtype=images.dtype) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    uv1 = torch.stack([u, v, torch.ones_like(u)], -1).reshape(1, -1, 3)   # (1, size*size, 3)
    xy = uv1 @ transform.transpose(1, 2)                                   # (B, size*size, 2)
    # Continuous pixels -> grid_sample's [-1, 1] with align_corners=False (edges at -1 and 1).
    grid = torch.stack([xy[..., 0] * (2 / w) - 1, xy[..., 1] * (2 / h) - 1], -1)
    crops = F.grid_sample(images, grid.reshape(-1, size, size, 2), mode="bilinear",
                          padding_mode="border", align_corners=False)
    return (crops + 1) / 2, transform


def crop_to_image(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """Crop-pixel landmarks ``(B, N, 2 or 3)`` -> image pixels (same shape).

    x, y go through the affine ``transform`` of :func:`crop_faces`; z (when present) is scaled
    by the crop's pixel size, as mediapipe's projection scales it by the box width.
    """
    xy = points[..., :2] @ transform[:, :, :2].transpose(1, 2) + transform[:, None, :, 2]
    if points.shape[-1] == 2:
        return xy
    scale = torch.linalg.det(transform[:, :, :2]).abs().sqrt()[:, None, None]
    return torch.cat([xy, points[..., 2:] * scale], -1)


def image_to_crop(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """Image-pixel points ``(B, N, 2 or 3)`` -> crop pixels: the inverse of :func:`crop_to_image`."""
    linear = torch.linalg.inv(transform[:, :, :2])
    xy = (points[..., :2] - transform[:, None, :, 2]) @ linear.transpose(1, 2)
    if points.shape[-1] == 2:
        return xy
    scale = torch.linalg.det(linear).abs().sqrt()[:, None, None]
    return torch.cat([xy, points[..., 2:] * scale], -1)
