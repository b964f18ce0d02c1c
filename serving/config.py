"""Every setting of the service in one typed object (``serve.py``'s options map onto it)."""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from media.limits import DEFAULT_MAX_ANIMATION_PIXELS
from inference.onnx_engine import CACHE_MAX_BYTES, CACHE_MAX_FILES, check_engine
from inference.styles import DEFAULT_STYLES_DIR
from utils.errors import ToonFaceError
from utils.io import check_writable

MB = 1024 * 1024
# The seed's input validator: 10 MB, 3000 x 3000.
DEFAULT_MAX_BYTES = 10 * MB
DEFAULT_MAX_SIDE = 3000
# Pillow refuses (DecompressionBombError, before our own check can run) headers over twice
# PIL.Image.MAX_IMAGE_PIXELS = 2 * 89,478,485 pixels, i.e. sides over ~13,377 for a square.
MAX_SIDE_LIMIT = 13000
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class ServeConfig:
    """What the service needs to know; ``validate()`` checks the values (one-line errors).

    Sizes are bytes, times seconds, sides pixels.
    """

    styles_dir: str | Path = DEFAULT_STYLES_DIR
    default_style: str | None = None      # None: the first style by name
    max_bytes: int = DEFAULT_MAX_BYTES    # per uploaded image (the body may add form overhead)
    max_side: int = DEFAULT_MAX_SIDE      # width and height of images and video frames
    max_video_bytes: int = 100 * MB
    max_video_frames: int = 1800          # 1 minute at 30 fps; also an animated PNG's frames
    max_animation_pixels: int = DEFAULT_MAX_ANIMATION_PIXELS  # an animated PNG's frames x canvas
    queue: int = 8                        # requests waiting for a worker
    workers: int = 1                      # inference threads (one per device is the default)
    timeout: float = 120.0                # queue wait + inference, per image request
    upload_timeout: float = 60.0          # the whole request body must arrive within this
    max_loaded_styles: int = 4            # generators kept in memory (LRU)
    max_jobs: int = 8                     # video jobs queued or running
    job_ttl: float = 3600.0               # a finished job and its files live this long
    device: str = "auto"
    precision: str = "fp32"
    engine: str = "torch"                 # torch or onnxruntime (inference/onnx_engine.py)
    cache_dir: str | Path | None = None   # onnxruntime's exported models; None: the user cache
    cache_max_files: int = CACHE_MAX_FILES  # ... at most this many files (LRU)
    cache_max_bytes: int = CACHE_MAX_BYTES  # ... and this many bytes
    tmp_dir: str | Path | None = None     # parent of the service's own temporary folder
    log_client: bool = False              # put the client address in the request log
    # Connections (serving/server.py): uvicorn itself bounds none of these.
    header_timeout: float = 10.0          # a request's headers must arrive within this (408)
    max_connections: int = 256            # open connections at once; past it: 503 and closed
    drain_bytes: int = 32 * MB            # of a refused body, read and dropped so the client
                                          # reads its answer (past it: the connection is cut)
    allowed_hosts: tuple[str, ...] | None = None  # Host header names answered; None: any

    def validate(self) -> "ServeConfig":
        for name in ("max_bytes", "max_side", "max_video_bytes", "max_video_frames",
                     "max_animation_pixels", "workers", "max_loaded_styles", "max_jobs",
                     "cache_max_files", "cache_max_bytes", "max_connections"):
            if int(getattr(self, name)) < 1:
                raise ToonFaceError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("queue", "drain_bytes"):
            if int(getattr(self, name)) < 0:
                raise ToonFaceError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("timeout", "upload_timeout", "job_ttl", "header_timeout"):
            if not float(getattr(self, name)) > 0:
                raise ToonFaceError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not math.isfinite(self.header_timeout):
            raise ToonFaceError(f"--header-timeout must be finite, got {self.header_timeout}")
        if self.max_side > MAX_SIDE_LIMIT:
            raise ToonFaceError(f"--max-side {self.max_side}: at most {MAX_SIDE_LIMIT} (larger headers "
                                "are refused as decompression bombs by Pillow itself)")
        if self.precision not in PRECISIONS:
            raise ToonFaceError(f"--precision {self.precision}: expected one of {', '.join(PRECISIONS)}")
        check_engine(self.engine, self.precision)
        # the service's folder is made in it once the server listens: too late for one line
        check_writable(self.tmp_dir if self.tmp_dir is not None else tempfile.gettempdir(),
                       "--tmp-dir", folder=True)
        return self

    @property
    def max_pixels(self) -> int:
        return self.max_side * self.max_side
