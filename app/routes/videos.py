"""A video job's results (docs/video.md): the stylised clip, the input at its rate and size (the page's
before/after), the frames as a ZIP and an animated WebP. A still job has none of them (404)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from app.deps import ExistingJob, StorageDep
from app.routes.jobs import NOT_FOUND
from core.jobs import JobRecord
from core.storage import animated_preview_key, frames_zip_key, video_input_key, video_result_key

router = APIRouter(prefix="/api/jobs", tags=["videos"])
CACHE = "private, max-age=3600"


def _video_of(job: JobRecord) -> dict[str, str]:
    video = job.stats.get("video") if job.has_result else None
    if job.video is None or not video:
        raise HTTPException(status_code=404, detail=f"this job has no result video (status {job.status})")
    return video


def _stored(storage: StorageDep, key: str, media_type: str, filename: str, what: str) -> Response:
    try:
        data = storage.read_bytes(key)
    except FileNotFoundError as error:
        raise HTTPException(status_code=404, detail=f"this job has no {what}") from error
    # The whole file at once: Chromium's <video> plays such a response (it needs no ranges for a clip
    # of a few megabytes), and the clips are bounded (ATELIER_MAX_VIDEO_SECONDS, ..._FRAMES).
    headers = {"Cache-Control": CACHE, "Content-Disposition": f'inline; filename="{filename}"'}
    return Response(content=data, media_type=media_type, headers=headers)


@router.get(
    "/{job_id}/video",
    summary="The result video (H.264 MP4, or VP9 WebM where H.264 cannot be encoded)",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}, "video/webm": {}}}, **NOT_FOUND},
)
def get_video(job: ExistingJob, storage: StorageDep) -> Response:
    video = _video_of(job)
    key = video_result_key(job.id, video["suffix"])
    return _stored(storage, key, video["media_type"], f"atelier-{job.id}{video['suffix']}", "result video")


@router.get(
    "/{job_id}/video/input",
    summary="The input clip at the result's rate and size (for a before/after view)",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}, "video/webm": {}}}, **NOT_FOUND},
)
def get_input_video(job: ExistingJob, storage: StorageDep) -> Response:
    video = _video_of(job)
    key = video_input_key(job.id, video["suffix"])
    return _stored(
        storage, key, video["media_type"], f"atelier-{job.id}-input{video['suffix']}", "input video"
    )


@router.get(
    "/{job_id}/frames.zip",
    summary="Every finished frame of the result as PNGs in a ZIP",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, **NOT_FOUND},
)
def get_frames_zip(job: ExistingJob, storage: StorageDep) -> Response:
    _video_of(job)
    return _stored(
        storage, frames_zip_key(job.id), "application/zip", f"atelier-{job.id}-frames.zip", "frames"
    )


@router.get(
    "/{job_id}/animated.webp",
    summary="A small animated WebP of the result video",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}, **NOT_FOUND},
)
def get_animated(job: ExistingJob, storage: StorageDep) -> Response:
    _video_of(job)
    key = animated_preview_key(job.id)
    return _stored(storage, key, "image/webp", f"atelier-{job.id}.webp", "animated preview")
