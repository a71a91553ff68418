"""A video as the content: the web probes it with PyAV (never decoding it whole) and refuses what it
cannot use with a 4xx naming the problem, storing and queueing nothing; a good clip is queued with
its frames and rate in the status."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.clips import empty_stream_clip, encode, gif_bomb, pan, photo, submit_clip
from tests.support.images import png_bytes
from tests.support.inprocess import InProcessWeb

STYLE = png_bytes(48, 48, seed=31)
CLIP = encode(pan(photo(), 16, 48, 64), fps=8)  # 2 s, 16 frames


def _faststart_clip() -> bytes:
    """An MP4 with its frame index first (as phones and web encoders write it), so a cut keeps the
    index and loses frames."""
    import tempfile
    from pathlib import Path

    import av

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        with av.open(str(path), "w", "mp4", options={"movflags": "faststart"}) as output:
            stream = output.add_stream("libx264", rate=8)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for frame in pan(photo(), 16, 48, 64):
                output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            output.mux(stream.encode())
        return path.read_bytes()


FASTSTART = _faststart_clip()
TEXT = b"just some text, not a video\n" * 40


@pytest.mark.parametrize(
    ("clip", "name", "media_type", "options", "status", "words"),
    [
        (TEXT, "clip.mp4", "video/mp4", {}, 415, "content: the file is not a video"),
        (CLIP[: len(CLIP) // 2], "clip.mp4", "video/mp4", {}, 422, "content: the video file is truncated"),
        (FASTSTART[:-400], "clip.mp4", "video/mp4", {}, 422, "content: the video file is truncated"),
        (gif_bomb(), "bomb.gif", "image/gif", {}, 413, "the GIF's frames are 65535x65535 pixels"),
        (empty_stream_clip(), "empty.mp4", "video/mp4", {}, 422, "no video stream, or an empty one"),
        (encode(pan(photo(), 4, 48, 64), fps=8, container="matroska", codec="mpeg2video"), "clip.mkv",
         "video/x-matroska", {}, 415, "the video codec mpeg2video is not supported"),
        (encode(pan(photo(), 2, 1000, 1008, step=1), fps=8), "big.mp4", "video/mp4", {}, 413,
         "the video's frames are 1008x1000 pixels, over the limit of 1000000"),
        (b"", "clip.mp4", "video/mp4", {}, 400, "content: the file is empty"),
    ],
    ids=["text-named-mp4", "truncated-mp4", "truncated-faststart-mp4", "gif-bomb", "zero-length-stream",
         "unsupported-codec", "frame-over-pixel-limit", "empty-file"],
)  # fmt: skip
def test_a_bad_clip_is_refused_naming_the_problem_and_nothing_is_stored(
    web: InProcessWeb, clip: bytes, name: str, media_type: str, options: dict, status: int, words: str
) -> None:
    queued_before, files_before = web.queue_length(), web.stored_files()
    response = submit_clip(web, clip, [STYLE], name=name, media_type=media_type, **options)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert web.queue_length() == queued_before
    assert web.stored_files() == files_before


@pytest.mark.parametrize(
    ("env", "options", "words"),
    [
        ({"ATELIER_MAX_VIDEO_SECONDS": "1"}, {}, "the clip is 2.0 s long; at most 1 s are accepted"),
        ({"ATELIER_MAX_VIDEO_FRAMES": "10"}, {}, "the clip has 16 frames at 8 fps; at most 10 are accepted"),
    ],
    ids=["too-long", "too-many-frames"],
)
def test_the_video_limits_are_the_settings(
    web_factory: Callable[..., InProcessWeb], env: dict[str, str], options: dict, words: str
) -> None:
    web = web_factory(f"video-limits-{sorted(env)[0].lower()}", env)
    files_before = web.stored_files()
    response = submit_clip(web, CLIP, [STYLE], **options)
    assert response.status_code == 413, response.text
    assert words in response.json()["detail"]
    assert web.stored_files() == files_before


def test_frames_are_counted_after_resampling(web_factory: Callable[..., InProcessWeb]) -> None:
    web = web_factory("video-limits-resampled", {"ATELIER_MAX_VIDEO_FRAMES": "10"})
    response = submit_clip(web, CLIP, [STYLE], fps=4)  # 16 frames at 8 fps -> 8 at 4 fps
    assert response.status_code == 202, response.text
    web.cancel_in_store(response.json()["id"])


def test_a_clip_is_queued_with_its_frames_rate_and_first_frame(web: InProcessWeb) -> None:
    response = submit_clip(web, CLIP, [STYLE], fps=4, size=64, iterations=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    status = web.status(job_id)
    video = status["video"]
    assert (video["frames"], video["fps"], video["width"], video["height"]) == (8, 4.0, 64, 48)
    assert video["video_url"] is None and video["frames_done"] == 0
    assert status["options"]["frame_iterations"] == 5  # the preset's share: half the steps
    with web.client as client:
        content = client.get(status["content_url"])
    assert content.status_code == 200 and content.headers["content-type"] == "image/png"
    assert any(name.endswith("source.video") for name in web.stored_files())
    web.cancel_in_store(job_id)
