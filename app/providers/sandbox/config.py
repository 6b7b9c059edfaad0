"""SandboxConfig: every knob of the DashScope emulator, and how it is derived from the gateway's Settings."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import DEFAULT_MAX_INFLIGHT, DEFAULT_SUBMIT_RPS

if TYPE_CHECKING:
    from app.config import Settings

DEFAULT_API_KEY = "sk-sandbox"


@dataclass(frozen=True)
class SandboxConfig:
    """How the emulator behaves. Only `state_path` has no default: it is where tasks persist."""

    state_path: Path
    clip_cache_dir: Path = Path(".cache/sandbox-clips")
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    host: str = "127.0.0.1"
    port: int = 0
    #: Overrides the scheme://host:port used in `video_url` and `upload_host`. Unset: taken from the
    #: request's Host header, which is how the gateway reached the sandbox.
    public_base_url: str | None = None

    # --- task timeline ---------------------------------------------------------------------------
    pending_s: float = 2.0
    running_s: float = 8.0
    task_ttl_s: float = 86400.0  # task ids answer UNKNOWN after this (the real service: 24 h)
    video_ttl_s: float = 86400.0  # lifetime of a signed `video_url`

    # --- faults ----------------------------------------------------------------------------------
    faults: str = ""  # the SANDBOX_FAULTS grammar, see docs/SANDBOX.md
    fault_seed: int | None = None  # seeds the probability rolls, for reproducible runs

    # --- limits (§7) -----------------------------------------------------------------------------
    enforce_limits: bool = False
    submit_rps: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SUBMIT_RPS))
    max_running: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_INFLIGHT))
    task_api_qps: float = 20.0
    strict_parameters: bool = False  # unknown `parameters` keys -> 400 instead of being ignored

    # --- input media (§2.6) ----------------------------------------------------------------------
    image_min_side_px: int = 360
    image_max_side_px: int = 2000
    image_max_bytes: int = 10 * 1024 * 1024
    #: What a non-loopback http(s) image is taken to be, since nothing outside 127.0.0.1 is reachable.
    assumed_image_size: tuple[int, int] = (1280, 720)

    # --- uploads (§6) ----------------------------------------------------------------------------
    upload_dir: Path | None = None  # default: `<state_path stem>-uploads/` beside the state file
    policy_ttl_s: float = 300.0
    upload_ttl_s: float = 48 * 3600.0
    upload_max_mb: int = 100

    # --- cosmetics -------------------------------------------------------------------------------
    region: str = "cn-beijing"
    x264_preset: str = "ultrafast"
    signing_secret: str | None = None  # default: derived from the first API key

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ValueError("the sandbox needs at least one API key")
        # A partial map overrides the named families only; the others keep the documented limits.
        object.__setattr__(self, "submit_rps", {**DEFAULT_SUBMIT_RPS, **self.submit_rps})
        object.__setattr__(self, "max_running", {**DEFAULT_MAX_INFLIGHT, **self.max_running})

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxConfig:
        return cls(
            state_path=settings.resolved_sandbox_state_path,
            clip_cache_dir=settings.sandbox_clip_cache_dir,
            api_keys=(settings.sandbox_api_key.get_secret_value(),),
            host=settings.sandbox_host,
            port=settings.sandbox_port,
            pending_s=settings.sandbox_pending_s,
            running_s=settings.sandbox_running_s,
            video_ttl_s=settings.sandbox_video_ttl_s,
            faults=settings.sandbox_faults,
            fault_seed=settings.sandbox_fault_seed,
            enforce_limits=settings.sandbox_enforce_limits,
            image_min_side_px=settings.image_min_side_px,
            image_max_side_px=settings.image_max_side_px,
            image_max_bytes=settings.image_max_bytes,
        )

    @property
    def resolved_upload_dir(self) -> Path:
        if self.upload_dir is not None:
            return self.upload_dir
        return self.state_path.with_name(f"{self.state_path.stem}-uploads")

    @property
    def secret(self) -> bytes:
        """HMAC key for result URLs and upload policies. Derived, not random, so that every process
        sharing the state file (and a restarted one) accepts the URLs the others signed."""
        if self.signing_secret:
            return self.signing_secret.encode()
        return hashlib.sha256(b"wan-sandbox-signing:" + self.api_keys[0].encode()).digest()
