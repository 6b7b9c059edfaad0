"""The ids a log line carries: a client's `X-Request-ID` kept only when it is safe to echo and log, and
the bound fields stamped on every record made inside the block (and gone after it)."""

from __future__ import annotations

import logging
import re

import pytest

from app import logcontext, logsafety


def test_request_ids_and_bound_fields(caplog: pytest.LogCaptureFixture) -> None:
    keep = [b"client-req-42", b"0c1e6ad4-7b9f-4a44-9a51-6d3c1b0e9f21", b"01HZX3J8Q4M7", b"a" * 128]
    for given in keep:
        assert logcontext.request_id_from(given) == given.decode()
    refuse = [None, b"", b"a" * 129, b"has space", b'quote"', b"line\nbreak", "caf\u00e9".encode(), b"-lead"]
    made = {logcontext.request_id_from(given) for given in refuse}
    assert len(made) == len(refuse) and all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in made)

    logsafety.install()
    caplog.set_level(logging.INFO, logger="tests.logcontext")
    log = logging.getLogger("tests.logcontext")
    with logcontext.bind(request_id="r1", tenant=None):
        with logcontext.bind(job_id="job_1"):
            logcontext.update(upstream_task_id="t1")
            log.info("inner")
        log.info("outer")
    log.info("after")
    inner, outer, after = caplog.records
    assert (inner.request_id, inner.job_id, inner.upstream_task_id) == ("r1", "job_1", "t1")  # type: ignore[attr-defined]
    assert outer.request_id == "r1" and not hasattr(outer, "job_id")  # type: ignore[attr-defined]
    assert not hasattr(outer, "tenant") and not hasattr(after, "request_id")
