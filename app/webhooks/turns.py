"""Which endpoints get the dispatcher's next slots: round robin across origins, a cap on each. Pure.

A slow or hanging receiver keeps its deliveries in flight, so counting what is in flight is what keeps it
from taking every slot: an origin's next delivery has turn `in flight + 1`, the one after `in flight + 2`,
and so on up to the cap; slots go by turn, ties to the origin whose oldest due delivery is oldest. With
nothing in flight anywhere that is plain round robin, oldest first; an origin at its cap gets nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Backlog:
    """An origin's due deliveries: how many (those in flight included) and when the oldest fell due."""

    origin: str
    due: int
    oldest: datetime


def take_turns(
    backlogs: Iterable[Backlog], in_flight: Mapping[str, int], per_origin: int, want: int
) -> list[str]:
    """One origin per slot, in the order the slots should be filled, at most `want` of them; never so
    many for an origin that more than `per_origin` of its deliveries would be in flight."""
    waiting: list[tuple[Backlog, int, int]] = []  # (backlog, in flight, last turn it can have)
    for backlog in sorted(backlogs, key=lambda b: (b.oldest, b.origin)):
        busy = in_flight.get(backlog.origin, 0)
        last = min(per_origin, backlog.due)  # `due` counts its deliveries in flight too
        if busy < last:
            waiting.append((backlog, busy, last))
    order: list[str] = []
    for turn in range(1, per_origin + 1):
        for backlog, busy, last in waiting:
            if busy < turn <= last:
                order.append(backlog.origin)
                if len(order) == want:
                    return order
    return order
