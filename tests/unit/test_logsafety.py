"""The log redactor: whatever builds the line (the message, a formatter reading the arguments, a traceback),
secrets do not reach it."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import pytest
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from app import logsafety
from app.sandbox.settings import DEFAULT_API_KEY

#: A configured client key of no recognisable shape: only the exact-secret rule can catch it.
CONFIGURED = "Q7rT0pLm9XcV2bN8kJ4hG6fD1sA3zW5y"


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    logsafety.install([CONFIGURED])
    captured: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    logger = logging.getLogger("tests.logsafety")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield captured
    logger.removeHandler(handler)


def test_uvicorn_access_lines_are_redacted(records: list[logging.LogRecord]) -> None:
    """uvicorn's access formatter builds its line from the record's arguments, not from the message."""
    logger = logging.getLogger("tests.logsafety")
    logger.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/jobs/job_1?api_key={CONFIGURED}", "1.1", 422
    )
    logger.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/jobs?token=unknown-shape", "1.1", 422
    )
    formatter = AccessFormatter(LOGGING_CONFIG["formatters"]["access"]["fmt"], use_colors=False)
    lines = [formatter.format(record) for record in records]
    assert CONFIGURED not in lines[0] and "api_key=***" in lines[0], lines[0]
    assert "unknown-shape" not in lines[1] and "token=***" in lines[1], lines[1]
    assert '"GET /v1/jobs/job_1?api_key=*** HTTP/1.1" 422' in lines[0], lines[0]


@pytest.mark.parametrize(
    "name",
    ["api_key", "API_KEY", "apikey", "key", "token", "access_token", "signature", "Signature",
     "X-Amz-Signature", "X-Amz-Security-Token", "client_secret", "password"],
)  # fmt: skip
def test_credential_query_parameters_lose_their_value(name: str) -> None:
    text = logsafety.redact(f"GET /v1/jobs?limit=5&{name}=abc%2Fdef123&after=x HTTP/1.1")
    assert text == f"GET /v1/jobs?limit=5&{name}=***&after=x HTTP/1.1"


def test_other_query_parameters_and_lookalike_names_are_kept() -> None:
    text = "GET /v1/jobs?limit=5&monkey=banana&status=queued&cursor_key=abc HTTP/1.1"
    assert logsafety.redact(text) == text


def test_tracebacks_are_redacted(records: list[logging.LogRecord]) -> None:
    logger = logging.getLogger("tests.logsafety")
    try:
        raise RuntimeError(f"upstream refused {CONFIGURED} at https://x.test/v?signature=s3cr3t")
    except RuntimeError:
        logger.exception("failed")
    text = "\n".join(logging.Formatter().format(record) for record in records)
    assert text.endswith("RuntimeError: upstream refused *** at https://x.test/v")  # a signed URL: no query
    assert CONFIGURED not in text and "s3cr3t" not in text


def test_signed_urls_lose_their_query_string() -> None:
    """DashScope's OSS result links, S3 presigned URLs, the sandbox's and the gateway's own signed links:
    the query is a download credential and its expiry. Other URLs keep theirs."""
    oss = "https://r.oss-cn-beijing.aliyuncs.com/a/b.mp4?Expires=1796272176&OSSAccessKeyId=LTAI5t&Signature=q%2F="
    s3 = "https://b.s3.amazonaws.com/k.mp4?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F&X-Amz-Signature=ab12"
    ours = "http://127.0.0.1:8000/v1/links/job_1/video?expires=1796272176&signature=Zm9v"
    for url in (oss, s3, ours):
        bare = url.split("?")[0]
        assert logsafety.redact(f'GET {url} "HTTP/1.1 200 OK"') == f'GET {bare} "HTTP/1.1 200 OK"'
        assert logsafety.strip_query(url) == bare
    assert logsafety.redact("see https://x.test/jobs?limit=5&status=queued") == (
        "see https://x.test/jobs?limit=5&status=queued"
    )


def test_the_sandbox_key_is_public() -> None:
    """Every sandbox accepts `sk-sandbox` and the README prints it: logs show it (a worker's hint and the
    `wan-gateway sandbox` banner name it), while any other `sk-…` key is masked."""
    assert DEFAULT_API_KEY in logsafety.PUBLIC_KEYS
    logsafety.install([DEFAULT_API_KEY])  # the settings hand it over like any other key
    assert logsafety.redact("DASHSCOPE_API_KEY=sk-sandbox") == "DASHSCOPE_API_KEY=sk-sandbox"
    assert logsafety.redact("key sk-sandbox2, sk-sandboxes") == "key sk-***, sk-***"
    # The sandbox's further accounts (SANDBOX_ACCOUNT_COUNT) have public keys derived from it.
    assert logsafety.redact("accounts sk-sandbox-2, sk-sandbox-64") == "accounts sk-sandbox-2, sk-sandbox-64"
    assert logsafety.redact("key sk-sandbox-2x, sk-sandbox-0") == "key sk-***, sk-***"


def _redact_every_pattern(text: str) -> str:
    """The redactor as it was before its substring shortcuts: every pattern over every text."""
    for secret in logsafety._secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = logsafety._URL_WITH_QUERY.sub(logsafety._unsigned, text)
    text = logsafety._DATA_URI.sub(lambda m: f"{m.group(1)}<{len(m.group(2))} chars>", text)
    text = logsafety._BEARER.sub(r"\1***", text)
    text = logsafety._CREDENTIAL_PARAM.sub(r"\1***", text)
    return logsafety._KEY_SHAPED.sub(lambda m: m[0] if logsafety._public(m[0]) else f"{m[1]}***", text)


def test_the_shortcuts_redact_exactly_what_every_pattern_would() -> None:
    pieces = [
        "GET /v1/jobs/job_0123456789abcdef01234567 HTTP/1.1",
        "127.0.0.1:55412",
        "Authorization: BeArEr wg_abcdefghijklmnopqrstuvwxyz012345",
        "bearer" + "x" * 20,
        "?api_key=hunter2&x=1",
        ";Signature=abc%2Fdef",
        "https://r.oss.test/v.mp4?Expires=1&OSSAccessKeyId=LTAI5t&Signature=abc",
        "http://127.0.0.1:9/a?page=2",
        "X-Amz-Signature=0123abcd",
        "data:image/png;base64," + "A" * 64,
        "data:;base64," + "QUJD" * 10,
        "sk-sandbox",
        "sk-0123456789abcdef",
        "whsec_abcdefghij",
        "wg_short",
        CONFIGURED,
        "İstanbul ſ K",
        "token",
        "=",
        " ",
        "",
    ]
    rng = random.Random(10)
    texts = list(pieces)
    for _ in range(2000):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randrange(1, 5))))
    logsafety.install([CONFIGURED])
    for text in texts:
        assert logsafety.redact(text) == _redact_every_pattern(text), text
