"""A clip through the API and a real worker: an 8-frame, 64 px pan whose motion is known. The result
decodes to its 8 frames at its rate, and the temporal loss makes it flicker less than frames
stylised independently; progress counts frames and steps, previews show the latest frame."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
from PIL import Image

from tests.support.clips import encode, pan, pan_flow, photo, streams, submit_clip
from tests.support.images import png_bytes
from tests.support.stack import Stack
from worker.engine.flow import FrameFlow, warping_error

FRAMES, SIDE, FPS, STEP = 8, 64, 8, 2
CLIP = encode(pan(photo(), FRAMES, SIDE, SIDE, step=STEP), fps=FPS)
STYLE = png_bytes(48, 48, seed=41)
OPTIONS = {"size": SIDE, "iterations": 16, "frame_iterations": 8, "preview_every": 0}


def _run(stack: Stack, seen: list[dict], **options: object) -> dict:
    response = submit_clip(stack, CLIP, [STYLE], **OPTIONS, **options)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    return stack.wait_for(job_id, {"succeeded", "failed", "cancelled"}, timeout=240, on_poll=seen.append)


def _frames(stack: Stack, status: dict) -> list[np.ndarray]:
    with stack.client as client:
        archive = client.get(status["video"]["frames_zip_url"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as frames:
        names = sorted(frames.namelist())
        return [np.asarray(Image.open(io.BytesIO(frames.read(name))).convert("RGB")) for name in names]


def test_a_clip_runs_frame_by_frame_and_the_temporal_loss_cuts_flicker(stack: Stack) -> None:
    seen: list[dict] = []
    temporal = _run(stack, seen)
    independent = _run(stack, [], temporal_weight=0, frame_init="content")
    assert temporal["status"] == independent["status"] == "succeeded", (temporal, independent)

    video = temporal["video"]
    assert (video["frames"], video["frames_done"], video["fps"]) == (FRAMES, FRAMES, FPS)
    with stack.client as client:
        result = client.get(video["video_url"])
        animated = client.get(video["animated_url"])
        before = client.get(video["input_url"])
    assert result.status_code == 200 and result.headers["content-type"] == video["media_type"]
    found = streams(result.content)
    assert found["video"]["frames"] == FRAMES and found["video"]["fps"] == FPS
    assert (found["video"]["width"], found["video"]["height"]) == (SIDE, SIDE)
    assert streams(before.content)["video"]["frames"] == FRAMES
    with Image.open(io.BytesIO(animated.content)) as webp:
        assert webp.format == "WEBP" and webp.n_frames == FRAMES

    texts = [s["video"]["progress_text"] for s in seen if s["video"] and s["video"]["progress_text"]]
    later = [re.fullmatch(rf"frame (\d+) of {FRAMES}, step \d of 8", text) for text in texts]
    assert any(match and int(match[1]) >= 2 for match in later), texts
    assert any(re.fullmatch(rf"frame 1 of {FRAMES}, step \d+ of 16", text) for text in texts), texts
    progress = [s["progress"] for s in seen if s["status"] == "running"]
    assert progress == sorted(progress)  # the clip's work, never going back at a new frame

    flow = FrameFlow(*pan_flow(SIDE, SIDE, STEP))
    flows = [flow] * (FRAMES - 1)
    with_loss = warping_error(_frames(stack, temporal), flows)
    without = warping_error(_frames(stack, independent), flows)
    assert with_loss < without, (with_loss, without)
