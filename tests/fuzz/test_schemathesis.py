"""Schemathesis against the live gateway: no 5xx, and every answer conforms to the published OpenAPI.

The gateway runs as in the integration tests (uvicorn on 127.0.0.1, the sandbox upstream, loops off), in a
thread with its own event loop because schemathesis calls it synchronously, with client authentication on:
the fuzz calls with an admin key (so `/metrics` and `/v1/admin/stats` answer too), and schemathesis checks
that a request without it is a 401. The schema is the committed `openapi/openapi.json`, which the fixture
checks is what the gateway serves at `/openapi.json` (`schemathesis.pytest.from_fixture`, which would load
it from the server, fails on pytest 9.2: it sets `Node._nodeid`, which is gone).

Every operation is fuzzed, positive and negative data, in schemathesis's examples, coverage and fuzzing
phases, with every check but two that cannot apply here (`positive_data_acceptance`, and
`negative_data_rejection` on `GET /v1/jobs`; CONFIG says why). The gateway holds two finished jobs — one
succeeded with its video stored and a webhook delivery, one canceled — and generated path parameters are
often swapped for their ids, so the code behind the 404s is fuzzed too: `/content` with `Range`,
`If-Range` and `If-None-Match`, event streams with `Last-Event-ID`, `Prefer: wait`, deliveries and
redelivery.

Bounded: every job is finished (one the fuzz manages to create is canceled at once), so `GET …/events`
replays a finished history and ends, and `Prefer: wait` answers at once; each call has a 30 s timeout.
Reproducible: a fixed seed, deterministic generation, no example database. Several hundred requests in
15–25 s on two cores. It runs in the SQLite pass of `make test` only (skipped when TEST_DATABASE_URL is
set, as CI runs the suite twice within its time budget; tests/integration/test_hostile_input.py, which
runs on both databases, covers what differs between them, such as NUL characters). `make fuzz` runs it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis.strategies import SearchStrategy
from pydantic import SecretStr

from app.config import Settings
from tests.conftest import REPO, TEST_DATABASE_URL, Served, make_settings, serve
from tests.helpers import data_uri

if TEST_DATABASE_URL:  # before the schema is loaded: collecting it costs seconds
    pytest.skip("the fuzz runs in the SQLite pass only (CI time budget)", allow_module_level=True)

#: One pytest-xdist worker runs the whole module: its live gateway (module-scoped) is built once.
pytestmark = pytest.mark.xdist_group("fuzz")

#: The fuzz's client key (an admin one: every operation is open to it).
KEY = "wg_fuzz-admin-key-0123456789abcdef0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

CONFIG: dict[str, Any] = {
    "seed": 20_261_122,
    "generation": {"max-examples": 30, "deterministic": True, "database": "none"},
    "request-timeout": 30,
    "checks": {
        # Inherently inapplicable: the schema cannot say everything the gateway checks. `reference_image`
        # must decode to an image of 360–2000 px, `duration`/`size`/`audio` depend on the model, ids must
        # exist. Schema-valid data is therefore refused with 422/404/409 routinely, and rightly.
        "positive_data_acceptance": {"enabled": False},
    },
    "operations": [
        {
            # The list's query holds only strings and arrays of strings. Schemathesis's "invalid" values for
            # them (objects, nested arrays) collapse into valid ones in a form-encoded query string —
            # `{"": "null"}` is sent as `cursor=`, an empty array as nothing at all — so the gateway gets
            # valid input and rightly answers 200, which the check reads as accepting invalid data.
            "include-path": "/v1/jobs",
            "include-method": "GET",
            "checks": {"negative_data_rejection": {"enabled": False}},
        }
    ],
}


@dataclass
class Live:
    """The running gateway and the ids of what it holds."""

    url: str
    job_ids: list[str] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)


async def seed(served: Served) -> Live:
    served.headers = AUTH
    served.client.headers.update(AUTH)
    live = Live(url=served.url)
    image = data_uri(640, 360)
    done = await served.submit(
        image, webhook_url="http://127.0.0.1:9/hook", webhook_events=["job.succeeded"], metadata={"k": "v"}
    )
    await served.drive(done, "succeeded")
    canceled = await served.submit(image)
    assert (await served.client.post(f"/v1/jobs/{canceled}/cancel")).status_code == 200
    deliveries = (await served.client.get(f"/v1/jobs/{done}/deliveries")).json()["data"]
    live.job_ids = [done, canceled]
    live.delivery_ids = [d["id"] for d in deliveries]
    assert live.delivery_ids
    return live


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Live]:
    """The gateway on uvicorn, in a thread with its own event loop, for the whole module."""
    tmp = tmp_path_factory.mktemp("fuzz")
    shutil.copy(sqlite_template, tmp / "gateway.db")
    settings = make_settings(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'gateway.db'}",
        allow_private_urls=True,
        gateway_admin_keys=SecretStr(f"fuzz:{KEY}"),
        quota_submits_per_minute=0,
    )
    server = GatewayThread(settings)
    live = server.start()
    served = requests.get(f"{live.url}/openapi.json", timeout=30).json()
    assert served == json.loads((REPO / "openapi" / "openapi.json").read_text()), "run `make openapi`"
    EXISTING["job_id"], EXISTING["delivery_id"] = live.job_ids, live.delivery_ids
    EXISTING["video_id"] = live.job_ids  # an OpenAI video is a job
    yield live
    server.stop()


class GatewayThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.live: Live | None = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="fuzz-gateway", daemon=True)

    def start(self) -> Live:
        self.thread.start()
        self.ready.wait(timeout=120)
        if self.error is not None:
            raise self.error
        assert self.live is not None, "the gateway did not start"
        return self.live

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the gateway did not stop"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        async with serve(self.settings) as served:
            self.live = await seed(served)
            self.ready.set()
            await self.stopping.wait()


#: Filled by the `live` fixture before any example is generated (generation happens when the test runs).
EXISTING: dict[str, list[str]] = {"job_id": [], "delivery_id": [], "video_id": []}
#: Operations that make a job (each one made is canceled at once), and the status they answer it with.
CREATES = {
    ("POST", "/v1/jobs"): 202,
    ("POST", "/v1/videos"): 200,
    ("POST", "/v1/videos/{video_id}/remix"): 200,
}


def with_existing_ids(parameters: dict[str, Any] | None) -> SearchStrategy[dict[str, Any] | None]:
    """Keep each generated id, or use one that exists."""
    strategy: SearchStrategy[dict[str, Any] | None] = st.just(parameters)
    if parameters is None:
        return strategy
    for name, known in EXISTING.items():
        if name in parameters and known:
            strategy = strategy.flatmap(_maybe_replace(name, known))
    return strategy


def _maybe_replace(
    name: str, known: list[str]
) -> Callable[[dict[str, Any] | None], SearchStrategy[dict[str, Any] | None]]:
    def choose(params: dict[str, Any] | None) -> SearchStrategy[dict[str, Any] | None]:
        assert params is not None
        replaced = st.sampled_from(known).map(lambda value: {**params, name: value})
        return st.one_of(st.just(params), replaced)

    return choose


schema = schemathesis.openapi.from_path(
    REPO / "openapi" / "openapi.json", config=schemathesis.Config.from_dict(CONFIG)
)


@schema.hook("flatmap_path_parameters")
def existing_ids(context: Any, parameters: dict[str, Any] | None) -> SearchStrategy[dict[str, Any] | None]:
    return with_existing_ids(parameters)


@schema.parametrize()
def test_the_api_answers_every_request_as_documented(case: schemathesis.Case[Any], live: Live) -> None:
    response = case.call_and_validate(base_url=live.url, headers=AUTH)
    if CREATES.get((case.method.upper(), case.path)) == response.status_code:
        # Nothing may stay unfinished: an open job would hold event streams and `Prefer: wait` open.
        job_id = response.json()["id"]
        canceled = requests.post(f"{live.url}/v1/jobs/{job_id}/cancel", headers=AUTH, timeout=30)
        assert canceled.status_code == 200
