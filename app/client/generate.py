"""`wan-gateway generate IMAGE --prompt TEXT`: submit a job, follow it with a live progress bar, save the
MP4.

IMAGE (and `--last-frame`) is a local file, uploaded as `multipart/form-data`, or an `http(s)://` URL
(also `oss://` or a `data:` URI), sent as text for the gateway to fetch. The submit carries an
`Idempotency-Key` (random, or `--idempotency-key`), so the retries made here on a dropped connection, a
`409` in progress or a short `429`/`503`, and a rerun with the same key, never make a second job.

Then, unless `--no-wait`: the job's server-sent events drive the view (`progress.job_view`), and a
succeeded job's video is saved to `--out` (default `./<job id>.mp4`). Exit codes are `common.EXIT_*`:
0 only when the job succeeded (and was saved); a failed or canceled job prints its `code`, DashScope's
`upstream_code` and `message`. Ctrl-C leaves the job running and says how to follow it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.client.common import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    GatewayError,
    add_connection_arguments,
    checked,
    client,
    describe,
    fail,
    gateway_url,
    unreachable,
)
from app.client.follow import follow
from app.client.jobs import NoVideo, error_line, save_video
from app.client.progress import job_view

#: `wan-gateway generate --help`: for people, what the module docstring says for the code.
DESCRIPTION = """\
Make a video from an image: submit a job, follow it with a live progress bar, save the MP4.

IMAGE (and --last-frame) is a local file, uploaded, or an http(s):// URL the gateway fetches. The job is
submitted with an Idempotency-Key, so a retried submit never makes two jobs. Unless --no-wait, the video
is saved to --out (default ./<job id>.mp4) once the job succeeded. Ctrl-C leaves the job running.

exit codes: 0 the job succeeded (and was saved); 1 it failed or was canceled (its code, DashScope's code
and message are printed); 2 a bad command line; 3 the gateway refused or could not be reached; 130
interrupted.
"""

#: Sent as text, for the gateway to fetch or decode; anything else is a local file to upload.
URL_PREFIXES = ("http://", "https://", "oss://", "data:")
SUBMIT_ATTEMPTS = 4
#: A `Retry-After` longer than this is not waited for here: the refusal is printed instead.
MAX_RETRY_AFTER_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the first frame: a local file or an http(s) URL")
    parser.add_argument("--prompt", required=True, help="what happens in the video")
    parser.add_argument("--negative-prompt", help="what to avoid")
    parser.add_argument("--model", help="a Wan image-to-video model (default wan2.6-i2v-flash)")
    parser.add_argument("--duration", type=int, help="seconds, one the model offers (default 5)")
    parser.add_argument(
        "--size", type=_size, help="WIDTHxHEIGHT (or W*H): picks the resolution tier, e.g. 1280x720"
    )
    parser.add_argument("--resolution", choices=("480P", "720P", "1080P"), help="the tier (wins over --size)")
    parser.add_argument("--seed", type=int, help="random seed, 0–2147483647")
    parser.add_argument(
        "--last-frame", metavar="IMG", help="the last frame (kf2v models): a local file or an http(s) URL"
    )
    parser.add_argument("--out", type=Path, help="where to save the MP4 (default: ./<job id>.mp4)")
    parser.add_argument(
        "--no-wait", action="store_true", help="print the job id (or its JSON) once accepted, and exit"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the final job as JSON on stdout (progress on stderr)"
    )
    parser.add_argument(
        "--idempotency-key",
        help="reuse a key to get the job an earlier run made instead of a new one (default: a random key)",
    )
    add_connection_arguments(parser)


def _size(value: str) -> str:
    width, sep, height = value.lower().replace("*", "x").partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    return f"{width}*{height}"


def _image(name: str, value: str) -> tuple[str | None, tuple[str, bytes] | None]:
    """(text, None) for a URL, (None, (file name, bytes)) for a local file; exits on a missing file."""
    if value.lower().startswith(URL_PREFIXES):
        return value, None
    path = Path(value).expanduser()
    try:
        return None, (path.name, path.read_bytes())
    except OSError as exc:
        fail("generate", f"{name} {value}: {exc.strerror or exc}", EXIT_USAGE)


def request_parts(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """The job's fields, and the files to upload (none: the fields go as JSON)."""
    fields: dict[str, Any] = {"prompt": args.prompt}
    for name in ("negative_prompt", "model", "duration", "size", "resolution", "seed"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    files: dict[str, tuple[str, bytes]] = {}
    for field, flag, value in (
        ("reference_image", "IMAGE", args.image),
        ("last_frame_image", "--last-frame", args.last_frame),
    ):
        if value is None:
            continue
        text, upload = _image(flag, value)
        if upload is not None:
            files[field] = upload
        else:
            fields[field] = text
    return fields, files


def submit(
    http: httpx.Client,
    fields: dict[str, Any],
    files: dict[str, tuple[str, bytes]],
    key: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST /v1/jobs, retried with the same Idempotency-Key while the failure may pass; the job."""
    headers = {"Idempotency-Key": key}
    problem = ""
    wait_s = 0.0
    for attempt in range(SUBMIT_ATTEMPTS):
        if attempt:
            sleep(wait_s)
        wait_s = 0.5 * 2**attempt
        try:
            if files:
                # Form fields are text; the gateway types them by the body model (forms.py).
                data = {k: str(v) for k, v in fields.items()}
                response = http.post("/v1/jobs", data=data, files=files, headers=headers)
            else:
                response = http.post("/v1/jobs", json=fields, headers=headers)
        except httpx.TransportError as exc:
            problem = str(unreachable(str(http.base_url), exc))
            continue
        retry_after = _retry_after(response)
        if response.status_code in (409, 429, 502, 503, 504) and _retried(response, retry_after):
            problem = describe(response)
            wait_s = retry_after if retry_after is not None else wait_s
            continue
        job: dict[str, Any] = checked(response, 202).json()
        return job
    raise GatewayError(f"{problem} (after {SUBMIT_ATTEMPTS} attempts; Idempotency-Key {key})")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _retried(response: httpx.Response, retry_after: float | None) -> bool:
    if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
        return False
    if response.status_code == 409:  # only the same key still being written; other 409s are final
        try:
            return bool(response.json().get("code") == "idempotency_key_in_progress")
        except ValueError:
            return False
    return True


def run(args: argparse.Namespace) -> int:
    fields, files = request_parts(args)
    key = args.idempotency_key or f"cli-{uuid.uuid4()}"
    # Progress goes where it does not mix with what scripts read: stderr under --json.
    out_stream = sys.stderr if args.json else sys.stdout
    job: dict[str, Any] | None = None
    try:
        with client(args) as http:
            job = submit(http, fields, files, key)
            if args.no_wait:
                print(json.dumps(job, indent=2) if args.json else job["id"])
                return EXIT_OK
            with job_view(out_stream) as view:
                job = follow(http, job, view)
            if job.get("status") != "succeeded":
                if args.json:
                    print(json.dumps(job, indent=2))
                fail("generate", error_line(job), EXIT_JOB_FAILED)
            out: Path = args.out or Path(f"{job['id']}.mp4")
            size = save_video(http, job, out, out_stream)
    except KeyboardInterrupt:
        if job is None:
            fail(
                "generate",
                "interrupted before the gateway answered; run again with "
                f"--idempotency-key {key} to get the job it may have made instead of a new one",
                EXIT_INTERRUPTED,
            )
        job_id = job["id"]
        fail(
            "generate",
            f"interrupted; {job_id} goes on on the gateway. Follow it: wan-gateway jobs show {job_id}; "
            f"once it has succeeded: wan-gateway jobs download {job_id} --out {args.out or job_id + '.mp4'}",
            EXIT_INTERRUPTED,
        )
    except NoVideo as exc:
        fail("generate", str(exc), EXIT_JOB_FAILED)
    except GatewayError as exc:
        fail("generate", str(exc), EXIT_REFUSED)
    except httpx.HTTPError as exc:
        fail("generate", str(unreachable(gateway_url(args), exc)), EXIT_REFUSED)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        result = job.get("result") or {}
        print(
            f"saved {out}: {job['id']}, {result.get('width')}x{result.get('height')}, "
            f"{result.get('duration')} s, {size} bytes"
        )
    return EXIT_OK
