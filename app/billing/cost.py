"""A job's cost: estimated from the request at submit, billed from DashScope's `usage` at success.

`Pricing` holds the price table and the region each upstream account bills in (one region for the single
account; in a DASHSCOPE_ACCOUNTS pool, each account's). Each function is pure given those (no database, no
clock), so quota code can reserve `estimate(...)` and settle to `billed(...)` or `free(...)`:

- `estimate`: duration × the unit price of the tier and sound the request settled on (`estimated`). A
  queued job has no account yet, so in a pool it is priced in the pool's most expensive region for that
  row: the reservation is never below what any account will bill;
- `billed`: what DashScope charges for a SUCCEEDED task, in the region of the account that ran it, read
  only from its `usage` — seconds (`duration`, else `video_duration`, else `output_video_duration`), tier
  (`SR`), sound (`audio`); never from the request, whose values the service may have changed;
- `free`: DashScope bills only success, so failed, canceled, reused and followed jobs cost "0".

Budgets and usage add amounts, so a pool bills in one currency: `Pricing` refuses accounts whose regions
bill in different currencies (`MixedCurrencies`, raised when the gateway starts).

A model, tier or sound the table does not price gives None (no cost shown) and one warning in the log
per (region, model, tier, sound): submit and the job go on, the operator adds the row with
PRICE_TABLE_FILE.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from app.billing.table import REGION_CURRENCY, Price, PriceTable

log = logging.getLogger(__name__)

DEFAULT_REGION = "cn-beijing"
#: Amounts are summed in SQL as integer millionths of the currency (`jobs.cost_micros`): exact on both
#: databases (SQLite has no decimal type; its NUMERIC would round through floats).
MICROS = Decimal(1_000_000)


def to_micros(amount: Decimal) -> int:
    """An amount in millionths of its currency (half up: prices have at most a few decimals)."""
    return int((amount * MICROS).to_integral_value(rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    """The amount of `micros` millionths, without trailing zeros beyond the cents ("1.5" → "1.50")."""
    amount = (Decimal(micros) / MICROS).normalize()
    cents = amount.quantize(Decimal("0.01"))
    return cents if cents == amount else amount


#: DashScope's hosts by region (docs/PROTOCOL.md §1.1). A workspace host is
#: `{WorkspaceId}.{region}.maas.aliyuncs.com`.
_HOSTS = {
    "dashscope.aliyuncs.com": "cn-beijing",
    "dashscope-intl.aliyuncs.com": "ap-southeast-1",
    "dashscope-us.aliyuncs.com": "us-east-1",
}


def region_for_base_url(base_url: str) -> str | None:
    """The region a DashScope base URL belongs to, or None for a host that names none we price (the
    sandbox on loopback, a proxy, Frankfurt, Hong Kong)."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host in _HOSTS:
        return _HOSTS[host]
    parts = host.split(".")
    if len(parts) == 5 and parts[2:] == ["maas", "aliyuncs", "com"] and parts[1] in REGION_CURRENCY:
        return parts[1]
    return None


def resolve_region(configured: str | None, base_url: str) -> str:
    """DASHSCOPE_REGION when set, else the base URL's region, else Beijing (the sandbox bills as Beijing)."""
    if configured:
        return configured
    derived = region_for_base_url(base_url)
    if derived is None:
        log.info("DASHSCOPE_REGION unset and %s names no priced region: prices are Beijing's", base_url)
        return DEFAULT_REGION
    return derived


@dataclass(frozen=True)
class Cost:
    """`job.cost` (architecture §3.1): amounts as decimal strings when shown."""

    amount: Decimal
    currency: str
    billed_seconds: Decimal
    unit_price: Decimal
    price_version: str
    estimated: bool

    def as_json(self) -> dict[str, Any]:
        seconds = self.billed_seconds
        return {
            "amount": str(self.amount),
            "currency": self.currency,
            "billed_seconds": int(seconds) if seconds == seconds.to_integral_value() else float(seconds),
            "unit_price": str(self.unit_price),
            "price_version": self.price_version,
            "estimated": self.estimated,
        }


class MixedCurrencies(ValueError):
    """A pool whose accounts bill in different currencies: budgets and usage could not add them up."""


@dataclass
class Pricing:
    table: PriceTable
    #: The region of the single account (no pool), or of a job bound to no known account.
    region: str
    #: A pool's accounts by name → the region each bills in (empty: the single account, `region`).
    accounts: Mapping[str, str] = field(default_factory=dict)
    _warned: set[tuple[str, str, str | None, bool | None]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        currencies = {REGION_CURRENCY[region] for region in self.regions}
        if len(currencies) > 1:
            each = ", ".join(
                f"{name}: {region} ({REGION_CURRENCY[region]})" for name, region in self.accounts.items()
            )
            raise MixedCurrencies(
                f"DASHSCOPE_ACCOUNTS mixes currencies ({each}): budgets, /v1/usage and the spend metrics "
                f"add amounts in one currency, so a pool's accounts must all bill in CNY (cn-beijing) or "
                f"all in USD (ap-southeast-1, us-east-1). Run one gateway per currency, or set each "
                f"account's `region`"
            )

    @property
    def regions(self) -> list[str]:
        """Every region a job may be billed in (one currency), sorted."""
        return sorted(set(self.accounts.values())) if self.accounts else [self.region]

    @property
    def currency(self) -> str:
        return REGION_CURRENCY[self.regions[0]]

    def region_of(self, account: str | None) -> str | None:
        """The region `account` bills in; None when the job is bound to no known pooled account."""
        if not self.accounts:
            return self.region
        return self.accounts.get(account) if account is not None else None

    def estimate(self, model: str, *, tier: str | None, audio: bool | None, seconds: float) -> Cost | None:
        """What a job asking for `seconds` of `tier` video (with sound or not) may cost: priced in the
        most expensive region of the pool that prices it (whichever account runs it, the bill is not
        more)."""
        price = self._priciest(model, tier, audio)
        if price is None:
            return None
        return self._cost(price, _seconds(seconds), estimated=True)

    def billed(
        self, model: str, usage: Mapping[str, Any] | None, *, account: str | None = None
    ) -> Cost | None:
        """What DashScope charges for a SUCCEEDED task on `account`, in that account's region, from its
        `usage` alone (None: not priced, or a usage without seconds — logged)."""
        usage = usage or {}
        seconds = _usage_seconds(usage)
        tier = _usage_tier(usage.get("SR"))
        audio = _usage_bool(usage.get("audio"))
        if seconds is None:
            log.warning("cannot bill a %s task: its usage has no seconds (%s)", model, dict(usage))
            return None
        region = self.region_of(account)
        price = (
            self._priciest(model, tier, audio) if region is None else self._price(region, model, tier, audio)
        )
        if price is None:
            return None
        return self._cost(price, seconds, estimated=False)

    def free(self, model: str, *, tier: str | None, audio: bool | None, account: str | None = None) -> Cost:
        """The cost of a job DashScope does not bill: 0, with the unit price it would have had on its
        account (on the pool's priciest region when it has none; 0 when the table has no price)."""
        region = self.region_of(account)
        if region is None:
            price = self._priciest(model, tier, audio, warn=False)
        else:
            price = self.table.lookup(region, model, tier, audio)
        unit = price.unit_price if price is not None else Decimal(0)
        return Cost(Decimal(0), self.currency, Decimal(0), unit, self.table.version, estimated=False)

    def _priciest(
        self, model: str, tier: str | None, audio: bool | None, *, warn: bool = True
    ) -> Price | None:
        prices = [
            price
            for region in self.regions
            if (price := self._price(region, model, tier, audio, warn=warn)) is not None
        ]
        return max(prices, key=lambda price: price.unit_price, default=None)

    def _price(
        self, region: str, model: str, tier: str | None, audio: bool | None, *, warn: bool = True
    ) -> Price | None:
        price = self.table.lookup(region, model, tier, audio)
        key = (model, region, tier, audio)
        if price is None and warn and key not in self._warned:
            self._warned.add(key)
            log.warning(
                "no price for %s %s (sound: %s) in %s (price table %s): its jobs show no cost; "
                "add it with PRICE_TABLE_FILE",
                model,
                tier or "(no tier)",
                audio,
                region,
                self.table.version,
            )
        return price

    def _cost(self, price: Price, seconds: Decimal, *, estimated: bool) -> Cost:
        return Cost(
            amount=price.unit_price * seconds,
            currency=price.currency,
            billed_seconds=seconds,
            unit_price=price.unit_price,
            price_version=self.table.version,
            estimated=estimated,
        )


def _number(value: Any) -> Decimal | None:
    """DashScope sends ints, floats or numeric strings (§3.2)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def _seconds(value: Any) -> Decimal:
    number = _number(value) or Decimal(0)
    # 10.0 s is 10 s: the amount is then 3.00, not 3.000.
    return Decimal(int(number)) if number == number.to_integral_value() else number


def _usage_seconds(usage: Mapping[str, Any]) -> Decimal | None:
    # `duration` is DashScope's billing seconds (wan2.6: input + output); 2.1 and kf2v say `video_duration`.
    for name in ("duration", "video_duration", "output_video_duration"):
        if (number := _number(usage.get(name))) is not None:
            return _seconds(number)
    return None


def _usage_tier(value: Any) -> str | None:
    number = _number(value)
    return f"{int(number)}P" if number is not None and number == number.to_integral_value() else None


def _usage_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
