"""A job's cost: estimated from the request at submit, billed from DashScope's `usage` at success.

`Pricing` holds the price table and the region the gateway's upstream account bills in. Each function is
pure given those (no database, no clock), so quota code can reserve `estimate(...)` and settle to
`billed(...)` or `free(...)`:

- `estimate`: duration × the unit price of the tier and sound the request settled on (`estimated`);
- `billed`: what DashScope charges for a SUCCEEDED task, read only from its `usage` — seconds
  (`duration`, else `video_duration`, else `output_video_duration`), tier (`SR`), sound (`audio`); never
  from the request, whose values the service may have changed;
- `free`: DashScope bills only success, so failed, canceled, reused and followed jobs cost "0".

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


@dataclass
class Pricing:
    table: PriceTable
    region: str
    _warned: set[tuple[str, str, str | None, bool | None]] = field(default_factory=set, repr=False)

    @property
    def currency(self) -> str:
        return REGION_CURRENCY[self.region]

    def estimate(self, model: str, *, tier: str | None, audio: bool | None, seconds: float) -> Cost | None:
        """What a job asking for `seconds` of `tier` video (with sound or not) should cost."""
        price = self._price(model, tier, audio)
        if price is None:
            return None
        return self._cost(price, _seconds(seconds), estimated=True)

    def billed(self, model: str, usage: Mapping[str, Any] | None) -> Cost | None:
        """What DashScope charges for a SUCCEEDED task, from its `usage` alone (None: not priced, or a
        usage without seconds — logged)."""
        usage = usage or {}
        seconds = _usage_seconds(usage)
        tier = _usage_tier(usage.get("SR"))
        audio = _usage_bool(usage.get("audio"))
        if seconds is None:
            log.warning("cannot bill a %s task: its usage has no seconds (%s)", model, dict(usage))
            return None
        price = self._price(model, tier, audio)
        if price is None:
            return None
        return self._cost(price, seconds, estimated=False)

    def free(self, model: str, *, tier: str | None, audio: bool | None) -> Cost:
        """The cost of a job DashScope does not bill: 0, with the unit price it would have had (0 when
        the table has none)."""
        price = self.table.lookup(self.region, model, tier, audio)
        unit = price.unit_price if price is not None else Decimal(0)
        return Cost(Decimal(0), self.currency, Decimal(0), unit, self.table.version, estimated=False)

    def _price(self, model: str, tier: str | None, audio: bool | None) -> Price | None:
        price = self.table.lookup(self.region, model, tier, audio)
        key = (model, self.region, tier, audio)
        if price is None and key not in self._warned:
            self._warned.add(key)
            log.warning(
                "no price for %s %s (sound: %s) in %s (price table %s): its jobs show no cost; "
                "add it with PRICE_TABLE_FILE",
                model,
                tier or "(no tier)",
                audio,
                self.region,
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
