"""`GET /v1/links/{job_id}/{variant}`: a job's stored video (or poster frame) behind a signed link, no key.

The signature (app/links.py) is the authority: the job is looked up whoever owns it, and no
`Authorization` is read. Past the signature the answer is exactly `/v1/jobs/{id}/content`'s (or
`/thumbnail`'s): `stored.serve_stored` with `Range`, ETag, 304, `410 video_expired`, S3 stream or redirect.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from app.api.deps import JobsDep, LinksDep, RenditionsDep, StorageDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.api.stored import (
    IfNoneMatchHeader,
    IfRangeHeader,
    RangeHeader,
    serve_job_file,
)
from app.errors import NotFound
from app.links import VARIANTS
from app.tenants.auth import Forbidden

router = APIRouter(prefix="/v1/links", tags=["jobs"], route_class=StrictRoute)

_DETAIL = {
    "link_invalid": "the link's signature does not match: it was altered, or signed with another key",
    "link_expired": "the link has expired; read the job again for a fresh one",
}


@router.get(
    "/{job_id}/{variant}",
    summary="Download through a signed link (no key)",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"video/mp4": {}, "image/jpeg": {}},
            "description": "The whole video (`video`) or the poster frame (`thumbnail`)",
        },
        206: {"content": {"video/mp4": {}}, "description": "The requested byte range"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        307: {"description": "S3 storage with `S3_CONTENT_MODE=redirect`: a presigned URL of the object"},
        416: {"description": "Range not satisfiable"},
        **problem_responses(400, 404, 409, 410, 422, 503),
        403: {
            **problem_responses(403)[403],
            "description": "The signature does not match (`link_invalid`), or the link has expired "
            "(`link_expired`)",
        },
    },
)
async def get_link(
    job_id: str,
    variant: str,
    request: Request,
    links: LinksDep,
    jobs: JobsDep,
    storage: StorageDep,
    renditions: RenditionsDep,
    expires: Annotated[int, Query(description="Unix seconds the link is valid until (signed).")],
    signature: Annotated[str, Query(max_length=128, description="base64url HMAC-SHA256 of the link.")],
    if_none_match: IfNoneMatchHeader = None,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """What `result.signed_url` and the DashScope facade's `output.video_url` point at: a plain GET (a
    `<video src>`, curl, `requests.get`) with no `Authorization`. `variant` is `video` or `thumbnail`.
    The signature covers the job id, the variant and `expires`: an altered one is `403 link_invalid`, a
    past `expires` `403 link_expired`; a job that is unknown or deleted is `404`. Then it answers as
    `/v1/jobs/{id}/content` (or `/thumbnail`) does: `Range`, `If-None-Match`, `410 video_expired`."""
    del if_none_match, range_header, if_range  # read by serve_stored; declared for the API reference
    problem = links.problem(job_id, variant, expires, signature)
    if problem is not None:
        raise Forbidden(_DETAIL[problem], code=problem)
    if variant not in VARIANTS:  # a signed link never names one; checked after the signature all the same
        raise NotFound(f"no link variant {variant[:40]!r}")
    job = await jobs.get_unscoped(job_id)
    return await serve_job_file(request, storage, renditions, job, variant)
