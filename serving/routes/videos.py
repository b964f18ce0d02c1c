"""Video jobs: ``POST /api/videos`` (202 and the job), ``GET /api/jobs/{job_id}`` (status and
progress), ``GET /api/jobs/{job_id}/result`` (the MP4), ``DELETE /api/jobs/{job_id}``.

A full job list is refused (503, Retry-After) before the body is read; the body streams under
``--max-video-bytes`` and ``--upload-timeout`` (:func:`serving.uploads.read_form`), then the
job runs on the clip pipeline of ``cartoonize.py`` (:mod:`serving.jobs`).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from serving.deps import Running, RunningUpload, Settings
from serving.errors import ApiError
from serving.forms import FORM_FIELDS, form_choices, unread_body
from serving.schemas import DeletedAnswer, JobAnswer, VideoForm, error_responses, form_body
from serving.uploads import read_form, sniff_video

router = APIRouter(tags=["videos"])


@router.post("/api/videos", status_code=202, summary="Start a video job",
             response_model=JobAnswer, openapi_extra=form_body(VideoForm),
             responses={202: {"description": "the job: poll /api/jobs/{id} (Location)"},
                        **error_responses(400, 408, 413, 415, 422, 503)})
async def videos(request: Request, response: Response, service: RunningUpload,
                 config: Settings) -> dict:
    try:
        if service.jobs.active() >= config.max_jobs:
            raise ApiError("busy", f"{config.max_jobs} video jobs are already queued or running; "
                                   "try again later", headers={"Retry-After": "30"})
        upload = await read_form(request, file_field="video", text_fields=FORM_FIELDS,
                                 max_file_bytes=config.max_video_bytes,
                                 tmp_dir=service.tmp / "uploads", timeout=config.upload_timeout,
                                 sniff=sniff_video, accepted="an MP4/MOV, WebM/MKV or AVI video",
                                 limit_option="--max-video-bytes")
    except ApiError as exc:
        raise unread_body(exc) from None
    try:
        key, strength, portrait, temporal = form_choices(request, upload, "video", service.style_key)
        name = Path(upload.filename or "video").name or "video"
        job = service.jobs.create(upload.path, name, key, strength, portrait, temporal)
        upload.path = None  # the job owns the file now
    finally:
        upload.remove()
    response.headers["Location"] = f"/api/jobs/{job.id}"
    return job.public(config.job_ttl)


@router.get("/api/jobs/{job_id}", summary="A video job's status and progress (0..1)",
            response_model=JobAnswer, responses=error_responses(404, 422, 503))
async def job_status(job_id: str, request: Request, service: Running, config: Settings) -> dict:
    job = service.jobs.get(job_id)
    request.state.style = job.style
    return job.public(config.job_ttl)


@router.get("/api/jobs/{job_id}/result", summary="A finished job's MP4",
            response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}}, "description": "the cartoon MP4"},
                       **error_responses(404, 409, 422, 503)})
async def job_result(job_id: str, request: Request, service: Running) -> FileResponse:
    job = service.jobs.get(job_id)
    request.state.style = job.style
    if job.status == "failed":
        raise ApiError("job_failed", f"the job failed: {job.message}")
    if job.status != "done":
        raise ApiError("job_not_ready", f"the job is {job.status} "
                                        f"({job.progress:.0%}); poll /api/jobs/{job.id}")
    stem = Path(job.filename).stem or "video"
    return FileResponse(job.result, media_type="video/mp4", filename=f"{stem}-cartoon.mp4")


@router.delete("/api/jobs/{job_id}", summary="Cancel a job and remove its files",
               response_model=DeletedAnswer, responses=error_responses(404, 422, 503))
async def job_delete(job_id: str, service: Running) -> dict:
    job = service.jobs.delete(job_id)
    return {"id": job.id, "status": "deleted"}
