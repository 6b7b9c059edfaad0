"""The pure parts of usage: window parsing and defaults, the tenant cap of the spend metrics, the CLI's
table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.api.usage import month_start, parse_instant
from app.client.usage import table
from app.errors import FieldError
from app.ops.usage import OTHER_TENANTS, Spend, capped


def test_instants_are_utc_and_bad_ones_name_the_field() -> None:
    assert parse_instant("2026-12-01", "from") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_instant("2026-12-01T08:00:00+08:00", "to") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_instant(None, "to") is None
    for bad in ("yesterday", "2026-02-30", "0001-01-01T00:00:00+01:00", ""):
        with pytest.raises(FieldError) as raised:
            parse_instant(bad, "to")
        assert raised.value.extra["field"] == "to"
    assert month_start(datetime(2026, 12, 1, tzinfo=UTC)) == datetime(2026, 11, 1, tzinfo=UTC)
    assert month_start(datetime(2026, 12, 9, 5, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)


def test_spend_keeps_the_biggest_tenants_and_sums_the_rest() -> None:
    rows = [Spend(f"t{i}", "m", "CNY", float(i), 1.0) for i in range(5)]
    assert capped(rows, limit=2) == [
        Spend(OTHER_TENANTS, "m", "CNY", 0.0 + 1 + 2, 3.0),
        Spend("t3", "m", "CNY", 3.0, 1.0),
        Spend("t4", "m", "CNY", 4.0, 1.0),
    ]


def test_the_cli_table_aligns_columns() -> None:
    body = {
        "from": "a",
        "to": "b",
        "group_by": "tenant",
        "data": [{"group": None, "jobs": 1, "billed_seconds": 5, "amount": "1.50", "currency": "CNY"}],
    }
    lines = table(body).splitlines()
    assert lines[0] == "usage from a to b by tenant"
    assert lines[2].split() == ["-", "1", "5", "1.50", "CNY"]
    assert "(no finished jobs)" in table({**body, "data": []})
