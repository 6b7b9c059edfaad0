"""A job's cost columns (`cost`, `price_version`) at each of its moments, by `billing.Pricing`.

`Transitions` calls these, so a cost changes only with a status, in the same transaction: the estimate
when a job is inserted (from the request as the provider settled it: duration, tier, sound), and the
final cost when it ends — billed from the task's `usage` for a job that succeeded upstream itself, 0 for
everything DashScope does not bill (failed, canceled, a reused video, a follower). That is the budgets'
reservation and settlement too: an unfinished job's `cost_micros` (the amount, for SQL sums) is reserved,
and the terminal compare-and-set replaces it with what was billed (or 0), once (`admission.py` sums them).
"""

from __future__ import annotations

from typing import Any

from app.billing.cost import Cost, Pricing, to_micros
from app.jobs.models import Job
from app.jobs.states import JobStatus


def columns(cost: Cost | None) -> dict[str, Any]:
    """The job's cost columns; `cost_micros` repeats the amount as an integer so that budgets can SUM it
    in SQL (`admission.py`): an unfinished job's is its reservation, a finished one's what it spent."""
    if cost is None:
        return {"cost": None, "price_version": None, "cost_micros": None}
    shown = cost.as_json()
    version = shown.pop("price_version")
    return {"cost": shown, "price_version": version, "cost_micros": to_micros(cost.amount)}


def _requested(job: Job) -> tuple[str | None, bool | None, float]:
    request = job.request or {}
    tier = request.get("resolution")
    audio = request.get("has_audio")
    seconds = request.get("duration") or 0
    return (
        tier if isinstance(tier, str) else None,
        audio if isinstance(audio, bool) else None,
        float(seconds) if isinstance(seconds, int | float) else 0.0,
    )


def at_start(pricing: Pricing, job: Job) -> dict[str, Any]:
    """A new job (or a follower released to run on its own): the estimate, or 0 when it will never be
    billed (it reuses a video, or follows another job)."""
    if job.source_job_id is not None:
        tier, audio, _ = _requested(job)
        return columns(pricing.free(job.model, tier=tier, audio=audio, account=job.account))
    return estimate(pricing, job)


def estimate(pricing: Pricing, job: Job) -> dict[str, Any]:
    """The estimate of a job that runs upstream on its own (a follower released to run): a queued job
    has no account yet, so it is priced in the pool's priciest region (`Pricing.estimate`)."""
    tier, audio, seconds = _requested(job)
    return columns(pricing.estimate(job.model, tier=tier, audio=audio, seconds=seconds))


def at_end(pricing: Pricing, job: Job, status: JobStatus, upstream: dict[str, Any] | None) -> dict[str, Any]:
    """A job entering the terminal `status` (with `upstream`, the task as last seen): what is billed, in
    the region of the account its task ran on (`job.account`)."""
    tier, audio, _ = _requested(job)
    if status is JobStatus.SUCCEEDED and job.source_job_id is None:
        return columns(pricing.billed(job.model, (upstream or {}).get("usage"), account=job.account))
    return columns(pricing.free(job.model, tier=tier, audio=audio, account=job.account))
