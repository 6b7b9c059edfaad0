"""The two OSS stand-ins: the signed result-file host and the upload host. Like OSS, neither takes an
API key (the signature or the policy is the credential) and errors are XML.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from app.sandbox.api import emulator_of
from app.sandbox.errors import NO_SUCH_KEY, SIGNATURE_MISMATCH, oss_error
from app.sandbox.signing import verify
from app.sandbox.uploads import UPLOAD_ROUTE, read_policy

_REQUIRED_FORM_FIELDS = ("OSSAccessKeyId", "policy", "Signature", "key", "file")


async def download(request: Request) -> Response:
    emulator = emulator_of(request)
    name: str = request.path_params["name"]
    expires = request.query_params.get("Expires", "")
    signature = request.query_params.get("Signature", "")
    if not name.endswith(".mp4"):
        return oss_error(404, "NoSuchKey", NO_SUCH_KEY, Key=name)
    if not expires or not signature:
        return oss_error(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
    task_id = name.removesuffix(".mp4")
    if not emulator.signature_ok(task_id, expires, signature):
        return oss_error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
    now = time.time()
    if not expires.isdigit() or int(expires) < now:
        return oss_error(
            403,
            "AccessDenied",
            "Request has expired.",
            Expires=expires,
            ServerTime=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        )
    record = await emulator.served(task_id)
    if record is None:
        return oss_error(404, "NoSuchKey", NO_SUCH_KEY, Key=name)
    path = await emulator.clips.ensure(emulator.clip_of(record))
    if record.detail.corrupt:
        return Response(await asyncio.to_thread(damaged_copy, path), media_type="video/mp4")
    return FileResponse(path, media_type="video/mp4")


def damaged_copy(path: Path) -> bytes:
    """The clip's bytes with a sixth of them zeroed from the middle: the file stays complete (its index and
    size are intact), but the packets there are gone, as when storage or a transfer loses a block. The
    damage starts after the first video packet at the earliest, so the first frame still decodes (a clip
    of a flat image is little more than that frame)."""
    data = path.read_bytes()
    with av.open(str(path)) as container:
        first = next(container.demux(video=0))
        assert first.pos is not None
        after_first = first.pos + first.size
    start = max(len(data) // 2, after_first)
    length = min(len(data) // 6, len(data) - start)
    return data[:start] + bytes(length) + data[start + length :]


async def upload(request: Request) -> Response:
    emulator = emulator_of(request)
    async with request.form(max_files=1, max_fields=32) as form:
        missing = [field for field in _REQUIRED_FORM_FIELDS if field not in form]
        if missing:
            return oss_error(400, "InvalidArgument", f"The form field {missing[0]} is missing.")
        policy_text, key = str(form["policy"]), str(form["key"])
        if not verify(emulator.config.secret, str(form["Signature"]), policy_text):
            return oss_error(403, "SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        try:
            policy = read_policy(policy_text)
        except (ValueError, KeyError, IndexError):
            return oss_error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
        if policy.expires_at < time.time():
            return oss_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        if not key.startswith(policy.upload_dir + "/"):
            condition = f'["starts-with", "$key", "{policy.upload_dir}"]'
            return oss_error(
                403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {condition}"
            )
        file = form["file"]
        if not isinstance(file, UploadFile):
            return oss_error(400, "InvalidArgument", "The form field file must be a file.")
        data = await file.read()
        if len(data) > policy.max_bytes:
            return oss_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        forbid_overwrite = str(form.get("x-oss-forbid-overwrite", "false")).lower() == "true"
        if forbid_overwrite and emulator.uploads.exists(key):
            return oss_error(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            )
        await asyncio.to_thread(emulator.uploads.put, key, data)
        status = str(form.get("success_action_status", ""))
    return Response(status_code=int(status) if status in ("200", "201") else 204)


ROUTES = [
    Route("/files/{name}", download, methods=["GET"]),
    Route(UPLOAD_ROUTE, upload, methods=["POST"]),
]
