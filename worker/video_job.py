"""A video job (docs/video.md): its frames stylised in order on this worker, each stored when finished.

worker/tasks.py hands a job whose record has ``video`` here, with the job's callbacks (cancel, time
limit, lease, hand-over). Each finished frame goes to storage (``frame_key``), its raw image replaces
the job's checkpoint, and then ``frames_done`` is recorded: a delivery after a crash or a hand-over
reads ``frames_done`` and the checkpoint and goes on from the next frame, not from frame 1. A cancel
(or the time limit) stops within a step and keeps the finished frames: the result is made of them.
The result: the video (H.264 MP4 where PyAV encodes it, else VP9 WebM) with the source's audio
trimmed to it, the input at the same rate and size for the page's before/after, an animated WebP
for the recent-jobs list, a ZIP of the frames, and result.png (the last frame) for what shows stills.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from core.jobs import JobRecord, JobStore
from core.media import decode_frames, encode_video, encoding
from core.settings import get_settings
from core.storage import (
    Storage,
    animated_preview_key,
    checkpoint_key,
    frame_key,
    frames_zip_key,
    preview_key,
    result_key,
    style_key,
    video_input_key,
    video_result_key,
    video_source_key,
)
from spec.options import StyleOptions
from spec.plan import VideoPlan, plan_video
from worker.recovery import TaskOutcome, finish_patiently, hand_back
from worker.storage_retry import read_upload, upload_names

if TYPE_CHECKING:
    import numpy as np

    from worker.engine import Progress
    from worker.engine.video import FrameDone
    from worker.tasks import JobCallbacks

logger = logging.getLogger(__name__)

ANIMATED_PREVIEW_SIDE = 256  # px: the recent-jobs list shows it small


def run_video(
    job_id: str, record: JobRecord, store: JobStore, storage: Storage, callbacks: JobCallbacks
) -> dict[str, Any]:
    from worker import warm
    from worker.engine.images import encode_image, load_image
    from worker.engine.video import VideoHooks, VideoResume, stylize_video

    settings = get_settings()
    waiter = callbacks.storage_waiter
    video = record.video or {}
    options = StyleOptions.from_public(record.options)
    source = waiter.call("read the video", lambda: storage.read_bytes(video_source_key(job_id)))
    names, _ = upload_names(record.style_count)
    styles = [read_upload(storage, waiter, style_key(job_id, i), names[i]) for i in range(record.style_count)]
    plan = plan_video(
        (video["height"], video["width"]),
        [style.shape[:2] for style in styles],
        options,
        video["frames"],
        video["fps"],
    ).check()
    resume = None
    if record.frames_done > 0:
        try:
            raw = load_image(
                waiter.call("read the checkpoint", lambda: storage.read_bytes(checkpoint_key(job_id)))
            )
            resume = VideoResume(record.frames_done, raw)
            logger.warning("job %s: resuming the video after frame %d", job_id, record.frames_done)
        except FileNotFoundError:
            logger.warning(
                "job %s: no checkpoint of frame %d; the video starts over", job_id, record.frames_done
            )
    first = resume.frame if resume is not None else 0
    progress = _FrameProgress(job_id, store, plan, callbacks, first)

    def on_frame(done: FrameDone) -> None:
        waiter.call(
            "store a frame",
            lambda: storage.write_bytes(frame_key(job_id, done.frame), encode_image(done.image)),
        )
        waiter.call(
            "store the checkpoint",
            lambda: storage.replace_bytes(checkpoint_key(job_id), encode_image(done.raw)),
        )
        callbacks.advisory("frame", lambda: store.set_frame(job_id, done.frame + 1, frames_done=done.frame))
        progress.frames_done = done.frame
        callbacks.on_preview(done.frame, done.image)  # previews show the latest frame

    extractor = warm.extractor(settings, options.content_layers, options.style_layers)
    result = stylize_video(
        plan,
        decode_frames(source, plan.fps),
        styles,
        extractor,
        VideoHooks(
            on_frame=on_frame, on_progress=progress, should_stop=callbacks.should_stop, label=f"job {job_id}"
        ),
        resume=resume,
        style_cache=warm.style_targets(settings),
    )
    done = progress.frames_done
    stats = {
        "engine_seconds": round(result.seconds, 2),
        "frames": done,
        "fps": plan.fps,
        "flow_seconds": round(result.flow_seconds, 3),
        "resumed_after_frame": first,
        "precision": extractor.precision,
    }
    if callbacks.lease_lost:
        logger.warning("job %s: another worker took the video over; this run stops", job_id)
        return {"status": TaskOutcome.ABANDONED}
    if result.stopped and callbacks.preempted and not (callbacks.cancelled or callbacks.timed_out):
        assert callbacks.lease is not None
        return hand_back(store, job_id, callbacks.lease.worker, 0, None, lambda step, image: None)  # type: ignore[arg-type]
    has_result = done > 0 and _store_results(job_id, storage, source, video, plan, done, stats)
    if result.stopped:
        why = "timed out" if callbacks.timed_out else "cancelled"
        kept = "; the finished frames are kept as the result" if has_result else ""
        message = f"{why} after {done} of {plan.frames} frame(s){kept}"
        finish_patiently(
            store,
            job_id,
            "failed" if callbacks.timed_out else "cancelled",
            error=message,
            has_result=has_result,
            stats=stats,
        )
        logger.info("job %s: %s", job_id, message)
        return {"status": TaskOutcome.FAILED if callbacks.timed_out else TaskOutcome.CANCELLED, **stats}
    finish_patiently(store, job_id, "succeeded", has_result=True, stats=stats)
    logger.info("job %s: video succeeded, %d frame(s) in %.1f s", job_id, done, result.seconds)
    return {"status": TaskOutcome.SUCCEEDED, **stats}


class _FrameProgress:
    """on_progress(frame, progress) of the engine, throttled as a still's is, as the clip's work."""

    def __init__(
        self, job_id: str, store: JobStore, plan: VideoPlan, callbacks: JobCallbacks, first: int
    ) -> None:
        self.job_id, self.store, self.plan, self.callbacks = job_id, store, plan, callbacks
        self.frames_done = first
        self.work_before = plan.work_fraction(first + 1, 0) if first else 0.0
        self.interval = get_settings().progress_interval_seconds
        self._last = 0.0
        self._frame = 0
        self._started = time.monotonic()  # the ETA's pace is over this run, not one frame

    def __call__(self, frame: int, progress: Progress) -> None:
        now = time.monotonic()
        new_frame = frame != self._frame
        if not new_frame and progress.step < progress.total and now - self._last < self.interval:
            return
        self._last, self._frame = now, frame
        work = self.plan.work_fraction(frame, progress.step)

        def write() -> None:
            self.store.set_progress(
                self.job_id,
                progress.step,
                progress.total,
                progress.loss,
                progress.elapsed,
                work,
                self.work_before,
            )
            if new_frame:
                self.store.set_frame(self.job_id, frame)

        self.callbacks.advisory("progress", write)


def _frames(storage: Storage, job_id: str, count: int) -> Iterator[np.ndarray]:
    from worker.engine.images import load_image

    for number in range(1, count + 1):
        yield load_image(storage.read_bytes(frame_key(job_id, number)))


def _store_results(
    job_id: str,
    storage: Storage,
    source: bytes,
    video: dict[str, Any],
    plan: VideoPlan,
    done: int,
    stats: dict[str, Any],
) -> bool:
    """The result video, the input at its rate and size, the animated WebP, the ZIP and result.png."""
    from PIL import Image

    from worker.engine.images import encode_image, resize

    kind = encoding()
    buffer = io.BytesIO()
    audio = source if video.get("has_audio") else None
    encode_video(_frames(storage, job_id, done), plan.fps, buffer, audio_from=audio, kind=kind)
    storage.write_bytes(video_result_key(job_id, kind.suffix), buffer.getvalue())
    height, width = plan.first.height, plan.first.width
    inputs = (
        resize(frame, height, width)
        for _, frame in zip(range(done), decode_frames(source, plan.fps), strict=False)
    )
    before = io.BytesIO()
    encode_video(inputs, plan.fps, before, audio_from=audio, kind=kind)
    storage.write_bytes(video_input_key(job_id, kind.suffix), before.getvalue())
    archive = io.BytesIO()
    animated: list[Image.Image] = []
    last = None
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as frames_zip:  # PNGs do not compress further
        for number, frame in enumerate(_frames(storage, job_id, done), start=1):
            frames_zip.writestr(f"frame-{number:05d}.png", encode_image(frame))
            small = Image.fromarray(frame)
            small.thumbnail((ANIMATED_PREVIEW_SIDE, ANIMATED_PREVIEW_SIDE))
            animated.append(small)
            last = frame
    storage.write_bytes(frames_zip_key(job_id), archive.getvalue())
    webp = io.BytesIO()
    animated[0].save(
        webp,
        "WEBP",
        save_all=True,
        append_images=animated[1:],
        duration=round(1000 / plan.fps),
        loop=0,
        quality=70,
    )
    storage.write_bytes(animated_preview_key(job_id), webp.getvalue())
    assert last is not None
    storage.write_bytes(result_key(job_id), encode_image(last))
    storage.write_bytes(preview_key(job_id), encode_image(last, "JPEG", 85))
    stats["video"] = {"suffix": kind.suffix, "media_type": kind.media_type, "codec": kind.codec}
    return True
