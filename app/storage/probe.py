"""probe_video: what a stored video really is (duration, fps, size, codecs, container), read with PyAV.

A job's `result.duration/fps/width/height` come from here, never from the request. The probe also proves the
file is playable: it has a video stream, its first frame decodes, and every frame the index promises is
actually in the file (a body cut short after a complete `moov` still opens, but is missing packets).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

_CONTENT_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "3gp": "video/3gpp",
    "matroska": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
}


class ProbeError(Exception):
    """The file is not a playable video."""


@dataclass(frozen=True)
class VideoProbe:
    duration_s: float
    fps: float
    width: int
    height: int
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    container: str

    @property
    def content_type(self) -> str:
        return content_type_for(self.container)


def content_type_for(container: str) -> str:
    """The MIME type to serve a file of this container with."""
    return _CONTENT_TYPES.get(container, "application/octet-stream")


def _container_name(format_name: str, metadata: dict[str, str]) -> str:
    names = format_name.split(",")
    if "mp4" in names:
        # FFmpeg has one demuxer for the whole ISO-BMFF family; the major brand tells them apart.
        brand = metadata.get("major_brand", "").strip().lower()
        if brand.startswith("qt"):
            return "mov"
        if brand.startswith("3g"):
            return "3gp"
        return "mp4"
    return names[0]


def _positive(value: Fraction | float | int | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number > 0 else None


def probe_video(path: Path) -> VideoProbe:
    """Read and verify a video file. Raises ProbeError when it is not a playable video."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise ProbeError("the file has no video stream")
            video = container.streams.video[0]
            codec = video.codec_context

            packets = 0
            decoded = False
            for packet in container.demux(video):
                if packet.size == 0:
                    # The flush packet the demuxer yields at end of stream.
                    continue
                packets += 1
                if not decoded:
                    decoded = bool(codec.decode(packet))
            if not decoded and packets:
                decoded = bool(codec.decode(None))
            if not decoded:
                raise ProbeError("no video frame could be decoded")
            if video.frames and packets < video.frames:
                raise ProbeError(f"the file is truncated: {packets} of {video.frames} video frames present")

            fps = _positive(video.average_rate) or _positive(video.guessed_rate)
            duration: float | None = None
            if video.duration and video.time_base:
                duration = _positive(video.duration * video.time_base)
            if duration is None and container.duration:
                duration = _positive(container.duration / av.time_base)
            if duration is None and fps and video.frames:
                duration = video.frames / fps
            if duration is None:
                raise ProbeError("the video has zero duration")
            if fps is None:
                count = video.frames or packets
                fps = count / duration if count else None
            if fps is None:
                raise ProbeError("the video frame rate is unknown")

            width, height = codec.width, codec.height
            if width <= 0 or height <= 0:
                raise ProbeError("the video has no frame size")

            audio = container.streams.audio[0] if container.streams.audio else None
            return VideoProbe(
                duration_s=duration,
                fps=fps,
                width=width,
                height=height,
                video_codec=codec.name,
                has_audio=audio is not None,
                audio_codec=audio.codec_context.name if audio is not None else None,
                container=_container_name(container.format.name, dict(container.metadata)),
            )
    except OSError:
        # Missing or unreadable file (PyAV's own FileNotFoundError etc. are OSErrors): a storage problem,
        # not a verdict on the video.
        raise
    except av.error.FFmpegError as exc:
        raise ProbeError(f"not a readable video: {exc}") from exc


async def probe_video_async(path: Path) -> VideoProbe:
    """`probe_video` in a worker thread: demuxing a large file must not stall the event loop."""
    return await asyncio.to_thread(probe_video, path)
