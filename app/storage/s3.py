"""S3Storage: finished videos as objects in an S3 (or S3-compatible) bucket, under a key prefix.

Layout: `s3://bucket/prefix/<key>`. The sha256 given at publish time is kept as object metadata
(`x-amz-meta-sha256`), the MIME type as the object's Content-Type. Downloads are staged in a local directory
first (the probe needs a seekable file), then `put_file` uploads the staged file: a single PutObject when it
fits in one part, else a multipart upload that reads and sends one part at a time, so an upload holds about
one part in memory whatever the video's size. S3 shows an object only once PutObject or
CompleteMultipartUpload succeeds, which gives the same all-or-nothing publish as the local rename; any failure
or cancellation in between aborts the multipart upload, so no half-written upload is left behind. A process
killed mid-upload cannot abort: the startup sweep (`sweep_uploads`) does it later.

Credentials, retries and checksums follow botocore's own configuration (`AWS_*` variables, `~/.aws/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import math
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from app.config import Settings
from app.storage.base import ObjectStream, StorageError, StoredObject
from app.storage.keys import validate_key
from app.storage.local import DEFAULT_CONTENT_TYPE, sweep_stale_files

if TYPE_CHECKING:
    from aiobotocore.response import StreamingBody
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

ContentMode = Literal["proxy", "redirect"]

#: S3's rules: every part but the last is at least 5 MiB, and an upload has at most 10,000 parts.
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000
#: The object metadata key holding the sha256 (sent as the `x-amz-meta-sha256` header).
SHA256_METADATA = "sha256"
#: Local staging directory under OUTPUT_DIR.
STAGING_DIRNAME = "s3-staging"
#: A multipart upload older than this is left over from a killed process: no copy runs that long (the
#: upstream URL it reads from lives 24 h).
STALE_UPLOAD_S = 86400.0
#: Bytes per read when streaming an object out.
_READ_CHUNK = 1 << 16
#: Connections to S3 per process: uploads (WORKER_CONCURRENCY) and proxied downloads share them.
_MAX_POOL_CONNECTIONS = 64
_CONNECT_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 60.0
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (empty, or ending in `/`)."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket/some/prefix` → S3Location; ValueError saying what is wrong otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "s3":
        raise ValueError("not an s3:// URL")
    if parts.query or parts.fragment:
        raise ValueError("an s3:// URL takes no query or fragment")
    bucket = parts.netloc
    if "@" in bucket or ":" in bucket:
        raise ValueError(
            "an s3:// URL names only a bucket: credentials come from the AWS_* variables, the "
            "endpoint from S3_ENDPOINT_URL"
        )
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ValueError(
            f"{bucket!r} is not a valid bucket name (3-63 lower-case letters, digits, '.' and '-')"
        )
    prefix = parts.path.strip("/")
    if prefix:
        validate_key(prefix)  # the same rules as keys: no '.', '..' or empty segments
        prefix += "/"
    return S3Location(bucket, prefix)


def _describe(exc: BaseException) -> str:
    """A short, specific description of an S3 failure: the S3 error code and message, or the client error."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = error.get("Message", "")
        text = f"{code}: {message}" if message and message != code else code
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{text} (HTTP {status})" if status else text
    return f"{type(exc).__name__}: {exc}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


_S3_ERRORS = (ClientError, BotoCoreError)


def _read_part(f: io.BufferedReader, digest: hashlib._Hash, size: int) -> tuple[io.BytesIO, int] | None:
    """Up to `size` bytes from `f`, hashed on the way, in a BytesIO that owns its buffer, and their count;
    None at the end of the file.

    Not `bytes`: botocore would wrap them in a BytesIO sharing their buffer, which aiohttp then unshares,
    that is, copies; a part would be in memory twice. Run in a worker thread (reads and hashing release
    the GIL).
    """
    part = io.BytesIO()
    part.seek(size - 1)
    part.write(b"\0")  # the buffer, allocated once at full size
    filled = 0
    with part.getbuffer() as view:
        while filled < size and (n := f.readinto(view[filled:])):
            filled += n
        with view[:filled] as data:
            digest.update(data)
    if not filled:
        return None
    part.truncate(filled)
    part.seek(0)
    return part, filled


class S3Storage:
    """An S3 bucket (under a prefix), implementing the `Storage` Protocol. The client is owned by the caller
    (`open_s3_storage` opens and closes it)."""

    def __init__(
        self,
        client: S3Client,
        location: S3Location,
        *,
        staging_dir: Path,
        part_size: int,
        content_mode: ContentMode,
        presign_ttl_s: int,
        endpoint_url: str | None,
    ) -> None:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self._client = client
        self._location = location
        self._staging = staging_dir.expanduser().absolute()
        # S3's 5 MiB minimum is enforced by Settings (and by S3 itself, when the upload completes).
        self._part_size = part_size
        self._content_mode = content_mode
        self._presign_ttl_s = presign_ttl_s
        self._endpoint_url = endpoint_url

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r}, endpoint={self._endpoint_url!r})"

    @property
    def url(self) -> str:
        return self._location.url

    @property
    def location(self) -> S3Location:
        return self._location

    @property
    def _where(self) -> str:
        return f"{self.url} (endpoint {self._endpoint_url})" if self._endpoint_url else self.url

    def staging_dir(self) -> Path:
        # Cheap when it exists; recreating it lets the store heal if someone cleaned the directory.
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def object_name(self, key: str) -> str:
        """The S3 key that holds `key`."""
        return self._location.prefix + validate_key(key)

    # --- publish ----------------------------------------------------------------------------------
    async def put_file(self, key: str, path: Path, *, sha256: str, content_type: str) -> StoredObject:
        name = self.object_name(key)
        path = Path(path)
        try:
            size = await self._upload(name, path, sha256, content_type)
        except _S3_ERRORS as exc:
            raise StorageError(f"cannot upload {name!r} to {self._where}: {_describe(exc)}") from exc
        finally:
            # `path` is consumed either way, as with local storage. Synchronous on purpose: this also runs
            # on cancellation, where awaiting is unreliable.
            path.unlink(missing_ok=True)
        return StoredObject(key=key, size_bytes=size, sha256=sha256, content_type=content_type)

    async def _upload(self, name: str, path: Path, sha256: str, content_type: str) -> int:
        # Closing waits for an in-flight threaded read (BufferedReader holds its lock), so a cancelled
        # upload never reads from a recycled file descriptor.
        with await asyncio.to_thread(path.open, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            part_size = max(self._part_size, math.ceil(size / MAX_PARTS))
            if size <= part_size:
                digest = hashlib.sha256()
                data = await asyncio.to_thread(_read_part, f, digest, max(size, 1))
                self._verify(name, sha256, digest)
                await self._client.put_object(
                    Bucket=self._location.bucket,
                    Key=name,
                    Body=data[0] if data else b"",
                    ContentType=content_type,
                    Metadata={SHA256_METADATA: sha256},
                )
                return size
            return await self._upload_parts(name, f, part_size, sha256, content_type)

    async def _upload_parts(
        self, name: str, f: io.BufferedReader, part_size: int, sha256: str, content_type: str
    ) -> int:
        bucket = self._location.bucket
        created = await self._client.create_multipart_upload(
            Bucket=bucket, Key=name, ContentType=content_type, Metadata={SHA256_METADATA: sha256}
        )
        upload_id = created["UploadId"]
        try:
            digest = hashlib.sha256()
            parts: list[CompletedPartTypeDef] = []
            size = 0
            while True:
                data = await asyncio.to_thread(_read_part, f, digest, part_size)
                if data is None:
                    break
                number = len(parts) + 1
                size += data[1]
                answer = await self._client.upload_part(
                    Bucket=bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data[0]
                )
                # Drop the part before reading the next one: this is what keeps memory at one part.
                del data
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
            # The bytes sent are the bytes that were hashed and probed, or nothing is published.
            self._verify(name, sha256, digest)
            await self._client.complete_multipart_upload(
                Bucket=bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            return size
        except BaseException:
            await self._abort(name, upload_id)
            raise

    @staticmethod
    def _verify(name: str, sha256: str, digest: hashlib._Hash) -> None:
        if digest.hexdigest() != sha256:
            raise StorageError(
                f"the staged file for {name!r} changed: its sha256 is {digest.hexdigest()}, not {sha256}"
            )

    async def _abort(self, name: str, upload_id: str) -> None:
        """Abort a multipart upload; its parts are deleted and it never becomes an object."""
        abort = self._client.abort_multipart_upload(
            Bucket=self._location.bucket, Key=name, UploadId=upload_id
        )
        try:
            # Shielded: this runs on cancellation too, and a second cancel must not cut the abort short.
            await asyncio.shield(abort)
        except _S3_ERRORS as exc:
            log.warning(
                "could not abort the multipart upload of %s in %s (the startup sweep or a bucket lifecycle "
                "rule will): %s",
                name,
                self._where,
                _describe(exc),
            )

    async def sweep_uploads(self, *, older_than_s: float = STALE_UPLOAD_S) -> int:
        """Abort multipart uploads under the prefix started more than `older_than_s` ago; return how many.

        A process killed mid-upload leaves its upload pending: invisible, but its parts are stored (and
        billed) until aborted. Failures are logged, never raised: this is housekeeping.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        aborted = 0
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self._location.bucket, Prefix=self._location.prefix):
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated")
                    if initiated is not None and initiated > cutoff:
                        continue
                    await self._abort(upload["Key"], upload["UploadId"])
                    aborted += 1
        except _S3_ERRORS as exc:
            log.warning("could not list pending multipart uploads in %s: %s", self._where, _describe(exc))
        if aborted:
            log.info("aborted %d stale multipart upload(s) in %s", aborted, self._where)
        return aborted

    def sweep_staging(self, *, older_than_s: float = 3600.0) -> int:
        """Remove staging files left by a crashed process; return how many were removed."""
        return sweep_stale_files(self._staging, older_than_s=older_than_s)

    # --- read -------------------------------------------------------------------------------------
    async def stat(self, key: str) -> StoredObject | None:
        name = self.object_name(key)
        try:
            head = await self._client.head_object(Bucket=self._location.bucket, Key=name)
        except ClientError as exc:
            # A HEAD answer has no body, so a missing key is just "404".
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"cannot read {name!r} in {self._where}: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {name!r} in {self._where}: {_describe(exc)}") from exc
        sha256 = head.get("Metadata", {}).get(SHA256_METADATA, "").lower()
        if not _SHA256_HEX.match(sha256):
            # Not written by us (or its metadata was stripped by a copy): hash the object itself.
            sha256 = await self._hash_object(name)
        return StoredObject(
            key=key,
            size_bytes=head["ContentLength"],
            sha256=sha256,
            content_type=head.get("ContentType") or DEFAULT_CONTENT_TYPE,
        )

    async def _hash_object(self, name: str) -> str:
        digest = hashlib.sha256()
        try:
            answer = await self._client.get_object(Bucket=self._location.bucket, Key=name)
            async for chunk in _read_body(answer["Body"]):
                digest.update(chunk)
        except _S3_ERRORS as exc:
            raise StorageError(f"cannot read {name!r} in {self._where}: {_describe(exc)}") from exc
        return digest.hexdigest()

    async def delete(self, key: str) -> None:
        name = self.object_name(key)
        try:
            await self._client.delete_object(Bucket=self._location.bucket, Key=name)
        except _S3_ERRORS as exc:
            raise StorageError(f"cannot delete {name!r} in {self._where}: {_describe(exc)}") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    async def redirect_url(self, key: str, *, filename: str, content_type: str) -> str | None:
        if self._content_mode != "redirect":
            return None
        name = self.object_name(key)
        try:
            # Signed locally (no request): the URL works for whoever holds it until it expires.
            url = await self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._location.bucket,
                    "Key": name,
                    # The client gets the same headers as from the gateway itself.
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": f"inline; filename*=utf-8''{quote(filename)}",
                },
                ExpiresIn=self._presign_ttl_s,
            )
        except _S3_ERRORS as exc:
            raise StorageError(f"cannot sign a URL for {name!r} in {self._where}: {_describe(exc)}") from exc
        return url

    async def open_range(self, key: str, start: int, stop: int) -> ObjectStream | None:
        name = self.object_name(key)
        if stop <= start:
            return ObjectStream(0, _no_chunks(), _nothing)
        try:
            answer = await self._client.get_object(
                Bucket=self._location.bucket, Key=name, Range=f"bytes={start}-{stop - 1}"
            )
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"cannot read {name!r} in {self._where}: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {name!r} in {self._where}: {_describe(exc)}") from exc
        body = answer["Body"]

        async def close() -> None:
            # Closing an unfinished body drops its connection rather than reading the rest.
            body.close()

        if answer["ContentLength"] != stop - start:
            await close()
            raise StorageError(
                f"{name!r} in {self._where} answered {answer['ContentLength']} bytes for a "
                f"{stop - start}-byte range: the object is not the one recorded"
            )
        return ObjectStream(stop - start, _read_body(body), close)

    # --- readiness --------------------------------------------------------------------------------
    async def check(self) -> None:
        """Write and delete a probe object under the prefix: proves the bucket exists, is reachable, and
        these credentials may write and delete there."""
        # A leading '.' can never be a video's key (keys.validate_key), so the probe cannot collide.
        name = f"{self._location.prefix}.probe-{uuid.uuid4().hex}"
        bucket = self._location.bucket
        try:
            await self._client.put_object(Bucket=bucket, Key=name, Body=b"ok")
            await self._client.delete_object(Bucket=bucket, Key=name)
        except _S3_ERRORS as exc:
            raise StorageError(f"S3 storage {self._where} is not writable: {_describe(exc)}") from exc


async def _read_body(body: StreamingBody) -> AsyncIterator[bytes]:
    try:
        while chunk := await body.read(_READ_CHUNK):
            yield chunk
    finally:
        body.close()


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _nothing() -> None:
    return None


@contextlib.asynccontextmanager
async def open_s3_storage(settings: Settings, location: S3Location) -> AsyncIterator[S3Storage]:
    """Open the S3 client for `location` with the S3_* settings, yield the store, close the client.

    Stale staging files are removed at once, as for local storage. Leftover multipart uploads are the
    caller's to sweep (`sweep_uploads`): `open_storage` does it in the background at startup.
    """
    config = AioConfig(
        # SigV4 everywhere: presigned URLs would otherwise use the legacy V2 signature some regions refuse.
        signature_version="s3v4",
        s3={"addressing_style": settings.s3_addressing_style},
        connect_timeout=_CONNECT_TIMEOUT_S,
        read_timeout=_READ_TIMEOUT_S,
        max_pool_connections=_MAX_POOL_CONNECTIONS,
    )
    session = get_session()
    async with session.create_client(
        "s3", region_name=settings.aws_region, endpoint_url=settings.s3_endpoint_url, config=config
    ) as client:
        storage = S3Storage(
            client,
            location,
            staging_dir=settings.output_dir / STAGING_DIRNAME,
            part_size=settings.s3_part_size_bytes,
            content_mode=settings.s3_content_mode,
            presign_ttl_s=settings.s3_presign_ttl_s,
            endpoint_url=settings.s3_endpoint_url,
        )
        storage.sweep_staging()
        yield storage
