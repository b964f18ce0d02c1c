"""The FastAPI application: ``create_app(ServeConfig) -> FastAPI``.

It scans the styles once, builds the shared :class:`serving.service.Service` (settings, engine,
style cache, metrics) into ``app.state.service``, adds the error handlers and middlewares, and
includes one router per resource (:mod:`serving.routes`); the lifespan owns the temporary
folder, the inference pool, the decoder processes and the job store.

Routes (every error is ``{"error": {"code", "message"}}``, see :mod:`serving.errors`; the
answers' types are :mod:`serving.schemas`, which ``/openapi.json`` is generated from):

- ``GET /``: the web page; ``GET /static/...``: its script, style sheet and icon;
  ``GET /favicon.ico``: the icon (SVG), for browsers that ask for it there.
- ``GET /api/styles``: the styles of ``--styles-dir`` (name, steps, image size, metrics, default).
- ``POST /api/cartoonize``: multipart ``image`` (PNG/JPEG) + ``style``, ``strength`` (0..1),
  ``portrait`` (bool), ``temporal`` ([0, 1), an animation's stabiliser) -> the cartoon, same
  size: PNG (sRGB-tagged; gray and alpha kept), JPEG
  when ``Accept: image/jpeg``, JSON when ``Accept: application/json``: ``image`` (base64 of the
  file), ``media_type`` (that file's type: ``image/png``, an animated PNG for an animation),
  ``width``, ``height``, ``style``, ``strength``, ``portrait``, ``temporal``, ``notices``,
  ``duration_ms``. An animated PNG runs through the clip pipeline of ``cartoonize.py``
  (inference/clips.py), as a video job does.
- ``POST /api/videos``: multipart ``video`` + the same fields -> 202 ``{"id", ...}``;
  ``GET /api/jobs/{id}`` status and progress; ``GET /api/jobs/{id}/result`` the MP4;
  ``DELETE /api/jobs/{id}`` cancels and removes.
- ``GET /healthz``, ``GET /metrics`` (Prometheus text format).

The order of checks for an image: the service is running, Accept, Content-Type,
Content-Length, the body as it streams (size, magic bytes, time), the fields (style, strength,
portrait, temporal); then the queue: a full one is refused (503 ``busy``, Retry-After) after the
body is read, so that every refused client reads its answer (a 503 given mid-upload must close
the connection, and a client still sending then often sees a reset). Then a worker hands the
file to its decoder process (:mod:`serving.decoder`), which checks the header against every
limit (sides, an animation's frames and frames x canvas pixels, a JPEG's scans) before decoding
the pixels (``media.decode``: EXIF orientation, 16-bit, alpha, palette, CMYK, ICC -> sRGB) one
frame at a time; the worker stylizes and encodes them. Nothing of an upload is parsed in the
service's own process, and ``--timeout`` stops the whole of it: a decoder still working at the
deadline is killed (and replaced), an animation stops before its next frame.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.styles import StyleRegistry
from serving.config import ServeConfig
from serving.decoder import Decoders
from serving.engine import Engine, StyleCache, make_engine
from serving.errors import (ApiError, api_error_handler, http_error_handler,
                            validation_error_handler)
from serving.guards import DrainBody, HostCheck
from serving.jobs import JobStore, VideoLimits
from serving.metrics import Metrics, RequestLog, escape_logger
from serving.pool import InferencePool
from serving.routes import health, images, include, pages, videos
from serving.routes import styles as styles_routes
from serving.routes.pages import STATIC
from serving.service import Service
from serving.workdir import ServiceFolder
from utils.errors import ToonFaceError

log = logging.getLogger("toonface.serve")


# ----------------------------------------------------------------------------- factory
def create_app(config: ServeConfig, engine: Engine | None = None) -> FastAPI:
    """The service for ``config``; ``engine`` defaults to the one ``config.engine`` names
    (:func:`serving.engine.make_engine`), on ``config.device`` in ``config.precision``.

    Raises ToonFaceError (one line) for a bad setting, a styles folder without styles, or a
    ``default_style`` that is not one of them.
    """
    config = config.validate()
    escape_logger(log)  # every message one line, whatever a client put in it
    # one scan of the styles folder, shared with the engine (whose loads then read one file each)
    registry = getattr(engine, "styles", None)
    if not isinstance(registry, StyleRegistry):
        registry = StyleRegistry(config.styles_dir, warn=lambda m: log.warning("%s", m))
    styles = registry.styles
    if not styles:
        raise ToonFaceError(f"no styles in {config.styles_dir} (train.py --style NAME writes one; "
                            "run folders and generator .pt files are searched)")
    engine = engine or make_engine(config, styles=registry)
    svc = Service(config, engine, styles, "", StyleCache(engine, config.max_loaded_styles))
    first = sorted(styles.values(), key=lambda s: s.key)[0].name
    try:
        svc.default_style = svc.style_key(config.default_style or first)
    except ApiError as exc:
        raise ToonFaceError(f"--default-style: {exc.message}") from None
    svc.metrics = Metrics(queue_length=lambda: svc.pool.queued if svc.pool else 0,
                          running=lambda: svc.pool.running if svc.pool else 0,
                          loaded_styles=lambda: len(svc.cache.loaded()),
                          jobs=lambda: svc.jobs.counts() if svc.jobs else {})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        folder = ServiceFolder(config.tmp_dir)  # also removes those of killed services
        svc.tmp = folder.path
        (svc.tmp / "uploads").mkdir()
        svc.pool = InferencePool(config.workers, config.queue)
        svc.decoders = Decoders(config.workers)  # one per worker, started on first use
        svc.jobs = JobStore(svc.tmp / "jobs", ttl=config.job_ttl, max_jobs=config.max_jobs,
                            limits=VideoLimits(config.max_side, config.max_video_frames),
                            stylizer_for=svc.stylizer)

        async def sweep() -> None:
            period = min(max(config.job_ttl / 4, 0.05), 30.0)
            while True:
                await asyncio.sleep(period)
                try:
                    svc.jobs.sweep()
                except Exception as exc:  # noqa: BLE001 - the sweeper must outlive one bad folder
                    log.error("job sweep failed", exc_info=exc)

        svc.tasks.append(asyncio.create_task(sweep()))
        log.info("serving %d style(s) from %s (default %s); temporary files in %s",
                 len(styles), config.styles_dir, svc.default_style, svc.tmp)
        try:
            yield
        finally:
            for t in svc.tasks:
                t.cancel()
            svc.tasks.clear()
            svc.pool.close()
            svc.decoders.close()
            await asyncio.to_thread(svc.jobs.close)
            folder.close()
            svc.pool = svc.decoders = svc.jobs = svc.tmp = None

    app = FastAPI(title="ToonFace", version="0.2.0", lifespan=lifespan,
                  description="Face cartoonization as a service: images answered directly, videos "
                              "as jobs. Every error is {\"error\": {\"code\", \"message\"}}.")
    app.state.service = svc
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    # innermost first: Host check, then draining of refused bodies, then the log around all
    app.add_middleware(HostCheck, allowed=config.allowed_hosts)
    app.add_middleware(DrainBody, drain_bytes=config.drain_bytes, seconds=config.upload_timeout)
    app.add_middleware(RequestLog, metrics=svc.metrics, log_client=config.log_client)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    for router in (pages.router, health.router, styles_routes.router, images.router,
                   videos.router):
        include(app, router)
    return app
