"""Fixtures for the sandbox tests: a SandboxServer on an ephemeral loopback port and a client for it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.sandbox.config import SandboxConfig
from app.sandbox.server import SandboxServer
from tests.conftest import CLIP_CACHE as SHARED_CLIP_CACHE
from tests.sandbox.sandbox_helpers import client_for

#: The suite's shared clip cache keeps reruns fast; SANDBOX_TEST_CLIP_CACHE overrides it (e.g. with a
#: fresh directory, to time a cold run).
CLIP_CACHE = Path(os.environ.get("SANDBOX_TEST_CLIP_CACHE", SHARED_CLIP_CACHE))


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., SandboxConfig]:
    def make(**overrides: Any) -> SandboxConfig:
        values: dict[str, Any] = {
            "state_path": tmp_path / "sandbox.db",
            "clip_cache_dir": CLIP_CACHE,
            # Captions off but where a test asks for them: each distinct prompt would cost an encode.
            "clip_captions": False,
            "clip_pictures": False,
            "pending_s": 0.05,
            "running_s": 0.1,
            **overrides,
        }
        return SandboxConfig(**values)

    return make


@pytest.fixture
def config(make_config: Callable[..., SandboxConfig]) -> SandboxConfig:
    return make_config()


@pytest.fixture
async def sandbox(config: SandboxConfig) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(config) as server:
        yield server


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sandbox) as http:
        yield http
