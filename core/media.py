"""Video files with PyAV (FFmpeg's libraries in its wheels): probe, decode and encode. No subprocess.

- ``probe`` reads a clip's container and stream headers and demuxes its packets without decoding
  them (one frame is decoded, to prove the codec works), and refuses what cannot be used with an
  ``UploadRejected`` naming the problem: not a video, an unsupported codec, too long or too many
  frames after resampling, frames over the pixel limit, a truncated file, no frames. The web calls it
  on an upload before anything is stored; the worker and the CLI too, before decoding.
- ``decode_frames`` yields the frames kept at the output's rate as uint8 RGB arrays (the worker, the
  CLI); ``encode_video`` writes frames as H.264 MP4 where this PyAV build has an H.264 encoder
  (libx264 or OpenH264), else VP9 WebM, with the source's audio copied and trimmed to the frames kept.

NumPy is imported by PyAV only when frames are turned into arrays: the web, which only probes, never
loads it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import av.error

from spec.decode import UploadRejected
from spec.plan import resampled_frames

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".gif"})
VIDEO_MEDIA_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "image/gif"})
# Decoders a clip may use: the common camera, phone and web codecs (FFmpeg decodes many more; these
# are the ones a browser or a phone produces, so a clip of anything else is refused by name).
DECODABLE_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "gif", "mjpeg", "prores"})
# File signatures of the containers above: a file that starts like one but cannot be opened is
# truncated or damaged, not "not a video".
_SIGNATURES = ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"wide"), (0, b"\x1a\x45\xdf\xa3"), (0, b"GIF8"))

Source = str | Path | bytes | IO[bytes]


@dataclass(frozen=True)
class VideoInfo:
    """What a clip's headers and packets say, and what a run of it at ``fps`` keeps."""

    width: int
    height: int
    source_frames: int  # video packets (frames) in the file
    source_fps: float
    fps: float  # the output's rate: the requested one, at most the source's
    frames: int  # frames kept at ``fps``
    codec: str
    container: str
    has_audio: bool

    @property
    def seconds(self) -> float:
        return self.source_frames / self.source_fps if self.source_fps else 0.0


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float = 10.0
    max_frames: int = 240
    max_pixels: int = 64_000_000


def is_video_name(name: str | None) -> bool:
    return Path(name or "").suffix.lower() in VIDEO_SUFFIXES


def _open(source: Source) -> Any:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    return av.open(source if not isinstance(source, Path) else str(source), mode="r")


def _head(source: Source, length: int = 16) -> bytes:
    if isinstance(source, bytes):
        return source[:length]
    if isinstance(source, str | Path):
        with open(source, "rb") as file:
            return file.read(length)
    position = source.tell()
    head = source.read(length)
    source.seek(position)
    return head


def _looks_like_a_container(head: bytes) -> bool:
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def _gif_screen(head: bytes) -> tuple[int, int] | None:
    """A GIF's logical screen (width, height): FFmpeg's GIF decoder makes every frame that big."""
    if head[:4] != b"GIF8" or len(head) < 10:
        return None
    return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")


def _mp4_truncated(source: Source) -> bool:
    """Whether an MP4/MOV file ends inside one of its top-level boxes (each box starts with its size):
    a cut-off download whose frame index (moov) is intact still misses the end of its data."""
    file: IO[bytes]
    if isinstance(source, bytes):
        file = io.BytesIO(source)
    elif isinstance(source, str | Path):
        file = open(source, "rb")  # noqa: SIM115 (closed below)
    else:
        file = source
    position = file.tell()
    try:
        length = file.seek(0, io.SEEK_END)
        offset = 0
        while offset < length:
            file.seek(offset)
            header = file.read(16)
            if len(header) < 8:
                return True
            size = int.from_bytes(header[:4], "big")
            if size == 1:
                size = int.from_bytes(header[8:16], "big") if len(header) == 16 else 0
            elif size == 0:  # the last box, to the end of the file
                return False
            if size < 8:
                return True
            offset += size
        return offset != length
    finally:
        file.seek(position)
        if isinstance(source, str | Path):
            file.close()


def probe(source: Source, fps: float = 0.0, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """The clip's ``VideoInfo`` at output rate ``fps`` (0: the source's), or ``UploadRejected``."""
    head = _head(source)
    if head[4:8] == b"ftyp" and _mp4_truncated(source):
        raise UploadRejected(422, "the video file is truncated: it ends inside its data")
    screen = _gif_screen(head)
    if screen is not None and screen[0] * screen[1] > limits.max_pixels:
        raise UploadRejected(
            413, f"the GIF's frames are {screen[0]}x{screen[1]} pixels, over the limit of {limits.max_pixels}"
        )
    try:
        container = _open(source)
    except (av.error.InvalidDataError, av.error.FFmpegError, ValueError, OSError) as error:
        if _looks_like_a_container(head):
            raise UploadRejected(422, "the video file is truncated or damaged: it cannot be read") from error
        raise UploadRejected(415, "the file is not a video (MP4, WebM, MOV or animated GIF)") from error
    with container:
        return _probe_open(container, fps, limits)


def _probe_open(container: Any, fps: float, limits: VideoLimits) -> VideoInfo:
    if not container.streams.video:
        raise UploadRejected(422, "the file has no video stream, or an empty one (no frames)")
    stream = container.streams.video[0]
    codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
    if codec not in DECODABLE_CODECS:
        raise UploadRejected(
            415,
            f"the video codec {codec} is not supported (use H.264, HEVC, VP8, VP9, AV1 or an animated GIF)",
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_pixels:
        raise UploadRejected(
            413, f"the video's frames are {width}x{height} pixels, over the limit of {limits.max_pixels}"
        )
    source_fps = _rate(stream)
    declared = int(stream.frames or 0)
    # The duration the headers claim, checked before the packets are read (a long clip is not demuxed).
    claimed = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
    if claimed > limits.max_seconds * 4:
        raise UploadRejected(
            413, f"the clip is {claimed:.1f} s long; at most {limits.max_seconds:g} s are accepted"
        )
    packets, decoded = _count_packets(container, stream)
    if packets == 0 or not decoded:
        raise UploadRejected(422, "the video stream has no frames that can be decoded")
    if declared and packets < declared:
        raise UploadRejected(
            422, f"the video file is truncated: {packets} of its {declared} frames are there"
        )
    seconds = packets / source_fps
    if seconds > limits.max_seconds + 0.5 / source_fps:
        raise UploadRejected(
            413, f"the clip is {seconds:.1f} s long; at most {limits.max_seconds:g} s are accepted"
        )
    out_fps = min(fps, source_fps) if fps else source_fps
    frames = resampled_frames(packets, source_fps, out_fps)
    if frames > limits.max_frames:
        raise UploadRejected(
            413,
            f"the clip has {frames} frames at {out_fps:g} fps; at most {limits.max_frames} are accepted "
            "(choose a lower fps or a shorter clip)",
        )
    return VideoInfo(
        width=width, height=height, source_frames=packets, source_fps=source_fps, fps=out_fps, frames=frames,
        codec=codec, container=container.format.name, has_audio=bool(container.streams.audio),
    )  # fmt: skip


def _rate(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    value = float(rate) if rate else 0.0
    return value if math.isfinite(value) and value > 0 else 25.0


def _count_packets(container: Any, stream: Any) -> tuple[int, bool]:
    """The video packets in the file (demuxed, not decoded), and whether its first frame decodes."""
    packets, decoded = 0, False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if not decoded:
                decoded = bool(packet.decode())
    except (av.error.FFmpegError, EOFError) as error:
        raise UploadRejected(
            422, f"the video file is truncated or damaged after {packets} frame(s)"
        ) from error
    if packets and not decoded:  # a decoder that buffers (B-frames): flush it once
        try:
            decoded = bool(stream.codec_context.decode(None))
        except av.error.FFmpegError:
            decoded = False
    return packets, decoded


def first_frame_png(source: Source, longest: int = 0) -> tuple[bytes, int, int]:
    """The clip's first frame as a PNG (scaled down to ``longest`` px when above it; 0: as it is), and
    its width and height: the job's content image (thumbnails, the Settings page). One frame decoded."""
    with _open(source) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            image = frame.to_image()  # Pillow, no NumPy
            break
        else:
            raise UploadRejected(422, "the video stream has no frames that can be decoded")
    if longest and max(image.size) > longest:
        image.thumbnail((longest, longest))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue(), image.width, image.height


def decode_frames(source: Source, fps: float = 0.0) -> Iterator[Any]:
    """The frames kept at ``fps`` (0: all), as uint8 H x W x 3 RGB NumPy arrays, in order: frame i of
    the source is kept when it is the first at or after the next 1/fps tick."""
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        source_fps = _rate(stream)
        ratio = min(fps, source_fps) / source_fps if fps else 1.0
        kept = 0
        for index, frame in enumerate(container.decode(stream)):
            if index * ratio + 1e-9 >= kept:
                kept += 1
                yield frame.to_ndarray(format="rgb24")


@dataclass(frozen=True)
class Encoding:
    codec: str
    container: str
    suffix: str
    media_type: str


def encoding(suffix: str | None = None) -> Encoding:
    """H.264 MP4 where this PyAV build encodes H.264 (libx264 or OpenH264) and ``suffix`` allows it,
    else VP9 WebM: both play in Chromium's <video>."""
    if suffix != ".webm":
        for codec in ("libx264", "libopenh264"):
            if _can_encode(codec):
                return Encoding(codec, "mp4", ".mp4", "video/mp4")
    return Encoding("libvpx-vp9", "webm", ".webm", "video/webm")


def _can_encode(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def encode_video(
    frames: Iterable[Any],
    fps: float,
    destination: str | Path | IO[bytes],
    *,
    audio_from: Source | None = None,
    kind: Encoding | None = None,
) -> Encoding:
    """Write ``frames`` (uint8 H x W x 3 RGB) at ``fps`` to ``destination`` (a path or a binary file),
    with the audio of ``audio_from`` (when it has any) trimmed to the frames' length. Odd sides lose
    their last row or column (4:2:0 needs even ones)."""
    import numpy as np  # here, not at the top: the web imports this module and never encodes

    kind = kind or encoding(Path(destination).suffix.lower() if isinstance(destination, str | Path) else None)
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    target = destination if not isinstance(destination, Path) else str(destination)
    with av.open(target, "w", kind.container) as out, _AudioCopy(audio_from, out, kind) as audio:
        # Every stream is added before the first packet is written (the header goes out with it).
        video = out.add_stream(kind.codec, rate=rate)
        video.pix_fmt = "yuv420p"
        video.options = _VIDEO_OPTIONS.get(kind.codec, {})
        audio.add_stream()
        for image in frames:
            height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
            if count == 0:
                video.width, video.height = width, height
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            out.mux(video.encode(frame))
            count += 1
        out.mux(video.encode())
        audio.copy(count / float(rate))
    return kind


_VIDEO_OPTIONS = {
    "libx264": {"crf": "20", "preset": "medium"},
    "libvpx-vp9": {"crf": "32", "b": "0", "row-mt": "1"},
}
# The audio codecs each container takes as they are; others are re-encoded.
_COPYABLE_AUDIO = {"mp4": {"aac", "mp3", "alac", "ac3", "opus"}, "webm": {"opus", "vorbis"}}
_AUDIO_ENCODER = {"mp4": "aac", "webm": "libopus"}


class _AudioCopy:
    """The first audio stream of ``source`` into ``out`` up to a time: copied, or re-encoded when the
    output's container cannot hold its codec. ``add_stream`` before any packet is written."""

    def __init__(self, source: Source | None, out: Any, kind: Encoding) -> None:
        self.source, self.out, self.kind = source, out, kind
        self.container: Any = None
        self.audio: Any = None
        self.target: Any = None

    def __enter__(self) -> _AudioCopy:
        if self.source is not None:
            if hasattr(self.source, "seek"):
                self.source.seek(0)  # type: ignore[union-attr]
            self.container = _open(self.source)
            self.audio = self.container.streams.audio[0] if self.container.streams.audio else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            self.container.close()

    @property
    def copies(self) -> bool:
        return (
            self.audio is not None and self.audio.codec_context.name in _COPYABLE_AUDIO[self.kind.container]
        )

    def add_stream(self) -> None:
        if self.audio is None:
            return
        if self.copies:
            self.target = self.out.add_stream_from_template(self.audio)
        else:
            self.target = self.out.add_stream(_AUDIO_ENCODER[self.kind.container], rate=48000)

    def copy(self, seconds: float) -> None:
        if self.target is None:
            return
        if self.copies:
            for packet in self.container.demux(self.audio):
                if packet.dts is None or packet.pts is None:
                    continue
                if float(packet.pts * packet.time_base) >= seconds:
                    break
                packet.stream = self.target
                self.out.mux(packet)
            return
        resampler = av.AudioResampler(format=self.target.codec_context.format, layout="stereo", rate=48000)
        for frame in self.container.decode(self.audio):
            if frame.time is not None and frame.time >= seconds:
                break
            for converted in resampler.resample(frame):
                self.out.mux(self.target.encode(converted))
        self.out.mux(self.target.encode(None))
