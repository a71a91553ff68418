"""Clips with known motion for the video tests and bench/video.py: a pan and a zoom over a photo,
as frames (NumPy) or encoded with PyAV."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "examples" / "photos"
LIBRARY_PHOTOS = Path(__file__).resolve().parents[2] / "library" / "photos"  # the same photos, shipped


def photo(name: str = "chelsea.png") -> np.ndarray:
    """One of the example photos (../shared/examples/photos, else the copy in library/photos)."""
    path = PHOTOS / name if (PHOTOS / name).exists() else LIBRARY_PHOTOS / name
    return np.asarray(Image.open(path).convert("RGB"))


def pan(source: np.ndarray, frames: int, height: int, width: int, step: int = 2) -> list[np.ndarray]:
    """A camera panning right by ``step`` px a frame over ``source`` scaled so the crops fit: frame t
    is the crop starting ``t * step`` px further right (true flow: (step, 0) back to the frame before
    ... everywhere but the entering edge)."""
    travel = step * (frames - 1)
    scale = max((width + travel) / source.shape[1], height / source.shape[0])
    scaled = np.asarray(
        Image.fromarray(source).resize(
            (
                max(width + travel, round(source.shape[1] * scale)),
                max(height, round(source.shape[0] * scale)),
            ),
            Image.Resampling.LANCZOS,
        )
    )
    top = (scaled.shape[0] - height) // 2
    return [
        np.ascontiguousarray(scaled[top : top + height, t * step : t * step + width]) for t in range(frames)
    ]


def zoom(source: np.ndarray, frames: int, height: int, width: int, rate: float = 0.03) -> list[np.ndarray]:
    """A camera zooming in by ``rate`` a frame on the centre of ``source`` (true flow back to the
    frame before: each pixel moves to the centre by 1 / (1 + rate), see zoom_flow)."""
    clip = []
    source_height, source_width = source.shape[:2]
    base = min(source_height / height, source_width / width)
    for t in range(frames):
        crop_height = height * base / (1 + rate) ** t
        crop_width = width * base / (1 + rate) ** t
        top, left = (source_height - crop_height) / 2, (source_width - crop_width) / 2
        box = (left, top, left + crop_width, top + crop_height)
        image = Image.fromarray(source).resize((width, height), Image.Resampling.LANCZOS, box=box)
        clip.append(np.asarray(image))
    return clip


def pan_flow(height: int, width: int, step: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The true flow of ``pan`` from a frame back to the one before, and where it holds (the ``step``
    columns entering on the right were not in the frame before)."""
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0] = step
    mask = np.ones((height, width), np.float32)
    mask[:, width - step :] = 0
    return flow, mask


def zoom_flow(height: int, width: int, rate: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """The true flow of ``zoom`` back to the frame before (every pixel stays in view)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
    flow = np.stack(
        [(centre_x + (xs - centre_x) / (1 + rate)) - xs, (centre_y + (ys - centre_y) / (1 + rate)) - ys],
        axis=-1,
    )
    return flow.astype(np.float32), np.ones((height, width), np.float32)


def encode(
    frames: list[np.ndarray],
    fps: int,
    container: str = "mp4",
    codec: str = "libx264",
    audio_seconds: float = 0.0,
) -> bytes:
    """The frames encoded as a clip (H.264 MP4 by default) with PyAV, with ``audio_seconds`` of a
    440 Hz tone (AAC) when above 0."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        audio = output.add_stream("aac", rate=44100) if audio_seconds else None
        for frame in frames:
            output.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        output.mux(stream.encode())
        if audio is not None:
            times = np.arange(round(44100 * audio_seconds), dtype=np.float32) / 44100
            tone = (0.2 * np.sin(2 * np.pi * 440 * times)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate = 44100
                output.mux(audio.encode(chunk))
            output.mux(audio.encode())
    return buffer.getvalue()


def streams(data: bytes) -> dict[str, dict[str, float | int | str]]:
    """Each stream type of an encoded clip: its codec, duration (s) and, for video, frames decoded
    and their rate."""
    import av

    found: dict[str, dict[str, float | int | str]] = {}
    with av.open(io.BytesIO(data)) as container:
        for stream in container.streams:
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            found[stream.type] = {"codec": stream.codec_context.name, "seconds": duration}
        video = container.streams.video[0]
        found["video"]["fps"] = float(video.average_rate)
        decoded = list(container.decode(video))
        found["video"]["frames"] = len(decoded)
        found["video"]["width"], found["video"]["height"] = decoded[0].width, decoded[0].height
    return found


def submit_clip(
    stack: Any,
    clip: bytes,
    styles: list[bytes],
    name: str = "clip.mp4",
    media_type: str = "video/mp4",
    **options: Any,
) -> Any:
    """POST /api/jobs with a clip as the content (a Stack or an InProcessWeb), options as form fields."""
    files = [("content", (name, clip, media_type))]
    files += [("style", (f"style{index}.png", data, "image/png")) for index, data in enumerate(styles)]
    with stack.client as client:
        return client.post("/api/jobs", files=files, data={key: str(value) for key, value in options.items()})


def gif_bomb() -> bytes:
    """A GIF whose logical screen is 65535 x 65535 pixels (4.3 G) with a 1 x 1 frame: FFmpeg's GIF
    decoder makes every frame as large as the screen."""
    screen = (65535).to_bytes(2, "little") * 2
    frame = b"\x2c" + b"\x00\x00\x00\x00" + b"\x01\x00\x01\x00" + b"\x00" + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff" + frame * 2 + b"\x3b"


def empty_stream_clip() -> bytes:
    """An MP4 whose video stream has no frames (its header, nothing else)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        output.start_encoding()
    return buffer.getvalue()
