"""Settings: every knob of the gateway, read from the environment (and `.env`).

Environment names are the public contract of `architecture.md` §3 (flat, upper case). Every field carries
a description; `docs/CONFIGURATION.md` is generated from them and the README links to it. The sandbox's
`SANDBOX_*` variables belong to its own class (app/sandbox/settings.py), composed here as the `sandbox`
group. app/wiring.py builds each component's config from these (storage reads its own: storage/factory.py).
"""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.sandbox.settings import SandboxSettings
from app.statuses import EVENT_TYPES, TERMINAL_EVENTS  # webhook/SSE event types: `job.<status>`

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"

#: In the spirit of Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def split_secrets(value: str) -> list[str]:
    return [s for s in value.replace(",", " ").split() if s]


#: Per-family defaults from docs/PROTOCOL.md §7 (per Alibaba Cloud account).
DEFAULT_SUBMIT_RPS: dict[str, float] = {"wan2.6": 5, "wan2.5": 5, "wan2.2": 2, "wan2.1": 2, "kf2v": 2}
DEFAULT_MAX_INFLIGHT: dict[str, int] = {"wan2.6": 5, "wan2.5": 5, "wan2.2": 2, "wan2.1": 2, "kf2v": 2}


def _credentials_file_key(path: Path) -> str | None:
    """`dashscope_api_key` under `[default]` in `~/.alibabacloud/credentials` (seed 004)."""
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error:
        return None
    value = parser.get("default", "dashscope_api_key", fallback="").strip()
    return value or None


REGIONS = ("cn-beijing", "ap-southeast-1", "us-east-1")
_ACCOUNT_FIELDS = {"name", "api_key", "base_url", "region"}


@dataclass(frozen=True)
class UpstreamAccount:
    """One DASHSCOPE_ACCOUNTS entry. `base_url` None: DASHSCOPE_BASE_URL (the embedded sandbox's URL in
    sandbox mode); `region` None: derived from the base URL as DASHSCOPE_REGION is."""

    name: str
    api_key: SecretStr
    base_url: str | None = None
    region: str | None = None


def parse_accounts(raw: str) -> list[UpstreamAccount]:
    """DASHSCOPE_ACCOUNTS' JSON array; a ValueError names the entry (by position and name) and field."""
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"DASHSCOPE_ACCOUNTS is not JSON: {exc}") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError('DASHSCOPE_ACCOUNTS must be a non-empty JSON array of {"name", "api_key", …}')
    accounts: list[UpstreamAccount] = []
    for index, entry in enumerate(entries):
        where = f"DASHSCOPE_ACCOUNTS[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']!r})"
        if unknown := sorted(set(entry) - _ACCOUNT_FIELDS):
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
        name, key = entry.get("name"), entry.get("api_key")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise ValueError(f"{where}.name must be a non-empty string of at most 64 characters")
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{where}.api_key must be a non-empty string")
        base_url, region = entry.get("base_url"), entry.get("region")
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
        ):
            raise ValueError(f"{where}.base_url must be an http(s) URL ending in /api/v1")
        if region is not None and region not in REGIONS:
            raise ValueError(f"{where}.region must be one of {', '.join(REGIONS)}")
        if any(a.name == name for a in accounts):
            raise ValueError(f"{where}.name is used by an earlier entry")
        accounts.append(
            UpstreamAccount(name, SecretStr(key.strip()), base_url.rstrip("/") if base_url else None, region)
        )
    return accounts


def _parse_family_map(value: Any) -> Any:
    """Accept `wan2.6=5,kf2v=1` as well as JSON for the per-family maps."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            import json

            return json.loads(text)
        pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
        return {k.strip(): v.strip() for k, v in pairs}
    return value


class Settings(BaseSettings):
    """The gateway's configuration. Field names map 1:1 to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- upstream -------------------------------------------------------------------------------
    dashscope_api_key: SecretStr | None = Field(
        default=None,
        description="DashScope API key (region-bound). Falls back to `dashscope_api_key` under `[default]` "
        "in `~/.alibabacloud/credentials`; the environment wins. With no key the sandbox is used.",
    )
    dashscope_base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Upstream base URL ending in `/api/v1`; must be the key's region (Beijing by default).",
    )
    dashscope_accounts: SecretStr | None = Field(
        default=None,
        description="A pool of upstream accounts, replacing DASHSCOPE_API_KEY/DASHSCOPE_BASE_URL when set: a "
        'JSON array `[{"name": "a", "api_key": "sk-…", "base_url": "https://…/api/v1", "region": '
        '"cn-beijing"}, …]` (`base_url`, `region` optional). Each account has its own rate budgets and '
        "in-flight caps (UPSTREAM_MAX_INFLIGHT per account); a queued job goes to an account with a free "
        "slot of its family and stays bound to it, and is billed in that account's region (estimated in "
        "the pool's priciest); every account must bill in one currency (a mix stops the start). In "
        "sandbox mode a missing `base_url` is the embedded sandbox, and SANDBOX_ACCOUNT_COUNT=N alone "
        "pools its N keys.",
    )
    dashscope_region: Literal["cn-beijing", "ap-southeast-1", "us-east-1"] | None = Field(
        default=None,
        description="The region the upstream account bills in, which picks the price table: `cn-beijing` "
        "(CNY), `ap-southeast-1` (Singapore, USD), `us-east-1` (Virginia, USD). Unset: derived from "
        "DASHSCOPE_BASE_URL's host (`dashscope.aliyuncs.com`, `dashscope-intl…`, `dashscope-us…`, "
        "`{workspace}.{region}.maas.aliyuncs.com`); `cn-beijing` for any other host, the sandbox included.",
    )
    price_table_file: Path | None = Field(
        default=None,
        description="A TOML (or `.json`) price table that overrides or extends the built-in one, per region "
        "and model (format: docs/PRICES.md); a file that cannot be used stops the gateway at start, "
        "naming the entry.",
    )
    dashscope_sandbox: bool | None = Field(
        default=None,
        description="Force the built-in DashScope emulator on (`true`) or off (`false`). Unset: on when "
        "no upstream key is configured.",
    )
    dashscope_credentials_file: Path = Field(
        default=Path("~/.alibabacloud/credentials"),
        description="Where to look for `dashscope_api_key` when DASHSCOPE_API_KEY is unset.",
    )
    upstream_connect_timeout_s: float = Field(default=5.0, description="TCP/TLS connect timeout upstream.")
    upstream_read_timeout_s: float = Field(
        default=30.0, description="Read timeout for DashScope API calls (create, get, cancel, list)."
    )
    upstream_query_qps: float = Field(
        default=20.0, description="Task query/cancel/list calls per second per upstream account."
    )
    upstream_account_retry_s: float = Field(
        default=60.0,
        gt=0,
        description="A pooled account whose key is refused (401/403 on any call: create, poll, cancel, "
        "reconciliation) leaves rotation for every process sharing the database; after this many seconds "
        "one job is placed on it again, and any call on it that goes through puts it back.",
    )
    upstream_submit_rps: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_SUBMIT_RPS),
        description="Create calls per second per model family, e.g. "
        "`wan2.6=5,wan2.5=5,wan2.2=2,wan2.1=2,kf2v=2` (or JSON). Families not named keep their defaults.",
    )
    upstream_max_inflight: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_INFLIGHT),
        description="Upstream tasks PENDING or RUNNING at once per model family, e.g. `wan2.6=5,kf2v=2`. "
        "A freed slot goes to the tenant with the fewest slots in use; FIFO within a tenant.",
    )

    # --- sandbox (DashScope emulator) -----------------------------------------------------------
    # Read from the environment by `_SandboxGroup` below; the factory only gives the defaults (as for
    # every field of `Settings.model_construct()`).
    sandbox: Annotated[SandboxSettings, NoDecode] = Field(
        default_factory=SandboxSettings.model_construct,
        description="The embedded sandbox's own settings, the `SANDBOX_*` variables "
        "(app/sandbox/settings.py), read from the same environment and `.env` file.",
    )

    # --- database -------------------------------------------------------------------------------
    database_url: str = Field(
        default="sqlite+aiosqlite:///./data/gateway.db",
        description="SQLAlchemy async URL: `sqlite+aiosqlite:///path` or `postgresql+asyncpg://user:pw@host/db`.",
    )
    database_pool_size: int = Field(default=10, description="Postgres connection pool size.")
    database_echo: bool = Field(default=False, description="Log every SQL statement.")

    # --- storage --------------------------------------------------------------------------------
    output_dir: Path = Field(default=Path("output"), description="Base directory for local output.")
    storage_url: str | None = Field(
        default=None,
        description="Where finished videos are kept: a local directory (default "
        "`$OUTPUT_DIR/ai-video-wan-video/videos/`) or `s3://bucket/prefix` (see docs/STORAGE.md; downloads "
        "are then staged in `$OUTPUT_DIR/s3-staging/`).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 storage: the endpoint of an S3-compatible store (MinIO, Ceph, …), e.g. "
        "`http://127.0.0.1:9000`. Unset: AWS S3. Credentials come from the standard AWS chain "
        "(`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, `AWS_PROFILE`, `~/.aws/`, "
        "an instance or task role).",
    )
    aws_region: str | None = Field(
        default=None,
        description="S3 storage: the bucket's region. Unset: botocore's own lookup (`AWS_DEFAULT_REGION`, "
        "`~/.aws/config`).",
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="S3 storage: `path` (`endpoint/bucket/key`) or `virtual` (`bucket.endpoint/key`) "
        "requests. `auto`: path-style when S3_ENDPOINT_URL is set, virtual-hosted on AWS.",
    )
    s3_content_mode: Literal["proxy", "redirect"] = Field(
        default="proxy",
        description="S3 storage: how `GET /v1/jobs/{id}/content` serves a video. `proxy`: the gateway "
        "streams it from the bucket (Range, ETag and access as for local files; the bucket can stay "
        "private to the gateway). `redirect`: `307` to a presigned GET URL valid S3_PRESIGN_TTL_S, so the "
        "client downloads from the bucket and no video bytes pass through the gateway.",
    )
    s3_presign_ttl_s: int = Field(
        default=300,
        ge=1,
        le=7 * 86400,
        description="S3 storage, redirect mode: lifetime of a presigned URL in seconds (S3 allows 7 days).",
    )
    s3_part_size_bytes: int = Field(
        default=8 << 20,
        ge=5 << 20,
        le=5 << 30,
        description="S3 storage: multipart upload part size (S3's minimum is 5 MiB). An upload holds about "
        "one part in memory; a video of at most one part is sent with a single PutObject. Raised as "
        "needed to stay within S3's 10,000 parts.",
    )
    max_video_bytes: int = Field(
        default=1 << 30, description="A result video larger than this is refused (the copy stops early)."
    )
    download_timeout_s: float = Field(default=120.0, description="Read timeout while copying a result video.")
    storage_min_free_bytes: int = Field(
        default=512 << 20,
        ge=0,
        description="`/readyz` reports storage not ready when the filesystem videos are staged on (the local "
        "store's, or S3's staging directory) has less free space than this (0: no minimum). A copy "
        "that runs out of space also makes it not ready until there is room for that video again.",
    )
    storage_retention_s: float = Field(
        default=0.0,
        ge=0,
        description="Stored videos (and their thumbnails) of jobs that finished longer ago than this are "
        "removed by a background loop; the job stays, with `result.expired_at`, and `/content` answers "
        "`410 Gone` (`video_expired`). A video shared by reused jobs goes once every one of them is this "
        "old. 0: keep videos forever.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="The address `wan-gateway serve` listens on (`--host` wins); `0.0.0.0` for every "
        "interface, as in the Docker image.",
    )
    port: int = Field(
        default=8000, ge=1, le=65535, description="The port `wan-gateway serve` listens on (`--port` wins)."
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="How clients reach the gateway; used to build `result.video_url` and signed links.",
    )
    link_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        le=366 * 24 * 3600,
        description="How long a signed download link (`result.signed_url`, the DashScope facade's "
        "`output.video_url`) stays valid: its expiry is now + this, rounded up to the hour, so repeated "
        "reads of a job give the same URL.",
    )
    link_signing_secret: SecretStr | None = Field(
        default=None,
        description="The key signed download links are signed with (at least 32 characters). Unset: one is "
        "generated on the first start and kept in the database, shared by every process. Changing it "
        "invalidates every link handed out.",
    )

    # --- input limits ---------------------------------------------------------------------------
    max_request_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body in bytes (default 32 MiB: two 10 MB images as base64 `data:` URIs "
        "fit). A larger `Content-Length` is refused with 413 before the body is read; a chunked body is "
        "cut off with 413 as soon as it passes the limit.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request head (request line and header fields) in bytes; beyond it the answer "
        "is 431 and the connection is closed. 64 KiB is above what proxies forward (nginx 4 × 8 KiB, Envoy "
        "60 KiB), so a request a proxy passed is never refused here.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time for a request head to arrive, from the connection's opening or, on a keep-alive "
        "connection, from the request's first byte; then 408 (nothing sent yet: just closed).",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between two pieces of a request body while the API reads it; then 408 "
        "and the connection is closed (a body that trickles in or stops is not waited for forever).",
    )
    image_min_side_px: int = Field(default=360, description="Smallest allowed side of a reference image.")
    image_max_side_px: int = Field(default=2000, description="Largest allowed side of a reference image.")
    image_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest reference image (decoded), from a data: URI or fetched from a URL (the download "
        "stops as soon as it is passed).",
    )
    image_check_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Reference images checked at once per process (base64, parse, full decode, hash), each "
        "in a thread of a pool of its own, never on the event loop. More wait for a free checker, at most "
        "`IMAGE_CHECK_TIMEOUT_S`; then 503 with Retry-After.",
    )
    image_check_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Longest time checking one reference image may take (a normal 2000x2000 image takes "
        "well under 0.5 s); past it the image is refused with a 422 naming the field, and the work stops. "
        "Also the longest wait for a free checker.",
    )
    reference_fetch_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Total time to fetch a `reference_image`/`last_frame_image` given as an http(s) URL: "
        "DNS, connects, redirects and body together. Slower is a 422.",
    )

    # --- job loop -------------------------------------------------------------------------------
    workers_enabled: bool = Field(
        default=True,
        description="Run the job poller and webhook dispatcher inside the API process (false: API only; "
        "run `wan-gateway worker` processes beside it).",
    )
    poll_min_interval_s: float = Field(default=2.0, description="First/shortest upstream poll interval.")
    poll_max_interval_s: float = Field(default=15.0, description="Longest upstream poll interval.")
    job_deadline_s: float = Field(
        default=86400.0, description="A job not finished upstream this long after creation fails."
    )
    lease_s: float = Field(
        default=60.0,
        description="How long a claimed job or delivery belongs to one worker. Live workers renew it during "
        "long steps; a dead worker's work is taken over by another once it lapses (this is the bound).",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        description="On SIGTERM, how long the loops may finish work in hand before stopping; what is left "
        "keeps its lease and is resumed by another worker after LEASE_S.",
    )
    worker_concurrency: int = Field(default=16, description="Jobs one worker handles at once.")
    worker_batch_size: int = Field(default=32, description="Due jobs claimed per poll tick.")
    reconcile_grace_s: float = Field(
        default=30.0,
        description="After an ambiguous create, how long the task list is searched before resubmitting.",
    )

    # --- idempotency and result reuse ------------------------------------------------------------
    idempotency_ttl_s: float = Field(
        default=86400.0,
        ge=1,
        description="How long an `Idempotency-Key` is kept (per tenant): within it the same key and body "
        "return the same job; after it the key may be used again.",
    )
    result_cache: bool = Field(
        default=True,
        description="Reuse results: a request with an explicit `seed` identical to one of the tenant's "
        "succeeded jobs gets that job's stored video (no upstream task), and one identical to a running job "
        'waits for it. `false` turns reuse off for everyone (requests can opt out with `"cache": false`).',
    )

    # --- webhooks and live events ----------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="`whsec_…` signing secret(s); several, comma-separated, during a rotation (each message "
        "is signed with all). Unset: one is generated on first use and kept in the database "
        "(`wan-gateway webhook-secret` prints it).",
    )
    webhook_default_url: str | None = Field(
        default=None, description="A gateway-wide endpoint that receives events of every job."
    )
    webhook_default_events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(TERMINAL_EVENTS),
        description="Events sent to WEBHOOK_DEFAULT_URL, comma-separated (default: the terminal ones).",
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        description="Seconds before each delivery attempt, comma-separated; the first is the first try. "
        "Up to 10 % jitter is added. When the list runs out the delivery is marked failed.",
    )
    webhook_timeout_s: float = Field(default=10.0, description="Timeout of one webhook request.")
    webhook_concurrency: int = Field(default=16, description="Webhook requests in flight per worker.")
    webhook_endpoint_concurrency: int = Field(
        default=4,
        ge=1,
        description="Webhook requests in flight to one endpoint (scheme, host and port of the URL) at most, "
        "across all workers, so a slow receiver cannot take every slot; keep it below WEBHOOK_CONCURRENCY.",
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Let webhook targets and fetched `reference_image`/`last_frame_image` URLs resolve to "
        "loopback/private/link-local addresses. Cloud metadata addresses stay refused.",
    )
    sse_keepalive_s: float = Field(default=15.0, description="Comment line interval on event streams.")
    sse_progress_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="At most this often a job's event stream sends a `job.progress` event (no `id:`) while "
        "the job has not finished, when its progress, queue position or ETA changed.",
    )
    change_poll_interval_s: float = Field(
        default=1.0,
        description="How often event streams and `Prefer: wait` look for changes made by other processes "
        "(changes made in this process are seen at once).",
    )
    # --- observability --------------------------------------------------------------------------
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector (OTLP over HTTP, e.g. `http://otel-collector:4318`): set, the "
        "gateway exports traces to its `/v1/traces` — one trace per job, from the submit through its "
        "upstream calls, the copy and its webhooks (the `otel` extra; docs/OBSERVABILITY.md). The SDK's "
        "other `OTEL_*` variables (service name, headers, sampler) apply. Unset: no tracing at all.",
    )

    # --- clients: keys and quotas ----------------------------------------------------------------
    gateway_api_keys: SecretStr | None = Field(
        default=None,
        description="Client keys `name:key,name2:key2` (each key ≥ 32 characters; the name is the tenant). "
        "Keys can also be created with `wan-gateway keys create`. With any key, every `/v1` route needs "
        "`Authorization: Bearer <key>`.",
    )
    gateway_admin_keys: SecretStr | None = Field(
        default=None,
        description="Like GATEWAY_API_KEYS, for keys that may also read `/metrics` and `/v1/admin/*`.",
    )
    auth_disabled: bool = Field(
        default=False,
        description="Serve without client keys even against the real DashScope (otherwise the gateway "
        "refuses to start that way). In sandbox mode auth is off while no key exists.",
    )
    auth_cache_ttl_s: float = Field(
        default=5.0, description="How long a key lookup is remembered: a revoked key stops working within it."
    )
    quota_max_active_jobs: int = Field(
        default=1000, ge=0, description="Per key: jobs not yet finished (0 = no limit)."
    )
    quota_submits_per_minute: int = Field(
        default=120, ge=0, description="Per key: job submissions in any 60 s (0 = no limit)."
    )
    quota_video_seconds_per_day: int = Field(
        default=3600,
        ge=0,
        description="Per key: seconds of video requested in any 24 h, not counting failed, canceled or "
        "reused (cached) jobs (0 = no limit).",
    )
    quota_budget: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="Per key: money its jobs may cost per QUOTA_BUDGET_PERIOD, a decimal in the region's "
        "currency (the jobs' `cost.currency`: CNY for cn-beijing, USD otherwise). What finished jobs were "
        "billed in the period plus the estimates of unfinished ones may not pass it; a submission that "
        "would is refused with 402 `budget_exceeded`. 0 = no budget. `keys create --budget` overrides it.",
    )
    quota_budget_period: Literal["day", "month", "total"] = Field(
        default="month",
        description="The period of QUOTA_BUDGET: `day` (from UTC midnight), `month` (from the 1st, UTC) "
        "or `total` (all time).",
    )

    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`text`: one line per record, with the request's and the job's ids in brackets "
        "(`[request_id=… job_id=…]`); `json`: one JSON object per line (`timestamp`, `level`, `logger`, "
        "`message`, `request_id`, `job_id`, `tenant`, `upstream_task_id`, `upstream_request_id`, and the "
        "access line's `method`, `path`, `status`, `duration_ms`, `client`). See docs/OBSERVABILITY.md.",
    )

    @field_validator("upstream_submit_rps", mode="before")
    @classmethod
    def _merge_submit(cls, value: Any) -> Any:
        parsed = _parse_family_map(value)
        return {**DEFAULT_SUBMIT_RPS, **parsed} if isinstance(parsed, dict) else parsed

    @field_validator("upstream_max_inflight", mode="before")
    @classmethod
    def _merge_inflight(cls, value: Any) -> Any:
        parsed = _parse_family_map(value)
        return {**DEFAULT_MAX_INFLIGHT, **parsed} if isinstance(parsed, dict) else parsed

    @field_validator("webhook_default_events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        unknown = set(value) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}")
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [float(v) for v in value.split(",") if v.strip()]
        if not value or any(v < 0 for v in value):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE needs at least one delay, none negative")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secrets(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for secret in split_secrets(value.get_secret_value()):
                if not secret.startswith("whsec_") or len(secret) < 20:
                    raise ValueError("WEBHOOK_SECRET entries must look like whsec_<base64>")
        return value

    @field_validator("link_signing_secret")
    @classmethod
    def _link_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("LINK_SIGNING_SECRET must be at least 32 characters")
        return value

    @field_validator("dashscope_base_url", "public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("dashscope_accounts")
    @classmethod
    def _accounts(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip():
            parse_accounts(value.get_secret_value())  # fail at start, naming the entry
            return value
        return None

    @model_validator(mode="after")
    def _intervals(self) -> Settings:
        if self.poll_min_interval_s <= 0 or self.poll_max_interval_s < self.poll_min_interval_s:
            raise ValueError("need 0 < POLL_MIN_INTERVAL_S <= POLL_MAX_INTERVAL_S")
        return self

    # --- derived --------------------------------------------------------------------------------
    @cached_property
    def upstream_key(self) -> SecretStr | None:
        """The real upstream key: environment first, then the credentials file."""
        if self.dashscope_api_key and self.dashscope_api_key.get_secret_value():
            return self.dashscope_api_key
        key = _credentials_file_key(self.dashscope_credentials_file.expanduser())
        return SecretStr(key) if key else None

    @property
    def upstream_accounts(self) -> list[UpstreamAccount]:
        """DASHSCOPE_ACCOUNTS parsed (empty when unset: the single account)."""
        if self.dashscope_accounts is None:
            return []
        return parse_accounts(self.dashscope_accounts.get_secret_value())

    @property
    def sandbox_enabled(self) -> bool:
        if self.dashscope_sandbox is not None:
            return self.dashscope_sandbox
        return self.upstream_key is None and self.dashscope_accounts is None

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str(self.output_dir / "ai-video-wan-video" / "videos")

    @property
    def default_sandbox_state_path(self) -> Path:
        """Where the sandbox keeps its tasks when SANDBOX_STATE_PATH is unset: beside a SQLite database."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix) and ":memory:" not in self.database_url:
            return Path(self.database_url.removeprefix(prefix)).with_name("sandbox.db")
        return self.output_dir / "sandbox.db"

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for the log redactor."""
        values = [self.sandbox.api_key.get_secret_value()]
        if self.upstream_key is not None:
            values.append(self.upstream_key.get_secret_value())
        values += [account.api_key.get_secret_value() for account in self.upstream_accounts]
        if self.webhook_secret is not None:
            values += split_secrets(self.webhook_secret.get_secret_value())
        if self.link_signing_secret is not None:
            values.append(self.link_signing_secret.get_secret_value())
        for configured in (self.gateway_api_keys, self.gateway_admin_keys):
            if configured is not None:
                entries = configured.get_secret_value().replace("\n", ",").split(",")
                values += [entry.partition(":")[2].strip() for entry in entries]
        return values

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The sandbox group comes right after the keyword arguments, before the environment's own value
        # of a variable named `SANDBOX` (which is not one of ours, and would be parsed as the group's JSON).
        group = _SandboxGroup(settings_cls, init_settings, dotenv_settings)
        return init_settings, group, env_settings, dotenv_settings, file_secret_settings


class _SandboxGroup(PydanticBaseSettingsSource):
    """`Settings.sandbox`: `SandboxSettings` read from the same `.env` file as the gateway's (or none, for
    `Settings(_env_file=None)`), with the old flat keywords folded in (`Settings(sandbox_port=8001)` sets
    `sandbox.port`), as the environment names are flat too."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init: PydanticBaseSettingsSource,
        dotenv: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._given = init.init_kwargs if isinstance(init, InitSettingsSource) else {}
        self._env_file = dotenv.env_file if isinstance(dotenv, DotEnvSettingsSource) else None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole group is made in __call__

    def __call__(self) -> dict[str, Any]:
        if "sandbox" in self._given:
            return {}  # given whole: the keyword source has it
        flat = {
            name.removeprefix("sandbox_"): value
            for name, value in self._given.items()
            if name.startswith("sandbox_") and name.removeprefix("sandbox_") in SandboxSettings.model_fields
        }
        return {"sandbox": SandboxSettings(_env_file=self._env_file, **flat)}


def environment() -> dict[str, FieldInfo]:
    """Every environment variable of the gateway and its field, in the order of `Settings` (the sandbox
    group's `SANDBOX_*` in its place): what docs/CONFIGURATION.md lists."""
    variables: dict[str, FieldInfo] = {}
    for name, field in Settings.model_fields.items():
        if name == "sandbox":
            prefix = SandboxSettings.model_config.get("env_prefix", "")
            for inner, inner_field in SandboxSettings.model_fields.items():
                variables[f"{prefix}{inner}".upper()] = inner_field
        else:
            variables[name.upper()] = field
    return variables
