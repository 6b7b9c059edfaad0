"""A job's webhook deliveries: the attempt log, and manual redelivery under the same `webhook-id`."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import PrincipalDep, job_scope
from app.api.deps import DeliveriesDep, JobsDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.jobs import schemas

router = APIRouter(prefix="/v1/jobs", tags=["webhooks"], route_class=StrictRoute)


@router.get(
    "/{job_id}/deliveries",
    response_model=schemas.DeliveryList,
    summary="List a job's webhook deliveries and every attempt",
    responses=problem_responses(401, 404),
)
async def list_deliveries(
    job_id: str, jobs: JobsDep, deliveries: DeliveriesDep, caller: PrincipalDep
) -> schemas.DeliveryList:
    await jobs.get(job_id, owner=job_scope(caller))
    return await deliveries.list(job_id)


@router.post(
    "/{job_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=schemas.Delivery,
    summary="Send a delivery again",
    responses=problem_responses(401, 404),
)
async def redeliver(
    job_id: str, delivery_id: str, jobs: JobsDep, deliveries: DeliveriesDep, caller: PrincipalDep
) -> schemas.Delivery:
    """Queues the same event again, now, under the same `webhook-id` (receivers deduplicate on it), with
    a fresh retry schedule. An endpoint that had answered 410 Gone is re-enabled."""
    await jobs.get(job_id, owner=job_scope(caller))
    return await deliveries.redeliver(job_id, delivery_id)
