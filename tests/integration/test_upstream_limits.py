"""The gateway stays within DashScope's per-account limits, and kf2v jobs go to their own endpoint."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings, serve
from tests.helpers import data_uri


async def test_a_burst_of_jobs_never_trips_upstream_rate_limits(tmp_path: Path, database_url: str) -> None:
    """The sandbox enforces DashScope's limits (5 creates/s for wan2.6, 20 task queries/s) and answers
    429 beyond them. The gateway is allowed more tasks in flight than upstream runs at once, so its
    own limiter is all that keeps the burst of creates and polls within the rates."""
    settings = make_settings(
        tmp_path,
        database_url,
        sandbox_enforce_limits=True,
        upstream_max_inflight="wan2.6=16",
        worker_batch_size=64,
        sandbox_pending_s=0.05,
        sandbox_running_s=0.3,
    )
    async with serve(settings) as served:
        png = data_uri(640, 360)
        ids = []
        for i in range(12):
            body = {"prompt": f"burst {i}", "duration": 2, "size": "1280*720", "reference_image": png}
            ids.append((await served.client.post("/v1/jobs", json=body)).json()["id"])
        for job_id in ids:
            assert (await served.drive(job_id, "succeeded", "failed"))["status"] == "succeeded"
        sandbox = served.gateway.sandbox
        assert sandbox is not None
        assert sandbox.stats.created_total == 12
        assert sandbox.stats.responses.get(429, 0) == 0, sandbox.stats.snapshot()


async def test_kf2v_job_uses_first_and_last_frames_on_its_endpoint(tmp_path: Path, database_url: str) -> None:
    async with serve(make_settings(tmp_path, database_url)) as served:
        body = {
            "model": "wan2.2-kf2v-flash",
            "prompt": "a flower opening",
            "resolution": "480P",
            "reference_image": data_uri(640, 640),
            "last_frame_image": data_uri(800, 800, "JPEG"),
        }
        job = (await served.client.post("/v1/jobs", json=body)).json()
        done = await served.drive(job["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", done["error"]
        # Square first frame at 480P: DashScope keeps its aspect ratio; kf2v is silent.
        assert (done["result"]["width"], done["result"]["height"]) == (624, 624)
        assert done["result"]["has_audio"] is False
        assert done["usage"]["video_duration"] == 5
