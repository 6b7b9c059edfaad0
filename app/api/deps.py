"""FastAPI dependencies: the per-process Gateway the lifespan built."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.lifespan import Gateway


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
