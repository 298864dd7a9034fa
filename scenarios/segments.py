"""Who a broadcast goes to: segments of the customer base by tier, recency and purchases."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from scenarios.problems import is_ascii_number


class SegmentKind(StrEnum):
    ALL = "all"  # every member of the program
    TIER = "tier"  # members whose paid spend puts them in one tier
    NEW = "new"  # the first order within segments.new_days
    REGULAR = "regular"  # two or more orders, the last one recent
    SLEEPING = "sleeping"  # overdue for their next order, not yet lost
    LOST = "lost"  # no order for lost_days
    SKU = "sku"  # bought this product
    CATEGORY = "category"  # bought something in this category
    INACTIVE = "inactive"  # no order for at least N days (order history, not the join date)


# Kinds that need one more value from the admin, and what it is.
NEEDS_VALUE = {
    SegmentKind.TIER: "tier",
    SegmentKind.SKU: "sku",
    SegmentKind.CATEGORY: "category",
    SegmentKind.INACTIVE: "days",
}


class InvalidSegmentError(ValueError):
    """A segment that names an unknown tier, an empty sku, or a nonsensical number of days."""


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    tier: str | None = None
    sku: str | None = None
    category: str | None = None
    days: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(**{**data, "kind": SegmentKind(data["kind"])})


def segment_with_value(kind: SegmentKind, raw: str, *, tier_names: tuple[str, ...]) -> Segment:
    """The segment for a kind that needs a value, from what the admin typed."""
    value = raw.strip()
    if kind is SegmentKind.TIER:
        if value.lower() not in {name.lower() for name in tier_names}:
            raise InvalidSegmentError(f"unknown tier {value!r}")
        name = next(name for name in tier_names if name.lower() == value.lower())
        return Segment(kind, tier=name)
    if kind is SegmentKind.SKU:
        if not value or len(value) > 64 or " " in value:
            raise InvalidSegmentError("a sku is one word of at most 64 characters")
        return Segment(kind, sku=value)
    if kind is SegmentKind.CATEGORY:
        if not value or len(value) > 64:
            raise InvalidSegmentError("a category is at most 64 characters")
        return Segment(kind, category=value)
    if kind is SegmentKind.INACTIVE:
        if not is_ascii_number(value) or not 1 <= int(value) <= 3650:
            raise InvalidSegmentError("days must be a whole number from 1 to 3650")
        return Segment(kind, days=int(value))
    raise InvalidSegmentError(f"{kind} needs no value")
