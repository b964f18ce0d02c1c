"""Decoding uploads in processes that a deadline can end.

Pillow and its codecs run in C and cannot be interrupted from Python: a thread that parses or
decodes a hostile file (a PNG header of a million chunks, a JPEG of many scans, a codec that
loops) keeps its worker busy whatever ``--timeout`` says, and every request behind it waits;
parsed in the event loop, it stops the whole service. So the service never reads an upload's
header or pixels in its own process. :class:`Decoders` keeps one decoder process per inference
worker; a request hands one the upload's path and limits
(:func:`media.decode.open_frames`: every size, frame, scan and budget limit is checked
there, before decoding) and reads back the header, then the frames one at a time
(:class:`RemoteFrames`). A request whose deadline passes while its decoder works kills that
process (SIGKILL) and starts a fresh one in its place; a decoder that dies (a crash in a codec,
the kernel's OOM killer) fails that request only, with one line.

The wire is a socket pair with length-prefixed messages (``multiprocessing.connection``):
requests and replies are JSON, a frame's pixels follow as raw bytes whose size the parent
checks against the request's own limits. Nothing is unpickled: a decoder compromised through
a codec bug gets no code into the service. The process runs ``python -m serving.decoder FD``
and imports only ``media`` (numpy, Pillow; never torch or the generators).
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Iterator

import numpy as np
from media.errors import ImageTooLarge, UnreadableImage


ROOT = Path(__file__).resolve().parents[1]
# How long a decoder process may take to start (import numpy and Pillow) before a request that
# waits for it gives up; its start is not counted against the request's --timeout.
START_TIMEOUT = 60.0


class DecodeTimeout(Exception):
    """The request's deadline passed while its decoder worked; the decoder was ended."""


class DecodeFailed(Exception):
    """The file was refused or could not be decoded. ``kind``: "too_large" (a limit, ``what``
    names it as :class:`media.errors.ImageTooLarge` does) or "unreadable"."""

    def __init__(self, kind: str, message: str, what: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.what = kind, message, what


@dataclass(frozen=True)
class Limits:
    """What :func:`media.decode.open_frames` checks before decoding, and what the parent
    accepts back: no frame may hold more than ``max_pixels`` pixels."""

    max_pixels: int
    max_bytes: int | None = None
    max_side: int | None = None
    max_frames: int | None = None
    max_total_pixels: int | None = None


class _Decoder:
    """One decoder process and its end of the socket pair."""

    def __init__(self):
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serving.decoder", str(child.fileno())],
                pass_fds=(child.fileno(),), env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.ready = False
        self.busy = False  # a request is in flight: at its deadline the process is ended

    def _wait_ready(self) -> None:
        """The first message says the imports are done: the decoder's start is the service's
        own cost, not the request's, so it is bounded by START_TIMEOUT, not by the deadline."""
        if self.ready:
            return
        if not self.conn.poll(START_TIMEOUT):
            self.busy = True  # end it: it is stuck
            raise DecodeFailed("unreadable", "the image decoder did not start")
        self._read()
        self.ready = True

    def _read(self) -> dict:
        try:
            return json.loads(self.conn.recv_bytes(1 << 20))
        except (EOFError, OSError, ValueError):
            self.busy = True
            raise DecodeFailed("unreadable", self._death()) from None

    def _death(self) -> str:
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        why = "it was killed" if code is not None and code < 0 else "it stopped"
        return f"the image could not be decoded (the decoder process ended on it: {why})"

    def request(self, message: dict, deadline: float) -> dict:
        """Send a request and wait for its reply until ``deadline`` (``time.monotonic()``).

        While a request is in flight ``busy`` is True: a DecodeTimeout or DecodeFailed that
        leaves it so means the process must be ended (its answer would come later)."""
        self._wait_ready()
        if deadline - time.monotonic() <= 0:
            raise DecodeTimeout()  # nothing was sent: the decoder stays usable
        try:
            self.conn.send_bytes(json.dumps(message).encode())
        except OSError:
            self.busy = True
            raise DecodeFailed("unreadable", self._death()) from None
        self.busy = True
        if not self.conn.poll(max(deadline - time.monotonic(), 0.0)):
            raise DecodeTimeout()
        reply = self._read()
        self.busy = False
        return reply

    def pixels(self, n: int) -> np.ndarray:
        """The next raw message: exactly ``n`` uint8 values (a writable copy)."""
        try:
            data = self.conn.recv_bytes(n + 1)
        except (EOFError, OSError):
            self.busy = True
            raise DecodeFailed("unreadable", self._death()) from None
        if len(data) != n:
            self.busy = True
            raise DecodeFailed("unreadable", "the image decoder sent a frame of the wrong size")
        return np.frombuffer(data, np.uint8).copy()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        self.conn.close()


class RemoteFrames:
    """An upload opened in a decoder process: what :class:`media.decode.FrameReader` says
    about it (``format``, ``count``, ``frames``, ``canvas``, ``loop``, ``has_alpha``, ``gray``)
    and its frames, decoded one per :meth:`read` (or iteration), each within the deadline."""

    def __init__(self, decoder: _Decoder, header: dict, limits: Limits, deadline: float):
        self._decoder, self._limits, self._deadline = decoder, limits, deadline
        self.format = str(header["format"])
        self.count, self.frames = int(header["count"]), int(header["frames"])
        self.canvas = tuple(int(v) for v in header["canvas"])
        self.loop = int(header["loop"])
        self.has_alpha, self.gray = bool(header["has_alpha"]), bool(header["gray"])
        self.read_frames = 0

    def read(self):
        """The next :class:`media.decode.DecodedImage`, None after the last."""
        # lazy: PIL only when this runs
        from media.decode import DecodedImage

        if self.read_frames >= self.frames:
            return None
        d = self._decoder
        reply = d.request({"op": "next"}, self._deadline)
        _raise_for(reply)
        d.busy = True  # until the pixels that follow the reply are read
        h, w = (int(v) for v in reply["shape"])
        if not (0 < h and 0 < w and h * w <= self._limits.max_pixels):
            raise DecodeFailed("unreadable", "the image decoder sent a frame of an impossible size")
        rgb = d.pixels(h * w * 3).reshape(h, w, 3)
        alpha = d.pixels(h * w).reshape(h, w) if reply["alpha"] else None
        d.busy = False
        self.read_frames += 1
        return DecodedImage(rgb, alpha, bool(reply["gray"]), int(reply["bit_depth"]),
                            int(reply["frames"]), tuple(str(n) for n in reply["notes"]),
                            float(reply["duration_ms"]))

    def __iter__(self) -> Iterator:
        while (frame := self.read()) is not None:
            yield frame


def _raise_for(reply: dict) -> None:
    if "error" in reply:
        kind = reply["error"]
        if kind == "internal":
            raise RuntimeError(f"image decoder failed: {reply.get('message')}")
        raise DecodeFailed(kind, str(reply.get("message")), reply.get("what"))


class Decoders:
    """``size`` decoder processes (one per inference worker), started on first use.

    ``open(path, limits, deadline)`` is a context manager giving :class:`RemoteFrames`; it
    raises :class:`DecodeFailed` (refused or unreadable, one line), :class:`DecodeTimeout`
    (``deadline``, in ``time.monotonic()`` seconds, passed while the decoder worked: the
    process was ended and a fresh one started), RuntimeError (a bug in the decoder).
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._idle: queue.Queue[_Decoder] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: set[_Decoder] = set()
        self.closed = False
        self.ended = 0  # decoders ended at a deadline or found dead (for tests and logs)

    def _spawn(self) -> _Decoder:
        d = _Decoder()
        with self._lock:
            self._all.add(d)
        return d

    def _acquire(self) -> _Decoder:
        with self._lock:
            if self.closed:
                raise RuntimeError("the decoders are closed")
            start = self._started < self.size and self._idle.empty()
            if start:
                self._started += 1
        return self._spawn() if start else self._idle.get()

    def _release(self, d: _Decoder, healthy: bool) -> None:
        if healthy and d.alive() and not self.closed:
            self._idle.put(d)
            return
        self.ended += 1
        d.kill()
        with self._lock:
            self._all.discard(d)
            if self.closed:
                return
        self._idle.put(self._spawn())  # its replacement starts now, warm for the next request

    def open(self, path: str | os.PathLike, limits: Limits, deadline: float) -> "_Opened":
        return _Opened(self, path, limits, deadline)

    def close(self) -> None:
        """End every decoder process (a request still using one gets an error)."""
        with self._lock:
            self.closed = True
            everyone = list(self._all)
            self._all.clear()
        for d in everyone:
            d.kill()


class _Opened:
    def __init__(self, decoders: Decoders, path, limits: Limits, deadline: float):
        self.decoders, self.path, self.limits, self.deadline = decoders, path, limits, deadline
        self.decoder: _Decoder | None = None

    def __enter__(self) -> RemoteFrames:
        self.decoder = self.decoders._acquire()
        try:
            reply = self.decoder.request({"op": "open", "path": str(self.path),
                                          "limits": dataclasses.asdict(self.limits)}, self.deadline)
            _raise_for(reply)
            return RemoteFrames(self.decoder, reply, self.limits, self.deadline)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise

    def __exit__(self, kind, exc, tb) -> None:
        d, self.decoder = self.decoder, None
        if d is None:
            return
        # Ended when a request is still in flight (deadline, a broken channel) or it died;
        # otherwise its reader is closed and it serves the next request.
        healthy = not d.busy and d.alive()
        if healthy:
            try:
                d.conn.send_bytes(b'{"op": "close"}')
            except OSError:
                healthy = False
        self.decoders._release(d, healthy)


# ------------------------------------------------------------------------- the process
def _serve(conn: Connection) -> None:
    """The decoder process: answer requests until the service closes its end."""
    import traceback

    # lazy: PIL only when this runs
    from media.decode import open_frames

    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the service's to handle
    conn.send_bytes(b'{"ready": true}')
    reader = None

    def send(message: dict, *arrays: np.ndarray) -> None:
        conn.send_bytes(json.dumps(message).encode())
        for a in arrays:
            conn.send_bytes(memoryview(np.ascontiguousarray(a, dtype=np.uint8)).cast("B"))

    while True:
        try:
            message = json.loads(conn.recv_bytes())
        except EOFError:
            return
        op = message.get("op")
        try:
            if op == "close":
                if reader is not None:
                    reader.close()
                reader = None
                continue
            if op == "open":
                if reader is not None:
                    reader.close()
                reader = None
                lim = message["limits"]
                reader = open_frames(message["path"], max_pixels=lim["max_pixels"],
                                     max_bytes=lim["max_bytes"], max_side=lim["max_side"],
                                     max_frames=lim["max_frames"],
                                     max_total_pixels=lim["max_total_pixels"])
                send({"format": reader.format, "count": reader.count, "frames": reader.frames,
                      "canvas": list(reader.canvas), "loop": reader.loop,
                      "has_alpha": reader.has_alpha, "gray": reader.gray})
            elif op == "next":
                frame = reader.read() if reader is not None else None
                if frame is None:
                    send({"error": "unreadable", "message": "no more frames"})
                    continue
                h, w = frame.rgb.shape[:2]
                send({"shape": [h, w], "alpha": frame.alpha is not None, "gray": frame.gray,
                      "bit_depth": frame.bit_depth, "frames": frame.frames,
                      "notes": list(frame.notes), "duration_ms": frame.duration_ms},
                     frame.rgb, *(() if frame.alpha is None else (frame.alpha,)))
            else:
                send({"error": "internal", "message": f"unknown request {op!r}"})
        except ImageTooLarge as exc:
            send({"error": "too_large", "message": str(exc), "what": exc.what})
        except UnreadableImage as exc:
            send({"error": "unreadable", "message": str(exc)})
        except Exception:  # noqa: BLE001 - a bug is reported to the service, which logs it
            send({"error": "internal", "message": traceback.format_exc(limit=5)})


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
