"""Helpers of the web-service tests: tiny styles, encoded test images, gated engines, and a
real uvicorn server on a free 127.0.0.1 port."""
from __future__ import annotations

import copy
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import torch

from tests.inference import make_picture

H, W = 40, 48  # test images: small, not square, not multiples of 4


def tiny_generator(seed: int = 0):
    """A ``Generator`` with 8 channels and 1 block (fast on a busy CPU), output std ~0.5."""
    from models import Generator

    torch.manual_seed(seed)
    G = Generator(channels=8, num_blocks=1).eval()
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        G.out.weight.mul_(0.5 / G(x).std())
        G.out.bias.zero_()
    return G


def write_styles(folder: Path, names=("Soft", "Hard")) -> Path:
    """Styles fine-tuned from one parent (so they blend): the last conv scaled per style."""
    from models.checkpoint import save_generator, weights_hash

    folder.mkdir(parents=True, exist_ok=True)
    parent = tiny_generator(3)
    parent_hash = weights_hash(parent.state_dict())
    for i, name in enumerate(names):
        G = copy.deepcopy(parent)
        with torch.no_grad():
            G.out.weight.mul_(0.6 + 0.8 * i)
        save_generator(folder / f"{name.lower()}.pt", G, style=name, pretrained_hash=parent_hash,
                       image_size=64, face_size=20.0, step=100 * (i + 1), kind="train", run=name,
                       metrics={"nme68_mean": 0.05 + i / 100})
    return folder


def encode(rgb: np.ndarray, fmt: str = "PNG", mode: str | None = None, **save) -> bytes:
    from PIL import Image

    im = Image.fromarray(rgb)
    if mode:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def photo(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return make_picture(h, w, seed)


def png(h: int = H, w: int = W, seed: int = 0) -> bytes:
    return encode(photo(h, w, seed))


def decode(data: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(data))
    im.load()
    return im


class GatedEngine:
    """A real engine whose stylizers wait for ``gate`` before running (to hold workers busy),
    counting calls and loads."""

    def __init__(self, inner):
        self.inner, self.name = inner, "gated"
        self.gate = threading.Event()
        self.calls = 0
        self.started = threading.Event()
        self.lock = threading.Lock()

    def load(self, spec):
        return _Gated(self.inner.load(spec), self)


class _Gated:
    def __init__(self, inner, engine: GatedEngine):
        self.inner, self.engine, self.meta = inner, engine, inner.meta

    def _wait(self):
        with self.engine.lock:
            self.engine.calls += 1
        self.engine.started.set()
        if not self.engine.gate.wait(30):
            raise RuntimeError("gate never opened")

    def __call__(self, rgb, **kw):
        self._wait()
        return self.inner(rgb, **kw)

    def frames(self, frames, **kw):
        self._wait()
        return self.inner.frames(frames, **kw)

    def clip(self, **kw):
        """The inner clip, each batch held at the gate (a video job's frames)."""
        inner = self.inner.clip(**kw)
        gated = self

        class Clip:
            def __call__(self, frames):
                gated._wait()
                return inner(frames)

            def notices(self):
                return inner.notices()

        return Clip()


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class ServerThread:
    """The app under uvicorn in a thread, listening on a free 127.0.0.1 port (``url``), set up
    as serve.py sets it up (:func:`serving.server.uvicorn_config`)."""

    def __init__(self, app):
        import uvicorn

        from serving.server import uvicorn_config

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 60, "uvicorn start")
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
