"""Keep known start-up chatter of native libraries (mediapipe's C++ core) off the terminal.

mediapipe 0.10.21 writes, the first time each graph runs, lines such as::

    INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    W0000 00:00:1796509742.391585   25003 inference_feedback_manager.cc:114] Feedback manager ...
    W0000 00:00:1796509742.430537   25002 landmark_projection_calculator.cc:186] Using NORM_RECT ...

They say nothing about the user's data and worry newcomers. They come from absl's C++
logging, which the Python process cannot configure: absl reads no environment variable
(GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL change nothing; measured), its threshold is set by
C++ calls or command-line flags that the Python bindings never parse, and before
``absl::InitializeLog()`` it writes everything to file descriptor 2. So :func:`quiet_native_stderr`
points descriptor 2 at a temporary file while a graph is built and first run, then writes
back every line that is not one of the known ``NOISE`` patterns: an unexpected message (a
real error, or another thread's output in that window) still reaches stderr, only later.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

NOISE = (
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$"),
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*$"),
    re.compile(r"^W\d{4} [\d:.]+\s+\d+ inference_feedback_manager\.cc:\d+\] Feedback manager requires "
               r"a model with a single signature inference"),
    re.compile(r"^W\d{4} [\d:.]+\s+\d+ landmark_projection_calculator\.cc:\d+\] Using NORM_RECT "
               r"without IMAGE_DIMENSIONS"),
)

_lock = threading.RLock()  # descriptor 2 is one per process: one redirection at a time
_depth = 0


@contextmanager
def quiet_native_stderr(noise: tuple[re.Pattern, ...] = NOISE) -> Iterator[None]:
    """Hold what is written to descriptor 2 inside the block; afterwards write back the lines
    that match none of ``noise``. Nested uses are one redirection (the outer one)."""
    global _depth
    with _lock:
        if _depth:
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): nothing to quiet
            yield
            return
        held = tempfile.TemporaryFile()
        os.dup2(held.fileno(), 2)
        _depth = 1
        try:
            yield
        finally:
            _depth = 0
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            held.close()
            kept = [line for line in text.splitlines(keepends=True)
                    if not any(p.search(line) for p in noise)]
            if kept:
                os.write(2, "".join(kept).encode("utf-8", errors="replace"))
