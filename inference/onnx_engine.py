"""``--engine onnxruntime``: a generator exported to ONNX once, then run by onnxruntime.

    >>> runtime = OnnxGenerate.for_generator(G, eps=5e-3, cache_dir=default_cache_dir())
    >>> toon = Cartoonizer(G, runtime=runtime)      # everything else as with PyTorch
    >>> toon = load_cartoonizer("onnxruntime", style="hayao")   # what cartoonize.py does

What runs in onnxruntime is generator + final guided filter on a photo that already has its
context (:class:`inference.export.ExportableGenerate`): the part of
:meth:`inference.cartoonizer.Cartoonizer._generate`. Context padding, tiling, portrait mode,
strength and uint8 conversion stay in the Python path, so both engines give the same image up
to float rounding (max 1e-4 in [-1, 1] on the tests' generators, i.e. at most one uint8 level).

The ONNX file is written once per generator into a cache folder and reused by later runs: its
name is a hash of the weights' content (every tensor's name, dtype, shape and bytes), the
generator's configuration, the guided filter's eps, the ONNX opset and :data:`EXPORT_VERSION`.
Hashing the weights rather than a file covers blends of styles (which have no file) and gives
one cache entry to the same weights saved in two places; a changed generator file gets a new
entry. Files are written atomically, so runs sharing a cache never read half a file.

The cache is bounded: every distinct blend weight is another generator, hence another file (5.9
MB for the white-box generator), so a service answering blends would otherwise fill the disk.
After each export the least recently used files (a hit touches its file's mtime) are removed
until at most ``max_files`` files and ``max_bytes`` bytes remain (defaults
:data:`CACHE_MAX_FILES`, :data:`CACHE_MAX_BYTES`), never the file just written or used; the
temporary files of writes killed midway are removed once they are an hour old. Only this
module's own file names are ever removed from the folder.

The exported model is float32: onnxruntime's CPU kernels have no bfloat16 convolutions, so
``--precision bf16`` is refused with this engine (one line) rather than silently run in fp32.
"""
from __future__ import annotations

import copy
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils.errors import ToonFaceError
from utils.io import TMP_SUFFIX, check_writable

# Part of every cache key: bump it when inference/export.py's graph changes, so files written by
# an older graph are no longer used (they stay on disk; the folder can be emptied at any time).
EXPORT_VERSION = 1
ENGINES = ("torch", "onnxruntime")
EXPORT_SIZE = 256  # the trace's example input (the files take any multiple of 4)
# The cache's bounds (serve.py --cache-max-files / --cache-max-bytes): 32 white-box generators
# are 189 MB, so the count binds first for them; the bytes bound covers larger generators.
CACHE_MAX_FILES = 32
CACHE_MAX_BYTES = 256 * 2**20
CACHE_PREFIX, CACHE_SUFFIX = "generator-", ".onnx"
STALE_TMP_SECONDS = 3600.0  # a write's temporary file older than this was left by a killed run


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/toonface/onnx`` (``~/.cache/toonface/onnx`` where it is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "toonface" / "onnx"


def import_onnxruntime():
    """The onnxruntime module; ToonFaceError (one line) where it, or onnx (which the export
    writes with), is not installed."""
    import importlib

    missing = []
    for name in ("onnxruntime", "onnx"):
        try:
            importlib.import_module(name)  # optional dependency: onnxruntime, onnx
        except ImportError:
            missing.append(name)
    if missing:
        what = " and ".join(missing)
        plural = "s" if len(missing) > 1 else ""
        raise ToonFaceError(f"--engine onnxruntime needs the {what} package{plural} (pip install "
                            f"{' '.join(missing)}), or use --engine torch")
    import onnxruntime

    return onnxruntime


def check_engine(engine: str, precision: str = "fp32") -> None:
    """ToonFaceError (one line) for an unknown engine or a precision it cannot run."""
    if engine not in ENGINES:
        raise ToonFaceError(f"--engine {engine}: expected one of {', '.join(ENGINES)}")
    if engine == "onnxruntime" and precision != "fp32":
        raise ToonFaceError(f"--precision {precision} is not supported with --engine "
                            "onnxruntime (the exported model is float32); use --precision fp32 "
                            "or --engine torch")


def generator_key(generator: torch.nn.Module, eps: float) -> str:
    """Hex digest naming the ONNX file of ``generator`` with guided filter ``eps`` (see the
    module docstring for what it covers)."""
    # lazy: cv2, click only when this runs
    from inference.export import ONNX_OPSET

    h = hashlib.sha256()
    config = {k: getattr(generator, k, None) for k in ("output_act", "upsample")}
    h.update(repr((EXPORT_VERSION, ONNX_OPSET, type(generator).__name__, sorted(config.items()),
                   float(eps).hex())).encode())
    for name, t in generator.state_dict().items():
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def prune_cache(cache_dir: str | os.PathLike, keep: Path | None = None,
                max_files: int = CACHE_MAX_FILES, max_bytes: int = CACHE_MAX_BYTES) -> list[Path]:
    """Remove the least recently used (oldest mtime) cached ONNX files of ``cache_dir`` until at
    most ``max_files`` files and ``max_bytes`` bytes remain, ``keep`` excepted (it stays even
    alone over ``max_bytes``), and the temporary files of killed writes; returns what was
    removed. Files another process removes meanwhile are skipped."""
    import time


    folder = Path(cache_dir)
    entries, removed = [], []
    now = time.time()
    try:
        names = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in names:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        name = entry.name
        if name.startswith(f".{CACHE_PREFIX}") and name.endswith(TMP_SUFFIX):
            if now - st.st_mtime > STALE_TMP_SECONDS:
                removed.append(Path(entry.path))
        elif name.startswith(CACHE_PREFIX) and name.endswith(CACHE_SUFFIX):
            if keep is None or Path(entry.path) != Path(keep):
                entries.append((st.st_mtime, st.st_size, Path(entry.path)))
    entries.sort(key=lambda e: e[0], reverse=True)  # most recently used first
    kept_files = 1 if keep is not None else 0
    kept_bytes = Path(keep).stat().st_size if keep is not None and Path(keep).is_file() else 0
    for i, (_, size, path) in enumerate(entries):
        if kept_files + 1 > max_files or kept_bytes + size > max_bytes:
            removed.extend(p for _, _, p in entries[i:])  # this one and every older one
            break
        kept_files, kept_bytes = kept_files + 1, kept_bytes + size
    gone = []
    for path in removed:
        try:
            path.unlink()
            gone.append(path)
        except OSError:
            pass  # gone meanwhile, or a read-only cache shared with others: left to its owner
    return gone


def cached_onnx(generator: torch.nn.Module, eps: float, cache_dir: str | os.PathLike,
                max_files: int = CACHE_MAX_FILES, max_bytes: int = CACHE_MAX_BYTES) -> Path:
    """The ONNX file of ``generator`` + guided filter (``eps``) in ``cache_dir``, exported there
    first when it is missing; the cache is then pruned to ``max_files`` files and ``max_bytes``
    bytes (:func:`prune_cache`). Raises ToonFaceError (one line) where the folder cannot be
    written."""
    # lazy: cv2, click only when this runs
    from inference.export import ExportableGenerate, export_onnx

    path = Path(cache_dir) / f"{CACHE_PREFIX}{generator_key(generator, eps)}{CACHE_SUFFIX}"
    if path.is_file():
        try:
            os.utime(path)  # used now: the last file the pruning would pick
        except OSError:
            pass  # a read-only cache still serves its files
        return path
    check_writable(cache_dir, "--cache-dir", folder=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToonFaceError(f"--cache-dir {cache_dir}: cannot create it "
                            f"({exc.strerror or type(exc).__name__})") from None
    if any(t.device.type != "cpu" for t in generator.state_dict().values()):
        generator = copy.deepcopy(generator).cpu()  # the trace runs on the CPU; the caller's stays
    module = ExportableGenerate(generator.eval(), eps)
    with torch.no_grad():
        export_onnx(module, path, EXPORT_SIZE, EXPORT_SIZE)
    prune_cache(cache_dir, keep=path, max_files=max_files, max_bytes=max_bytes)
    return path


def providers_for(device: str | torch.device) -> list[str]:
    """onnxruntime execution providers for a ``--device`` spec; ToonFaceError where the device
    has none (``cuda`` needs the onnxruntime-gpu build)."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    spec = str(device)
    if spec == "auto":
        spec = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if spec == "cpu":
        return ["CPUExecutionProvider"]
    if spec.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ToonFaceError(f"--device {device} with --engine onnxruntime needs onnxruntime's "
                                "CUDA provider (the onnxruntime-gpu package); this one has "
                                f"{', '.join(available)}")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ToonFaceError(f"--device {device}: --engine onnxruntime runs on cpu or cuda")


class OnnxGenerate:
    """An onnxruntime session of :class:`inference.export.ExportableGenerate`: a drop-in for
    ``Cartoonizer._generate`` (``Cartoonizer(..., runtime=this)``).

    Call with (B, 3, H, W) float32 in [-1, 1], H and W multiples of 4, context included; returns
    the guided-filtered cartoon (B, 3, H, W) float32 on the CPU, unclamped. Thread-safe
    (onnxruntime's ``run`` is). Build with :meth:`for_generator` (export cached) or from a file.

    Args:
        path: the ONNX file.
        providers: onnxruntime execution providers (:func:`providers_for`).
        threads: intra-op threads; 0 = ``torch.get_num_threads()``, so ``--threads`` sets both
            engines alike.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int = 0):
        ort = import_onnxruntime()
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads) or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # errors only: its graph-optimisation warnings ask nothing of the user
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()  # only for the call counter below
        self.calls = 0

    @classmethod
    def for_generator(cls, generator: torch.nn.Module, eps: float,
                      cache_dir: str | os.PathLike | None = None, device: str = "cpu",
                      threads: int = 0) -> "OnnxGenerate":
        """Export ``generator`` (once; cached in ``cache_dir``, default
        :func:`default_cache_dir`) and open it."""
        providers = providers_for(device)
        cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return cls.open(cached_onnx(generator, eps, cache_dir), generator, eps, providers, threads)

    @classmethod
    def open(cls, path: Path, generator: torch.nn.Module, eps: float, providers: list[str],
             threads: int = 0) -> "OnnxGenerate":
        """A session of the cached file ``path`` (:func:`cached_onnx`); a file onnxruntime
        cannot read (damaged by hand) is exported again from ``generator``."""
        try:
            return cls(path, providers, threads)
        except Exception:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            path.unlink(missing_ok=True)
            return cls(cached_onnx(generator, eps, path.parent), providers, threads)

    def __call__(self, xp: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(xp.detach().to("cpu", torch.float32).numpy())
        with self._lock:
            self.calls += 1
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])


def load_cartoonizer(engine: str = "torch", checkpoint: str | os.PathLike | None = None,
                     device: str = "auto", *, cache_dir: str | os.PathLike | None = None,
                     threads: int = 0, **kwargs: Any):
    """:meth:`inference.cartoonizer.Cartoonizer.from_checkpoint` run by ``engine``.

    onnxruntime: the generator is loaded on the CPU, exported once into ``cache_dir`` and run
    by onnxruntime on ``device``'s provider (``threads`` intra-op threads, 0 = torch's count);
    the package and provider are checked before the generator is read. Raises ToonFaceError
    (one line) for an unknown engine, missing packages or an unwritable cache.
    """
    # lazy: cv2, click only when this runs
    from inference.cartoonizer import INFERENCE_EPS, Cartoonizer

    check_engine(engine)
    if engine == "torch":
        return Cartoonizer.from_checkpoint(checkpoint, device, **kwargs)
    providers = providers_for(device)
    toon = Cartoonizer.from_checkpoint(checkpoint, "cpu", **kwargs)
    path = cached_onnx(toon.generator, kwargs.get("eps", INFERENCE_EPS),
                       cache_dir if cache_dir is not None else default_cache_dir())
    toon.runtime = OnnxGenerate.open(path, toon.generator, kwargs.get("eps", INFERENCE_EPS),
                                     providers, threads)
    return toon
