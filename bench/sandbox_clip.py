"""How long a sandbox clip costs: a 5 s 1280x720 clip of an image (Ken Burns + caption), cold and from the
cache, a first+last-frame cross-fade, and the old grey test pattern (v1) encoded in the same run.

    .venv/bin/python bench/sandbox_clip.py [--runs 3] [--width 1280 --height 720 --duration 5]

Prints figures only (best of `--runs`, seconds); every encode goes to a fresh temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from app.sandbox.clips import ClipCache, ClipSpec, caption_of, encode_clip


def photo(width: int, height: int, seed: int) -> bytes:
    """A busy image (noise over a gradient): harder to encode than a flat test PNG."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(0, 55, height)[:, None, None]
    pixels = np.clip(ramp + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def old_pattern(width: int, height: int, duration: int, path: Path) -> None:
    """The v1 clip (a scrolling luma ramp and a sliding square), as app/sandbox/clips.py encoded it."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30"}
        audio = container.add_stream("aac", rate=48_000, layout="stereo")
        ramp = ((np.arange(height)[:, None] // 2 + np.arange(width)[None, :]) % 256).astype(np.uint8)
        planes = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        box, frames = min(64, height // 4, width // 4), duration * 30
        top = (height - box) // 2
        for index in range(frames):
            np.add(ramp, np.uint8(index * 4 % 256), out=planes[:height])
            left = (width - box) * index // max(frames - 1, 1)
            planes[top : top + box, left : left + box] = 235
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, duration * 48_000, 1024):
            count = min(1024, duration * 48_000 - start)
            tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(start, start + count) / 48_000)
            chunk = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]).astype(np.float32), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = 48_000, start, Fraction(1, 48_000)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


def best(runs: int, work: Callable[[Path], None]) -> tuple[float, float]:
    """The best wall time and the best CPU time (this process, x264's threads included) of `runs`."""
    walls, cpus = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as directory:
            started, cpu = time.perf_counter(), time.process_time()
            work(Path(directory))
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    width, height, duration = args.width, args.height, args.duration
    first, last = photo(1600, 900, 1), photo(1600, 900, 2)
    caption = caption_of("a cat walks along a sunny harbour wall at dawn")

    def cold(directory: Path, images: tuple[bytes, ...]) -> None:
        cache = ClipCache(directory)
        digests = tuple(cache.sources.put(data) for data in images)
        spec = ClipSpec(width, height, duration, True, digests, caption)
        asyncio.run(cache.ensure(spec))

    def encode_only(directory: Path) -> None:
        image = Image.open(io.BytesIO(first)).convert("RGB")
        spec = ClipSpec(width, height, duration, True, ("x",), caption)
        encode_clip(spec, directory / "a.mp4", images=[image])

    with tempfile.TemporaryDirectory() as warm_dir:
        cold(Path(warm_dir), (first,))
        cache = ClipCache(Path(warm_dir))
        spec = ClipSpec(width, height, duration, True, (cache.sources.put(first),), caption)
        hits = 200
        started = time.perf_counter()
        for _ in range(hits):
            asyncio.run(cache.ensure(spec))
        hit = (time.perf_counter() - started) / hits

    old = best(args.runs, lambda d: old_pattern(width, height, duration, d / "old.mp4"))
    image = best(args.runs, lambda d: cold(d, (first,)))
    fade = best(args.runs, lambda d: cold(d, (first, last)))
    flat_png = io.BytesIO()
    Image.new("RGB", (640, 360), (40, 120, 200)).save(flat_png, format="PNG")  # tests/helpers.data_uri()
    flat = best(args.runs, lambda d: cold(d, (flat_png.getvalue(),)))
    encode = best(args.runs, encode_only)
    print(
        f"{duration} s {width}x{height} clip with sound, best of {args.runs}: wall s, CPU s, CPU vs the old"
    )
    rows = [
        ("old grey pattern (v1)", old),
        ("image, Ken Burns + caption, cold", image),
        ("  of which encode_clip alone", encode),
        ("first+last cross-fade, cold", fade),
        ("the suite's flat test PNG, cold", flat),
    ]
    for label, (wall, cpu) in rows:
        print(f"  {label:<36} {wall:7.3f} {cpu:7.3f}   {cpu / old[1]:.2f}x")
    print(f"  {'cache hit (ClipCache.ensure)':<36} {hit * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
