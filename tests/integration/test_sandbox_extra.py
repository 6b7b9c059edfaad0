"""The sandbox is an extra (`wan-gateway[sandbox]`: numpy). Without it the gateway still
serves DashScope, and whatever would start a sandbox says what is missing and how to get it, instead of
failing later on the first clip or upload. "Not installed" is simulated by hiding numpy from imports."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from app.cli import cmd_sandbox
from app.config import Settings
from app.lifespan import open_gateway
from app.sandbox.extra import SandboxUnavailable, missing_modules
from tests.conftest import make_settings

#: The Postgres pass skips this module (tests/conftest.py ONE_DATABASE_REASONS).
pytestmark = pytest.mark.one_database(reason="no sql")


@pytest.fixture
def without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # `import numpy` now raises ImportError
    assert missing_modules() == ["numpy"]


@pytest.mark.usefixtures("without_numpy")
async def test_a_gateway_that_would_start_the_sandbox_says_how_to_install_it(settings: Settings) -> None:
    with pytest.raises(SandboxUnavailable) as info:
        async with open_gateway(settings):
            pass
    message = str(info.value)
    assert "DASHSCOPE_SANDBOX=true" in message and "missing: numpy" in message
    assert "pip install 'wan-gateway[sandbox]'" in message and "DASHSCOPE_API_KEY" in message


@pytest.mark.usefixtures("without_numpy")
async def test_a_gateway_with_a_dashscope_key_needs_no_sandbox(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url, dashscope_sandbox=None, dashscope_api_key="sk-a-real-looking-key"
    )
    async with open_gateway(settings) as gateway:
        assert gateway.sandbox is None
        assert gateway.provider is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            gateway.loops = None  # type: ignore[misc]  # the gateway is immutable


@pytest.mark.usefixtures("without_numpy")
def test_the_sandbox_command_says_how_to_install_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db")
    with pytest.raises(SystemExit, match=r"wan-gateway sandbox: .*pip install 'wan-gateway\[sandbox\]'"):
        cmd_sandbox(settings, "127.0.0.1", 0)
