"""The `Authorization: Bearer <key>` dependency every `/v1` route takes, and the admin check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import GatewayDep
from app.tenants.auth import Forbidden, Principal

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="wg_…",
    description="A client key from GATEWAY_API_KEYS or `wan-gateway keys create`. Not needed while the "
    "gateway has no keys (sandbox mode).",
)


async def principal(
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await gateway.auth.authenticate(credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(principal)]


async def admin(caller: PrincipalDep) -> Principal:
    if not caller.admin:
        raise Forbidden("this needs an admin key (GATEWAY_ADMIN_KEYS or `keys create --admin`)")
    return caller


AdminDep = Annotated[Principal, Depends(admin)]
