"""Real MP4 results: an H.264 (yuv420p, 30 fps) test pattern, plus an AAC tone for models with sound.

Clips depend only on (width, height, duration, audio), so they are encoded once into a cache directory
and served for every task that matches. Encoding runs in a worker thread, writes a temporary file and
renames it into place, so two processes racing for the same clip both end up with a whole file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from app.providers.dashscope.capabilities import OUTPUT_FPS

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
_AUDIO_FRAME = 1024  # AAC frame size
_VERSION = "v1"  # bump when the pattern changes, so old cache entries are not reused


@dataclass(frozen=True)
class ClipSpec:
    width: int
    height: int
    duration: int  # seconds
    audio: bool

    @property
    def frames(self) -> int:
        return self.duration * OUTPUT_FPS

    @property
    def filename(self) -> str:
        sound = "aac" if self.audio else "silent"
        return f"wan-sandbox-{_VERSION}-{self.width}x{self.height}-{self.duration}s-{sound}.mp4"


def encode_clip(spec: ClipSpec, path: Path, *, preset: str = "ultrafast") -> None:
    """Write the clip to `path` (blocking; call it from a worker thread)."""
    width, height = spec.width, spec.height
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=OUTPUT_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # zerolatency: no B-frames or lookahead, so frames come out as they go in (cheap and exact).
        video.options = {"preset": preset, "tune": "zerolatency", "crf": "30"}
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if spec.audio else None

        # A diagonal luma ramp that scrolls, and a bright square sliding left to right: cheap to
        # compute (one uint8 add per frame), visibly moving, and every frame differs.
        ramp = ((np.arange(height)[:, None] // 2 + np.arange(width)[None, :]) % 256).astype(np.uint8)
        planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)  # Y, then U and V rows
        box = min(64, height // 4, width // 4)
        top = (height - box) // 2
        for index in range(spec.frames):
            np.add(ramp, np.uint8(index * 4 % 256), out=planes[:height])
            left = (width - box) * index // max(spec.frames - 1, 1)
            planes[top : top + box, left : left + box] = 235
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))

        if audio is not None:
            total = spec.duration * AUDIO_RATE
            for start in range(0, total, _AUDIO_FRAME):
                count = min(_AUDIO_FRAME, total - start)
                tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(start, start + count) / AUDIO_RATE)
                samples = np.stack([tone, tone]).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                chunk.sample_rate = AUDIO_RATE
                chunk.pts = start
                chunk.time_base = Fraction(1, AUDIO_RATE)
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))


class ClipCache:
    """Clips on disk, encoded at most once per process at a time (and atomically published)."""

    def __init__(self, directory: Path, *, preset: str = "ultrafast", parallel: int = 2) -> None:
        self.directory = directory
        self._preset = preset
        self._parallel = parallel
        self._slots: asyncio.Semaphore | None = None  # made in the serving loop (a server can restart)
        self._encoding: dict[ClipSpec, asyncio.Task[Path]] = {}

    def path(self, spec: ClipSpec) -> Path:
        return self.directory / spec.filename

    def ready_at(self, spec: ClipSpec) -> float | None:
        """When the clip was published (its mtime), or None if it is not there yet."""
        try:
            return self.path(spec).stat().st_mtime
        except FileNotFoundError:
            return None

    def prefetch(self, spec: ClipSpec) -> None:
        """Start encoding in the background if the clip is neither cached nor being encoded."""
        if spec in self._encoding or self.ready_at(spec) is not None:
            return
        task = asyncio.create_task(self._encode(spec), name=f"sandbox-clip-{spec.filename}")
        self._encoding[spec] = task
        task.add_done_callback(lambda done: self._finished(spec, done))

    def _finished(self, spec: ClipSpec, task: asyncio.Task[Path]) -> None:
        self._encoding.pop(spec, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox clip %s failed to encode", spec.filename, exc_info=task.exception())

    async def ensure(self, spec: ClipSpec) -> Path:
        """The clip's path, encoding it first if needed."""
        if self.ready_at(spec) is not None:
            return self.path(spec)
        self.prefetch(spec)
        task = self._encoding.get(spec)
        if task is not None:
            return await asyncio.shield(task)
        return self.path(spec)  # published between the two checks

    async def _encode(self, spec: ClipSpec) -> Path:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._parallel)
        async with self._slots:
            final = self.path(spec)
            if final.exists():  # another process finished it while we queued
                return final
            await asyncio.to_thread(self._encode_atomically, spec, final)
            return final

    def _encode_atomically(self, spec: ClipSpec, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        try:
            encode_clip(spec, partial, preset=self._preset)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    async def aclose(self) -> None:
        """Wait for encodes in flight: their threads cannot be interrupted, and must not outlive the
        event loop they report to."""
        pending = list(self._encoding.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._slots = None
