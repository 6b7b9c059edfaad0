"""The `wan-gateway` command."""

from __future__ import annotations

import os

from tests.conftest import Served
from tests.helpers import run_cli

run = run_cli


async def test_webhook_secret_is_generated_once_and_shared(gateway: Served) -> None:
    env = {**os.environ, "DATABASE_URL": gateway.gateway.settings.database_url}
    env.pop("WEBHOOK_SECRET", None)
    first = run("webhook-secret", env=env).strip()
    assert first.startswith("whsec_")
    assert run("webhook-secret", env=env).strip() == first
    # The running gateway signs with that same secret.
    assert await gateway.gateway.secrets.get() == [first]
    env["WEBHOOK_SECRET"] = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    assert run("webhook-secret", env=env).strip() == env["WEBHOOK_SECRET"]


def test_help_lists_the_commands() -> None:
    out = run("--help", env=dict(os.environ))
    for command in ("serve", "migrate", "sandbox", "webhook-secret", "openapi"):
        assert command in out
