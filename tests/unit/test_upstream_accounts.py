"""DASHSCOPE_ACCOUNTS: validation names the entry; a job's account is the only one it is asked about."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from app.config import Settings, parse_accounts
from app.providers.base import AccountPool, PermanentError


def test_accounts_parse_and_errors_name_the_entry() -> None:
    accounts = parse_accounts(
        '[{"name": "a", "api_key": "sk-a"}, {"name": "b", "api_key": "sk-b", '
        '"base_url": "https://dashscope-intl.aliyuncs.com/api/v1/", "region": "ap-southeast-1"}]'
    )
    assert [(a.name, a.base_url, a.region) for a in accounts] == [
        ("a", None, None),
        ("b", "https://dashscope-intl.aliyuncs.com/api/v1", "ap-southeast-1"),
    ]
    for raw, words in (
        ("nope", "not JSON"),
        ("[]", "non-empty JSON array"),
        ('[{"name": "a", "api_key": "sk-a"}, {"name": "b"}]', "DASHSCOPE_ACCOUNTS[1] ('b').api_key"),
        ('[{"name": "a", "api_key": "k", "region": "mars"}]', "DASHSCOPE_ACCOUNTS[0] ('a').region"),
        ('[{"name": "a", "api_key": "k"}, {"name": "a", "api_key": "j"}]', "used by an earlier entry"),
        ('[{"name": "a", "api_key": "k", "key": 1}]', "unknown field(s) key"),
        ('[{"name": "a", "api_key": "k", "base_url": "ftp://x"}]', "('a').base_url"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)):
            parse_accounts(raw)
    with pytest.raises(ValidationError, match=r"DASHSCOPE_ACCOUNTS\[0\]"):
        Settings(_env_file=None, dashscope_accounts='[{"name": ""}]')  # type: ignore[arg-type]
    settings = Settings(_env_file=None, dashscope_accounts='[{"name": "a", "api_key": "sk-secret-a"}]')  # type: ignore[arg-type]
    assert not settings.sandbox_enabled  # a pool is a real upstream
    assert "sk-secret-a" in settings.secret_values()  # the log redactor hides every account's key


async def test_a_job_on_an_unconfigured_account_is_refused_not_rerouted() -> None:
    pool = AccountPool([("a", object()), ("b", object())])  # type: ignore[list-item]
    assert pool.pooled and pool.names == ["a", "b"]
    assert not AccountPool.single(object()).pooled  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="'gone' is not configured"):
        await pool.of("gone").get("task-1")
    with pytest.raises(PermanentError, match="'None' is not configured"):
        await pool.of(None).get("task-1")  # a pre-pool job once the pool is configured
