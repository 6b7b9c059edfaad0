"""probe_video: what a stored video really is (duration, fps, size, codecs, container), read with PyAV.

A job's `result.duration/fps/width/height` come from here, never from the request. The probe also proves the
file is playable, all of it: it has a video stream, every frame the index promises is in the file (a body cut
short after a complete `moov` still opens, but is missing packets), and **every packet decodes** — the video's
and the audio's. A file whose middle was damaged (zeroed, overwritten) opens and demuxes cleanly, because
the index still describes it; only decoding finds the packets that are no longer H.264 or AAC.

FFmpeg conceals what it can (a damaged slice is patched from its neighbours, not reported), so a few flipped
bits inside a frame can pass; what it refuses (a packet that does not parse: the NAL lengths of a zeroed
packet, a frame whose reference is gone) is counted, and any such packet makes the file unplayable. We do not
set `err_detect=explode`: it turns benign oddities some encoders leave (an SEI it cannot parse) into refused
packets too, and in our measurements it found nothing more in damaged files.

Cost (bench/probe.py, a Wan-like 15 s 1080p H.264 + AAC file of 21 MB): ≈ 2.4 s of CPU, about 0.16 s per
second of 1080p video, on one core of a shared 2-core box; decoding only keyframes would take ≈ 0.35 s and
found the same damaged packets there (it still parses every packet's framing), but not how many frames
the damage costs, nor bad audio. Once per copy, beside minutes of generation upstream, in a worker thread
(`probe_video_async`).

Messages are our own words (a count, FFmpeg's `strerror`), never the file's path: they reach clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.error
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext

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


@dataclass
class _Decoded:
    """What decoding every packet of a stream found (packets the demuxer marks to discard are not counted:
    they are an edit list's pre-roll, decoded but never shown)."""

    packets: int = 0
    frames: int = 0
    refused: int = 0
    discarded: int = 0
    #: Video: one frame per packet, so a missing frame is a packet lost too (a refused packet yields none,
    #: and neither do the frames that needed it as a reference). Audio: only refused packets count.
    frames_per_packet: bool = True

    @property
    def undecodable(self) -> int:
        if not self.frames_per_packet:
            return self.refused
        return max(self.refused, self.packets - self.frames)


_Codec = VideoCodecContext | AudioCodecContext


def _decode(codec: _Codec, packet: av.Packet[Any] | None, into: _Decoded) -> None:
    try:
        into.frames += len(codec.decode(packet))
    except av.error.FFmpegError:
        into.refused += 1


def _decode_all(
    container: av.container.InputContainer, video: av.VideoStream, audio: av.AudioStream | None
) -> tuple[_Decoded, _Decoded]:
    """Demux and decode every packet of `video` (and `audio`); frames are counted, never kept."""
    codecs: dict[int, _Codec] = {video.index: video.codec_context}
    if audio is not None:
        codecs[audio.index] = audio.codec_context
    found = {index: _Decoded(frames_per_packet=index == video.index) for index in codecs}
    for packet in container.demux(*(s for s in (video, audio) if s is not None)):
        if packet.size == 0:
            continue  # the flush packet the demuxer yields at end of stream
        codec, decoded = codecs[packet.stream_index], found[packet.stream_index]
        if packet.is_discard:
            decoded.discarded += 1
            with contextlib.suppress(av.error.FFmpegError):
                codec.decode(packet)  # a reference for the frames after it
            continue
        decoded.packets += 1
        if packet.is_corrupt:
            decoded.refused += 1
            continue
        _decode(codec, packet, decoded)
    for index, codec in codecs.items():
        if found[index].packets:
            _decode(codec, None, found[index])  # frames the decoder still holds
    return found[video.index], found[audio.index] if audio is not None else _Decoded()


def _damage(video: _Decoded, audio: _Decoded) -> str | None:
    parts = [
        f"{decoded.undecodable} of {decoded.packets} {kind} packets"
        for kind, decoded in (("video", video), ("audio", audio))
        if decoded.undecodable
    ]
    return f"the file is damaged: {' and '.join(parts)} cannot be decoded" if parts else None


def probe_video(path: Path) -> VideoProbe:
    """Read and verify a video file. Raises ProbeError when it is not a playable video."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise ProbeError("the file has no video stream")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            codec = video.codec_context

            decoded, decoded_audio = _decode_all(container, video, audio)
            packets = decoded.packets + decoded.discarded
            if not decoded.frames:
                raise ProbeError("no video frame could be decoded")
            if video.frames and packets < video.frames:
                raise ProbeError(f"the file is truncated: {packets} of {video.frames} video frames present")
            if (damage := _damage(decoded, decoded_audio)) is not None:
                raise ProbeError(damage)

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
        # `strerror`, not str(exc): that one ends with the file's path (a staging path, for a copy).
        raise ProbeError(f"not a readable video: {exc.strerror or type(exc).__name__}") from exc


async def probe_video_async(path: Path) -> VideoProbe:
    """`probe_video` in a worker thread: demuxing a large file must not stall the event loop."""
    return await asyncio.to_thread(probe_video, path)
