"""The service's answers and forms as pydantic models: ``/openapi.json`` is generated from them.

Answers (``response_model`` of their routes): :class:`StylesAnswer`, :class:`CartoonAnswer`
(``POST /api/cartoonize`` with ``Accept: application/json``), :class:`JobAnswer`,
:class:`DeletedAnswer`, :class:`HealthAnswer`; every error is :class:`ErrorAnswer`
(:mod:`serving.errors`), documented for each 4xx/5xx status a route can answer.

The upload forms (:class:`ImageForm`, :class:`VideoForm`) document the multipart bodies only:
the routes read them by streaming (:func:`serving.uploads.read_form`, byte limits before any
parsing), so FastAPI never parses them; their JSON schema goes into the route's
``openapi_extra`` (:func:`form_body`).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


# ------------------------------------------------------------------------------ errors
class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable (serving/errors.py CODES), e.g. unknown_style")
    message: str = Field(description="one line for a person")


class ErrorAnswer(BaseModel):
    """Every error of the service, with its HTTP status."""

    error: ErrorDetail


_STATUS_TEXT = {400: "a malformed request, form field, file or style", 404: "no such job",
                406: "Accept names no type the route answers with",
                408: "the body arrived too slowly (--upload-timeout)",
                409: "the job is not done, or failed", 413: "the file is over a limit",
                415: "not multipart/form-data, or not an accepted format",
                422: "a missing or invalid form field", 499: "the client disconnected",
                503: "busy (Retry-After) or not running", 504: "not done within --timeout"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: :class:`ErrorAnswer` for each of ``statuses``."""
    return {s: {"model": ErrorAnswer, "description": _STATUS_TEXT[s]} for s in statuses}


# ------------------------------------------------------------------------------ styles
class StyleInfo(BaseModel):
    name: str
    default: bool = Field(description="the style used when a request names none")
    step: int | None = Field(description="the training step of its generator")
    image_size: int | None = Field(description="the training image size (px)")
    metrics: dict[str, Any] | None = Field(description="test.py's scores recorded in the file")
    pretrained_hash: str | None


class UploadLimits(BaseModel):
    max_bytes: int
    max_side: int
    max_video_bytes: int
    max_video_frames: int
    max_animation_pixels: int


class StylesAnswer(BaseModel):
    styles: list[StyleInfo] = Field(description="by name, without regard to case")
    default: str
    limits: UploadLimits


# ------------------------------------------------------------------------------ images
class CartoonAnswer(BaseModel):
    """``POST /api/cartoonize`` with ``Accept: application/json``."""

    image: str = Field(json_schema_extra={"format": "byte"}, description="the cartoon file, base64")
    media_type: Literal["image/png"] = Field(
        json_schema_extra={"enum": ["image/png"]},  # more answer types may come: a list
        description="the type of the file in image: a PNG (an animated PNG when the upload is "
                    "an animation)")
    width: int
    height: int
    style: str = Field(description="the style or blend used")
    strength: float
    portrait: bool
    temporal: float
    notices: list[str] = Field(description="one-line remarks (e.g. no face found in portrait mode)")
    duration_ms: int = Field(description="queue wait + inference")


class StyleFields(BaseModel):
    """The fields both upload forms share (serving/forms.py reads them)."""

    style: str | None = Field(None, description="a style name or a blend a=0.7,b=0.3 (default: "
                                                "--default-style)")
    strength: float = Field(1.0, ge=0, le=1, description="the blend with the photo")
    portrait: bool = False
    temporal: float = Field(0.0, ge=0, lt=1, description="the stabiliser strength, as "
                                                         "cartoonize.py --temporal (0 = off; "
                                                         "for an image: an animated PNG's)")


class ImageForm(StyleFields):
    """The multipart body of ``POST /api/cartoonize``."""

    image: bytes = Field(json_schema_extra={"format": "binary"},
                         description="PNG or JPEG, at most --max-bytes bytes and --max-side px "
                                     "per side")


class VideoForm(StyleFields):
    """The multipart body of ``POST /api/videos``."""

    video: bytes = Field(json_schema_extra={"format": "binary"},
                         description="MP4/MOV, WebM/MKV or AVI, at most --max-video-bytes")


def form_body(form: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose multipart body is streamed by hand: ``form``'s schema
    as its required ``multipart/form-data`` request body."""
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": form.model_json_schema()}}}}


# ------------------------------------------------------------------------------ jobs
class JobAnswer(BaseModel):
    """A video job (serving/jobs.py ``Job.public``)."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(description="0..1: frames done over the container's frame count")
    frames_done: int
    frames_total: int | None
    style: str
    strength: float
    portrait: bool
    temporal: float
    message: str | None = Field(description="why a job failed")
    notices: list[str]
    created_at: float = Field(description="POSIX time")
    expires_at: float | None = Field(description="POSIX time; set once the job has ended")
    result_url: str | None = Field(description="set once the job is done")


class DeletedAnswer(BaseModel):
    id: str
    status: Literal["deleted"]


# ------------------------------------------------------------------------------ health
class HealthAnswer(BaseModel):
    status: Literal["ok"]
    styles: int
    queue: int = Field(description="image requests waiting for a worker")
    running: int = Field(description="image requests being worked on")
    workers: int
    jobs_active: int = Field(description="video jobs queued or running")
