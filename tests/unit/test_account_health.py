"""AccountHealth: a refused pooled account gets no slots until its cool-down ends, then one (the probe);
any call that goes through puts it back, and only a refusal (401/403) takes it out; the single default
account is never taken out. (Shared across processes: tests/integration/test_account_pool.py.)"""

from __future__ import annotations

from app.providers.base import PermanentError
from app.providers.health import AccountHealth


async def test_refused_account_is_probed_after_the_cool_down_and_returns() -> None:
    now = [0.0]
    health = AccountHealth(["a", "b"], retry_s=60.0, clock=lambda: now[0])
    assert health.placeable("b", 3) == 3 and health.out() == {}
    await health.refused("b", "HTTP 401 InvalidApiKey")
    assert not health.up("b") and health.out() == {"b": "HTTP 401 InvalidApiKey"}
    assert health.placeable("b", 3) == 0 and health.placeable("a", 3) == 3
    now[0] = 60.0
    assert health.placeable("b", 3) == 1 and health.placeable("b", 0) == 0
    await health.probing("b")  # placed: the next probe waits another cool-down
    assert health.placeable("b", 3) == 0
    await health.refused("b", "HTTP 401 InvalidApiKey")
    now[0] = 121.0
    assert health.placeable("b", 3) == 1
    await health.accepted("b")
    assert health.up("b") and health.placeable("b", 3) == 3 and health.out() == {}

    # Only a refused key takes an account out: a bad request (400) on it says nothing of the key.
    assert not await health.observe("a", PermanentError("bad", status=400, code="InvalidParameter"))
    assert await health.observe("a", PermanentError("no", status=403, code="AccessDenied"))
    assert health.out() == {"a": "HTTP 403 AccessDenied"}

    single = AccountHealth([None], retry_s=60.0)
    await single.refused(None, "HTTP 401")
    assert single.names == [] and single.up(None) and single.placeable(None, 2) == 2
