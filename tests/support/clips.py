"""Clips with known motion for the video tests and bench/video.py: a pan and a zoom over a photo,
as frames (NumPy) or encoded with PyAV."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "examples" / "photos"
LIBRARY_PHOTOS = Path(__file__).resolve().parents[2] / "library"


def photo(name: str = "chelsea.png") -> np.ndarray:
    """One of the example photos (../shared/examples/photos), or a library image where that is absent."""
    path = PHOTOS / name
    if not path.exists():
        path = next(p for p in sorted(LIBRARY_PHOTOS.rglob("*")) if p.suffix.lower() in {".jpg", ".png"})
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
    """A camera zooming in by ``rate`` a frame on the centre of ``source``."""
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
