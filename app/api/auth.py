"""The `Authorization: Bearer <key>` dependency every `/v1` route takes, and the admin check.

`StrictRoute` (app/api/routing.py) calls `authenticate` for every route that depends on `principal`
before the body is read, and keeps the answer in `request.state`; the dependency then hands it on. It
stays a dependency so that OpenAPI shows the bearer scheme on each route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import get_authenticator
from app.jobs.repository import EVERY_TENANT, Scope
from app.tenants.auth import Forbidden, Principal

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="wg_…",
    description="A client key from GATEWAY_API_KEYS or `wan-gateway keys create`. Not needed while the "
    "gateway has no keys (sandbox mode).",
)


async def authenticate(request: Request) -> Principal:
    """The caller, from the `Authorization` header alone; `Unauthorized` (401) without a valid key."""
    credentials = await bearer(request)
    token = credentials.credentials if credentials else None
    return await (await get_authenticator(request)).authenticate(token)


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known  # authenticated before the body was read
    return await authenticate(request)


PrincipalDep = Annotated[Principal, Depends(principal)]


async def admin(caller: PrincipalDep) -> Principal:
    if not caller.admin:
        raise Forbidden("this needs an admin key (GATEWAY_ADMIN_KEYS or `keys create --admin`)")
    return caller


AdminDep = Annotated[Principal, Depends(admin)]


def job_scope(caller: Principal) -> Scope:
    """Whose jobs the native job routes read and act on: the caller's tenant's, or every tenant's for an
    admin key (an operator can look into, cancel or delete any job). A new job is always the caller's
    own tenant's; the drop-in surfaces (`/api/v1`, `/v1/videos`) stay within the caller's tenant, as the
    APIs they copy do."""
    return EVERY_TENANT if caller.admin and caller.tenant is not None else caller.tenant
