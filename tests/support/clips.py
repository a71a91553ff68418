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


def encode(frames: list[np.ndarray], fps: int, container: str = "mp4", codec: str = "libx264") -> bytes:
    """The frames encoded as a clip (H.264 MP4 by default) with PyAV."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()
