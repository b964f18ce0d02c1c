"""A strict, pure-Python reader of dlib's DNN serialization, for the face-recognition ResNet.

dlib (Davis E. King, Boost Software License; http://dlib.net) saves a network with its own
binary format (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/cuda/tensor.h``,
``dlib/dnn/core.h``, ``dlib/dnn/layers.h``, ``dlib/dnn/loss.h``, ``dlib/dnn/input.h``). This
module reads it without dlib and without unpickling anything; every byte is checked against the
grammar below, so a truncated or altered file stops with one :class:`~utils.errors.ToonFaceError`
line (the byte offset and what was expected there) instead of yielding wrong weights.

Primitives:

- integer: one control byte (bit 0x80: negative; low 4 bits: byte count 1..8) followed by the
  magnitude, little-endian;
- float: a mantissa integer then an exponent integer, value = mantissa * 2**exponent (the code
  writes them in that order; the prose in serialize.h says the reverse); exponents 32000,
  32001, 32002 mean +inf, -inf, NaN;
- bool: the ASCII byte ``'0'`` or ``'1'``; string: a length integer, then its bytes;
- tensor: version 2, four shape integers (N, K, rows, columns), then N*K*rows*columns
  little-endian float32 (NCHW); an alias tensor (a view into a layer's ``params``): version 1
  and four shape integers.

The graph is not in the file, only in the C++ type of the network (here ``anet_type`` of
dlib's ``examples/dnn_face_recognition_ex.cpp``). A network type ``L1<L2<...<Ln<input>>>>`` is
written as: the versions of its wrappers, outermost first (a loss layer writes its details right
after its version), then the input layer and the details of the innermost layer, then the
details of each computational layer from the input to the output. :func:`read_network` walks a
given type, expressed as a list of :class:`Layer` specs from the output to the input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from utils.errors import ToonFaceError

_INF, _NINF, _NAN = 32000, 32001, 32002  # float_details' special exponents


@dataclass(frozen=True)
class Layer:
    """One layer of a dlib network type. kind: ``loss_metric``, ``fc``, ``avg_pool``,
    ``max_pool``, ``relu``, ``add_prev``, ``affine``, ``con``, ``tag``, ``skip``; args: what
    the C++ type fixes (``con``: filters, rows, columns, stride_y, stride_x, padding_y,
    padding_x; pools: rows, columns, strides, paddings; ``fc``: outputs; ``tag``/``skip``/
    ``add_prev``: the tag id)."""
    kind: str
    args: tuple = ()


@dataclass
class Parsed:
    """What the file holds. avg_rgb: the input layer's (red, green, blue) means, subtracted
    before the /256 scaling; size: its (rows, columns); layers: from the input to the output,
    ``(Layer, {name: float32 array})`` for each computational layer (``con``: ``weight``
    (out, in, kh, kw) and ``bias`` (out,); ``affine``: ``gamma``, ``beta`` (channels,); ``fc``:
    ``weight`` (inputs, outputs), as stored); loss: the loss layer's settings."""
    avg_rgb: tuple[float, float, float]
    size: tuple[int, int]
    layers: list = field(default_factory=list)
    loss: dict = field(default_factory=dict)


class _Stream:
    def __init__(self, data: bytes, source: str):
        self.data, self.pos, self.source = memoryview(data), 0, source

    def fail(self, what: str):
        raise ToonFaceError(f"{self.source}: not a valid dlib network file: {what} at byte "
                            f"{self.pos} of {len(self.data)}")

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            self.fail(f"file ends inside {what} (truncated?)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, what: str) -> int:
        ctl = self.take(1, what)[0]
        n = ctl & 0x0F
        if n == 0 or n > 8 or ctl & 0x70:
            self.pos -= 1
            self.fail(f"bad integer control byte 0x{ctl:02x} for {what}")
        value = int.from_bytes(self.take(n, what), "little")
        return -value if ctl & 0x80 else value

    def uint(self, what: str) -> int:
        start, value = self.pos, self.int(what)
        if value < 0:
            self.pos = start
            self.fail(f"negative {what}")
        return value

    def float(self, what: str) -> float:
        mantissa, exponent = self.int(what), self.int(what)
        if exponent == _INF:
            return math.inf
        if exponent == _NINF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        if not -32768 <= exponent < _INF or not -2 ** 63 <= mantissa < 2 ** 63:
            self.fail(f"float {what} out of range")
        return math.ldexp(float(mantissa), exponent) if mantissa else 0.0

    def bool(self, what: str) -> bool:
        ch = self.take(1, what)[0]
        if ch not in (0x30, 0x31):
            self.pos -= 1
            self.fail(f"bool {what} is byte 0x{ch:02x}, not '0' or '1'")
        return ch == 0x31

    def string(self, what: str) -> str:
        n = self.uint(what)
        if n > 256:
            self.fail(f"implausible string length {n} for {what}")
        return bytes(self.take(n, what)).decode("latin-1")

    def version(self, allowed, what: str):
        start = self.pos
        v = self.string(what) if isinstance(next(iter(allowed)), str) else self.int(what)
        if v not in allowed:
            self.pos = start
            self.fail(f"{what} version {v!r}, expected one of {sorted(allowed)}")
        return v

    def shape(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.uint(what) for _ in range(4))
        if math.prod(dims) > len(self.data):
            self.fail(f"implausible {what} shape {dims}")
        return dims

    def tensor(self, what: str) -> np.ndarray:
        self.version({2}, what)
        dims = self.shape(what)
        raw = self.take(4 * math.prod(dims), what)
        return np.frombuffer(raw, "<f4").astype(np.float32).reshape(dims)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.version({1}, what)
        return self.shape(what)

    def expect(self, got, want, what: str, start: int):
        if got != want:
            self.pos = start
            self.fail(f"{what} is {got}, the network type says {want}")


def _split(s: _Stream, params: np.ndarray, shapes: dict, what: str, start: int) -> dict:
    """Cut a layer's flat ``params`` tensor into its alias tensors, in order."""
    flat, out, offset = params.reshape(-1), {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = flat[offset:offset + n].reshape(shape)
        offset += n
    s.expect(flat.size, offset, f"{what} parameter count", start)
    return out


def _details(s: _Stream, layer: Layer, what: str) -> dict:
    """Read one computational layer's details; returns its arrays (empty for parameter-free)."""
    start = s.pos
    kind = layer.kind
    if kind == "relu":
        if s.version({"relu_", "relu_2"}, what) == "relu_2" and s.bool(what):
            s.fail(f"{what} is disabled")
        return {}
    if kind == "add_prev":
        s.version({"add_prev_"}, what)
        return {}
    if kind in ("max_pool", "avg_pool"):
        s.version({f"{kind}_2"}, what)
        got = tuple(s.int(what) for _ in range(6))
        s.expect(got, layer.args, f"{what} (rows, columns, strides, paddings)", start)
        return {}
    if kind == "con":
        v = s.version({"con_4", "con_5", "con_6"}, what)
        params = s.tensor(what)
        got = (s.int(what),) + tuple(s.int(what) for _ in range(6))
        s.expect(got, layer.args, f"{what} (filters, rows, columns, strides, paddings)", start)
        filters, biases = s.alias(what), s.alias(what)
        for _ in range(4):  # learning-rate and weight-decay multipliers
            s.float(what)
        use_bias = s.bool(what) if v in ("con_5", "con_6") else True
        if v == "con_6" and s.bool(what):
            s.fail(f"{what} has a fused ReLU, which this network type does not have")
        s.expect(filters[0], layer.args[0], f"{what} filter count", start)
        shapes = {"weight": filters}
        if use_bias:
            s.expect(biases, (1, layer.args[0], 1, 1), f"{what} bias shape", start)
            shapes["bias"] = (layer.args[0],)
        out = _split(s, params, shapes, what, start)
        out.setdefault("bias", np.zeros(layer.args[0], np.float32))
        return out
    if kind == "affine":
        v = s.version({"affine_", "affine_2"}, what)
        params = s.tensor(what)
        shapes = {"gamma": s.alias(what), "beta": s.alias(what)}
        mode = s.int(what)
        s.expect(mode, 0, f"{what} mode (0: CONV_MODE)", start)
        if v == "affine_2" and s.bool(what):
            s.fail(f"{what} is disabled")
        out = _split(s, params, shapes, what, start)
        return {k: a.reshape(-1) for k, a in out.items()}
    if kind == "fc":
        v = s.version({"fc_2", "fc_3"}, what)
        outputs, inputs = s.uint(what), s.uint(what)
        s.expect(outputs, layer.args[0], f"{what} outputs", start)
        params = s.tensor(what)
        weights, _biases = s.alias(what), s.alias(what)
        s.expect(s.int(what), 1, f"{what} bias mode (1: FC_NO_BIAS)", start)
        for _ in range(4):
            s.float(what)
        if v == "fc_3" and s.bool(what):
            s.fail(f"{what} has a bias, which fc_no_bias does not")
        s.expect(weights, (inputs, outputs, 1, 1), f"{what} weight shape", start)
        return {"weight": _split(s, params, {"weight": (inputs, outputs)}, what, start)["weight"]}
    raise AssertionError(f"no reader for layer kind {kind!r}")


def _tail(s: _Stream, version: int, what: str, over_input: bool) -> None:
    """add_layer's state after the details: three flags and cached tensors (unused here)."""
    for _ in range(3):
        s.bool(what)
    for _ in range(3 if over_input or version == 2 else 2):
        s.tensor(what)
    if over_input and version >= 3:
        s.uint(what)  # sample expansion factor


def read_network(data: bytes, network: list[Layer], source: str,
                 size: tuple[int, int]) -> Parsed:
    """Parse ``data`` (a whole dlib file) as the network type ``network``.

    network: the layers from the output (a ``loss_metric``) to the input-side layer (a ``con``
    over an ``input_rgb_image_sized``), as the C++ type nests them. size: the input layer's
    (rows, columns). source: the file name for messages. Raises ToonFaceError (one line) at
    the first byte that does not fit, or when bytes are left over.
    """
    s = _Stream(data, source)
    *outer, first = network
    computational = []  # (Layer, add_layer version, description), output side first
    parsed = Parsed(avg_rgb=(0.0, 0.0, 0.0), size=size)
    for i, layer in enumerate(outer):
        what = f"layer {i} ({layer.kind})"
        if layer.kind == "loss_metric":
            s.version({1}, f"{what} wrapper")
            if s.version({"loss_metric_", "loss_metric_2"}, what) == "loss_metric_2":
                parsed.loss = {"margin": s.float(what), "distance_threshold": s.float(what)}
        elif layer.kind in ("tag", "skip"):
            s.version({1}, f"{what} wrapper")
        else:
            computational.append((layer, s.version({1, 2}, f"{what} wrapper"), what))
    what = f"layer {len(outer)} ({first.kind})"
    version = s.version({2, 3}, f"{what} wrapper")
    start = s.pos
    s.version({"input_rgb_image_sized"}, "input layer")
    parsed.avg_rgb = tuple(s.float("input layer") for _ in range(3))
    got = (s.uint("input layer"), s.uint("input layer"))
    s.expect(got, size, "input size", start)
    parsed.layers.append((first, _details(s, first, what)))
    _tail(s, version, what, over_input=True)
    for layer, version, what in reversed(computational):
        parsed.layers.append((layer, _details(s, layer, what)))
        _tail(s, version, what, over_input=False)
    if s.pos != len(s.data):
        s.fail(f"{len(s.data) - s.pos} bytes left after the last layer")
    return parsed
