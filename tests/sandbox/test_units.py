"""The sandbox's parts one by one: schedule, state function, shapes, validation, faults, config, server."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.providers.base import TaskState
from app.providers.dashscope.capabilities import MODELS, Endpoint
from app.sandbox.config import SandboxConfig
from app.sandbox.faults import FaultSet, parse_faults
from app.sandbox.lifecycle import TaskView, format_time, output, usage, view
from app.sandbox.schedule import plan
from app.sandbox.server import SandboxServer
from app.sandbox.settings import SandboxSettings
from app.sandbox.store import TaskDetail, TaskRecord
from app.sandbox.validation import parse_create
from app.wiring import sandbox_config
from tests.sandbox.sandbox_helpers import TLS, client_for

REPO = Path(__file__).resolve().parents[2]


# --- schedule ----------------------------------------------------------------------------------------


def test_plan_without_limits() -> None:
    assert plan(100.0, pending_s=2, running_s=8) == (102.0, 110.0)
    assert plan(100.0, pending_s=2, running_s=None) == (102.0, None)


def test_plan_queues_behind_busy_slots() -> None:
    busy = [(100.0, 110.0), (101.0, 111.0)]
    assert plan(100.0, pending_s=1, running_s=10, busy=busy, max_running=3) == (101.0, 111.0)
    assert plan(100.0, pending_s=1, running_s=10, busy=busy, max_running=2) == (110.0, 120.0)
    # a queued task that will start later must not be overlapped either
    queued = [*busy, (110.0, 120.0)]
    assert plan(100.0, pending_s=1, running_s=10, busy=queued, max_running=2) == (111.0, 121.0)


def test_plan_with_stuck_tasks() -> None:
    forever = [(100.0, None), (100.0, None)]
    assert plan(100.0, pending_s=1, running_s=10, busy=forever, max_running=2) == (math.inf, None)
    assert plan(100.0, pending_s=1, running_s=None, busy=[(100.0, 105.0)], max_running=1) == (105.0, None)


# --- state and shapes --------------------------------------------------------------------------------


def _record(
    model: str = "wan2.2-i2v-flash", outcome: TaskState = TaskState.SUCCEEDED, **detail: object
) -> TaskRecord:
    spec = MODELS[model]
    values: dict[str, object] = {
        "endpoint": spec.endpoint.value,
        "resolution": spec.default_resolution,
        "duration": spec.default_duration,
        "width": 1280,
        "height": 720,
        "has_audio": spec.has_audio(None),
        "prompt": "p",
        "prompt_extend": True,
        **detail,
    }
    return TaskRecord(
        task_id="t",
        model=model,
        family=spec.family,
        request_id="r",
        created_at=1000.0,
        start_at=1002.0,
        end_at=1010.0,
        canceled_at=None,
        outcome=outcome,
        detail=TaskDetail(**values),  # type: ignore[arg-type]
    )


def test_view_follows_the_clock() -> None:
    record = _record()

    def ready() -> float:
        return 1005.0

    states = [view(record, now, ttl_s=86400, clip_ready_at=ready).state for now in (1001, 1003, 1011)]
    assert states == [TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert view(record, 1011, ttl_s=86400, clip_ready_at=ready).end_time == 1010.0
    late = view(record, 1011, ttl_s=86400, clip_ready_at=lambda: 1012.5)
    assert (late.state, late.end_time) == (TaskState.SUCCEEDED, 1012.5)
    waiting = view(record, 1011, ttl_s=86400, clip_ready_at=lambda: None)
    assert (waiting.state, waiting.awaiting_clip) == (TaskState.RUNNING, True)
    assert view(record, 1000 + 86401, ttl_s=86400, clip_ready_at=ready).state is TaskState.UNKNOWN


def test_view_of_other_outcomes() -> None:
    def never() -> float | None:
        raise AssertionError("only a succeeding task looks at its clip")

    failed = _record(outcome=TaskState.FAILED, code="InternalError", message="m")
    assert view(failed, 1011, ttl_s=86400, clip_ready_at=never) == TaskView(TaskState.FAILED, end_time=1010.0)
    canceled = TaskRecord(**{**_record().__dict__, "canceled_at": 1001.0})
    assert view(canceled, 1011, ttl_s=86400, clip_ready_at=never) == TaskView(
        TaskState.CANCELED, end_time=1001.0
    )
    stuck = TaskRecord(**{**_record().__dict__, "end_at": None})
    assert view(stuck, 10**9, ttl_s=10**10, clip_ready_at=never).state is TaskState.RUNNING


def test_output_shapes() -> None:
    record = _record()
    assert output(record, TaskView(TaskState.UNKNOWN)) == {"task_id": "t", "task_status": "UNKNOWN"}
    assert output(record, TaskView(TaskState.PENDING)) == {
        "task_id": "t",
        "task_status": "PENDING",
        "submit_time": format_time(1000.0),
    }
    done = output(record, TaskView(TaskState.SUCCEEDED, end_time=1010.0), "http://x/v.mp4")
    assert done["video_url"] == "http://x/v.mp4"
    assert done["end_time"] == "1970-01-01 00:16:50.000"
    failed = output(
        _record(code="DataInspectionFailed", message="m"), TaskView(TaskState.FAILED, end_time=1010.0)
    )
    assert (failed["code"], failed["message"]) == ("DataInspectionFailed", "m")
    assert "video_url" not in failed


def test_format_time_is_utc_with_milliseconds() -> None:
    assert format_time(1758798448.5905) == "2025-09-25 11:07:28.590"


@pytest.mark.parametrize("model", sorted(MODELS))
def test_usage_shape_per_family(model: str) -> None:
    spec = MODELS[model]
    shape = set(usage(_record(model)))
    expected = {
        "wan2.6": {"duration", "input_video_duration", "output_video_duration", "SR", "video_count"},
        "sr": {"duration", "SR", "video_count"},
        "wan2.1": {"video_duration", "video_ratio", "video_count"},
        "kf2v-flash": {"video_duration", "video_count", "SR"},
    }[spec.usage_style]
    if model == "wan2.6-i2v-flash":
        expected.add("audio")
    assert shape == expected


def test_silent_flash_usage() -> None:
    assert usage(_record("wan2.6-i2v-flash", has_audio=False))["audio"] is False


# --- validation defaults -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_defaults_come_from_the_registry(model: str) -> None:
    spec = MODELS[model]
    field = "first_frame_url" if spec.is_kf2v else "img_url"
    request = parse_create({"model": model, "input": {field: "https://example.com/a.png"}}, spec.endpoint)
    assert (request.resolution, request.duration) == (spec.default_resolution, spec.default_duration)
    assert request.prompt_extend is True
    assert request.has_audio is spec.has_audio(None)
    assert request.image_url == "https://example.com/a.png"


def test_flash_audio_switch() -> None:
    body = {"model": "wan2.6-i2v-flash", "input": {"img_url": "x"}, "parameters": {"audio": False}}
    assert parse_create(body, Endpoint.I2V).has_audio is False


# --- faults ------------------------------------------------------------------------------------------


def test_fault_set_order_times_and_probability() -> None:
    faults = FaultSet(parse_faults("get:500=0,get:503*2,get:429"))
    assert [faults.pick("get").status for _ in range(4)] == [503, 503, 429, 429]  # type: ignore[union-attr]
    assert faults.pick("list") is None
    assert [rule.spec() for rule in faults.rules] == ["get:500=0", "get:429"]


# --- config and server -------------------------------------------------------------------------------


def test_config_from_settings(tmp_path: Path) -> None:
    """The gateway's settings (the flat keyword names of its `sandbox` group) make the embedded sandbox's
    config, with the gateway's image limits."""
    flat: dict[str, object] = {
        "sandbox_pending_s": 0.5,
        "sandbox_faults": "get:500",
        "sandbox_api_key": "sk-x",
        "sandbox_state_path": tmp_path / "s.db",
        "image_max_side_px": 8000,
    }
    config = sandbox_config(Settings(_env_file=None, **flat))  # type: ignore[arg-type]
    assert (config.pending_s, config.faults, config.api_keys) == (0.5, "get:500", ("sk-x",))
    assert config.state_path == tmp_path / "s.db"
    assert config.image_max_side_px == 8000
    assert config.resolved_upload_dir == tmp_path / "s-uploads"


def test_config_defaults_are_the_settings_defaults(tmp_path: Path) -> None:
    """SandboxConfig takes the defaults of SANDBOX_* from SandboxSettings (written once)."""
    settings = SandboxSettings(_env_file=None)
    assert SandboxConfig.from_settings(settings, default_state_path=tmp_path / "s.db") == SandboxConfig(
        state_path=tmp_path / "s.db"
    )


def test_partial_limit_maps_keep_the_other_families(tmp_path: Path) -> None:
    config = SandboxConfig(state_path=tmp_path / "s.db", submit_rps={"kf2v": 1})
    assert config.submit_rps["kf2v"] == 1
    assert config.submit_rps["wan2.6"] == 5


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])  # noqa: S104
def test_server_refuses_non_loopback_hosts(make_config: Callable[..., SandboxConfig], host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(make_config(host=host))


async def test_server_lifecycle(make_config: Callable[..., SandboxConfig]) -> None:
    server = SandboxServer(make_config(host="localhost"))
    with pytest.raises(RuntimeError):
        _ = server.base_url
    await server.start()
    port = server.port
    try:
        assert server.base_url == f"http://127.0.0.1:{port}/api/v1"
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
        with pytest.raises(OSError, match="in use"):
            await SandboxServer(make_config(port=port)).start()
    finally:
        await server.stop()
    await server.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    async with server, client_for(server) as client:  # the same object starts again
        assert (await client.get("/tasks")).status_code == 200


@pytest.mark.slow
async def test_serve_forever_runs_until_sigint(tmp_path: Path) -> None:
    """The standalone runner (`wan-gateway sandbox`) serves, then shuts down cleanly on Ctrl-C."""
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from app.sandbox.config import SandboxConfig\n"
        "from app.sandbox.server import serve_forever\n"
        "try:\n"
        "    asyncio.run(serve_forever(SandboxConfig(state_path=Path(sys.argv[1]))))\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        str(tmp_path / "sandbox.db"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        base_url = None
        async with asyncio.timeout(20):
            while base_url is None:
                line = (await process.stderr.readline()).decode()
                assert line, "the sandbox exited before serving"
                if match := re.search(r"base URL (\S+)", line):
                    base_url = match[1].rstrip(",")
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": "Bearer sk-sandbox"}, verify=TLS
        ) as client:
            assert (await client.get("/tasks/x")).json()["output"]["task_status"] == "UNKNOWN"
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            stdout, _ = await process.communicate()
        assert process.returncode == 0
        assert stdout.decode().splitlines()[-1] == "stopped"  # after the access log lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
