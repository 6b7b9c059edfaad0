"""`multipart/form-data` bodies: a route's JSON body model, given as form fields and uploaded files (and
`application/x-www-form-urlencoded`, `curl -d`: the same without files).

A route opts in with `openapi_extra=multipart_body(Model, files=(…))`: that documents the multipart
request body beside the JSON one (Swagger UI then offers a form with file pickers), and `StrictRoute`
(routing.py) reads such a request through `form_body`, after authentication, into the same dict a JSON
client would send, which FastAPI then validates with the same model — so every rule, limit and error
(422 naming the field; an unknown field is `extra_forbidden`) is the JSON body's.

How form fields become JSON values, from the model's field types:
- text fields as they are; numbers parsed (`5`, `2.5`), booleans `true`/`false` (any case); anything
  else is left as text, so the model's strict types name the field (`duration: Input should be a valid
  number`);
- an object (`metadata`) as JSON text;
- a list (`webhook_events`) as the field repeated (`-F webhook_events=job.succeeded -F
  webhook_events=job.failed`), or one JSON array;
- a file field (`format: binary` in the documented schema: `reference_image`, `last_frame_image`) as an
  uploaded file, whose bytes become a `data:` URI (its type from the bytes' signature, never the file
  name), or as text (a URL or a data: URI, as in JSON);
- an empty value of a field that is not text, and an empty file, are absent (HTML forms and Swagger UI
  send them for fields left blank); a field given twice that is not a list is a 422.
"""

from __future__ import annotations

import base64
import json
import math
import re
import types
from collections.abc import Callable, Sequence
from email.message import Message
from typing import Any, Literal, Union, get_args, get_origin

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

MULTIPART = "multipart/form-data"
#: At most this many parts, and bytes in a text part (a data: URI given as text fits; MAX_REQUEST_BYTES bounds
#: the whole body anyway; files are spooled to disk by Starlette).
MAX_FIELDS = 100
MAX_PART_BYTES = 16 << 20

_INT = re.compile(r"^[+-]?\d{1,19}$")
#: Image signatures, for the data: URI's type (the checker verifies the bytes anyway).
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"BM", "image/bmp"))

Kind = Literal["text", "bool", "number", "object", "list"]
JSONParser = Callable[[bytes], Any]


#: Read as forms too: what `curl -d name=value` sends (text fields only, no files).
URLENCODED = "application/x-www-form-urlencoded"


def is_form(content_type: str | None) -> bool:
    """A `multipart/form-data` or `application/x-www-form-urlencoded` body."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    return message.get_content_type() in (MULTIPART, URLENCODED)


def multipart_body(model: type[BaseModel], *, files: Sequence[str]) -> dict[str, Any]:
    """`openapi_extra` for a route whose body `model` may also come as `multipart/form-data`, `files`
    being the fields that may be uploaded files."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if name in files:
            description = prop.get("description", "")
            properties[name] = {
                "type": "string",
                "format": "binary",
                "description": f"An image file (or, as text, a URL or a data: URI). {description}",
            }
        else:
            properties[name] = _without_null(prop)
    form: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        form["required"] = schema["required"]
    encoding = {
        name: {"contentType": "application/json"}
        for name, field in model.model_fields.items()
        if field_kind(field.annotation) == "object"
    }
    content: dict[str, Any] = {"schema": form}
    if encoding:
        content["encoding"] = encoding
    return {"requestBody": {"content": {MULTIPART: content}}}


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` → X: a form field is left out, never null (and form renderers such as Swagger UI
    draw a plain input only for a plain type)."""
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    if "anyOf" not in prop or len(branches) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    return {**branches[0], **rest}


def file_fields(openapi_extra: dict[str, Any] | None) -> frozenset[str] | None:
    """The file fields of a route that takes multipart bodies (`multipart_body`), None if it does not."""
    content = ((openapi_extra or {}).get("requestBody") or {}).get("content") or {}
    if MULTIPART not in content:
        return None
    properties = content[MULTIPART].get("schema", {}).get("properties", {})
    return frozenset(name for name, prop in properties.items() if prop.get("format") == "binary")


def field_kind(annotation: Any) -> Kind:
    """What JSON value a form field of this type stands for."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    origin = get_origin(annotation) or annotation
    if annotation is bool:
        return "bool"
    if annotation in (int, float):
        return "number"
    if origin in (dict,):
        return "object"
    if origin in (list, tuple, set):
        return "list"
    return "text"


def _invalid(name: str, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", name), "msg": message}])


def _number(value: str) -> Any:
    if _INT.match(value):
        return int(value)
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def _scalar(name: str, kind: Kind, value: str, parse: JSONParser) -> Any:
    if kind == "bool":
        return {"true": True, "false": False}.get(value.strip().lower(), value)
    if kind == "number":
        return _number(value.strip())
    if kind == "object":
        return _json(name, value, parse)
    return value


def _json(name: str, value: str, parse: JSONParser) -> Any:
    try:
        return parse(value.encode())
    except json.JSONDecodeError as exc:
        raise _invalid(name, f"must be JSON text: {exc.msg}") from None


def _mime(data: bytes) -> str:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""  # no declared type: the image checker names what the bytes are


async def form_body(
    form: FormData, model: type[BaseModel], files: frozenset[str], parse: JSONParser
) -> dict[str, Any]:
    """The JSON body a form stands for (see the module docstring), JSON text read with `parse` (the
    routes' strict parser); RequestValidationError naming the field when a value cannot stand for one."""
    body: dict[str, Any] = {}
    for name in dict.fromkeys(form.keys()):
        field = model.model_fields.get(name)
        kind: Kind = field_kind(field.annotation) if field is not None else "text"
        values: list[Any] = []
        for value in form.getlist(name):
            if isinstance(value, UploadFile):
                if name not in files:
                    raise _invalid(name, "send this field as text, not as a file")
                data = await value.read()
                if data or value.filename:
                    values.append(f"data:{_mime(data)};base64," + base64.b64encode(data).decode("ascii"))
            elif value != "" or kind == "text":
                values.append(value)
        if not values:
            continue
        if kind == "list":
            if len(values) == 1 and values[0].lstrip().startswith("["):
                body[name] = _json(name, values[0], parse)
            else:
                body[name] = values
        elif len(values) > 1:
            raise _invalid(name, "given more than once (only list fields may repeat)")
        else:
            body[name] = _scalar(name, kind, values[0], parse)
    return body
