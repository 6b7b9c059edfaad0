"""How much memory an S3 upload holds: uploads a large staged file to a moto S3 server on 127.0.0.1 with
`S3Storage.put_file` and prints the peak of Python allocations (tracemalloc) during the upload.

    .venv/bin/python bench/s3_upload_memory.py [--mib 200] [--part-mib 8]

The claim in docs/STORAGE.md is "about one part in memory per upload, whatever the video's size".
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import httpx
from aiobotocore.session import get_session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.storage.s3 import open_s3_storage, parse_s3_url

MIB = 1 << 20


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/moto-api/", trust_env=False)
            return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("moto server did not start") from None
            time.sleep(0.1)


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as f:
        for _ in range(size // MIB):
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


async def run(size_mib: int, part_mib: int, workdir: Path, endpoint: str) -> None:
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        _env_file=None,
        output_dir=workdir,
        storage_url=f"s3://{bucket}/bench",
        s3_endpoint_url=endpoint,
        s3_part_size_bytes=part_mib * MIB,
    )
    async with get_session().create_client("s3", endpoint_url=endpoint) as client:
        await client.create_bucket(Bucket=bucket)
    async with open_s3_storage(settings, parse_s3_url(settings.resolved_storage_url)) as storage:
        staged = storage.staging_dir() / "dl-bench.part"
        sha256 = write_file(staged, size_mib * MIB)
        tracemalloc.start()
        started = time.perf_counter()
        stored = await storage.put_file("bench.mp4", staged, sha256=sha256, content_type="video/mp4")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    parts = -(-stored.size_bytes // (part_mib * MIB))
    print(f"uploaded {stored.size_bytes / MIB:.0f} MiB in {parts} parts of {part_mib} MiB in {elapsed:.1f} s")
    print(f"peak Python memory during the upload: {peak / MIB:.1f} MiB ({peak / (part_mib * MIB):.2f} parts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="file size in MiB")
    parser.add_argument("--part-mib", type=int, default=8, help="S3_PART_SIZE_BYTES in MiB (at least 5)")
    args = parser.parse_args()
    # Dummy credentials for the local moto server: whatever AWS setup the shell has stays out of this.
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    process, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            asyncio.run(run(args.mib, args.part_mib, Path(workdir), endpoint))
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
