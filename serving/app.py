"""The FastAPI application: ``create_app(ServeConfig) -> FastAPI``.

Routes (every error is ``{"error": {"code", "message"}}``, see :mod:`serving.errors`):

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

The order of checks for an image: Content-Type, Content-Length, a full queue (503 before the
body is read), the body as it streams (size, magic bytes, time), the fields (style, strength,
portrait, Accept); then a worker hands the file to its decoder process
(:mod:`serving.decoder`), which checks the header against every limit (sides, an animation's
frames and frames x canvas pixels, a JPEG's scans) before decoding the pixels
(``media.decode``: EXIF orientation, 16-bit, alpha, palette, CMYK, ICC -> sRGB) one frame at
a time; the worker stylizes and encodes them. Nothing of an upload is parsed in the service's
own process, and ``--timeout`` stops the whole of it: a decoder still working at the deadline
is killed (and replaced), an animation stops before its next frame.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.styles import Style, StyleRegistry, parse_style_spec
from media.encode import encode_jpeg
from serving.config import ServeConfig
from serving.decoder import DecodeFailed, Decoders, DecodeTimeout, Limits
from serving.engine import Engine, StyleCache, make_engine
from serving.errors import (ApiError, api_error_handler, http_error_handler,
                            validation_error_handler)
from serving.guards import DrainBody, HostCheck
from serving.jobs import JobStore, VideoLimits
from serving.metrics import Metrics, RequestLog, escape_logger
from serving.pool import ClientGone, Deadline, InferencePool, QueueFull
from serving.uploads import read_form, sniff_image, sniff_video
from serving.workdir import ServiceFolder
from utils.errors import ToonFaceError
from inference.clips import stylize_animation
from media.encode import ApngWriter, encode_png

log = logging.getLogger("toonface.serve")

STATIC = Path(__file__).resolve().parent / "static"
# The JSON answer of POST /api/cartoonize (Accept: application/json), for the OpenAPI page.
JSON_ANSWER = {"type": "object", "properties": {
    "image": {"type": "string", "format": "byte", "description": "the cartoon file, base64"},
    "media_type": {"type": "string", "enum": ["image/png"], "description": "the type of the "
                   "file in image: a PNG (an animated PNG when the upload is an animation)"},
    "width": {"type": "integer"}, "height": {"type": "integer"},
    "style": {"type": "string", "description": "the style or blend used"},
    "strength": {"type": "number"}, "portrait": {"type": "boolean"},
    "temporal": {"type": "number"},
    "notices": {"type": "array", "items": {"type": "string"},
                "description": "one-line remarks (e.g. no face found in portrait mode)"},
    "duration_ms": {"type": "integer", "description": "queue wait + inference"}}}
FORM_FIELDS = ("style", "strength", "portrait", "temporal")
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


# ------------------------------------------------------------------------- the service
@dataclass
class Service:
    """What the routes share. Built by :func:`create_app`; ``pool``, ``jobs`` and ``tmp`` exist
    between the app's startup and shutdown."""

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


# ------------------------------------------------------------------------- form values
def parse_fraction(raw: str | None, what: str, default: float, *, one_included: bool = True) -> float:
    """A form field holding a finite number in [0, 1] (``one_included=False``: [0, 1)); empty
    or missing: ``default``. ApiError ``invalid_field`` naming ``what`` otherwise."""
    if raw is None or not raw.strip():
        return default
    interval = "[0, 1]" if one_included else "[0, 1)"
    try:
        value = float(raw)
    except ValueError:
        raise ApiError("invalid_field", f"{what} must be a number in {interval}, got {raw[:40]!r}") from None
    if not (math.isfinite(value) and 0.0 <= value and (value <= 1.0 if one_included else value < 1.0)):
        raise ApiError("invalid_field", f"{what} must be a number in {interval}, got {raw[:40]}")
    return value


def parse_strength(raw: str | None) -> float:
    """The blend with the photo, as ``cartoonize.py --strength``: [0, 1], default 1."""
    return parse_fraction(raw, "strength", 1.0)


def parse_temporal(raw: str | None) -> float:
    """The clip stabiliser's strength, as ``cartoonize.py --temporal``: [0, 1), default 0 (off)."""
    return parse_fraction(raw, "temporal", 0.0, one_included=False)


def parse_portrait(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ApiError("invalid_field", f"portrait must be true or false, got {raw[:40]!r}")


def form_choices(request, upload, field: str, style_key) -> tuple[str, float, bool, float]:
    """(style key, strength, portrait, temporal) of an upload form whose file field is ``field``
    ("image" or "video"); ApiError for a missing or empty file and for bad fields.
    ``style_key``: the service's name -> registry key lookup (400 listing the names); the key
    goes into ``request.state.style`` (the request log) as soon as it is known."""
    if upload.path is None:
        raise ApiError("missing_field", f"no '{field}' file in the form (multipart field "
                                        f"'{field}')")
    if upload.size == 0:
        raise ApiError("empty_file", f"the {field} file is empty (0 bytes)")
    request.state.style = key = style_key(upload.fields.get("style"))
    return (key, parse_strength(upload.fields.get("strength")),
            parse_portrait(upload.fields.get("portrait")), parse_temporal(upload.fields.get("temporal")))


def choose_output(accept: str | None) -> str:
    """"png", "jpeg" or "json" from an Accept header (q-values honoured; PNG on ties and for
    */*, image/*). ApiError 406 when it names none of them."""
    if not accept or not accept.strip():
        return "png"
    offers = {"image/png": "png", "image/jpeg": "jpeg", "application/json": "json"}
    best, best_q = None, 0.0
    for rank, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media, q = parts[0].lower(), 1.0
        for p in parts[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media in ("*/*", "image/*"):
            kinds = ["png"]
        elif media in offers:
            kinds = [offers[media]]
        else:
            continue
        for k in kinds:
            # ties keep the earlier entry, except that an explicit type beats a wildcard
            if q > best_q or (q == best_q and best is not None and best[1] and "*" not in media):
                best, best_q = (k, "*" in media), q
    if best is None or best_q <= 0:
        raise ApiError("not_acceptable", "Accept must allow image/png, image/jpeg or "
                                         f"application/json, got {accept[:80]!r}")
    return best[0]


def unread_body(exc: ApiError) -> ApiError:
    """``exc`` answered with ``Connection: close``: it was raised before the body was read to its
    end, and on a kept-alive connection uvicorn would go on receiving (and dropping) the rest of
    an upload we refused; closing cuts it off."""
    return ApiError(exc.code, exc.message, headers={**exc.headers, "Connection": "close"})


# The option that sets each limit of media.decode, as the service names it.
LIMIT_OPTIONS = {"side": "--max-side", "pixels": "--max-side", "frames": "--max-video-frames",
                 "animation-pixels": "--max-animation-pixels", "bytes": "--max-bytes"}


def decode_error(exc: DecodeFailed) -> ApiError:
    """A decoder's refusal as the service's error: 413 for a limit (naming its option), 400 for
    a file that cannot be decoded."""
    if exc.kind != "too_large":
        return ApiError("unreadable_image", exc.message)
    option = LIMIT_OPTIONS.get(exc.what or "")
    message = f"{exc.message} ({option})" if option else exc.message
    return ApiError("too_large" if exc.what == "bytes" else "image_too_large", message)


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

    def running() -> Service:
        if svc.pool is None or svc.tmp is None:
            raise ApiError("unavailable", "the service is not running (starting or shutting down)")
        return svc

    # -------------------------------------------------------------------- pages
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # browsers ask for /favicon.ico whatever the page says; an SVG answers it
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        s = running()
        return {"status": "ok", "styles": len(s.styles), "queue": s.pool.queued,
                "running": s.pool.running, "workers": config.workers,
                "jobs_active": s.jobs.active()}

    @app.get("/metrics", summary="Prometheus metrics (text format)")
    async def metrics() -> Response:
        body, ctype = svc.metrics.render()
        return Response(body, media_type=ctype)

    @app.get("/api/styles", summary="The styles of --styles-dir")
    async def list_styles() -> dict[str, Any]:
        out = [{"name": s.name, "default": s.name == svc.default_style, "step": s.step,
                "image_size": s.image_size, "metrics": s.metrics,
                "pretrained_hash": s.pretrained_hash}
               for s in sorted(svc.styles.values(), key=lambda s: s.key)]
        return {"styles": out, "default": svc.default_style,
                "limits": {"max_bytes": config.max_bytes, "max_side": config.max_side,
                           "max_video_bytes": config.max_video_bytes,
                           "max_video_frames": config.max_video_frames,
                           "max_animation_pixels": config.max_animation_pixels}}

    # -------------------------------------------------------------------- images
    form_doc = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary", "description": "PNG or JPEG, at most "
                      "--max-bytes bytes and --max-side px per side"},
            "style": {"type": "string", "description": "a style name or a blend a=0.7,b=0.3 "
                      "(default: --default-style)"},
            "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": 1},
            "portrait": {"type": "boolean", "default": False},
            "temporal": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0,
                         "description": "an animation's stabiliser strength, as cartoonize.py "
                                        "--temporal (0 = off)"}}}}}},
        "responses": {"200": {"description": "the cartoon, the input's size", "content": {
            "image/png": {}, "image/jpeg": {}, "application/json": {"schema": JSON_ANSWER}}}}}

    @app.post("/api/cartoonize", summary="Cartoonize one image", openapi_extra=form_doc,
              response_class=Response)
    async def cartoonize(request: Request) -> Response:
        try:
            s = running()
            output = choose_output(request.headers.get("accept"))
            # A full queue is refused after the body is read (bounded by --max-bytes): a 503
            # given mid-upload must close the connection, and a client still sending then
            # often sees a reset instead of the answer (measured: 11 of 39 refusals in
            # bench_serve.py's overload phase); read first, every client gets its 503.
            upload = await read_form(request, file_field="image", text_fields=FORM_FIELDS,
                                     max_file_bytes=config.max_bytes, tmp_dir=s.tmp / "uploads",
                                     timeout=config.upload_timeout, sniff=sniff_image,
                                     accepted="a PNG or JPEG image")
        except ApiError as exc:
            raise unread_body(exc) from None
        try:
            key, strength, portrait, temporal = form_choices(request, upload, "image", s.style_key)
            path = upload.path
            limits = Limits(max_pixels=config.max_pixels, max_bytes=config.max_bytes,
                            max_side=config.max_side, max_frames=config.max_video_frames,
                            max_total_pixels=config.max_animation_pixels)
            stop_at = time.monotonic() + config.timeout  # the worker's view of the deadline

            def stylize(stylizer, rgb, notices: list[str]):
                try:
                    return stylizer(rgb, strength=strength, portrait=portrait, notice=notices.append)
                except ToonFaceError as exc:
                    raise ApiError("bad_request", str(exc)) from None

            def animation(frames, stylizer, notices: list[str]):
                """An animated PNG -> its cartoon as an animated PNG through the clip pipeline
                of ``cartoonize.py`` (inference/clips.py: faces tracked in portrait mode,
                ``temporal``; frame times and loop count kept), decoded, stylized and encoded
                frame by frame; it stops at the deadline (between frames)."""
                buf = io.BytesIO()
                writer = ApngWriter(buf, alpha=frames.has_alpha, gray=frames.gray, loop=frames.loop)
                try:
                    clip = stylizer.clip(strength=strength, portrait=portrait, temporal=temporal)
                except ToonFaceError as exc:
                    raise ApiError("bad_request", str(exc)) from None
                first: list = []   # the first frame's cartoon (the answer's size)

                def add(frame, cartoon) -> None:
                    if not first:  # the first frame carries the file's notes
                        notices.extend(frame.notes)
                        first.append(cartoon)
                    writer.add(cartoon, frame.alpha, frame.duration_ms)

                def before_batch(pending) -> None:
                    if first and time.monotonic() > stop_at:
                        raise Deadline()

                try:
                    stylize_animation(frames, clip, add, before_batch=before_batch)
                except ToonFaceError as exc:
                    raise ApiError("bad_request", str(exc)) from None
                writer.close()
                notices.extend(clip.notices())
                if output == "jpeg":
                    notices.append("an animation cannot be a JPEG: answered as an animated PNG")
                notices.append(f"{frames.frames}-frame animation: every frame stylized, frame times "
                               "and loop count kept")
                return buf.getvalue(), first[0]

            def work() -> tuple[bytes, list[str], str, tuple[int, int]]:
                t0 = time.perf_counter()
                try:
                    with s.decoders.open(path, limits, stop_at) as frames:
                        stylizer = s.stylizer(key)
                        notices: list[str] = []
                        if frames.frames > 1:  # an animated PNG: every frame, its times and loop
                            body, cartoon = animation(frames, stylizer, notices)
                            media = "image/png"
                        else:
                            decoded = frames.read()
                            notices.extend(decoded.notes)
                            cartoon = stylize(stylizer, decoded.rgb, notices)
                            if output == "jpeg":
                                body, media = encode_jpeg(cartoon, decoded.gray), "image/jpeg"
                            else:
                                body, media = encode_png(cartoon, decoded.alpha, decoded.gray), "image/png"
                except DecodeFailed as exc:
                    raise decode_error(exc) from None
                except DecodeTimeout:
                    raise Deadline() from None
                elapsed = time.perf_counter() - t0
                s.metrics.inference.observe(elapsed)
                s.run_seconds = 0.8 * s.run_seconds + 0.2 * elapsed
                return body, notices, media, (cartoon.shape[1], cartoon.shape[0])

            t_start = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                body, notices, media, (width, height) = await s.pool.run(
                    work, deadline=loop.time() + config.timeout, gone=request.is_disconnected)
            except QueueFull:
                raise s.busy_error() from None
            except Deadline:
                raise ApiError("timeout", f"the image was not done within {config.timeout:g} s "
                                          "(queue wait, decoding and inference; --timeout)") from None
            except ClientGone:
                raise ApiError("client_closed", "the client disconnected") from None
        finally:
            upload.remove()
        ms = (time.perf_counter() - t_start) * 1000
        headers = {"X-Style": key if key.isascii() else "", "X-Duration-Ms": f"{ms:.0f}"}
        if output == "json":
            return JSONResponse({"image": base64.b64encode(body).decode("ascii"), "media_type": media,
                                 "width": width, "height": height, "style": key,
                                 "strength": strength, "portrait": portrait,
                                 "temporal": temporal, "notices": notices,
                                 "duration_ms": round(ms)}, headers=headers)
        headers["Content-Disposition"] = f'inline; filename="cartoon.{"jpg" if output == "jpeg" else "png"}"'
        return Response(body, media_type=media, headers=headers)

    # -------------------------------------------------------------------- videos
    video_doc = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["video"], "properties": {
            "video": {"type": "string", "format": "binary",
                      "description": "MP4/MOV, WebM/MKV or AVI, at most --max-video-bytes"},
            "style": {"type": "string"}, "strength": {"type": "number", "minimum": 0, "maximum": 1},
            "portrait": {"type": "boolean"},
            "temporal": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0,
                         "description": "the stabiliser strength, as cartoonize.py --temporal "
                                        "(0 = off)"}}}}}},
        "responses": {"202": {"description": "the job: poll /api/jobs/{id}"}}}

    @app.post("/api/videos", status_code=202, summary="Start a video job",
              openapi_extra=video_doc, response_class=JSONResponse)
    async def videos(request: Request) -> JSONResponse:
        try:
            s = running()
            if s.jobs.active() >= config.max_jobs:
                raise ApiError("busy", f"{config.max_jobs} video jobs are already queued or running; "
                                       "try again later", headers={"Retry-After": "30"})
            upload = await read_form(request, file_field="video", text_fields=FORM_FIELDS,
                                     max_file_bytes=config.max_video_bytes,
                                     tmp_dir=s.tmp / "uploads", timeout=config.upload_timeout,
                                     sniff=sniff_video, accepted="an MP4/MOV, WebM/MKV or AVI video",
                                     limit_option="--max-video-bytes")
        except ApiError as exc:
            raise unread_body(exc) from None
        try:
            key, strength, portrait, temporal = form_choices(request, upload, "video", s.style_key)
            name = Path(upload.filename or "video").name or "video"
            job = s.jobs.create(upload.path, name, key, strength, portrait, temporal)
            upload.path = None  # the job owns the file now
        finally:
            upload.remove()
        return JSONResponse(job.public(config.job_ttl), status_code=202,
                            headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs/{job_id}", summary="A video job's status and progress (0..1)")
    async def job_status(job_id: str, request: Request) -> dict[str, Any]:
        job = running().jobs.get(job_id)
        request.state.style = job.style
        return job.public(config.job_ttl)

    @app.get("/api/jobs/{job_id}/result", summary="A finished job's MP4",
             response_class=FileResponse)
    async def job_result(job_id: str, request: Request) -> FileResponse:
        job = running().jobs.get(job_id)
        request.state.style = job.style
        if job.status == "failed":
            raise ApiError("job_failed", f"the job failed: {job.message}")
        if job.status != "done":
            raise ApiError("job_not_ready", f"the job is {job.status} "
                                            f"({job.progress:.0%}); poll /api/jobs/{job.id}")
        stem = Path(job.filename).stem or "video"
        return FileResponse(job.result, media_type="video/mp4", filename=f"{stem}-cartoon.mp4")

    @app.delete("/api/jobs/{job_id}", summary="Cancel a job and remove its files")
    async def job_delete(job_id: str) -> dict[str, Any]:
        job = running().jobs.delete(job_id)
        return {"id": job.id, "status": "deleted"}

    return app
