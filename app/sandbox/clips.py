"""Real MP4 results that show the task's input: the reference image under a slow pan and zoom (Ken Burns),
for first+last-frame models a cross-fade from the first image to the last, the prompt's first words as a
caption, and the AAC tone for models with sound. Always H.264 yuv420p at 30 fps, the asked duration and
DashScope's output size (the image fitted to it by aspect-fill and a centred crop, as the service renders).

A clip depends on (size, duration, sound, the images' sha256, the caption) and nothing else, so it is
encoded once into a cache directory and served to every task that matches. The images themselves are kept
in that directory too (`images/<sha256>`, stored at create time): a clip can be encoded long after the
request that carried its data: URI (a restart, a wiped cache). Encoding runs in a worker thread, writes a
temporary file and renames it into place, so two processes racing for the same clip both end with a whole
file.

Speed: each image is resized once (PIL) to the output size plus the zoom's headroom and converted once to
Y/U/V planes; a frame is then a gather of rows and columns out of those planes (numpy, nearest sample: a
zoom of a few per cent over seconds does not show it), a cross-fade is an integer blend, the caption an
alpha blend over its own box only, and x264 runs with the `ultrafast` preset.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont, ImageOps

from app.providers.dashscope.capabilities import OUTPUT_FPS

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
_AUDIO_FRAME = 1024  # AAC frame size
_VERSION = "v2"  # bump when the picture changes, so old cache entries are not reused
#: How far the camera zooms in over the clip (the last frame shows 1/ZOOM of the first one's width).
ZOOM = 1.12
CAPTION_WORDS = 6
CAPTION_CHARS = 48
_MARKER = re.compile(r"\[sandbox:[^\]]*\]")  # faults.py's prompt markers are not part of the caption

Plane = NDArray[np.uint8]


def caption_of(prompt: str | None) -> str:
    """The prompt's first words (at most CAPTION_WORDS, CAPTION_CHARS characters), markers removed."""
    words = _MARKER.sub(" ", prompt or "").split()[:CAPTION_WORDS]
    text = " ".join(words)
    if len(text) > CAPTION_CHARS:
        text = text[: CAPTION_CHARS - 1].rstrip() + "…"
    return text


@dataclass(frozen=True)
class ClipSpec:
    width: int
    height: int
    duration: int  # seconds
    audio: bool
    #: sha256 (hex) of the source images: the reference image, or the first and last frames (kf2v). None
    #: shows a neutral placeholder (an image the sandbox could not see: a non-loopback URL).
    images: tuple[str, ...] = ()
    caption: str = ""

    @property
    def frames(self) -> int:
        return self.duration * OUTPUT_FPS

    @property
    def key(self) -> str:
        """Short digest of what the picture shows besides its geometry."""
        content = "\n".join((*self.images, "caption:" + self.caption))
        return hashlib.sha256(content.encode()).hexdigest()[:16]

    @property
    def filename(self) -> str:
        sound = "aac" if self.audio else "silent"
        return f"wan-sandbox-{_VERSION}-{self.width}x{self.height}-{self.duration}s-{sound}-{self.key}.mp4"


class SourceImages:
    """The input images clips are made from, by the sha256 of their bytes (written atomically, once)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, digest: str) -> Path:
        return self.directory / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Keep `data` (blocking); its digest."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if not final.is_file():
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = final.with_name(f".{digest}.{uuid.uuid4().hex}.part")
            try:
                partial.write_bytes(data)
                os.replace(partial, final)
            finally:
                partial.unlink(missing_ok=True)
        return digest

    def load(self, digest: str) -> Image.Image:
        with Image.open(io.BytesIO(self.path(digest).read_bytes())) as image:
            return ImageOps.exif_transpose(image).convert("RGB")


# --- pictures ------------------------------------------------------------------------------------


def _even(value: float) -> int:
    return max(2, math.ceil(value / 2) * 2)


def _yuv(rgb: NDArray[np.float32]) -> tuple[Plane, Plane, Plane]:
    """BT.601 limited-range planes (what the stream is tagged as): Y full size, U and V halved."""

    def plane(values: NDArray[np.floating]) -> Plane:
        out: Plane = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return out

    y = 16 + 0.257 * rgb[..., 0] + 0.504 * rgb[..., 1] + 0.098 * rgb[..., 2]
    half = (rgb[0::2, 0::2] + rgb[1::2, 0::2] + rgb[0::2, 1::2] + rgb[1::2, 1::2]) / 4
    r, g, b = half[..., 0], half[..., 1], half[..., 2]
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return plane(y), plane(u), plane(v)


def _placeholder(width: int, height: int) -> Image.Image:
    """A soft diagonal gradient, for an image the sandbox could not fetch."""
    ramp = (np.arange(height)[:, None] / max(height, 1) + np.arange(width)[None, :] / max(width, 1)) / 2
    low, high = np.array([52.0, 64.0, 84.0]), np.array([96.0, 148.0, 156.0])
    rgb = low + (high - low) * ramp[..., None]
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _base_planes(image: Image.Image, width: int, height: int) -> tuple[Plane, Plane, Plane]:
    """The image aspect-filled (centred crop) to the output size plus the zoom's headroom, as planes."""
    fitted = ImageOps.fit(image, (_even(width * ZOOM), _even(height * ZOOM)), Image.Resampling.BILINEAR)
    return _yuv(np.asarray(fitted, dtype=np.float32))


def _window(index: int, frames: int, size: int, base: int) -> NDArray[np.intp]:
    """Source rows (or columns) of frame `index`: the window shrinks from the whole base to 1/ZOOM of it
    (zoom in) while its start drifts from 0 to 3/4 of the room left (pan), eased at both ends."""
    t = index / (frames - 1) if frames > 1 else 0.0
    eased = t * t * (3 - 2 * t)
    span = base / (1 + (ZOOM - 1) * eased)
    start = (base - span) * 0.75 * eased
    samples = start + (np.arange(size) + 0.5) * (span / size)
    return np.minimum(samples.astype(np.intp), base - 1)


class _Caption:
    """The caption box, rendered once: white text on a translucent dark box, centred near the bottom, and
    blended into each frame's planes over that box only."""

    def __init__(self, text: str, width: int, height: int) -> None:
        self.boxes: list[tuple[int, int, NDArray[np.uint16], NDArray[np.uint16]]] = []
        if not text or width < 64 or height < 64:
            return
        font = ImageFont.load_default(size=max(10, min(width, height) // 20))
        while True:
            left, top, right, bottom = font.getbbox(text)
            if right - left <= width * 0.9 or len(text) <= 4:
                break
            text = text[: max(len(text) - 4, 1)].rstrip() + "…"
        pad = max(4, height // 90)
        box_w, box_h = _even(right - left + 4 * pad), _even(bottom - top + 2 * pad)
        box_w, box_h = min(box_w, width - width % 2), min(box_h, height - height % 2)
        x0 = (width - box_w) // 2 // 2 * 2
        y0 = max(0, height - box_h - height // 12) // 2 * 2
        overlay = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 150))
        ImageDraw.Draw(overlay).text((2 * pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
        rgba = np.asarray(overlay, dtype=np.float32)
        planes = _yuv(rgba[..., :3])
        weights = np.rint(rgba[..., 3] * (256 / 255)).astype(np.uint16)
        half = (weights[0::2, 0::2] + weights[1::2, 0::2] + weights[0::2, 1::2] + weights[1::2, 1::2]) // 4
        for plane, weight, scale in ((planes[0], weights, 1), (planes[1], half, 2), (planes[2], half, 2)):
            self.boxes.append((y0 // scale, x0 // scale, plane.astype(np.uint16) * weight, 256 - weight))

    def apply(self, planes: Sequence[Plane]) -> None:
        for plane, (top, left, premultiplied, keep) in zip(planes, self.boxes, strict=False):
            region = plane[top : top + keep.shape[0], left : left + keep.shape[1]]
            region[...] = ((region * keep + premultiplied) >> 8).astype(np.uint8)


def encode_clip(
    spec: ClipSpec, path: Path, *, images: Sequence[Image.Image] = (), preset: str = "ultrafast"
) -> None:
    """Write the clip to `path` (blocking; call it from a worker thread). `images` are the sources
    `spec.images` name (the first and the last frame for a cross-fade); none: the placeholder."""
    width, height, frames = spec.width, spec.height, spec.frames
    sources = list(images) or [_placeholder(_even(width * ZOOM), _even(height * ZOOM))]
    bases = [_base_planes(image, width, height) for image in sources[:2]]
    caption = _Caption(spec.caption, width, height)

    buffer = np.empty(width * height * 3 // 2, dtype=np.uint8)
    luma, quarter = width * height, width * height // 4
    planes = (
        buffer[:luma].reshape(height, width),
        buffer[luma : luma + quarter].reshape(height // 2, width // 2),
        buffer[luma + quarter :].reshape(height // 2, width // 2),
    )
    fade = [np.empty_like(plane, dtype=np.uint16) for plane in planes] if len(bases) > 1 else []

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=OUTPUT_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # zerolatency: no B-frames or lookahead, so frames come out as they go in (cheap and exact). The
        # colour tags say how the planes were made (BT.601, limited range), so players agree on colours.
        video.options = {
            "preset": preset,
            "tune": "zerolatency",
            "crf": "30",
            "x264-params": "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m",
        }
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if spec.audio else None

        for index in range(frames):
            for number, plane in enumerate(planes):
                first = bases[0][number]
                rows = _window(index, frames, plane.shape[0], first.shape[0])
                cols = _window(index, frames, plane.shape[1], first.shape[1])
                np.take(np.take(first, rows, axis=0), cols, axis=1, out=plane)
                if fade:
                    weight = round(256 * index / max(frames - 1, 1))
                    if weight:
                        last = bases[1][number]
                        rows = _window(index, frames, plane.shape[0], last.shape[0])
                        cols = _window(index, frames, plane.shape[1], last.shape[1])
                        mix = fade[number]
                        np.multiply(plane, 256 - weight, out=mix, dtype=np.uint16)
                        mix += np.take(np.take(last, rows, axis=0), cols, axis=1).astype(np.uint16) * weight
                        np.right_shift(mix, 8, out=mix)
                        plane[...] = mix
            caption.apply(planes)
            frame = av.VideoFrame.from_ndarray(buffer.reshape(height * 3 // 2, width), format="yuv420p")
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
    """Clips on disk, encoded at most once per process at a time (and atomically published), and the
    source images they are made from (`sources`)."""

    def __init__(self, directory: Path, *, preset: str = "ultrafast", parallel: int = 2) -> None:
        self.directory = directory
        self.sources = SourceImages(directory / "images")
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
            images = [self.sources.load(digest) for digest in spec.images]
            encode_clip(spec, partial, images=images, preset=self._preset)
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
