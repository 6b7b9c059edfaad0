"""Fixtures for the storage tests: session-wide clips and HTTP server, per-test HTTP client and storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.storage.local import LocalStorage
from app.tls import client_context

from .support import Clip, VideoServer, make_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def av_clip(clip_dir: Path) -> Clip:
    """160x96, 2 s, 30 fps, H.264 + AAC."""
    return make_clip(clip_dir / "av.mp4", width=160, height=96, seconds=2, audio=True)


@pytest.fixture(scope="session")
def silent_clip(clip_dir: Path) -> Clip:
    """64x64, 1 s, 30 fps, H.264 only."""
    return make_clip(clip_dir / "silent.mp4", width=64, height=64, seconds=1, audio=False)


@pytest.fixture(scope="session")
def video_server() -> Iterator[VideoServer]:
    server = VideoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy configured in the environment must not capture loopback requests.
    async with httpx.AsyncClient(trust_env=False, verify=client_context(trust_env=False)) as client:
        yield client


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "videos")
