"""SandboxConfig: every knob of the DashScope emulator, and how it is made from `SandboxSettings`.

The knobs the environment sets (`SANDBOX_*`) take their defaults from `SandboxSettings`, so each default is
written once (app/sandbox/settings.py); the others are the emulator's own, with no variable (tests set them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.sandbox import limits
from app.sandbox.settings import SandboxSettings, account_keys

#: The defaults of the `SANDBOX_*` variables (no environment read: `model_construct` only fills defaults).
_ENV = SandboxSettings.model_construct()


@dataclass(frozen=True)
class SandboxConfig:
    """How the emulator behaves. Only `state_path` has no default: it is where tasks persist."""

    state_path: Path
    clip_cache_dir: Path = _ENV.clip_cache_dir
    clip_captions: bool = _ENV.clip_captions  # the prompt's first words burnt into result videos
    clip_pictures: bool = _ENV.clip_pictures  # the input image animated (else a placeholder gradient)
    #: One emulated account per key (its own tasks, uploads, slots and rates); account `n` is key `n`
    #: (1-based), as the stats and list rows name it.
    api_keys: tuple[str, ...] = (_ENV.api_key.get_secret_value(),)
    host: str = _ENV.host
    port: int = _ENV.port
    #: Overrides the scheme://host:port used in `video_url` and `upload_host`. Unset: taken from the
    #: request's Host header, which is how the gateway reached the sandbox.
    public_base_url: str | None = None

    # --- task timeline ---------------------------------------------------------------------------
    pending_s: float = _ENV.pending_s
    running_s: float = _ENV.running_s
    task_ttl_s: float = 86400.0  # task ids answer UNKNOWN after this (the real service: 24 h)
    video_ttl_s: float = _ENV.video_ttl_s  # lifetime of a signed `video_url`

    # --- faults ----------------------------------------------------------------------------------
    faults: str = _ENV.faults  # the SANDBOX_FAULTS grammar, see docs/SANDBOX.md
    fault_seed: int | None = _ENV.fault_seed  # seeds the probability rolls, for reproducible runs

    # --- limits (§7) -----------------------------------------------------------------------------
    enforce_limits: bool = _ENV.enforce_limits
    submit_rps: Mapping[str, float] = field(default_factory=lambda: dict(limits.SUBMIT_RPS))
    max_running: Mapping[str, int] = field(default_factory=lambda: dict(limits.MAX_RUNNING))
    task_api_qps: float = limits.TASK_API_QPS
    strict_parameters: bool = False  # unknown `parameters` keys -> 400 instead of being ignored

    # --- input media (§2.6) ----------------------------------------------------------------------
    #: The seeds' limits (§2.6). The gateway's embedded sandbox gets its IMAGE_* settings instead.
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
        if len(set(self.api_keys)) != len(self.api_keys):
            raise ValueError("each sandbox account needs its own API key")
        # A partial map overrides the named families only; the others keep the documented limits.
        object.__setattr__(self, "submit_rps", {**limits.SUBMIT_RPS, **self.submit_rps})
        object.__setattr__(self, "max_running", {**limits.MAX_RUNNING, **self.max_running})

    @classmethod
    def from_settings(cls, settings: SandboxSettings, *, default_state_path: Path) -> SandboxConfig:
        """The config the `SANDBOX_*` environment describes; `default_state_path` where SANDBOX_STATE_PATH
        is unset (the gateway keeps it beside its database)."""
        return cls(
            state_path=settings.state_path or default_state_path,
            clip_cache_dir=settings.clip_cache_dir,
            clip_captions=settings.clip_captions,
            clip_pictures=settings.clip_pictures,
            api_keys=account_keys(settings.api_key.get_secret_value(), settings.account_count),
            host=settings.host,
            port=settings.port,
            pending_s=settings.pending_s,
            running_s=settings.running_s,
            video_ttl_s=settings.video_ttl_s,
            faults=settings.faults,
            fault_seed=settings.fault_seed,
            enforce_limits=settings.enforce_limits,
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
