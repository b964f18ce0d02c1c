"""Engines: what turns a style name into a callable that cartoonizes uint8 RGB arrays.

An engine is any object with ``name`` and ``load(spec) -> Stylizer``; a :class:`Stylizer` maps
an (H, W, 3) uint8 RGB photo to its cartoon of the same size (``strength`` and ``portrait`` per
call), a list of same-size independent frames to as many cartoons, and gives the clip
pipeline of one video or animation (``clip``: the command line's ``Cartoonizer.video``, see
:mod:`inference.clips`). The service only talks to these
two interfaces; ``serve.py --engine`` picks one (:func:`make_engine`).

:class:`TorchEngine` loads styles from a :class:`inference.styles.StyleRegistry` (names, blends;
the folder scanned once, when the engine is made, each load reading only its style's files) and
runs them through :class:`inference.cartoonizer.Cartoonizer`. :class:`OnnxRuntimeEngine` loads
them the same way, exports each one's generator + guided filter to ONNX once (cached on disk by
the weights' hash, :mod:`inference.onnx_engine`) and runs that in onnxruntime inside the same
Cartoonizer, so context, tiles, portrait mode and strength are shared. :class:`StyleCache` keeps the
``max_loaded`` most recently used stylizers and loads each one once, even when several worker
threads ask for it at the same moment.
"""
from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Protocol

import numpy as np

from inference.cartoonizer import Cartoonizer, blend
from inference.styles import StyleRegistry
from utils.device import resolve_device
from utils.errors import ToonFaceError
from faces import resolve_detector
from inference.cartoonizer import INFERENCE_EPS
from inference.onnx_engine import (OnnxGenerate, cached_onnx, check_engine, default_cache_dir,
                                   providers_for)
from utils.io import check_writable


class Stylizer(Protocol):
    """One loaded style. Thread-safe: worker threads may call it at the same time."""

    meta: dict[str, Any]

    def __call__(self, rgb: np.ndarray, *, strength: float = 1.0, portrait: bool = False,
                 notice: Callable[[str], Any] | None = None) -> np.ndarray: ...

    def frames(self, frames: list[np.ndarray], *, strength: float = 1.0,
               portrait: bool = False) -> list[np.ndarray]: ...

    def clip(self, *, strength: float = 1.0, portrait: bool = False,
             temporal: float = 0.0) -> Any: ...


class Engine(Protocol):
    name: str

    def load(self, spec: str) -> Stylizer: ...


def _autocast(device, precision: str):
    """A context running the generator in ``precision`` (fp32: no autocast). The guided filter
    computes in float32 whatever the autocast (models/guided_filter.py)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)


class CartoonizerStylizer:
    """A style's generator in a :class:`Cartoonizer` (strength 1, no portrait), plus a portrait
    Cartoonizer built on first use (its face detector is loaded then). ``runtime``: what runs
    generator + guided filter (None: PyTorch; see :class:`Cartoonizer`)."""

    def __init__(self, generator, meta: dict[str, Any], device, precision: str,
                 landmark_detector: str | None = None, runtime=None):
        self.meta, self.device, self.precision = meta, device, precision
        self._detector = landmark_detector
        self._toon = Cartoonizer(generator, device, image_size=meta.get("image_size"),
                                 face_size=meta.get("face_size"), runtime=runtime)
        self._portrait: Cartoonizer | None = None
        # Portrait mode keeps per-call state (the notice callback, a detector that is not
        # documented thread-safe): one portrait call at a time per style.
        self._portrait_lock = threading.Lock()

    def _portrait_toon(self) -> Cartoonizer:
        if self._portrait is None:
            self._portrait = Cartoonizer(self._toon.generator, self.device,
                                         image_size=self.meta.get("image_size"),
                                         face_size=self.meta.get("face_size"), portrait=True,
                                         landmark_detector=self._detector,
                                         runtime=self._toon.runtime)
        return self._portrait

    def __call__(self, rgb: np.ndarray, *, strength: float = 1.0, portrait: bool = False,
                 notice: Callable[[str], Any] | None = None) -> np.ndarray:
        if not 0.0 <= strength <= 1.0:
            raise ToonFaceError(f"strength must be in [0, 1], got {strength}")
        with _autocast(self.device, self.precision):
            if portrait:
                with self._portrait_lock:
                    toon = self._portrait_toon()
                    toon.notice = notice or (lambda m: None)
                    cartoon = toon(rgb)
            else:
                cartoon = self._toon(rgb)
        return blend(rgb, cartoon, strength)

    def clip(self, *, strength: float = 1.0, portrait: bool = False, temporal: float = 0.0):
        """The :class:`inference.cartoonizer.VideoStylizer` of one clip (a video or an
        animation), as ``cartoonize.py`` runs it: faces tracked and smoothed in portrait mode,
        ``temporal`` in [0, 1) the stabiliser's strength. Each batch runs in this style's
        precision and, in portrait mode, holds the portrait lock (the detector is shared with
        still pictures). Raises ToonFaceError for a strength or temporal out of range."""
        if not portrait:
            return self._toon.video(temporal, strength=strength,
                                    guard=lambda: _autocast(self.device, self.precision))
        with self._portrait_lock:
            toon = self._portrait_toon()

        @contextlib.contextmanager
        def guard():
            with self._portrait_lock, _autocast(self.device, self.precision):
                toon.notice = lambda m: None   # a clip says its remarks once, in notices()
                yield

        return toon.video(temporal, strength=strength, guard=guard)

    def frames(self, frames: list[np.ndarray], *, strength: float = 1.0,
               portrait: bool = False) -> list[np.ndarray]:
        if portrait:
            return [self(f, strength=strength, portrait=True) for f in frames]
        with _autocast(self.device, self.precision):
            cartoons = self._toon.stylize_batch(frames)
        return [blend(f, c, strength) for f, c in zip(frames, cartoons)]


class TorchEngine:
    """Styles from ``styles_dir`` run by PyTorch on ``device`` in ``precision``."""

    name = "torch"

    def __init__(self, styles_dir, device: str = "auto", precision: str = "fp32",
                 landmark_detector: str | None = None, landmark_model: str | None = None,
                 styles: StyleRegistry | None = None):
        """``styles``: the registry of ``styles_dir`` when the caller scanned it already.
        Raises ToonFaceError (one line) for a device, precision, face detector or styles folder
        that cannot be used: at start-up, not at the first request that needs it."""
        self.styles_dir = styles_dir
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ToonFaceError("--precision fp16 needs a CUDA device (CPUs: fp32 or bf16)")
        self.precision = precision
        self.landmark_detector = resolve_detector(landmark_detector, landmark_model)
        self.styles = styles or StyleRegistry(styles_dir)

    def load(self, spec: str) -> CartoonizerStylizer:
        G, meta = self.styles.load(spec, self.device)
        return CartoonizerStylizer(G, meta, self.device, self.precision, self.landmark_detector)


class OnnxRuntimeEngine:
    """Styles from ``styles_dir`` exported to ONNX (once, into ``cache_dir``; default
    :func:`inference.onnx_engine.default_cache_dir`) and run by onnxruntime in float32.

    Raises ToonFaceError (one line) at construction where onnxruntime is not installed, the
    device has no onnxruntime provider, ``precision`` is not fp32, the face detector cannot be
    used or ``cache_dir`` cannot be written: before the server starts, not at the first request.
    """

    name = "onnxruntime"

    def __init__(self, styles_dir, device: str = "auto", precision: str = "fp32",
                 landmark_detector: str | None = None, landmark_model: str | None = None,
                 cache_dir=None, threads: int = 0, cache_max_files: int | None = None,
                 cache_max_bytes: int | None = None, styles: StyleRegistry | None = None):
        check_engine(self.name, precision)
        self.providers = providers_for(device)
        self.styles_dir, self.device_spec, self.precision = styles_dir, device, precision
        self.device = resolve_device("cpu")  # onnxruntime takes host arrays, whatever its provider
        self.landmark_detector = resolve_detector(landmark_detector, landmark_model)
        self.threads = threads
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        check_writable(self.cache_dir, "--cache-dir", folder=True)
        # the cache's bounds (None: inference.onnx_engine's defaults)
        self.cache_limits = {k: v for k, v in (("max_files", cache_max_files),
                                               ("max_bytes", cache_max_bytes)) if v is not None}
        self.styles = styles or StyleRegistry(styles_dir)

    def load(self, spec: str) -> CartoonizerStylizer:
        G, meta = self.styles.load(spec, self.device)
        path = cached_onnx(G, INFERENCE_EPS, self.cache_dir, **self.cache_limits)
        runtime = OnnxGenerate.open(path, G, INFERENCE_EPS, self.providers, self.threads)
        return CartoonizerStylizer(G, meta, self.device, "fp32", self.landmark_detector, runtime)


def make_engine(config, landmark_detector: str | None = None, landmark_model: str | None = None,
                threads: int = 0, styles: StyleRegistry | None = None) -> Engine:
    """The engine ``config.engine`` names (a :class:`serving.config.ServeConfig`); ``styles``:
    the registry of ``config.styles_dir`` when the caller scanned it already."""
    if config.engine == "onnxruntime":
        return OnnxRuntimeEngine(config.styles_dir, config.device, config.precision,
                                 landmark_detector, landmark_model, config.cache_dir, threads,
                                 config.cache_max_files, config.cache_max_bytes, styles)
    return TorchEngine(config.styles_dir, config.device, config.precision, landmark_detector,
                       landmark_model, styles)


class StyleCache:
    """The ``max_loaded`` most recently used stylizers of an engine, keyed by style spec.

    ``get`` is thread-safe; a style is loaded once even when several threads ask for it
    together (the others wait for that load). A load that fails is not cached.
    """

    def __init__(self, engine: Engine, max_loaded: int):
        if max_loaded < 1:
            raise ValueError(f"max_loaded must be >= 1, got {max_loaded}")
        self.engine, self.max_loaded = engine, max_loaded
        self._items: OrderedDict[str, Stylizer] = OrderedDict()
        self._loading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times the engine loaded a style (for tests and metrics)

    def get(self, key: str) -> Stylizer:
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                wait = self._loading.get(key)
                if wait is None:
                    wait = self._loading[key] = threading.Event()
                    break
            wait.wait()  # another thread is loading it; look again when it is done
        try:
            stylizer = self.engine.load(key)
            with self._lock:
                self.loads += 1
                self._items[key] = stylizer
                while len(self._items) > self.max_loaded:
                    self._items.popitem(last=False)
            return stylizer
        finally:
            with self._lock:
                del self._loading[key]
            wait.set()

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._items)
