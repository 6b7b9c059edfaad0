"""The console's routes: the pages (server-rendered shells), its static files, and two thin JSON helpers.

A page is the same HTML for everybody: the client key lives in the browser's sessionStorage only (never a
cookie, never a URL), so a navigation carries no credentials and the server cannot render anyone's jobs.
Each page is a Jinja2 template with the page's structure (landmarks, headings, labelled forms, empty
tables); `static/console.js` fills it from the public API with `Authorization: Bearer <key>`, as any
client would. The helpers under `/console/api` are what the public API has no route for, each a thin
translator over the job service, authenticated like `/v1`:
- `GET /console/api/whoami`: the caller's tenant and whether the key is an admin's (the console shows
  the admin pages to admins without provoking a 403 the browser logs as an error);
- `GET /console/api/jobs/{id}/images/{reference|last}`: the image as it was sent upstream (the job's
  `request` only describes it), for the Job page's request echo;
- `POST /console/api/jobs/{id}/rerun`: a new job with the same parameters and images (`cache: false`:
  a re-run asks for a new generation, not the stored video again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from app import __version__
from app.api.auth import PrincipalDep, job_scope
from app.api.deps import JobsDep, PresenterDep, get_authenticator
from app.api.routing import StrictRoute
from app.errors import FieldError, NotFound
from app.jobs import schemas
from app.providers.dashscope.mapping import sent_images

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PREFIX = "/console"

#: The JSON helpers: `/v1`'s route class (authentication first, strict parameters).
router = APIRouter(route_class=StrictRoute, include_in_schema=False)
#: The pages: plain routes, GET and HEAD, that ignore query parameters they do not read (a link with
#: `?utm_source=` still opens the page).
pages = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")

#: Request fields a re-run keeps: every field of a create body but the images (taken as sent).
_RERUN_KEEPS = tuple(
    name for name in schemas.JobCreate.model_fields if name not in {"reference_image", "last_frame_image"}
)
#: Headers of every page: no framing, no referrer (a job page's URL names the job), only our own scripts.
_PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@cache
def asset_version(name: str) -> str:
    """A digest of a static file, added to its URL so a changed file is fetched again despite the cache."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


class CachedStatic(StaticFiles):
    """Static files with a cache lifetime: their URLs carry `?v=<digest>` (`asset_version`), so a day is
    safe; the ETag still answers a revalidation with 304."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=86400"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _csp(request: Request) -> str:
    """Same origin only; signed links may name PUBLIC_BASE_URL's origin, which can differ from the one the
    browser used (127.0.0.1 vs localhost), so media may come from there too."""
    public = str(getattr(request.app.state.settings, "public_base_url", "") or "").rstrip("/")
    media = f"'self' blob: {public}" if public else "'self' blob:"
    return (
        f"default-src 'self'; img-src {media} data:; media-src {media}; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


async def page(request: Request, name: str, title: str, **context: Any) -> HTMLResponse:
    # Whether the gateway wants a key at all is no secret (any request finds out): without keys (the
    # sandbox out of the box) the console signs in by itself.
    try:
        auth_on = await (await get_authenticator(request)).enabled()
    except Exception:  # the database is unreachable: show the sign-in form, the API will say what is wrong
        auth_on = True
    response = templates.TemplateResponse(
        request,
        f"{name}.html",
        {
            "page": name,
            "title": title,
            "version": __version__,
            "auth_on": auth_on,
            "asset": lambda file: f"{PREFIX}/static/{file}?v={asset_version(file)}",
            **context,
        },
    )
    response.headers.update({**_PAGE_HEADERS, "Content-Security-Policy": _csp(request)})
    return response


@pages.api_route("/", methods=["GET", "HEAD"], response_class=RedirectResponse)
async def root() -> RedirectResponse:
    """The gateway's front door is the console."""
    return RedirectResponse(PREFIX, status_code=307)


@pages.api_route(PREFIX, methods=["GET", "HEAD"], response_class=HTMLResponse)
async def jobs_page(request: Request) -> HTMLResponse:
    # `?status=&model=` are read by console.js: the filters survive a reload or a shared link.
    return await page(request, "jobs", "Jobs")


@pages.api_route(PREFIX + "/new", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def new_job_page(request: Request) -> HTMLResponse:
    return await page(request, "new", "New job")


@pages.api_route(PREFIX + "/jobs/{job_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def job_page(request: Request, job_id: Annotated[str, PathParam(max_length=64)]) -> HTMLResponse:
    return await page(request, "job", "Job", job_id=job_id)


@pages.api_route(PREFIX + "/spend", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def spend_page(request: Request) -> HTMLResponse:
    return await page(request, "spend", "Spend")


@pages.api_route(PREFIX + "/health", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def health_page(request: Request) -> HTMLResponse:
    return await page(request, "health", "Upstream health")


class WhoAmI(BaseModel):
    tenant: str | None
    key_name: str | None
    admin: bool


@router.get(PREFIX + "/api/whoami")
async def whoami(caller: PrincipalDep) -> WhoAmI:
    return WhoAmI(tenant=caller.tenant, key_name=caller.key_name, admin=caller.admin)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """`data:image/png;base64,…` → (media type, bytes)."""
    head, _, payload = uri.partition(",")
    media = head.removeprefix("data:").split(";")[0] or "application/octet-stream"
    try:
        return media, base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise NotFound("the image could not be read back") from None


@router.get(PREFIX + "/api/jobs/{job_id}/images/{which}")
async def job_image(
    job_id: str, which: Literal["reference", "last"], jobs: JobsDep, caller: PrincipalDep
) -> Response:
    """The job's reference (or last-frame) image as it was sent upstream."""
    _, body = await jobs.get_with_body(job_id, owner=job_scope(caller))
    reference, last = sent_images(body)
    image = reference if which == "reference" else last
    if image is None:
        raise NotFound(f"job {job_id} has no {which} image")
    if not image.startswith("data:"):
        raise NotFound(f"the {which} image was sent as a URL ({image.split(':')[0]}://), not kept here")
    media, data = decode_data_uri(image)
    return Response(
        data,
        media_type=media,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.post(PREFIX + "/api/jobs/{job_id}/rerun", status_code=202, response_model=schemas.Job)
async def rerun(
    job_id: str, jobs: JobsDep, presenter: PresenterDep, caller: PrincipalDep, response: Response
) -> schemas.Job:
    """A new job with the source's parameters and images (as sent), always generated anew."""
    source, sent = await jobs.get_with_body(job_id, owner=job_scope(caller))
    reference, last = sent_images(sent)
    if reference is None:
        raise FieldError("job_id", "the job has no reference image to run again")
    body: dict[str, Any] = {name: source.request[name] for name in _RERUN_KEEPS if name in source.request}
    body.update(model=source.model, reference_image=reference, cache=False, metadata=source.meta)
    if last is not None:
        body["last_frame_image"] = last
    if source.webhook_url:
        body.update(webhook_url=source.webhook_url, webhook_events=source.webhook_events)
    try:
        create = schemas.JobCreate.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FieldError(".".join(str(part) for part in first["loc"]), first["msg"]) from None
    created = await jobs.submit(
        create, owner=caller.tenant, api_key=caller.key_name, limits=caller.limits, idempotency_key=None
    )
    response.headers["Location"] = f"/v1/jobs/{created.job.id}"
    return presenter.job(created.job)


def install(app: Any) -> None:
    """The console's pages, helpers and static files on `app`."""
    app.include_router(pages)
    app.include_router(router)
    app.mount(PREFIX + "/static", CachedStatic(directory=STATIC), name="console-static")
