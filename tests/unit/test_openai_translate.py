"""The OpenAI Videos projection's pure parts: parameters → a job body, a job → OpenAI's `Video`, form keys,
and the poll-after step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.compat.openai import translate
from app.compat.openai.errors import param_name
from app.compat.openai.forms import place, structured
from app.errors import FieldError
from app.jobs.models import Job
from app.jobs.pacing import client_poll_after_s, mean_run_s
from app.jobs.states import JobStatus

IMAGE = "data:image/png;base64,iVBORw0KGgo="
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def refused(params: dict[str, Any], *, lax: bool = False) -> FieldError:
    with pytest.raises(FieldError) as caught:
        translate.job_create(params, lax=lax)
    return caught.value


def test_create_parameters_become_a_job_body() -> None:
    body = translate.job_create(
        {"prompt": "a cat", "seconds": "4", "size": "720x1280", "input_reference": {"image_url": IMAGE}}
    )
    assert (body.model, body.duration, body.size, body.reference_image) == (
        "wan2.6-i2v-flash", 4, "720*1280", IMAGE
    )  # fmt: skip
    # A form's text values are converted by the field's type; Wan options pass as extra fields.
    lax = translate.job_create(
        {"prompt": "a cat", "input_reference": IMAGE, "seed": "42", "audio": "false"}, lax=True
    )
    assert (lax.seed, lax.audio, lax.duration) == (42, False, None)

    assert refused({"input_reference": IMAGE, "seconds": "20"}).errors[0]["field"] == "seconds"
    assert refused({"input_reference": IMAGE, "seconds": "4.5"}).errors[0]["field"] == "seconds"
    sora = refused({"input_reference": IMAGE, "model": "sora-2"})
    assert sora.errors[0]["field"] == "model" and "wan2.2-kf2v-flash" in sora.errors[0]["message"]
    assert refused({"prompt": "a cat"}).errors[0]["field"] == "input_reference"
    assert refused({"input_reference": {"file_id": "file_1"}}).errors[0]["field"] == "input_reference"
    assert refused({"input_reference": IMAGE, "size": "1280*720"}).errors[0]["field"] == "size"
    assert refused({"input_reference": IMAGE, "duration": 5}).errors[0]["field"] == "duration"
    assert refused({"input_reference": IMAGE, "seed": "42"}).errors[0]["field"] == "seed"  # JSON is strict
    forged = refused({"input_reference": IMAGE, "metadata": {translate.REMIX_KEY: "job_x"}})
    assert forged.errors[0]["field"].startswith("metadata[")
    assert param_name("reference_image") == "input_reference" and param_name("metadata[k]") == "metadata[k]"


def job(status: JobStatus, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": "job_1",
        "model": "wan2.6-i2v-flash",
        "status": status,
        "request": {"prompt": "a cat", "duration": 5, "size": "1280*720", "expected_size": "1280*720"},
        "created_at": T0,
        "updated_at": T0,
        **fields,
    }
    return Job(**values)


def test_a_job_as_openai_s_video() -> None:
    assert set(translate.STATUS) == set(JobStatus)
    assert set(translate.STATUS.values()) == {"queued", "in_progress", "completed", "failed"}

    queued = translate.video(job(JobStatus.QUEUED))
    assert (queued.status, queued.progress, queued.seconds, queued.size) == ("queued", 0, "5", "1280x720")
    assert queued.created_at == int(T0.timestamp()) and queued.completed_at is None

    done = translate.video(
        job(
            JobStatus.SUCCEEDED,
            finished_at=T0 + timedelta(seconds=90),
            result={"width": 1264, "height": 720},
            meta={translate.REMIX_KEY: "job_0"},
        ),
        expires_at=T0 + timedelta(days=1),
    )
    assert (done.status, done.progress, done.size, done.remixed_from_video_id) == (
        "completed", 100, "1264x720", "job_0"
    )  # fmt: skip
    assert done.completed_at == int(T0.timestamp()) + 90 and done.expires_at == int(T0.timestamp()) + 86400

    canceled = translate.video(job(JobStatus.CANCELED, finished_at=T0))
    assert canceled.status == "failed" and canceled.error is not None and canceled.error.code == "canceled"
    failed = translate.video(job(JobStatus.FAILED, error={"code": "upstream_failed", "message": "no"}))
    assert (failed.status, failed.progress, failed.error) == ("failed", 0, failed.error)
    assert failed.error is not None and failed.error.code == "upstream_failed"


def test_form_keys_nest_as_the_sdk_writes_them() -> None:
    params: dict[str, Any] = {}
    for key, value in [
        ("input_reference[image_url]", IMAGE),
        ("webhook_events[]", "job.succeeded"),
        ("webhook_events[]", "job.failed"),
        ("metadata[a][b]", "c"),
    ]:
        place(params, key, value)
    assert params == {
        "input_reference": {"image_url": IMAGE},
        "webhook_events": ["job.succeeded", "job.failed"],
        "metadata": {"a": {"b": "c"}},
    }
    with pytest.raises(FieldError):
        place(params, "metadata[a][b]", "again")
    with pytest.raises(FieldError):
        place(params, "bad key!", "x")
    # One text field for an object or a list, as on POST /v1/jobs.
    assert structured({"metadata": '{"k": 1}', "webhook_events": "job.failed", "prompt": "{x}"}) == {
        "metadata": {"k": 1},
        "webhook_events": ["job.failed"],
        "prompt": "{x}",
    }


def test_the_poll_after_step_lands_on_the_expected_end() -> None:
    def step(remaining: float) -> float:
        return client_poll_after_s(now=T0, expected_end=T0 + timedelta(seconds=remaining), min_s=2, max_s=15)

    assert step(60) == 15 and step(50) == 12.5 and step(10) == 10  # a whole number of steps to the end
    assert step(1) == 2 and step(-30) == 2  # due, or late: every POLL_MIN_INTERVAL_S
    history = [("k", T0, T0 + timedelta(seconds=s)) for s in (30, 50)] + [
        ("other", T0, T0 + timedelta(hours=1))
    ]
    assert mean_run_s("k", history) == 40 and mean_run_s("none", history) is None
