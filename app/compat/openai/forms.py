"""The create body of `POST /v1/videos` as one dict, from JSON or from a form.

The `openai` SDK sends `videos.create` as multipart/form-data always, files or not (openai-python
`_base_client.py`: `ForceMultipartDict`), nested values in brackets: `input_reference[image_url]=…`,
`metadata[k]=v`, `webhook_events[]=…`. An uploaded file becomes a `data:` URI here, its type from the
bytes' signature, and the job service checks it like any other image.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from app.api.forms import MAX_FIELDS, MAX_PART_BYTES, field_kind
from app.api.routing import parse_json
from app.errors import BadRequest, FieldError
from app.jobs.schemas import IMAGE_FIELD_MAX_CHARS, JobCreate

#: The largest upload taken as an image: what fits in an image field as a data: URI.
UPLOAD_MAX_BYTES = IMAGE_FIELD_MAX_CHARS * 3 // 4 - 64
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[[A-Za-z0-9_.-]*\])*)$")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def create_params(request: Request) -> tuple[dict[str, Any], bool]:
    """The body's parameters, and whether they came from a form (text values, converted by field type)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        return await form_params(request), True
    if content_type not in ("", "application/json"):
        raise BadRequest(
            f"unsupported Content-Type {content_type[:80]!r}: send application/json or multipart/form-data",
            code="unsupported_media_type",
        )
    return json_object(await request.body()), False


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = parse_json(raw) if raw else None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc.msg}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise FieldError("body", "a JSON object is required")
    return value


async def form_params(request: Request) -> dict[str, Any]:
    # A text part may hold a whole data: URI (`input_reference[image_url]`), as on POST /v1/jobs.
    try:
        form = await request.form(max_files=2, max_fields=MAX_FIELDS, max_part_size=MAX_PART_BYTES)
    except HTTPException as exc:  # Starlette's answer to a body python-multipart cannot read
        if exc.status_code != 400:
            raise
        raise BadRequest(f"the form body cannot be read: {exc.detail}", code="invalid_form") from None
    params: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            item: Any = await upload_uri(value, key) if isinstance(value, UploadFile) else value
            if item == "":
                continue  # a form cannot say null: the SDK sends None as an empty field
            place(params, key, item)
    finally:
        await form.close()
    return structured(params)


def structured(params: dict[str, Any]) -> dict[str, Any]:
    """Object and list fields of the job body given as one text field, as on `POST /v1/jobs`: JSON text
    (`metadata={"k": 1}`, `webhook_events=["job.failed"]`), or a list's single value."""
    for name, value in params.items():
        field = JobCreate.model_fields.get(name)
        if field is None or not isinstance(value, str):
            continue
        kind = field_kind(field.annotation)
        if kind == "object" or (kind == "list" and value.lstrip().startswith("[")):
            try:
                params[name] = parse_json(value.encode())
            except json.JSONDecodeError as exc:
                raise FieldError(name, f"not valid JSON: {exc.msg}") from None
        elif kind == "list":
            params[name] = [value]
    return params


def place(params: dict[str, Any], key: str, value: Any) -> None:
    """`a[b][c]=v` → `{"a": {"b": {"c": v}}}`; `a[]=v` appends to the list `a`."""
    match = _KEY.match(key)
    if match is None:
        raise FieldError(key[:100], "not a parameter name")
    path = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
    target: Any = params
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        following = None if last else path[depth + 1]
        if isinstance(target, list):
            raise FieldError(match.group(1), "an array holds plain values only")
        if last:
            if part == "":
                raise FieldError(match.group(1), "`[]` must follow a name")
            _set(target, part, value, key)
        elif following == "" and depth + 1 == len(path) - 1:
            existing = target.setdefault(part, [])
            if not isinstance(existing, list):
                raise FieldError(match.group(1), "given both as a value and as an array")
            existing.append(value)
            return
        else:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise FieldError(match.group(1), "given both as a value and as an object")
            target = nested


def _set(target: dict[str, Any], name: str, value: Any, key: str) -> None:
    if name in target:
        raise FieldError(key[:100], "given more than once")
    target[name] = value


_SIGNATURES = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"BM", "image/bmp"))


async def upload_uri(upload: UploadFile, key: str) -> str:
    """An uploaded image as a data: URI (its bytes are checked later, like any data: URI)."""
    data = await upload.read(UPLOAD_MAX_BYTES + 1)
    field = key.partition("[")[0]
    if len(data) > UPLOAD_MAX_BYTES:
        raise FieldError(field, f"the file is larger than {UPLOAD_MAX_BYTES} bytes")
    # The type comes from the bytes, never the part's header (clients guess it from the file name), as
    # on POST /v1/jobs; the checker then verifies the bytes anyway.
    return f"data:{_sniff(data)};base64," + base64.b64encode(data).decode("ascii")


def _sniff(data: bytes) -> str:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""  # `data:;base64,`: the checker names what the bytes are
