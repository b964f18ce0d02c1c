"""Video jobs: an uploaded video cartoonized in the background, polled, fetched, cancelled.

Each job has its own folder under the service's temporary folder, ``<root>/<id>/``, holding the
upload (``input``, removed when the job ends) and the result (``cartoon.mp4``). Jobs run one at a
time on a single video thread, in the order they came: a video is thousands of inferences, and
letting it into the image pool would hold the image requests back for minutes (the video thread
still shares the CPU or GPU with the image workers). At most ``max_jobs`` jobs are queued or
running; another is refused (503).

The frames go through the clip pipeline of the command line, :func:`inference.clips.transcode_clip`
with the style's ``clip`` (face tracking and smoothing in portrait mode, ``temporal``; streaming
decode -> stylize -> H.264 MP4, audio copied, the output written under a temporary name and
renamed when complete), so a job's video is ``cartoonize.py``'s for the same options: progress
is its frame count over the container's frame count; cancelling sets a flag that the per-frame
callback checks, so the job stops within one frame, transcode removes its partial output, and
the job's folder is removed. A failed job keeps its message (never a server path) and no partial
file. A finished job (done, failed) and its folder are removed ``ttl`` seconds after it ended by
:meth:`JobStore.sweep`, which the app runs periodically.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from serving.errors import ApiError
from utils.errors import ToonFaceError
from inference.clips import transcode_clip
from media.video_reader import VideoReader

log = logging.getLogger("toonface.serve")

RESULT_NAME = "cartoon.mp4"
STATES = ("queued", "running", "done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised inside the frame callback when the job's cancel flag is set."""


@dataclass
class Job:
    id: str
    folder: Path
    style: str
    strength: float
    portrait: bool
    filename: str
    temporal: float = 0.0
    status: str = "queued"
    frames_done: int = 0
    frames_total: int | None = None
    message: str | None = None
    notices: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def input(self) -> Path:
        return self.folder / "input"

    @property
    def result(self) -> Path:
        return self.folder / RESULT_NAME

    @property
    def progress(self) -> float:
        """0..1: frames done over the expected count (1 only once done)."""
        if self.status == "done":
            return 1.0
        if not self.frames_total:
            return 0.0
        return min(self.frames_done / self.frames_total, 0.99)

    def public(self, ttl: float) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "progress": round(self.progress, 4),
                "frames_done": self.frames_done, "frames_total": self.frames_total,
                "style": self.style, "strength": self.strength, "portrait": self.portrait,
                "temporal": self.temporal, "message": self.message, "notices": list(self.notices),
                "created_at": self.created,
                "expires_at": self.finished + ttl if self.finished is not None else None,
                "result_url": f"/api/jobs/{self.id}/result" if self.status == "done" else None}


@dataclass
class VideoLimits:
    max_side: int
    max_frames: int


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class JobStore:
    """The jobs of one service; ``stylizer_for(style)`` gives the :class:`serving.engine.Stylizer`.

    Thread-safety: the store's dict is guarded by a lock; a job's fields are written by the video
    thread and read by the event loop (plain attribute writes).
    """

    def __init__(self, root: Path, *, ttl: float, max_jobs: int, limits: VideoLimits,
                 stylizer_for: Callable[[str], Any]):
        self.root, self.ttl, self.max_jobs, self.limits = Path(root), ttl, max_jobs, limits
        self.root.mkdir(parents=True, exist_ok=True)
        self.stylizer_for = stylizer_for
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="toonface-video")

    # --------------------------------------------------------------------- queries
    def active(self) -> int:
        with self._lock:
            return sum(j.status in ("queued", "running") for j in self._jobs.values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = dict.fromkeys(STATES, 0)
            for j in self._jobs.values():
                out[j.status] += 1
            return out

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or self._expired(job, time.time()):
            raise ApiError("not_found", f"no job {job_id!r} (unknown, cancelled or expired)")
        return job

    def _expired(self, job: Job, now: float) -> bool:
        return job.finished is not None and now > job.finished + self.ttl

    # -------------------------------------------------------------------- changes
    def create(self, upload_path: Path, filename: str, style: str, strength: float,
               portrait: bool, temporal: float = 0.0) -> Job:
        """A new queued job owning ``upload_path`` (moved into the job's folder)."""
        with self._lock:
            if sum(j.status in ("queued", "running") for j in self._jobs.values()) >= self.max_jobs:
                raise ApiError("busy", f"{self.max_jobs} video jobs are already queued or running; "
                                       "try again later", headers={"Retry-After": "30"})
            job_id = secrets.token_hex(12)
            folder = self.root / job_id
            folder.mkdir()
            job = Job(job_id, folder, style, strength, portrait, filename, temporal)
            os.replace(upload_path, job.input)
            self._jobs[job_id] = job
        self._executor.submit(self._run, job)
        return job

    def delete(self, job_id: str) -> Job:
        """Cancel a job (it stops within a frame) and remove it and its files."""
        job = self.get(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)
        job.cancel.set()
        if job.status != "running":  # a running job's thread removes its folder as it stops
            if job.status == "queued":
                job.status = "cancelled"
            _remove_tree(job.folder)
        return job

    def sweep(self, now: float | None = None) -> int:
        """Remove the jobs (and folders) that expired; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values() if self._expired(j, now)]
            for j in old:
                del self._jobs[j.id]
        for j in old:
            _remove_tree(j.folder)
        return len(old)

    def close(self) -> None:
        """Cancel every job, wait for the video thread, remove every folder."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for j in jobs:
            j.cancel.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        for j in jobs:
            _remove_tree(j.folder)

    # ------------------------------------------------------------------------ run
    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            _remove_tree(job.folder)
            return
        job.status = "running"
        try:
            self._transcode(job)
            job.status = "done"
        except JobCancelled:
            job.status = "cancelled"
        except ToonFaceError as exc:
            job.status, job.message = "failed", self._public_message(job, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must fail the job, not the thread
            log.error("video job %s failed", job.id, exc_info=exc)
            job.status, job.message = "failed", "internal error while processing the video " \
                                                "(the server log has the details)"
        finally:
            job.finished = time.time()
            try:
                job.input.unlink()
            except FileNotFoundError:
                pass
            if job.status != "done":
                try:
                    job.result.unlink()  # transcode leaves none; make sure
                except FileNotFoundError:
                    pass
            if job.cancel.is_set():
                _remove_tree(job.folder)

    def _public_message(self, job: Job, text: str) -> str:
        """A message for the client: the server's paths replaced by the upload's name, and the
        command line's pixel option (the video reader's words) by the service's side option."""
        for p in (job.input, job.result, job.folder):
            text = text.replace(str(p), job.filename)
        side = self.limits.max_side
        text = text.replace("(raise it with --max-pixels)",
                            f"(--max-side {side}: at most {side}x{side} pixels)")
        return text.replace("--max-pixels", "--max-side").replace(str(self.root), "")

    def _transcode(self, job: Job) -> None:

        lim = self.limits
        # Every frame's sides are checked (a stream may change size at any frame), the first
        # here, the others as transcode decodes them.
        with VideoReader(job.input, max_side=lim.max_side) as reader:
            info = reader.info
        if info.frame_count and info.frame_count > lim.max_frames:
            raise ToonFaceError(f"video has {info.frame_count} frames, over the limit of "
                                f"{lim.max_frames} (--max-video-frames)")
        job.frames_total = info.expected_frames
        clip = self.stylizer_for(job.style).clip(strength=job.strength, portrait=job.portrait,
                                                 temporal=job.temporal)

        def before_batch(frames):
            if job.cancel.is_set():
                raise JobCancelled()
            if job.frames_done + len(frames) > lim.max_frames:
                raise ToonFaceError(f"video has over {lim.max_frames} frames (--max-video-frames)")

        def after_batch(frames):
            job.frames_done += len(frames)

        result = transcode_clip(job.input, job.result, clip, before_batch=before_batch,
                                after_batch=after_batch, max_side=lim.max_side)
        job.notices = [self._public_message(job, n) for n in result.notices]
        if job.cancel.is_set():  # cancelled after the last frame
            raise JobCancelled()
