"""`wan-gateway jobs list|show|cancel|download`: a gateway's jobs (`/v1/jobs`), and `save_video`, the
download that `generate` uses too.

A download streams `GET /v1/jobs/{id}/content` into `FILE.part` with a progress bar, checks its sha256
against the job's `result.sha256`, then renames it to FILE: a file at `--out` is always a whole video.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from app.client.common import (
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    GatewayError,
    add_connection_arguments,
    checked,
    client,
    fail,
    gateway_url,
    unreachable,
)
from app.client.progress import transfer

STATUSES = ("queued", "submitted", "running", "storing", "succeeded", "failed", "canceled")
COLUMNS = ("id", "status", "model", "created_at", "progress", "detail")
CHUNK = 1 << 16


class NoVideo(Exception):
    """The job has no video to download (not succeeded, or its video expired)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="jobs_command", required=True)
    listing = sub.add_parser("list", help="your jobs, newest first, as a table")
    listing.add_argument(
        "--status",
        action="append",
        choices=STATUSES,
        help="only jobs in this status (repeat for several)",
    )
    listing.add_argument("--limit", type=int, default=20, help="how many (1–100, default 20)")
    listing.add_argument("--cursor", help="the next page: the cursor the previous page printed")
    show = sub.add_parser("show", help="one job: status, request, upstream ids, result or error")
    show.add_argument("job", help="the job id")
    cancel = sub.add_parser("cancel", help="cancel a job not yet running upstream")
    cancel.add_argument("job", help="the job id")
    download = sub.add_parser("download", help="save a succeeded job's MP4 (with a progress bar)")
    download.add_argument("job", help="the job id")
    download.add_argument("--out", type=Path, help="where to write it (default: ./<job id>.mp4)")
    for each in (listing, show, cancel, download):
        add_connection_arguments(each)
        each.add_argument("--json", action="store_true", help="print the job(s) as JSON")


def run(args: argparse.Namespace) -> int:
    command = f"jobs {args.jobs_command}"
    try:
        with client(args) as http:
            if args.jobs_command == "list":
                return _list(http, args)
            job = checked(http.get(f"/v1/jobs/{args.job}")).json()
            if args.jobs_command == "show":
                print(json.dumps(job, indent=2) if args.json else summary(job))
                return EXIT_OK
            if args.jobs_command == "cancel":
                job = checked(http.post(f"/v1/jobs/{args.job}/cancel")).json()
                print(json.dumps(job, indent=2) if args.json else f"{job['id']} {job['status']}")
                return EXIT_OK
            out: Path = args.out or Path(f"{job['id']}.mp4")
            size = save_video(http, job, out, sys.stderr if args.json else sys.stdout)
            print(json.dumps(job, indent=2) if args.json else f"saved {out} ({size} bytes)")
            return EXIT_OK
    except NoVideo as exc:
        fail(command, str(exc), EXIT_JOB_FAILED)
    except GatewayError as exc:
        fail(command, str(exc), EXIT_REFUSED)
    except httpx.HTTPError as exc:
        fail(command, str(unreachable(gateway_url(args), exc)), EXIT_REFUSED)


def _list(http: httpx.Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.cursor:
        params["cursor"] = args.cursor
    page = checked(http.get("/v1/jobs", params=params)).json()
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    print(table(page.get("data", [])))
    if page.get("next_cursor"):
        print(f"more: wan-gateway jobs list --cursor {page['next_cursor']}", file=sys.stderr)
    return EXIT_OK


def _detail(job: dict[str, Any]) -> str:
    """The one thing worth knowing beyond the status: the error, the queue position, the video."""
    if job.get("error"):
        error = job["error"]
        upstream = f" ({error['upstream_code']})" if error.get("upstream_code") else ""
        return f"{error.get('code')}{upstream}"
    if isinstance(job.get("queue_position"), int):
        return f"queue #{job['queue_position']}"
    result = job.get("result") or {}
    if result:
        return f"{result.get('width')}x{result.get('height')} {result.get('duration')} s"
    return ""


def table(jobs: Sequence[dict[str, Any]]) -> str:
    rows = []
    for job in jobs:
        progress = job.get("progress")
        row = {
            "id": job.get("id", ""),
            "status": job.get("status", ""),
            "model": job.get("model", ""),
            "created_at": str(job.get("created_at", ""))[:19].replace("T", " "),
            "progress": f"{progress}%" if isinstance(progress, int) else "-",
            "detail": _detail(job),
        }
        rows.append([str(row[c]) for c in COLUMNS])
    headers = [c.upper().replace("_AT", "") for c in COLUMNS]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if not rows:
        lines.append("(no jobs)")
    return "\n".join(lines)


def error_line(job: dict[str, Any]) -> str:
    """`job_… failed: upstream_failed (DashScope DataInspectionFailed): …`."""
    error = job.get("error") or {}
    line = f"{job.get('id')} {job.get('status')}"
    if error:
        upstream = f" (DashScope {error['upstream_code']})" if error.get("upstream_code") else ""
        line += f": {error.get('code')}{upstream}: {error.get('message')}"
    return line


def summary(job: dict[str, Any]) -> str:
    """The job for people: one `name: value` line per thing known."""
    request = job.get("request") or {}
    upstream = job.get("upstream") or {}
    result = job.get("result") or {}
    cost = job.get("cost") or {}
    lines = [
        ("id", job.get("id")),
        ("status", job.get("status")),
        ("progress", f"{job['progress']}%" if isinstance(job.get("progress"), int) else None),
        ("queue position", job.get("queue_position")),
        ("eta", job.get("eta")),
        ("model", job.get("model")),
        ("prompt", request.get("prompt")),
        ("created", job.get("created_at")),
        ("finished", job.get("finished_at")),
        ("upstream task", upstream.get("task_id")),
        ("upstream request", upstream.get("request_id")),
        ("error", error_line(job).partition(": ")[2] if job.get("error") else None),
        ("retrying", (job.get("retry") or {}).get("message")),
        (
            "video",
            f"{result.get('width')}x{result.get('height')}, {result.get('duration')} s, "
            f"{result.get('bytes')} bytes"
            if result
            else None,
        ),
        ("video url", result.get("video_url")),
        (
            "cost",
            f"{cost.get('amount')} {cost.get('currency')}" + (" (estimated)" if cost.get("estimated") else "")
            if cost
            else None,
        ),
        ("warnings", "; ".join(job.get("warnings") or []) or None),
    ]
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{name + ':':{width + 1}} {value}" for name, value in lines if value is not None)


def save_video(http: httpx.Client, job: dict[str, Any], out: Path, stream: IO[str]) -> int:
    """Download `job`'s stored MP4 to `out`; its size in bytes. `NoVideo` if it has none."""
    result = job.get("result") or {}
    if job.get("status") != "succeeded" or not result:
        raise NoVideo(f"{error_line(job)}: no video to download")
    if result.get("expired_at"):
        raise NoVideo(f"{job['id']}'s video was removed at {result['expired_at']} (STORAGE_RETENTION_S)")
    partial = out.with_name(out.name + ".part")
    digest = hashlib.sha256()
    size = 0
    try:
        with http.stream("GET", f"/v1/jobs/{job['id']}/content") as response:
            if not response.is_success:
                response.read()
                checked(response)
            total = int(response.headers.get("content-length", 0)) or result.get("bytes")
            with partial.open("wb") as file, transfer(str(out), total, stream) as advance:
                for chunk in response.iter_bytes(CHUNK):
                    file.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    advance(len(chunk))
        expected = result.get("sha256")
        if expected and digest.hexdigest() != expected:
            got = digest.hexdigest()
            raise GatewayError(f"the download of {job['id']} is damaged: sha256 {got}, expected {expected}")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return size
