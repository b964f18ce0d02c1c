"""``POST /api/cartoonize``: one image (or an animated PNG) in, its cartoon out.

The order of checks: the service is running, the Accept header, Content-Type and
Content-Length, the body as it streams (size, magic bytes, time: :func:`serving.uploads.read_form`),
the fields (style, strength, portrait, temporal); then the inference queue, whose refusal when
full (503 ``busy``, Retry-After) comes after the body is read (see :func:`cartoonize`). A worker
hands the file to its decoder process (:mod:`serving.decoder`), which checks the header against
every limit before decoding the pixels one frame at a time; the worker stylizes and encodes them.
``--timeout`` bounds queue wait, decoding and inference together.
"""
from __future__ import annotations

import asyncio
import base64
import io
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from inference.clips import stylize_animation
from media.encode import ApngWriter, encode_jpeg, encode_png
from serving.decoder import DecodeFailed, DecodeTimeout, Limits
from serving.deps import RunningUpload, Settings
from serving.errors import ApiError
from serving.forms import FORM_FIELDS, choose_output, decode_error, form_choices, unread_body
from serving.pool import ClientGone, Deadline, QueueFull
from serving.schemas import CartoonAnswer, ImageForm, error_responses, form_body
from serving.service import Service
from serving.uploads import read_form, sniff_image
from utils.errors import ToonFaceError

router = APIRouter(tags=["images"])


def _stylize(stylizer, rgb, notices: list[str], strength: float, portrait: bool):
    try:
        return stylizer(rgb, strength=strength, portrait=portrait, notice=notices.append)
    except ToonFaceError as exc:
        raise ApiError("bad_request", str(exc)) from None


def _animation(frames, stylizer, notices: list[str], *, strength: float, portrait: bool,
               temporal: float, output: str, stop_at: float):
    """An animated PNG -> (its cartoon as an animated PNG file, the first frame's cartoon) through
    the clip pipeline of ``cartoonize.py`` (inference/clips.py: faces tracked in portrait mode,
    ``temporal``; frame times and loop count kept), decoded, stylized and encoded frame by frame;
    it stops at ``stop_at`` (``time.monotonic()``, between frames, raising Deadline)."""
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


def _work(service: Service, path, key: str, *, strength: float, portrait: bool, temporal: float,
          output: str, stop_at: float) -> tuple[bytes, list[str], str, tuple[int, int]]:
    """What a worker thread does for one upload: decode (in a decoder process, killed at
    ``stop_at``, a ``time.monotonic()``), stylize, encode. Returns (file, notices, its media
    type, (width, height)); raises ApiError, or Deadline once ``stop_at`` has passed."""
    config = service.config
    limits = Limits(max_pixels=config.max_pixels, max_bytes=config.max_bytes,
                    max_side=config.max_side, max_frames=config.max_video_frames,
                    max_total_pixels=config.max_animation_pixels)
    t0 = time.perf_counter()
    try:
        with service.decoders.open(path, limits, stop_at) as frames:
            stylizer = service.stylizer(key)
            notices: list[str] = []
            if frames.frames > 1:  # an animated PNG: every frame, its times and loop
                body, cartoon = _animation(frames, stylizer, notices, strength=strength,
                                           portrait=portrait, temporal=temporal, output=output,
                                           stop_at=stop_at)
                media = "image/png"
            else:
                decoded = frames.read()
                notices.extend(decoded.notes)
                cartoon = _stylize(stylizer, decoded.rgb, notices, strength, portrait)
                if output == "jpeg":
                    body, media = encode_jpeg(cartoon, decoded.gray), "image/jpeg"
                else:
                    body, media = encode_png(cartoon, decoded.alpha, decoded.gray), "image/png"
    except DecodeFailed as exc:
        raise decode_error(exc) from None
    except DecodeTimeout:
        raise Deadline() from None
    elapsed = time.perf_counter() - t0
    service.metrics.inference.observe(elapsed)
    service.run_seconds = 0.8 * service.run_seconds + 0.2 * elapsed
    return body, notices, media, (cartoon.shape[1], cartoon.shape[0])


@router.post("/api/cartoonize", summary="Cartoonize one image", response_class=Response,
             openapi_extra=form_body(ImageForm),
             responses={200: {"model": CartoonAnswer, "description": "the cartoon, the input's "
                              "size: PNG, JPEG (Accept: image/jpeg) or JSON (Accept: "
                              "application/json)", "content": {"image/png": {}, "image/jpeg": {}}},
                        **error_responses(400, 406, 408, 413, 415, 422, 503, 504)})
async def cartoonize(request: Request, service: RunningUpload, config: Settings) -> Response:
    try:
        output = choose_output(request.headers.get("accept"))
        # A full queue is refused after the body is read (bounded by --max-bytes): a 503
        # given mid-upload must close the connection, and a client still sending then
        # often sees a reset instead of the answer (measured: 11 of 39 refusals in
        # bench_serve.py's overload phase); read first, every client gets its 503.
        upload = await read_form(request, file_field="image", text_fields=FORM_FIELDS,
                                 max_file_bytes=config.max_bytes, tmp_dir=service.tmp / "uploads",
                                 timeout=config.upload_timeout, sniff=sniff_image,
                                 accepted="a PNG or JPEG image")
    except ApiError as exc:
        raise unread_body(exc) from None
    try:
        key, strength, portrait, temporal = form_choices(request, upload, "image", service.style_key)
        path = upload.path  # read by the worker; upload.remove() clears the attribute
        stop_at = time.monotonic() + config.timeout  # the worker's view of the deadline
        t_start = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            body, notices, media, (width, height) = await service.pool.run(
                lambda: _work(service, path, key, strength=strength, portrait=portrait,
                              temporal=temporal, output=output, stop_at=stop_at),
                deadline=loop.time() + config.timeout, gone=request.is_disconnected)
        except QueueFull:
            raise service.busy_error() from None
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
        answer = CartoonAnswer(image=base64.b64encode(body).decode("ascii"), media_type=media,
                               width=width, height=height, style=key, strength=strength,
                               portrait=portrait, temporal=temporal, notices=notices,
                               duration_ms=round(ms))
        return JSONResponse(answer.model_dump(), headers=headers)
    headers["Content-Disposition"] = f'inline; filename="cartoon.{"jpg" if output == "jpeg" else "png"}"'
    return Response(body, media_type=media, headers=headers)
