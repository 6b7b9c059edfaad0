"""The price table: what one second of generated video costs, by region × model × tier × sound.

The built-in table is data (`prices.toml`, shipped in this package, with its sources and what could not
be confirmed); `PRICE_TABLE_FILE` (same format, TOML or JSON) overrides entries of it or adds new ones, so
a new model or a new price needs no release. A table that cannot be read is a `PriceTableError` naming
the file and the entry, raised when the gateway starts. Prices are `Decimal`s, never floats.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

#: The regions the gateway prices, each with its currency (architecture §3.1 "Money").
REGION_CURRENCY: dict[str, str] = {"cn-beijing": "CNY", "ap-southeast-1": "USD", "us-east-1": "USD"}
TIERS: tuple[str, ...] = ("480P", "720P", "1080P")
#: The tier key of a price that holds for every tier (models whose usage reports none: wan2.1).
ANY_TIER = "*"


class PriceTableError(ValueError):
    """A price table that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Price:
    """One row: the unit price (per second) of a model's tier in a region, with or without sound."""

    unit_price: Decimal
    currency: str


@dataclass(frozen=True)
class PriceTable:
    version: str
    #: (region, model, tier or "*", sound: True/False, or None when the price does not depend on it)
    rows: dict[tuple[str, str, str, bool | None], Price] = field(default_factory=dict)

    def lookup(self, region: str, model: str, tier: str | None, audio: bool | None) -> Price | None:
        """The price of one second, or None when the table has no row for it. A row for the exact tier
        wins over one for any tier; a row priced by sound needs to know the sound."""
        for tier_key in (tier, ANY_TIER):
            if tier_key is None:
                continue
            if (price := self.rows.get((region, model, tier_key, None))) is not None:
                return price
            if audio is not None and (price := self.rows.get((region, model, tier_key, audio))) is not None:
                return price
        return None

    def merged(self, other: PriceTable) -> PriceTable:
        """This table with `other`'s models replacing or adding to its own (a model named in `other`
        for a region is taken whole from `other` there); the version names both."""
        replaced = {(region, model) for region, model, _, _ in other.rows}
        rows = {key: price for key, price in self.rows.items() if (key[0], key[1]) not in replaced}
        rows.update(other.rows)
        return PriceTable(version=f"{self.version}+{other.version}", rows=rows)


def builtin_table() -> PriceTable:
    text = resources.files("app.billing").joinpath("prices.toml").read_text(encoding="utf-8")
    return parse_table(tomllib.loads(text), source="built-in prices.toml")


def load_table(override: Path | None) -> PriceTable:
    """The built-in table, extended or overridden by the file at `override` (PRICE_TABLE_FILE)."""
    table = builtin_table()
    if override is None:
        return table
    source = f"PRICE_TABLE_FILE {override}"
    try:
        raw = override.read_bytes()
    except OSError as exc:
        raise PriceTableError(f"{source}: cannot be read ({exc.strerror})") from None
    try:
        if override.suffix.lower() == ".json":
            document = json.loads(raw)
        else:
            document = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise PriceTableError(f"{source}: not valid {override.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    return table.merged(parse_table(document, source=source))


def parse_table(document: Any, *, source: str) -> PriceTable:
    def fail(where: str, problem: str) -> PriceTableError:
        return PriceTableError(f"{source}: {where}: {problem}")

    if not isinstance(document, dict):
        raise fail("the document", "must be a table with `version` and `regions`")
    version = document.get("version")
    if not isinstance(version, str) or not version.strip():
        raise fail("version", 'a non-empty string is required (e.g. "2026-12-01")')
    regions = document.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise fail("regions", "a table of regions is required")
    unknown_keys = set(document) - {"version", "regions"}
    if unknown_keys:
        raise fail(", ".join(sorted(unknown_keys)), "unknown key (expected `version` and `regions`)")
    rows: dict[tuple[str, str, str, bool | None], Price] = {}
    for region, body in regions.items():
        where = f"regions.{region}"
        if region not in REGION_CURRENCY:
            raise fail(where, f"unknown region (one of {', '.join(REGION_CURRENCY)})")
        if not isinstance(body, dict):
            raise fail(where, "must be a table with `currency` and `models`")
        currency = body.get("currency", REGION_CURRENCY[region])
        if currency != REGION_CURRENCY[region]:
            raise fail(f"{where}.currency", f"{region} bills in {REGION_CURRENCY[region]}, not {currency!r}")
        models = body.get("models")
        if not isinstance(models, dict):
            raise fail(f"{where}.models", "a table of models is required")
        for model, tiers in models.items():
            model_where = f'{where}.models."{model}"'
            if not isinstance(tiers, dict) or not tiers:
                raise fail(model_where, 'must map tiers ("480P", "720P", "1080P" or "*") to prices')
            for tier, value in tiers.items():
                tier_where = f'{model_where}."{tier}"'
                if tier not in (*TIERS, ANY_TIER):
                    raise fail(tier_where, f"unknown tier (one of {', '.join((*TIERS, ANY_TIER))})")
                if isinstance(value, dict):
                    if set(value) != {"audio", "silent"}:
                        raise fail(tier_where, "a price by sound needs exactly `audio` and `silent`")
                    for sound, price in value.items():
                        rows[(region, model, tier, sound == "audio")] = Price(
                            _decimal(price, fail, f"{tier_where}.{sound}"), currency
                        )
                else:
                    rows[(region, model, tier, None)] = Price(_decimal(value, fail, tier_where), currency)
    return PriceTable(version=version.strip(), rows=rows)


def _decimal(value: Any, fail: Any, where: str) -> Decimal:
    # Floats are refused: 0.1 is not one tenth, and a price must be exactly what was written.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(where, f'a price is a decimal string (e.g. "0.30"), not {value!r}')
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise fail(where, f"{value!r} is not a decimal number") from None
    if not price.is_finite() or price < 0:
        raise fail(where, f"{value!r} is not a price (a finite number ≥ 0)")
    return price
