"""The emulated DashScope accounts (accounts.py): their tasks, uploads, clips, faults and counters, and the
operations of §2–§6 on them, each call on behalf of the account its key names. HTTP framing (routes,
headers, status codes of success) is in api.py and files.py.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from app.providers.base import TaskState
from app.providers.dashscope.capabilities import Endpoint, get_model, output_size
from app.sandbox import lifecycle
from app.sandbox.accounts import Account, accounts_of, slot_figures
from app.sandbox.clips import ClipCache, ClipSpec, caption_of
from app.sandbox.config import SandboxConfig
from app.sandbox.errors import (
    CANCEL_REFUSED,
    INVALID_API_KEY,
    MEDIA_FORMAT,
    MEDIA_NOT_FOUND,
    MODEL_NOT_EXIST,
    NO_API_KEY,
    RATE_LIMITED,
    ApiError,
    invalid,
    new_request_id,
)
from app.sandbox.faults import FaultSet, Outcome, outcome_from_prompt, parse_faults
from app.sandbox.media import MediaInspector
from app.sandbox.ratelimit import WindowLimiter
from app.sandbox.schedule import plan
from app.sandbox.signing import sign, verify
from app.sandbox.stats import SandboxStats
from app.sandbox.store import RateLimited, Slot, TaskDetail, TaskRecord, TaskStore
from app.sandbox.uploads import OSS_ACCESS_KEY_ID, UPLOAD_ROUTE, UploadStore, make_policy
from app.sandbox.validation import CreateRequest, parse_create

DAY_S = 86400.0
_LIST_TIME_FORMAT = "%Y%m%d%H%M%S"


def clip_of(record: TaskRecord, clips: ClipCache, *, captions: bool, pictures: bool = True) -> ClipSpec:
    """The clip the task serves: the asked geometry (unless a fault asked for another), its images, and
    its prompt's first words. Images no longer kept (a wiped cache), or `pictures` off, give the
    placeholder."""
    detail = record.detail
    images = tuple(detail.images or ()) if pictures else ()
    if not all(clips.sources.exists(digest) for digest in images):
        images = ()
    return ClipSpec(
        detail.served_width or detail.width,
        detail.served_height or detail.height,
        detail.served_duration or detail.duration,
        detail.has_audio,
        images=images,
        caption=caption_of(detail.prompt) if captions else "",
    )


def _list_time(params: Mapping[str, str], name: str) -> float | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return datetime.strptime(value, _LIST_TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise invalid(f"{name} is invalid, it must be formatted as YYYYMMDDhhmmss.") from None


def _positive_int(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    value = params.get(name)
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise invalid(f"{name} is invalid, it must be an integer from 1 to {maximum}.")
    return int(value)


class Emulator:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = TaskStore(config.state_path, retention_s=config.task_ttl_s)
        self.clips = ClipCache(config.clip_cache_dir, preset=config.x264_preset)
        self.uploads = UploadStore(config.resolved_upload_dir, ttl_s=config.upload_ttl_s)
        self.media = MediaInspector(config, self.uploads)
        self.faults = FaultSet(parse_faults(config.faults), seed=config.fault_seed)
        self.stats = SandboxStats()
        self.accounts = accounts_of(config.api_keys)
        self._by_key = {account.key: account for account in self.accounts}
        self._upload_prefixes = [account.upload_prefix for account in self.accounts]
        self.revoked: set[str] = set()  # account names whose key is refused (the control API)
        self._task_api = {account.name: WindowLimiter(config.task_api_qps) for account in self.accounts}

    def clip_of(self, record: TaskRecord) -> ClipSpec:
        return clip_of(
            record, self.clips, captions=self.config.clip_captions, pictures=self.config.clip_pictures
        )

    async def aclose(self) -> None:
        await self.clips.aclose()
        await self.media.aclose()
        self.store.close()

    # --- access -----------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, *, control: bool = False) -> Account:
        """The caller's account, or 401 InvalidApiKey. A revoked account's key is refused, except by
        the control API (`control`), so a test can restore it with that very key."""
        scheme, _, key = (authorization or "").strip().partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else scheme
        if not key:
            raise ApiError(401, "InvalidApiKey", NO_API_KEY)
        account = self._by_key.get(key)
        if account is None or (account.name in self.revoked and not control):
            raise ApiError(401, "InvalidApiKey", INVALID_API_KEY)
        return account

    def throttle_task_api(self, account: Account) -> None:
        """Query, list and cancel share one 20 QPS budget per account (§7)."""
        if self.config.enforce_limits and not self._task_api[account.name].allow(time.monotonic()):
            self.stats.account_throttled[account.name, "task_api"] += 1
            raise ApiError(429, "Throttling.RateQuota", RATE_LIMITED)

    # --- create (§2) ------------------------------------------------------------------------------

    async def create(
        self,
        body: Any,
        *,
        endpoint: Endpoint,
        account: Account,
        oss_resolve: bool,
        arrived_at: float | None = None,
    ) -> dict[str, Any]:
        request = parse_create(body, endpoint, strict=self.config.strict_parameters)
        if not oss_resolve and any(url.startswith("oss://") for url in request.media_urls):
            raise invalid(MEDIA_FORMAT, "InvalidParameter.DataInspection")
        for url in request.media_urls:
            # Another account's temporary upload does not exist for this one. (Keys outside every
            # account's directory, as tests store them with `put_upload`, resolve for any account.)
            if any(
                url.startswith(f"oss://{other}")
                for other in self._upload_prefixes
                if other != account.upload_prefix
            ):
                raise invalid(MEDIA_NOT_FOUND, "InvalidParameter.DataInspection")
        images = [await self.media.image(request.image_url)]
        if request.last_frame_url:
            images.append(await self.media.image(request.last_frame_url))
        if request.audio_url:
            await self.media.check_audio(request.audio_url)
        outcome = self._outcome(request.prompt)
        width, height = output_size(request.resolution, images[0].width, images[0].height)
        # The clip is made from these (clips.py): kept by digest, so it can be encoded at any later time.
        seen = [image.data for image in images if image.data is not None]
        digests = None
        if len(seen) == len(images):
            digests = [await asyncio.to_thread(self.clips.sources.put, data) for data in seen]
        detail = TaskDetail(
            endpoint=endpoint.value,
            resolution=request.resolution,
            duration=request.duration,
            width=width,
            height=height,
            has_audio=request.has_audio,
            prompt=request.prompt,
            prompt_extend=request.prompt_extend,
            code=outcome.code,
            message=outcome.message,
            api_key_id=account.api_key_id,
            served_duration=outcome.served_duration,
            served_width=outcome.served_size[0] if outcome.served_size else None,
            served_height=outcome.served_size[1] if outcome.served_size else None,
            corrupt=outcome.corrupt,
            nul_text=outcome.nul_text,
            images=digests,
        )
        request_id = new_request_id()
        record = await self._insert(
            request, detail, outcome, request_id, arrived_at or time.time(), account=account.name
        )
        self.stats.created[request.spec.name] += 1
        self.stats.account_created[account.name, request.spec.name] += 1
        if outcome.state is TaskState.SUCCEEDED:
            self.clips.prefetch(self.clip_of(record))
        return {"request_id": request_id, "output": {"task_id": record.task_id, "task_status": "PENDING"}}

    def _outcome(self, prompt: str | None) -> Outcome:
        """Prompt markers decide deterministically; otherwise the `task` fault rules may."""
        try:
            forced = outcome_from_prompt(prompt)
        except ValueError as exc:
            raise invalid(f"prompt is invalid: {exc}") from None
        if forced is not None:
            return forced
        rule = self.faults.pick("task")
        if rule is None:
            return Outcome()
        self.stats.injected[rule.name] += 1
        return Outcome().with_action(rule.action, rule.arg)

    async def _insert(
        self,
        request: CreateRequest,
        detail: TaskDetail,
        outcome: Outcome,
        request_id: str,
        now: float,
        *,
        account: str,
    ) -> TaskRecord:
        config, spec = self.config, request.spec
        limits = config.enforce_limits

        def make(busy: Sequence[Slot]) -> TaskRecord:
            start_at, end_at = plan(
                now,
                pending_s=config.pending_s * outcome.slow_factor,
                running_s=None if outcome.stuck else config.running_s * outcome.slow_factor,
                busy=busy,
                max_running=config.max_running.get(spec.family) if limits else None,
            )
            return TaskRecord(
                task_id=str(uuid.uuid4()),
                model=spec.name,
                family=spec.family,
                request_id=request_id,
                created_at=now,
                start_at=start_at,
                end_at=end_at,
                canceled_at=None,
                outcome=outcome.state,
                detail=detail,
                account=account,
            )

        try:
            return await self.store.insert(
                make,
                account=account,
                family=spec.family,
                now=now,
                submit_rps=config.submit_rps.get(spec.family) if limits else None,
                with_slots=limits,
            )
        except RateLimited:
            self.stats.account_throttled[account, "create"] += 1
            raise ApiError(429, "Throttling.RateQuota", RATE_LIMITED) from None

    # --- query (§3) -------------------------------------------------------------------------------

    async def query(self, task_id: str, *, account: Account, public_base: str) -> dict[str, Any]:
        record = await self.store.get(task_id, account=account.name)
        body: dict[str, Any] = {"request_id": new_request_id()}
        if record is None:
            body["output"] = {"task_id": task_id, "task_status": TaskState.UNKNOWN.value}
            return body
        task = self._view(record, time.time())
        video_url = None
        if task.state is TaskState.SUCCEEDED and task.end_time is not None:
            video_url = self.video_url(public_base, record.task_id, task.end_time)
        body["output"] = lifecycle.output(record, task, video_url)
        if task.state is TaskState.SUCCEEDED:
            body["usage"] = lifecycle.usage(record)
        return body

    def _view(self, record: TaskRecord, now: float) -> lifecycle.TaskView:
        clip = self.clip_of(record)
        task = lifecycle.view(
            record, now, ttl_s=self.config.task_ttl_s, clip_ready_at=lambda: self.clips.ready_at(clip)
        )
        if task.awaiting_clip:
            # Typically a restart after the cache was wiped, or a clip still encoding.
            self.clips.prefetch(clip)
        return task

    # --- cancel and list (§4) ---------------------------------------------------------------------

    async def cancel(self, task_id: str, *, account: Account) -> None:
        if not await self.store.cancel(task_id, account=account.name, now=time.time()):
            raise ApiError(400, "UnsupportedOperation", CANCEL_REFUSED)

    async def list_tasks(self, params: Mapping[str, str], *, account: Account) -> dict[str, Any]:
        now = time.time()
        start, end = _list_time(params, "start_time"), _list_time(params, "end_time")
        if start is None and end is None:
            start, end = now - DAY_S, now
        elif start is None:
            assert end is not None
            start = end - DAY_S
        elif end is None:
            end = start + DAY_S
        if end < start or end - start > DAY_S:
            raise invalid("end_time is invalid, the time range must be within 24 hours after start_time.")
        page_no = _positive_int(params, "page_no", 1, 1_000_000)
        page_size = _positive_int(params, "page_size", 10, 100)
        status = params.get("status") or None

        records = await self.store.created_between(
            start,
            end,
            account=account.name,
            model=params.get("model_name") or None,
            task_id=params.get("task_id") or None,
        )
        rows = []
        for record in records:
            task = self._view(record, now)
            # An UNKNOWN task is one the service has forgotten (expired or lost): it is not listed.
            if task.state is TaskState.UNKNOWN or (status and task.state.value != status):
                continue
            rows.append(self._list_row(record, task, account))
        first = (page_no - 1) * page_size
        return {
            "request_id": new_request_id(),
            "total": len(rows),
            "total_page": math.ceil(len(rows) / page_size),
            "page_no": page_no,
            "page_size": page_size,
            "data": rows[first : first + page_size],
        }

    def _list_row(self, record: TaskRecord, task: lifecycle.TaskView, account: Account) -> dict[str, Any]:
        def ms(epoch: float) -> int:
            return int(epoch * 1000)

        started = task.state not in (TaskState.PENDING, TaskState.CANCELED)
        row: dict[str, Any] = {
            "task_id": record.task_id,
            "status": task.state.value,
            "model_name": record.model,
            "gmt_create": ms(record.created_at),
            "start_time": ms(record.start_at if started else record.created_at),
        }
        if task.end_time is not None:
            row["end_time"] = ms(task.end_time)
        row.update(
            request_id=record.request_id,
            region=self.config.region,
            api_key_id=record.detail.api_key_id,
            caller_uid=account.uid,
            caller_parent_id=account.uid,
            user_api_unique_key=f"apikey:v1:aigc:{record.detail.endpoint}:video-synthesis:{record.model}",
        )
        return row

    # --- uploads (§6) -----------------------------------------------------------------------------

    def upload_policy(
        self, params: Mapping[str, str], *, account: Account, public_base: str
    ) -> dict[str, Any]:
        if params.get("action") != "getPolicy":
            raise invalid("action is invalid, it must be getPolicy.")
        model = params.get("model")
        if not model:
            raise invalid("Field required: model")
        if get_model(model) is None:
            raise invalid(MODEL_NOT_EXIST)
        data = make_policy(
            self.config.secret,
            account=account.upload_account,
            upload_host=public_base + UPLOAD_ROUTE,
            now=time.time(),
            ttl_s=self.config.policy_ttl_s,
            max_mb=self.config.upload_max_mb,
        )
        return {"request_id": new_request_id(), "data": data}

    # --- per-account figures (the control API's stats) -------------------------------------------------

    async def account_stats(self) -> dict[str, Any]:
        """Per account: its counters, and per family the limit, tasks running now, the peak at once and
        the slot-seconds used since the last stats reset (from the shared task table)."""
        now, since = time.time(), self.stats.since
        slots: dict[tuple[str, str], list[Slot]] = {}
        for owner, family, slot in await self.store.slots_since(since):
            slots.setdefault((owner, family), []).append(slot)
        figures: dict[str, Any] = {}
        for account in self.accounts:
            families = {
                family: {
                    "limit": self.config.max_running.get(family),
                    **slot_figures(held, since=since, now=now),
                }
                for (name, family), held in sorted(slots.items())
                if name == account.name
            }
            figures[account.name] = {
                "api_key_id": account.api_key_id,
                "revoked": account.name in self.revoked,
                **self.stats.account_counts(account.name),
                "families": families,
            }
        return {"since": since, "window_s": round(now - since, 3), "accounts": figures}

    # --- result files -----------------------------------------------------------------------------

    def video_url(self, public_base: str, task_id: str, end_time: float) -> str:
        expires = str(math.ceil(end_time + self.config.video_ttl_s))
        query = urlencode(
            {
                "OSSAccessKeyId": OSS_ACCESS_KEY_ID,
                "Expires": expires,
                "Signature": sign(self.config.secret, task_id, expires),
            }
        )
        return f"{public_base}/files/{task_id}.mp4?{query}"

    def signature_ok(self, task_id: str, expires: str, signature: str) -> bool:
        return verify(self.config.secret, signature, task_id, expires)

    async def served(self, task_id: str) -> TaskRecord | None:
        """The task, if it serves a clip now (SUCCEEDED, or due to succeed once its clip is encoded).
        Any account's: a result URL is signed, not authenticated."""
        record = await self.store.get(task_id, account=None)
        if record is None:
            return None
        task = self._view(record, time.time())
        return record if task.state is TaskState.SUCCEEDED or task.awaiting_clip else None
