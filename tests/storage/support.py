"""Test support for the storage tests: tiny MP4s encoded with PyAV, and a loopback HTTP server whose
behaviour each test picks per URL (normal, error statuses, cut connections, wrong lengths, stalls, endless
bodies, redirects)."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import sys
import threading
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from app.storage.local import LocalStorage


@dataclass(frozen=True)
class Clip:
    path: Path
    data: bytes
    sha256: str
    width: int
    height: int
    seconds: int
    fps: int
    audio: bool


def encode_mp4(
    path: Path,
    *,
    width: int,
    height: int,
    seconds: int,
    fps: int = 30,
    audio: bool = False,
    video: bool = True,
    faststart: bool = True,
) -> Path:
    """Encode a small H.264 (+ AAC) MP4: a moving gradient, and a quiet tone when `audio`."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        if video:
            vstream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if audio:
            astream = container.add_stream("aac", rate=48000)
            astream.layout = "mono"
        if video:
            xs = np.arange(width, dtype=np.uint16)
            for i in range(seconds * fps):
                row = ((xs + i * 4) % 256).astype(np.uint8)
                img = np.repeat(np.broadcast_to(row, (height, width))[:, :, None], 3, axis=2)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
        if audio:
            rate, n = 48000, 1024
            t = np.arange(seconds * rate, dtype=np.float32) / rate
            tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(len(tone) // n):
                samples = np.ascontiguousarray(tone[None, k * n : (k + 1) * n])
                aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                aframe.sample_rate = rate
                aframe.pts = k * n
                aframe.time_base = Fraction(1, rate)
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def make_clip(path: Path, *, width: int, height: int, seconds: int, audio: bool) -> Clip:
    encode_mp4(path, width=width, height=height, seconds=seconds, audio=audio)
    data = path.read_bytes()
    return Clip(path, data, hashlib.sha256(data).hexdigest(), width, height, seconds, 30, audio)


def stored_files(storage: LocalStorage) -> list[str]:
    """Every file under the storage root (staging included), as sorted relative paths."""
    if not storage.root.exists():
        return []
    return sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if not p.is_dir())


# --- the HTTP server -----------------------------------------------------------------------------


@dataclass
class Route:
    """What the server does for one URL. Modes:

    ok        200, correct Content-Length, whole body
    status    `status` with `body` and `headers` (error answers)
    cut       correct Content-Length, half the body, then the connection is closed
    long_cl   Content-Length larger than the body, whole body, then close
    short_cl  Content-Length 1000 bytes short of the body (the client stops at the declared length)
    stall     headers and the first `stall_after` bytes, then waits for `release` before the rest
    endless   no Content-Length, bytes until the client hangs up
    redirect  302 to `location`
    """

    mode: str = "ok"
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    location: str = ""
    stall_after: int = 4096
    hits: int = 0
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _VideoHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._answer(404, b"no such route", {})
            return
        route.hits += 1
        # The client hanging up (too large, timed out, cancelled) is the point of those tests.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._serve(route)

    def _answer(self, status: int, body: bytes, headers: dict[str, str], length: int | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, route: Route) -> None:
        body = route.body
        video = {"Content-Type": "video/mp4", **route.headers}
        if route.mode == "ok":
            self._answer(200, body, video)
        elif route.mode == "status":
            self._answer(route.status, body, {"Content-Type": "application/xml", **route.headers})
        elif route.mode == "cut":
            self._answer(200, body[: len(body) // 2], video, length=len(body))
        elif route.mode == "long_cl":
            self._answer(200, body, video, length=len(body) + 1000)
        elif route.mode == "short_cl":
            self._answer(200, body, video, length=len(body) - 1000)
        elif route.mode == "stall":
            self._answer(200, body[: route.stall_after], video, length=len(body))
            self.wfile.flush()
            route.stalled.set()
            if route.release.wait(timeout=30):
                self.wfile.write(body[route.stall_after :])
        elif route.mode == "endless":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            chunk = b"\0" * 65536
            while not self.server.closing.is_set():
                self.wfile.write(chunk)
        elif route.mode == "redirect":
            self._answer(302, b"", {"Location": route.location})
        else:
            raise AssertionError(f"unknown mode {route.mode}")


class _VideoHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.closing = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        # Connection errors after a client hung up are expected; anything else should be loud.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class VideoServer:
    """A loopback HTTP server in a thread; `add()` registers a behaviour under a fresh URL."""

    def __init__(self) -> None:
        self._httpd = _VideoHTTPServer()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="video-server", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.closing.set()
        for route in self._httpd.routes.values():
            route.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def add(self, route: Route, *, query: str = "") -> tuple[str, Route]:
        path = f"/videos/{uuid.uuid4().hex}.mp4"
        self._httpd.routes[path] = route
        return f"{self.base_url}{path}{'?' + query if query else ''}", route
