"""DashScope over httpx: create, get, cancel and list tasks; errors split into transient and permanent.

The client never retries by itself. The poller owns every retry decision, because a create that might
have reached the service must be reconciled through the task list, never blindly sent again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from app.providers.base import (
    ListedTask,
    PermanentError,
    ProviderError,
    ProviderTask,
    Submission,
    SubmitReceipt,
    TransientError,
    VideoRequest,
)
from app.providers.dashscope.capabilities import MODELS, Endpoint
from app.providers.dashscope.mapping import build_submission
from app.providers.dashscope.ratelimit import UpstreamLimiter
from app.providers.dashscope.schemas import parse_list, parse_receipt, parse_task
from app.retry import parse_retry_after
from app.telemetry import metrics

#: 429 codes that are a billing or purchase state, not a rate: retrying cannot help (§5.2).
_PERMANENT_429 = {"CommodityNotPurchased", "PrepaidBillOverdue", "PostpaidBillOverdue"}
#: Quota exhaustion is retryable only on a time window; wait long before trying again.
_SLOW_429 = {"Throttling.AllocationQuota", "insufficient_quota"}
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 50


def classify(response: httpx.Response) -> ProviderError:
    """Turn a non-2xx answer into a TransientError (408, 429, 5xx, non-JSON) or a PermanentError."""
    status = response.status_code
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        text = response.text[:200].strip() or response.reason_phrase
        return TransientError(
            f"non-JSON answer: {text}", status=status, retry_after=parse_retry_after(response.headers)
        )
    code = str(body.get("code") or "") or None
    message = str(body.get("message") or body.get("msg") or response.reason_phrase)
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    request_id = str(request_id) if request_id else None
    if status == 429 and code in _PERMANENT_429:
        return PermanentError(message, status=status, code=code, request_id=request_id)
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers)
        if status == 429 and code in _SLOW_429:
            retry_after = max(retry_after or 0.0, 60.0)
        return TransientError(
            message, status=status, code=code, request_id=request_id, retry_after=retry_after
        )
    return PermanentError(message, status=status, code=code, request_id=request_id)


async def _timed(operation: str, sending: Awaitable[httpx.Response]) -> httpx.Response:
    """Await one upstream call, counting it by operation and outcome and timing it (telemetry/metrics.py):
    every call to DashScope goes through here."""
    started = time.perf_counter()
    outcome: str | None = None  # cancelled (shutdown): not an outcome of the call
    try:
        response = await sending
        outcome = metrics.http_outcome(response.status_code)
        return response
    except httpx.TimeoutException:
        outcome = "timeout"
        raise
    except httpx.TransportError:
        outcome = "network"
        raise
    finally:
        if outcome is not None:
            _observe(operation, outcome, time.perf_counter() - started)


def _observe(operation: str, outcome: str, elapsed_s: float) -> None:
    metrics.UPSTREAM_LATENCY.labels(operation).observe(elapsed_s)
    metrics.UPSTREAM_CALLS.labels(operation, outcome).inc()
    if outcome == "http_429":
        metrics.UPSTREAM_THROTTLED.labels(operation).inc()


def _has_oss_input(body: Mapping[str, Any]) -> bool:
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        return False
    return any(isinstance(v, str) and v.startswith("oss://") for v in inputs.values())


class DashScopeClient:
    """The VideoProvider for DashScope (or its sandbox, which speaks the same protocol)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: SecretStr,
        limiter: UpstreamLimiter,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._limiter = limiter

    @property
    def base_url(self) -> str:
        return self._base

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def prepare(self, request: VideoRequest) -> Submission:
        return build_submission(request)

    async def submit(self, submission_body: Mapping[str, Any]) -> SubmitReceipt:
        model = str(submission_body.get("model", ""))
        spec = MODELS.get(model)
        endpoint = spec.endpoint if spec else (Endpoint.KF2V if "kf2v" in model else Endpoint.I2V)
        group = spec.family if spec else "unknown"
        headers = {**self._headers(), "X-DashScope-Async": "enable"}
        if _has_oss_input(submission_body):
            headers["X-DashScope-OssResourceResolve"] = "enable"
        await self._limiter.submit(group)
        sent_at = datetime.now(UTC)
        try:
            return await self._create(endpoint.path, submission_body, headers, group)
        except TransientError as exc:
            exc.sent_at = sent_at
            raise

    async def _create(
        self, path: str, body: Mapping[str, Any], headers: dict[str, str], group: str
    ) -> SubmitReceipt:
        try:
            response = await _timed("create", self._http.post(self._base + path, json=body, headers=headers))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: safe to send again.
            raise TransientError(f"{type(exc).__name__}: {exc}", maybe_created=False) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}", maybe_created=True) from exc
        if response.status_code != 200:
            error = classify(response)
            if isinstance(error, TransientError):
                # Only a 429 proves nothing was created; a 5xx or a proxy page may follow a creation.
                error.maybe_created = response.status_code != 429
                if response.status_code == 429:
                    await self._limiter.pause_submit(group, error.retry_after or 1.0)
            raise error
        answer = self._json(response, maybe_created=True)
        if isinstance(answer, dict) and answer.get("code") and not isinstance(answer.get("output"), dict):
            raise PermanentError(
                str(answer.get("message") or ""),
                status=200,
                code=str(answer["code"]),
                request_id=answer.get("request_id"),
            )
        try:
            return parse_receipt(answer)
        except TransientError as exc:
            exc.maybe_created = True
            raise

    async def get(self, task_id: str) -> ProviderTask:
        response = await self._call("get", "GET", f"/tasks/{task_id}")
        return parse_task(self._json(response))

    async def cancel(self, task_id: str) -> None:
        await self._call("cancel", "POST", f"/tasks/{task_id}/cancel")

    async def list_tasks(self, model: str, start: datetime, end: datetime) -> list[ListedTask]:
        # No start/end on the wire: the service's zone for them is undocumented, while its default window
        # (the last 24 h) always covers a reconciliation; rows carry epoch-ms times, filtered here.
        found: list[ListedTask] = []
        page, pages = 1, 1
        while page <= min(pages, LIST_MAX_PAGES):
            params = {"model_name": model, "page_no": page, "page_size": LIST_PAGE_SIZE}
            response = await self._call("list", "GET", "/tasks", params=params)
            rows, pages = parse_list(self._json(response))
            found += [t for t in rows if t.created_at is None or start <= t.created_at <= end]
            page += 1
        return found

    async def _call(
        self, operation: str, method: str, path: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        await self._limiter.query()
        try:
            response = await _timed(
                operation,
                self._http.request(method, self._base + path, headers=self._headers(), params=params),
            )
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            error = classify(response)
            if response.status_code == 429 and isinstance(error, TransientError):
                await self._limiter.pause_query(error.retry_after or 1.0)
            raise error
        return response

    @staticmethod
    def _json(response: httpx.Response, *, maybe_created: bool = False) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TransientError(
                "upstream answered 200 with a non-JSON body", status=200, maybe_created=maybe_created
            ) from exc
