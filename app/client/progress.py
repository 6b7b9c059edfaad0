"""How a client command shows a job moving: a live rich progress bar on a terminal, plain lines otherwise
(a log, a pipe, CI).

A view is fed the job as the gateway sends it (`update(job)`, from each server-sent event) and shows its
`status`, `progress` (0–100), `queue_position` and `eta` when the gateway gives them (absent = unknown).
The plain view prints a line only when what it would say changes (status, queue position, progress by
tens), so a log stays short. `transfer` shows a download's bytes the same two ways.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def describe(job: dict[str, Any], now: datetime) -> str:
    """`queued · 2nd in queue · ETA 05:01:07 (in 40 s)`: what is known of where the job stands."""
    parts = [str(job.get("status", "?"))]
    position = job.get("queue_position")
    if isinstance(position, int) and job.get("status") in ("queued", "submitted"):
        parts.append("next in queue" if position <= 1 else f"{_ordinal(position)} in queue")
    eta = parse_time(job.get("eta"))
    if eta is not None and job.get("status") not in ("succeeded", "failed", "canceled"):
        left = int((eta - now).total_seconds())
        parts.append(f"ETA {eta:%H:%M:%S}Z " + (f"(in {_duration(left)})" if left > 0 else "(any moment)"))
    return " · ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class JobView(Protocol):
    def __enter__(self) -> JobView: ...
    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def update(self, job: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...


class PlainView:
    """One line per change: `job_… queued · next in queue`, `job_… running 40%`."""

    def __init__(self, stream: IO[str], clock: Clock = _now) -> None:
        self._stream = stream
        self._clock = clock
        self._last: tuple[object, ...] | None = None

    def __enter__(self) -> PlainView:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stream.flush()

    def update(self, job: dict[str, Any]) -> None:
        progress = job.get("progress")
        tens = progress // 10 * 10 if isinstance(progress, int) else None
        key = (job.get("status"), job.get("queue_position"), tens)
        if key == self._last:
            return
        self._last = key
        percent = f" {progress}%" if isinstance(progress, int) else ""
        text = describe(job, self._clock())
        status, _, rest = text.partition(" · ")
        self.note(f"{job.get('id', '')} {status}{percent}" + (f" · {rest}" if rest else ""))

    def note(self, text: str) -> None:
        print(text, file=self._stream, flush=True)


class BarView:
    """A live bar pinned at the bottom of the terminal: spinner, status and queue/ETA, bar, %, elapsed."""

    def __init__(self, console: Console, clock: Clock = _now, *, auto_refresh: bool = True) -> None:
        self._clock = clock
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[job]}[/] {task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=auto_refresh,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BarView:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.refresh()
        self._progress.stop()

    def update(self, job: dict[str, Any]) -> None:
        progress = job.get("progress")
        text = describe(job, self._clock())
        if self._task is None:
            self._task = self._progress.add_task(text, total=100, job=job.get("id", ""))
        # Unknown progress (null while failed/canceled, or a gateway that sends none): a pulsing bar.
        total = 100 if isinstance(progress, int) else None
        completed = progress if isinstance(progress, int) else 0
        self._progress.update(self._task, description=text, total=total, completed=completed)
        self._progress.refresh()

    def note(self, text: str) -> None:
        self._progress.console.print(text, highlight=False, markup=False)


def job_view(stream: IO[str] | None = None, clock: Clock = _now) -> JobView:
    """A bar when `stream` (default stdout) is a terminal, else plain lines."""
    stream = stream or sys.stdout
    if stream.isatty():
        return BarView(Console(file=stream), clock)
    return PlainView(stream, clock)


class Transfer(Protocol):
    def __call__(self, done: int) -> None: ...


@contextmanager
def transfer(label: str, total: int | None, stream: IO[str] | None = None) -> Iterator[Transfer]:
    """Show a download of `total` bytes (None: unknown); yields `advance(n)` to call per chunk."""
    stream = stream or sys.stdout
    if not stream.isatty():
        print(f"downloading {label}" + (f" ({total} bytes)" if total else ""), file=stream, flush=True)
        yield lambda done: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(file=stream)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)
