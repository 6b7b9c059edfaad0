"""Renditions of a stored video: a JPEG poster frame (`thumbnail`) and a JPEG sprite sheet (`spritesheet`),
rendered with PyAV from the stored file once and stored beside it.

Keys: `<video key>.thumbnail.jpg` and `<video key>.spritesheet.jpg` (`rendition_key`), so every store
(local, S3) keeps them next to the video and whoever removes the video removes them too
(`rendition_keys`).

- thumbnail: the first frame at or after `min(1 s, duration / 2)` (the very first frame is often a
  fade-in), the video's size, scaled down to at most `THUMBNAIL_MAX_WIDTH` px wide.
- spritesheet: `SPRITE_FRAMES` frames evenly spaced over the video (frame *i* is the first at or after
  `(i + ½) · duration / SPRITE_FRAMES`), each scaled to `SPRITE_TILE_WIDTH` px wide (height by the
  video's aspect ratio), laid out left to right, top to bottom, `SPRITE_COLUMNS` per row: a
  5 × 2 grid of 160-px-wide tiles, 800 × 180 px for a 16:9 video.

`ensure` finds a rendition with `storage.stat` and renders only when it is missing. A first render
runs in a thread (decoding is CPU work), writes into the store's staging directory and publishes with
`put_file`, which is atomic on every store: two processes rendering at once both publish a whole JPEG
(the same picture), never a torn one; within a process concurrent calls wait for one render.
A video not on local disk (S3) is first copied into a staging file (`open_range`), then decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Literal, get_args

import av
import av.error
from PIL import Image

from app.storage.base import Storage, StorageError, StoredObject

log = logging.getLogger(__name__)

Variant = Literal["thumbnail", "spritesheet"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
CONTENT_TYPE = "image/jpeg"

THUMBNAIL_MAX_WIDTH = 1280
#: The poster frame is taken this far in (or at half the video, if shorter).
POSTER_AT_S = 1.0
SPRITE_FRAMES = 10
SPRITE_COLUMNS = 5
SPRITE_TILE_WIDTH = 160
JPEG_QUALITY = 85


class VideoMissing(Exception):
    """The video a rendition is asked of is not in the store."""


def rendition_key(video_key: str, variant: Variant) -> str:
    """Where `variant` of the video stored under `video_key` lives: beside it."""
    return f"{video_key}.{variant}.jpg"


def rendition_keys(video_key: str) -> list[str]:
    """Every rendition key a video may have (for removing them with it)."""
    return [rendition_key(video_key, variant) for variant in VARIANTS]


def sprite_grid(frames: int = SPRITE_FRAMES, columns: int = SPRITE_COLUMNS) -> tuple[int, int]:
    """(columns, rows) of a sprite sheet of `frames` tiles."""
    return min(columns, frames), math.ceil(frames / columns)


class Renditions:
    """Renders and stores the renditions of stored videos; the lifespan owns one."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._locks: dict[str, asyncio.Lock] = {}
        #: How many renders this process ran (tests check a second `ensure` renders nothing).
        self.rendered = 0

    async def ensure(self, video_key: str, variant: Literal["thumbnail", "spritesheet"]) -> StoredObject:
        """The stored `variant` of the video under `video_key`, rendered now if it is not stored yet.
        Raises VideoMissing when the video is not in the store, StorageError when the store fails or the
        video cannot be decoded."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown rendition {variant!r}")
        key = rendition_key(video_key, variant)
        found = await self._storage.stat(key)
        if found is not None:
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                found = await self._storage.stat(key)  # rendered by the call we waited for
                if found is not None:
                    return found
                return await self._render(video_key, variant, key)
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def remove(self, video_key: str) -> None:
        """Remove every rendition of the video (missing ones are fine)."""
        for key in rendition_keys(video_key):
            await self._storage.delete(key)

    async def _render(self, video_key: str, variant: Variant, key: str) -> StoredObject:
        staging = self._storage.staging_dir()
        source = self._storage.local_path(video_key)
        temp: Path | None = None
        fd, name = tempfile.mkstemp(prefix="rendition-", suffix=".jpg", dir=staging)
        os.close(fd)
        out = Path(name)
        try:
            if source is None:  # not on local disk (S3), or missing: copy it into staging first
                fd, name = tempfile.mkstemp(prefix="rendition-src-", suffix=".mp4", dir=staging)
                os.close(fd)
                temp = source = Path(name)
                await self._download(video_key, temp)
            sha256 = await asyncio.to_thread(_render_to, source, variant, out)
            stored = await self._storage.put_file(key, out, sha256=sha256, content_type=CONTENT_TYPE)
        finally:
            _discard(out)  # put_file consumed it, unless it failed
            if temp is not None:
                _discard(temp)
        self.rendered += 1
        log.info("rendered the %s of %s (%d bytes)", variant, video_key, stored.size_bytes)
        return stored

    async def _download(self, video_key: str, dest: Path) -> None:
        stat = await self._storage.stat(video_key)
        stream = None if stat is None else await self._storage.open_range(video_key, 0, stat.size_bytes)
        if stream is None:
            raise VideoMissing(video_key)
        with dest.open("wb") as f:
            async for chunk in stream:
                await asyncio.to_thread(f.write, chunk)


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _render_to(source: Path, variant: Variant, out: Path) -> str:
    """Render `variant` of the video file `source` into the JPEG `out`; its sha256."""
    try:
        if not source.is_file():
            raise VideoMissing(str(source.name))
        image = _thumbnail(source) if variant == "thumbnail" else _spritesheet(source)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise VideoMissing(str(source.name)) from exc
        raise StorageError(f"cannot render the {variant}: {exc.__class__.__name__}") from exc
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    data = buffer.getvalue()
    with out.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def _frames_at(source: Path, times: list[float]) -> list[Image.Image]:
    """For each of `times` (ascending, seconds), the first frame at or after it (the last frame for a
    time past the end), decoded in one pass."""
    picked: list[Image.Image] = []
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.time_base or Fraction(1, 1)
        last = None
        for frame in container.decode(stream):
            last = frame
            at = float(frame.pts * base) if frame.pts is not None else 0.0
            while len(picked) < len(times) and at + 1e-6 >= times[len(picked)]:
                picked.append(frame.to_image())  # type: ignore[no-untyped-call]
            if len(picked) == len(times):
                break
        if last is None:
            raise ValueError("the video has no frames")
        while len(picked) < len(times):
            picked.append(last.to_image())  # type: ignore[no-untyped-call]
    return picked


def _duration(source: Path) -> float:
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return 0.0


def _thumbnail(source: Path) -> Image.Image:
    (frame,) = _frames_at(source, [min(POSTER_AT_S, _duration(source) / 2)])
    if frame.width > THUMBNAIL_MAX_WIDTH:
        height = max(1, round(frame.height * THUMBNAIL_MAX_WIDTH / frame.width))
        frame = frame.resize((THUMBNAIL_MAX_WIDTH, height), Image.Resampling.LANCZOS)
    return frame


def _spritesheet(source: Path) -> Image.Image:
    duration = _duration(source)
    times = [(i + 0.5) * duration / SPRITE_FRAMES for i in range(SPRITE_FRAMES)]
    frames = _frames_at(source, times)
    width = SPRITE_TILE_WIDTH
    height = max(1, round(frames[0].height * width / frames[0].width))
    columns, rows = sprite_grid()
    sheet = Image.new("RGB", (columns * width, rows * height))
    for i, frame in enumerate(frames):
        tile = frame.resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((i % columns) * width, (i // columns) * height))
    return sheet
