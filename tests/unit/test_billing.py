"""The price table and a job's cost (app/billing/): every built-in row, billing from `usage` alone, the
region from the base URL, and PRICE_TABLE_FILE's overrides, extensions and refusals."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from app import wiring
from app.billing.cost import MixedCurrencies, Pricing, region_for_base_url, resolve_region
from app.billing.table import PriceTableError, builtin_table, load_table
from tests.conftest import make_settings

TABLE = builtin_table()


ROWS = [pytest.param(key, price, id="/".join(map(str, key))) for key, price in TABLE.rows.items()]


@pytest.mark.parametrize(("key", "price"), ROWS)
def test_every_row_prices_its_own_lookup(key: tuple[str, str, str, bool | None], price: object) -> None:
    region, model, tier, audio = key
    pricing = Pricing(TABLE, region)
    # A "*" row holds for every tier; a row without sound for either sound.
    asked_tier = "720P" if tier == "*" else tier
    asked_audio = True if audio is None else audio
    assert TABLE.lookup(region, model, asked_tier, asked_audio) == price
    cost = pricing.estimate(model, tier=asked_tier, audio=asked_audio, seconds=5)
    assert cost is not None and cost.estimated and cost.currency == {"cn-beijing": "CNY"}.get(region, "USD")
    assert cost.amount == cost.unit_price * 5 and cost.price_version == "2026-12-01"


def test_the_issue_case_and_the_table_source_checks() -> None:
    beijing = Pricing(TABLE, "cn-beijing")
    cost = beijing.estimate("wan2.6-i2v-flash", tier="720P", audio=True, seconds=5)
    assert cost is not None and cost.as_json() == {
        "amount": "1.50",
        "currency": "CNY",
        "billed_seconds": 5,
        "unit_price": "0.30",
        "price_version": "2026-12-01",
        "estimated": True,
    }
    silent = beijing.estimate("wan2.6-i2v-flash", tier="1080P", audio=False, seconds=4)
    assert silent is not None and silent.as_json()["amount"] == "1.00"
    # Singapore in USD, 2.1 models under their international spelling; US only where §7 gives a price.
    assert TABLE.lookup("ap-southeast-1", "wan2.6-i2v-flash", "1080P", False).unit_price == Decimal("0.0375")  # type: ignore[union-attr]
    assert TABLE.lookup("ap-southeast-1", "wan2.1-i2v-turbo", "480P", None) is not None
    assert TABLE.lookup("ap-southeast-1", "wan2.2-i2v-flash", "1080P", None) is None  # "—" in §7
    assert TABLE.lookup("us-east-1", "wan2.6-i2v-us", "720P", None).unit_price == Decimal("0.10")  # type: ignore[union-attr]
    assert TABLE.lookup("us-east-1", "wan2.6-i2v", "720P", None) is None  # §7 names no currency


def test_billing_reads_usage_never_the_request() -> None:
    pricing = Pricing(TABLE, "cn-beijing")
    # DashScope's own count (10 s, 1080P, silent), whatever was asked; numbers as strings or floats (§3.2).
    billed = pricing.billed("wan2.6-i2v-flash", {"duration": 10.0, "SR": "1080", "audio": False, "fps": 30})
    assert billed is not None and billed.as_json() == {
        "amount": "2.50",
        "currency": "CNY",
        "billed_seconds": 10,
        "unit_price": "0.25",
        "price_version": "2026-12-01",
        "estimated": False,
    }
    # 2.1 and kf2v count `video_duration` and report no tier: one price for all.
    turbo = pricing.billed("wanx2.1-i2v-turbo", {"video_duration": 3, "video_ratio": "standard"})
    assert turbo is not None and (turbo.as_json()["amount"], turbo.as_json()["billed_seconds"]) == ("0.72", 3)
    assert pricing.billed("wan2.2-kf2v-flash", {"video_duration": 5, "SR": 480}).amount == Decimal("0.50")  # type: ignore[union-attr]
    free = pricing.free("wan2.6-i2v-flash", tier="720P", audio=True).as_json()
    assert (free["amount"], free["billed_seconds"], free["unit_price"], free["estimated"]) == (
        "0",
        0,
        "0.30",
        False,
    )


def test_an_unpriced_job_has_no_cost_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    pricing = Pricing(TABLE, "cn-beijing")
    with caplog.at_level(logging.WARNING, logger="app.billing.cost"):
        for _ in range(3):
            assert pricing.estimate("wan9-i2v", tier="720P", audio=None, seconds=5) is None
            assert pricing.billed("wan2.6-i2v-flash", {"duration": 5, "SR": 720}) is None  # sound unknown
        assert pricing.billed("wan2.6-i2v-flash", {"SR": 720, "audio": True}) is None  # no seconds
    assert [r.getMessage().split(" (")[0] for r in caplog.records if "no price" in r.getMessage()] == [
        "no price for wan9-i2v 720P",
        "no price for wan2.6-i2v-flash 720P",
    ]
    assert pricing.free("wan9-i2v", tier=None, audio=None).as_json()["unit_price"] == "0"


@pytest.mark.parametrize(
    ("base_url", "region"),
    [
        ("https://dashscope.aliyuncs.com/api/v1", "cn-beijing"),
        ("https://dashscope-intl.aliyuncs.com/api/v1", "ap-southeast-1"),
        ("https://dashscope-us.aliyuncs.com/api/v1", "us-east-1"),
        ("https://ws-123.ap-southeast-1.maas.aliyuncs.com/api/v1", "ap-southeast-1"),
        ("https://ws-123.cn-beijing.maas.aliyuncs.com/api/v1", "cn-beijing"),
        ("https://ws-123.eu-central-1.maas.aliyuncs.com/api/v1", None),
        ("http://127.0.0.1:43121/api/v1", None),  # the sandbox
    ],
)
def test_region_from_the_base_url(base_url: str, region: str | None) -> None:
    assert region_for_base_url(base_url) == region
    assert resolve_region(None, base_url) == (region or "cn-beijing")
    assert resolve_region("us-east-1", base_url) == "us-east-1"


def test_settings_pick_the_region_and_the_table(tmp_path: Path) -> None:
    intl = make_settings(
        tmp_path, "sqlite://", dashscope_base_url="https://dashscope-intl.aliyuncs.com/api/v1"
    )
    assert wiring.pricing(intl, intl.dashscope_base_url).currency == "USD"
    sandbox = make_settings(tmp_path, "sqlite://")
    assert wiring.pricing(sandbox, "http://127.0.0.1:9/api/v1").region == "cn-beijing"
    pinned = make_settings(tmp_path, "sqlite://", dashscope_region="ap-southeast-1")
    assert wiring.pricing(pinned, "http://127.0.0.1:9/api/v1").region == "ap-southeast-1"


def test_price_table_file_overrides_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        'version = "acme-7"\n'
        '[regions.cn-beijing.models."wan2.6-i2v-flash"]\n'
        '"720P" = { audio = "0.28", silent = "0.14" }\n'
        '[regions.cn-beijing.models."wan3-i2v"]\n'
        '"*" = "2"\n'
    )
    table = load_table(path)
    assert table.version == "2026-12-01+acme-7"
    beijing = Pricing(table, "cn-beijing")
    assert beijing.estimate("wan2.6-i2v-flash", tier="720P", audio=True, seconds=5).amount == Decimal("1.40")  # type: ignore[union-attr]
    # The model is taken whole from the file: its 1080P row is gone, the other models stay.
    assert table.lookup("cn-beijing", "wan2.6-i2v-flash", "1080P", True) is None
    assert table.lookup("cn-beijing", "wan2.6-i2v", "720P", None) is not None
    assert beijing.billed("wan3-i2v", {"duration": 3}).as_json()["price_version"] == "2026-12-01+acme-7"  # type: ignore[union-attr]
    as_json = tmp_path / "prices.json"
    as_json.write_text(
        json.dumps({"version": "j1", "regions": {"us-east-1": {"models": {"wan2.6-i2v": {"720P": "0.1"}}}}})
    )
    assert load_table(as_json).lookup("us-east-1", "wan2.6-i2v", "720P", None) is not None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            'version = "x"\n[regions.cn-beijing.models."m"]\n"720P" = 0.3\n',
            '"m"."720P": a price is a decimal string',
        ),
        ('version = "x"\n[regions.cn-beijing.models."m"]\n"4K" = "1"\n', '"m"."4K": unknown tier'),
        ('version = "x"\n[regions.cn-beijing.models."m"]\n"720P" = "cheap"\n', "'cheap' is not a decimal"),
        (
            'version = "x"\n[regions.cn-beijing.models."m"]\n"720P" = { audio = "1" }\n',
            "exactly `audio` and `silent`",
        ),
        (
            'version = "x"\n[regions.eu-central-1.models."m"]\n"720P" = "1"\n',
            "regions.eu-central-1: unknown region",
        ),
        ('version = "x"\n[regions.cn-beijing]\ncurrency = "USD"\n', "cn-beijing bills in CNY"),
        ('[regions.cn-beijing.models."m"]\n"720P" = "1"\n', "version: a non-empty string"),
        ("version = \n", "not valid toml"),
    ],
)
def test_a_bad_price_table_file_names_its_entry(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PriceTableError, match="PRICE_TABLE_FILE") as raised:
        load_table(path)
    assert named in str(raised.value)
    with pytest.raises(PriceTableError, match="cannot be read"):
        load_table(tmp_path / "missing.toml")


def test_the_documented_example_file_is_a_valid_table(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "PRICES.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "prices.toml"
    path.write_text(example)
    table = load_table(path)
    assert table.version == "2026-12-01+acme-3"
    assert table.lookup("cn-beijing", "wan2.7-i2v", "720P", None) is not None
    assert table.lookup("us-east-1", "wan2.6-i2v", "1080P", None) is not None


def test_budget_amounts_and_periods() -> None:
    from datetime import UTC, datetime

    from app.billing.cost import from_micros, to_micros
    from app.tenants.quotas import period_bounds

    assert [to_micros(Decimal(a)) for a in ("1.5", "0.000001", "0.0000005", "3")] == [
        1_500_000,
        1,
        1,
        3_000_000,
    ]
    assert [str(from_micros(m)) for m in (1_500_000, 0, 123_456, 3_000_000)] == [
        "1.50",
        "0.00",
        "0.123456",
        "3.00",
    ]
    late = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert period_bounds("day", late) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", late) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", datetime(2026, 2, 3, 4, tzinfo=UTC))[1] == datetime(2026, 3, 1, tzinfo=UTC)
    assert period_bounds("total", late) == (None, None)


def test_a_pool_bills_each_account_in_its_region_and_reserves_the_priciest(tmp_path: Path) -> None:
    """Singapore and Virginia (both USD): each bill is its account's price; the estimate, made before
    the job has an account, is the priciest region's, so it is never below any bill. Mixing currencies
    (Beijing's CNY with Singapore's USD) is refused, naming each account."""
    prices = tmp_path / "prices.toml"
    prices.write_text(
        'version = "us-1"\n[regions.us-east-1.models."wan2.6-i2v-flash"]\n'
        '"720P" = { audio = "0.07", silent = "0.02" }\n'
    )
    accounts = json.dumps(
        [
            {"name": "sg", "api_key": "sk-a", "region": "ap-southeast-1"},
            {"name": "us", "api_key": "sk-b", "region": "us-east-1"},
        ]
    )
    settings = make_settings(
        tmp_path, "sqlite+aiosqlite://", price_table_file=prices, dashscope_accounts=accounts
    )
    pricing = wiring.pricing(settings, "http://127.0.0.1:1", accounts=settings.upstream_accounts)
    assert pricing.regions == ["ap-southeast-1", "us-east-1"] and pricing.currency == "USD"
    usage = {"duration": 5, "SR": 720, "audio": True}
    sg = pricing.billed("wan2.6-i2v-flash", usage, account="sg")
    us = pricing.billed("wan2.6-i2v-flash", usage, account="us")
    assert sg is not None and (sg.amount, sg.unit_price, sg.currency) == (
        Decimal("0.25"),
        Decimal("0.05"),
        "USD",
    )
    assert us is not None and (us.amount, us.unit_price) == (Decimal("0.35"), Decimal("0.07"))
    for audio, bill_sg, bill_us in ((True, "0.05", "0.07"), (False, "0.025", "0.02")):  # priciest differs
        estimate = pricing.estimate("wan2.6-i2v-flash", tier="720P", audio=audio, seconds=5)
        assert estimate is not None and estimate.estimated
        assert estimate.unit_price == max(Decimal(bill_sg), Decimal(bill_us)), (audio, estimate)
    # A price only one region has: the estimate is that one; a job billed where it is unpriced has none.
    only_sg = pricing.estimate("wan2.5-i2v-preview", tier="480P", audio=None, seconds=5)
    assert only_sg is not None and only_sg.amount == Decimal("0.25")
    assert pricing.billed("wan2.5-i2v-preview", {"duration": 5, "SR": 480}, account="us") is None
    # Free jobs show their account's unit price; an unbound one (failed while queued) the priciest.
    assert pricing.free("wan2.6-i2v-flash", tier="720P", audio=True, account="sg").unit_price == Decimal(
        "0.05"
    )
    assert pricing.free("wan2.6-i2v-flash", tier="720P", audio=True).unit_price == Decimal("0.07")
    # The single account keeps its one region.
    assert Pricing(TABLE, "cn-beijing").regions == ["cn-beijing"]

    intl = "https://dashscope-intl.aliyuncs.com/api/v1"
    mixed = json.dumps(
        [
            {"name": "bj", "api_key": "sk-a", "region": "cn-beijing"},
            {"name": "sg", "api_key": "sk-b", "base_url": intl},  # its region from its host
        ]
    )
    settings = make_settings(tmp_path, "sqlite+aiosqlite://", dashscope_accounts=mixed)
    with pytest.raises(MixedCurrencies) as refused:
        wiring.pricing(settings, "http://127.0.0.1:1", accounts=settings.upstream_accounts)
    message = str(refused.value)
    assert "bj: cn-beijing (CNY)" in message and "sg: ap-southeast-1 (USD)" in message, message
    assert "one currency" in message, message
