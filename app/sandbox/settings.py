"""`SandboxSettings`: the sandbox's own environment, the `SANDBOX_*` variables (and `.env`).

The sandbox is a tool of its own, so its knobs are not fields of the gateway's `Settings`: the gateway
composes this class as one group (`Settings.sandbox`, app/config.py) to start its embedded sandbox, and
`wan-gateway sandbox` reads it alone. Every default is written here once; `SandboxConfig` takes its
defaults from this class. This module imports nothing of the emulator (nor numpy), so the gateway can read
it without the `sandbox` extra.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The sandbox's key. Public: the log redactor leaves it readable (app/logsafety.py).
DEFAULT_API_KEY = "sk-sandbox"


def account_keys(api_key: str, count: int) -> tuple[str, ...]:
    """The keys of `count` emulated accounts: `api_key` itself, then `api_key-2`, `api_key-3`, …, so the
    default single account is exactly the one key it always was."""
    return (api_key, *(f"{api_key}-{n}" for n in range(2, count + 1)))


class SandboxSettings(BaseSettings):
    """Field `x` is the environment variable `SANDBOX_X`."""

    model_config = SettingsConfigDict(
        env_prefix="SANDBOX_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = Field(default="127.0.0.1", description="Address the embedded sandbox listens on.")
    port: int = Field(default=0, description="Port of the embedded sandbox (0 = any free port).")
    api_key: SecretStr = Field(
        default=SecretStr(DEFAULT_API_KEY),
        description="The key the sandbox accepts (and the gateway sends it).",
    )
    account_count: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Sandbox: how many DashScope accounts to emulate, each with its own key, tasks, uploads "
        "and limits. Keys: SANDBOX_API_KEY, then SANDBOX_API_KEY-2, -3, … (`sk-sandbox`, `sk-sandbox-2`, …).",
    )
    pending_s: float = Field(default=2.0, description="Sandbox: seconds a task stays PENDING.")
    running_s: float = Field(default=8.0, description="Sandbox: seconds a task stays RUNNING.")
    video_ttl_s: float = Field(
        default=86400.0, description="Sandbox: lifetime of a result `video_url` (the real service: 24 h)."
    )
    faults: str = Field(
        default="",
        description="Sandbox fault injection, e.g. `create:429=0.3,get:502=0.1,task:FAILED=0.2`. "
        "See docs/SANDBOX.md for the grammar.",
    )
    enforce_limits: bool = Field(
        default=False,
        description="Sandbox: enforce DashScope's per-account limits (submit RPS and concurrent tasks per "
        "family, 20 QPS task queries): extra tasks wait PENDING, excess calls get 429.",
    )
    fault_seed: int | None = Field(
        default=None, description="Sandbox: seed for probabilistic faults, for repeatable runs."
    )
    state_path: Path | None = Field(
        default=None,
        description="SQLite file holding the sandbox's tasks, so they survive a restart. "
        "Default: `sandbox.db` next to a SQLite DATABASE_URL, else under OUTPUT_DIR.",
    )
    clip_cache_dir: Path = Field(
        default=Path(".cache/sandbox-clips"),
        description="Where the sandbox keeps the MP4s it has encoded (and the input images they show).",
    )
    clip_captions: bool = Field(
        default=True,
        description="Sandbox: show the prompt's first words as a caption in result videos. Off, clips "
        "depend only on the image, size, duration and sound, so many prompts share one encode.",
    )
    clip_pictures: bool = Field(
        default=True,
        description="Sandbox: result videos animate the task's input image(s). Off, they show a neutral "
        "gradient instead and depend only on the size, duration and sound (and the caption), so tasks of "
        "one geometry share one encode whatever their images: load tests, the test suite.",
    )
