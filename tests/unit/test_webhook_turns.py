"""Fair webhook dispatch, the pure parts: what one endpoint is, and who gets the next slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.webhooks.origins import origin_of
from app.webhooks.turns import Backlog, take_turns

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Hooks.Example.COM/a?x=1", "https://hooks.example.com:443"),
        ("https://hooks.example.com.:443/b", "https://hooks.example.com:443"),  # one server, one share
        ("http://hooks.example.com/a", "http://hooks.example.com:80"),
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080"),
        ("http://[::1]:81/", "http://[::1]:81"),
        ("https://bücher.example/", "https://xn--bcher-kva.example:443"),
    ],
)
def test_an_endpoint_is_the_urls_origin(url: str, origin: str) -> None:
    assert origin_of(url) == origin


def backlog(origin: str, due: int, minutes_old: int) -> Backlog:
    return Backlog(origin, due, T0 - timedelta(minutes=minutes_old))


def test_origins_take_turns_oldest_first_and_none_passes_its_cap() -> None:
    backlogs = [backlog("tarpit", 40, 10), backlog("b", 3, 1), backlog("c", 1, 5)]
    assert take_turns(backlogs, {}, per_origin=2, want=10) == ["tarpit", "c", "b", "tarpit", "b"]


def test_an_origin_holding_slots_comes_after_those_holding_none() -> None:
    backlogs = [backlog("tarpit", 40, 10), backlog("b", 3, 1)]
    assert take_turns(backlogs, {"tarpit": 3}, per_origin=4, want=8) == ["b", "b", "b", "tarpit"]
    assert take_turns(backlogs, {"tarpit": 4}, per_origin=4, want=8) == ["b", "b", "b"]


def test_deliveries_in_flight_are_part_of_an_origins_due_count() -> None:
    assert take_turns([backlog("a", 3, 1)], {"a": 1}, per_origin=4, want=8) == ["a", "a"]
    assert take_turns([backlog("a", 2, 1)], {"a": 2}, per_origin=4, want=8) == []
