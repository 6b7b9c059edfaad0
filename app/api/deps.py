"""FastAPI dependencies: the per-process Gateway the lifespan built, and its job service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.jobs.service import JobService
from app.lifespan import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.state.gateway
    return gateway


def get_service(gateway: Annotated[Gateway, Depends(get_gateway)]) -> JobService:
    return gateway.service


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
ServiceDep = Annotated[JobService, Depends(get_service)]
