"""What the routes share: :class:`Service`, built once by :func:`serving.app.create_app` and
reached by the routes through the dependencies of :mod:`serving.deps`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from inference.styles import Style, parse_style_spec
from serving.config import ServeConfig
from serving.decoder import Decoders
from serving.engine import Engine, StyleCache
from serving.errors import ApiError
from serving.jobs import JobStore
from serving.metrics import Metrics
from serving.pool import InferencePool
from utils.errors import ToonFaceError


@dataclass
class Service:
    """The settings, the engine and its style cache, the styles scanned at start; ``pool``,
    ``decoders``, ``jobs`` and ``tmp`` exist between the app's startup and shutdown."""

    config: ServeConfig
    engine: Engine
    styles: dict[str, Style]
    default_style: str
    cache: StyleCache
    metrics: Metrics | None = None
    pool: InferencePool | None = None
    decoders: Decoders | None = None
    jobs: JobStore | None = None
    tmp: Path | None = None
    run_seconds: float = 1.0  # moving average of a worker run, for Retry-After
    tasks: list = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.pool is not None and self.tmp is not None

    # ------------------------------------------------------------------ styles
    def style_key(self, spec: str | None) -> str:
        """The cache key of a style name or blend (canonical names); ApiError 400 otherwise."""
        spec = (spec or "").strip() or self.default_style
        try:
            parts = parse_style_spec(spec)
        except ToonFaceError as exc:
            raise ApiError("invalid_style", str(exc).replace("--style ", "style ", 1)) from None
        names = []
        for name, weight in parts:
            style = self.styles.get(name.casefold())
            if style is None:
                available = ", ".join(sorted(s.name for s in self.styles.values()))
                raise ApiError("unknown_style", f"unknown style {name!r}; available: {available}")
            names.append((style.name, weight))
        if len(names) == 1:
            return names[0][0]
        return ",".join(f"{n}={w:.6g}" for n, w in names)

    def stylizer(self, key: str):
        """The loaded stylizer of a cache key (in a worker thread); ApiError 400 when the styles
        cannot be combined or loaded."""
        try:
            return self.cache.get(key)
        except ToonFaceError as exc:
            raise ApiError("invalid_style", str(exc)) from None

    def retry_after(self) -> str:
        """Seconds until the queue has likely moved on: the requests ahead x the mean run time."""
        c = self.config
        ahead = (self.pool.queued if self.pool else c.queue) + c.workers
        return str(max(1, math.ceil(self.run_seconds * ahead / c.workers)))

    def busy_error(self) -> ApiError:
        return ApiError("busy", f"the server is busy ({self.config.queue} requests waiting); "
                                "try again later", headers={"Retry-After": self.retry_after()})
