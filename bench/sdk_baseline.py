"""The naive baseline of bench/capacity.py: the official `dashscope` SDK from a thread pool.

Each thread takes the next job, calls `VideoSynthesis.call` (create, then the SDK's own polling: 1, 1, 2,
2, 2, 4, 4, 4, 5, 5 … s) and downloads the video to a local file. A failed call (a 429 on create, say) is
counted and the job dropped — what a thread pool around the SDK does unless one writes more code. After
`--seconds` it writes what was stored and its own peak RSS to `--out` and exits, abandoning calls in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time
from pathlib import Path

import dashscope
import httpx
from dashscope import VideoSynthesis


def peak_rss_mib() -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--base-url", "--api-key", "--model", "--image-file", "--videos", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--threads", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    dashscope.base_http_api_url = args.base_url
    image = Path(args.image_file).read_text()
    videos = Path(args.videos)
    videos.mkdir(parents=True, exist_ok=True)
    jobs: queue.Queue[int] = queue.Queue()
    for i in range(args.jobs):
        jobs.put(i)
    stored: list[tuple[str, float]] = []
    failed = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def work() -> None:
        while time.monotonic() < deadline:
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                answer = VideoSynthesis.call(
                    api_key=args.api_key,
                    model=args.model,
                    prompt=f"backlog {i}",
                    img_url=image,
                    duration=args.duration,
                    resolution="720P",
                )
                if answer.status_code != 200 or answer.output.task_status != "SUCCEEDED":
                    raise RuntimeError(f"{answer.status_code} {answer.code} {answer.message}")
                path = videos / f"{answer.output.task_id}.mp4"
                with httpx.stream("GET", answer.output.video_url, timeout=120) as response:
                    response.raise_for_status()
                    with path.open("wb") as f:
                        for chunk in response.iter_bytes():
                            f.write(chunk)
                with lock:
                    stored.append((answer.output.task_id, time.time()))
            except Exception:
                with lock:
                    failed[0] += 1

    for _ in range(args.threads):
        threading.Thread(target=work, daemon=True).start()
    time.sleep(max(0.0, deadline - time.monotonic()))
    with lock:
        result = {"stored": list(stored), "failed": failed[0], "peak_rss_mib": peak_rss_mib()}
    Path(args.out).write_text(json.dumps(result))
    os._exit(0)  # threads blocked in the SDK's polling are abandoned


if __name__ == "__main__":
    main()
