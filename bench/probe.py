"""What checking a whole video costs, and what each way of checking finds: encodes a Wan-like 1080p clip
(H.264 at ~11 Mbit/s with B-frames, AAC stereo, 30 fps), damages copies of it, and times three checks on
each (CPU seconds), printing how many packets each one finds undecodable.

    .venv/bin/python bench/probe.py [--seconds 15] [--runs 3]

The checks:

- **first frame**: demux every packet, decode the first frame only (what `probe_video` did before);
- **keyframes**: every packet goes to the decoder with `skip_frame=NONKEY` (it parses each packet's framing
  and decodes keyframes only);
- **every packet**: decode every video and audio packet (what `probe_video` does now), timed through
  `probe_video` itself.

The damage: 400 KB zeroed in the middle of the file (the issue's case), 400 KB of random bytes there, and a
keyframe's slice data overwritten (its NAL header kept). The claim in app/storage/probe.py: decoding every
packet costs ≈ 0.16 s of CPU per second of 1080p video, and finds what the first-frame check missed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import av.error
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.storage.probe import ProbeError, probe_video

DAMAGE_BYTES = 400_000


def encode_wan_like(path: Path, seconds: int, width: int = 1920, height: int = 1080) -> None:
    """Noise over a scrolling pattern, so the encoder spends real bits (~11 Mbit/s), as Wan's output does."""
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 10_000_000
        video.options = {"preset": "veryfast"}  # B-frames, CABAC, GOP of 250: a usual H.264 stream
        audio = container.add_stream("aac", rate=48_000, layout="stereo")
        base = rng.integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
        for index in range(seconds * 30):
            planes = np.roll(base, index * 3, axis=1) + rng.integers(0, 24, base.shape, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        total = seconds * 48_000
        for start in range(0, total, 1024):
            count = min(1024, total - start)
            tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(start, start + count) / 48_000)
            chunk = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]).astype(np.float32), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = 48_000, start, Fraction(1, 48_000)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


def damaged(source: Path, folder: Path) -> dict[str, Path]:
    data = source.read_bytes()
    middle = len(data) // 2
    copies: dict[str, bytes] = {
        "intact": data,
        "400 KB zeroed": data[:middle] + bytes(DAMAGE_BYTES) + data[middle + DAMAGE_BYTES :],
        "400 KB random": data[:middle] + os.urandom(DAMAGE_BYTES) + data[middle + DAMAGE_BYTES :],
    }
    with av.open(str(source)) as container:
        key = next(p for p in container.demux(container.streams.video[0]) if p.size and p.is_keyframe)
        assert key.pos is not None
        start, end = key.pos + 100, key.pos + key.size - 100
    copies["keyframe slices overwritten"] = data[:start] + os.urandom(end - start) + data[end:]
    paths = {}
    for name, content in copies.items():
        path = folder / f"{name.replace(' ', '-')}.mp4"
        path.write_bytes(content)
        paths[name] = path
    return paths


def refused_packets(path: Path, *, keyframes_only: bool = False, first_frame_only: bool = False) -> int:
    """Video packets the decoder refused (or, decoding everything, that yielded no frame)."""
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context
        if keyframes_only:
            codec.skip_frame = "NONKEY"
        packets = frames = refused = 0
        for packet in container.demux(container.streams.video[0]):
            if not packet.size:
                continue
            packets += 1
            if first_frame_only and frames:
                continue
            try:
                frames += len(codec.decode(packet))
            except av.error.FFmpegError:
                refused += 1
        if first_frame_only:
            return 0 if frames else 1
        if keyframes_only:
            return refused
        with contextlib.suppress(av.error.FFmpegError):
            frames += len(codec.decode(None))  # the frames the decoder holds back (B-frame reordering)
        return packets - frames


def via_probe(path: Path) -> str:
    try:
        probe_video(path)
    except ProbeError as exc:
        return str(exc)
    return "playable"


def timed(run: Callable[[], object], runs: int) -> tuple[float, object]:
    """The median CPU seconds of `runs` runs (CPU, not wall time: the machine may be shared), and the
    outcome."""
    times, outcome = [], None
    for _ in range(runs):
        started = time.process_time()
        outcome = run()
        times.append(time.process_time() - started)
    return statistics.median(times), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "wan-like.mp4"
        started = time.perf_counter()
        encode_wan_like(source, args.seconds)
        with av.open(str(source)) as container:
            packets = container.streams.video[0].frames
        print(
            f"1920x1080 {args.seconds} s, {source.stat().st_size / 1e6:.1f} MB, {packets} video packets "
            f"(encoded in {time.perf_counter() - started:.0f} s); CPU seconds, median of {args.runs} runs"
        )
        print(f"{'file':30} {'first frame':>18} {'keyframes':>18} {'every packet':>14}  probe_video says")
        for name, path in damaged(source, folder).items():
            first_s, first = timed(partial(refused_packets, path, first_frame_only=True), args.runs)
            key_s, key = timed(partial(refused_packets, path, keyframes_only=True), args.runs)
            every_s, verdict = timed(partial(via_probe, path), args.runs)
            every = refused_packets(path)
            print(
                f"{name:30} {first_s:7.2f}s {first:>3} bad {key_s:7.2f}s {key:>3} bad "
                f"{every_s:7.2f}s {every:>3}  {verdict}"
            )


if __name__ == "__main__":
    main()
