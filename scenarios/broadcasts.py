"""Broadcasts: content and variants, the A/B split, progress with an ETA, and the report."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlparse

from scenarios.clock import Clock
from scenarios.delivery import MAX_TEXT
from scenarios.rules import Rules
from scenarios.segments import Segment, SegmentKind
from scenarios.tiers import TierLadder
from storage.segments import SegmentQuery


class BroadcastState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class InvalidBroadcastError(ValueError):
    """Content a broadcast cannot carry: empty or over-long text, a bad button."""


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    url: str


@dataclass(frozen=True, slots=True)
class Variant:
    """One version of the message: a text for everyone, optionally per language, one button."""

    text: str
    by_locale: dict[str, str] = field(default_factory=dict)
    button: Button | None = None

    def payload(self) -> dict[str, Any]:
        content: dict[str, Any] = {"texts": {"default": self.text, **self.by_locale}}
        if self.button is not None:
            content["buttons"] = [[{"text": self.button.text, "url": self.button.url}]]
        return content

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text": self.text, "by_locale": self.by_locale}
        if self.button is not None:
            data["button"] = {"text": self.button.text, "url": self.button.url}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variant:
        button = data.get("button")
        return cls(
            text=data["text"],
            by_locale=dict(data.get("by_locale", {})),
            button=Button(**button) if button else None,
        )


def check_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise InvalidBroadcastError("the text is empty")
    if len(text) > MAX_TEXT:
        raise InvalidBroadcastError(f"the text is {len(text)} characters; at most {MAX_TEXT}")
    return text


def parse_button(raw: str) -> Button:
    """ "Label | https://shop.example/sale" → a URL button."""
    label, separator, url = raw.partition("|")
    label, url = label.strip(), url.strip()
    if not separator or not label or len(label) > 64:
        raise InvalidBroadcastError("write the button as: Label | https://link")
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise InvalidBroadcastError("the link must start with http:// or https://")
    return Button(text=label, url=url)


def split_variants(customer_ids: Sequence[int], *, seed: int, ab: bool) -> list[tuple[int, str]]:
    """Each recipient's variant: all "A", or a seeded random half "A" and half "B"."""
    if not ab:
        return [(customer_id, "A") for customer_id in customer_ids]
    shuffled = sorted(customer_ids)
    random.Random(seed).shuffle(shuffled)  # reproducible split, not security  # noqa: S311
    half = (len(shuffled) + 1) // 2
    variant = {customer_id: ("A" if n < half else "B") for n, customer_id in enumerate(shuffled)}
    return [(customer_id, variant[customer_id]) for customer_id in customer_ids]


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    sent: int
    failed: int
    blocked: int
    skipped: int
    remaining: int
    unknown: int = 0

    @classmethod
    def from_counts(cls, counts: dict[str, int], *, total: int) -> Progress:
        remaining = sum(counts.get(state, 0) for state in ("pending", "held", "claimed", "sending"))
        return cls(
            total=total,
            sent=counts.get("sent", 0),
            failed=counts.get("failed", 0),
            blocked=counts.get("dropped", 0),
            skipped=counts.get("skipped", 0) + counts.get("cancelled", 0),
            remaining=remaining,
            unknown=counts.get("unknown", 0),
        )

    @property
    def finished(self) -> bool:
        return self.remaining == 0

    def eta(self, *, rate_per_second: float) -> timedelta:
        """How long the rest takes at the engine's rate (ignoring quiet hours and caps)."""
        return timedelta(seconds=round(self.remaining / rate_per_second))


@dataclass(frozen=True, slots=True)
class VariantResult:
    variant: str
    recipients: int
    delivered: int
    converted: int  # customers who ordered within conversion_days after delivery
    revenue: int  # minor units of those orders

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.delivered if self.delivered else 0.0


def conversion_window(sent_at: datetime, days: int) -> tuple[datetime, datetime]:
    return sent_at, sent_at + timedelta(days=days)


class SegmentSource(Protocol):
    async def count(self, query: SegmentQuery, *, marketing_per_week: int) -> tuple[int, int]: ...

    async def reachable_ids(self, query: SegmentQuery, *, marketing_per_week: int) -> list[int]: ...


class BroadcastStore(Protocol):
    async def chats_of(self, *, customer_ids: Sequence[int]) -> dict[int, int]: ...

    async def start(
        self,
        *,
        created_by: int,
        segment: dict[str, Any],
        variants: dict[str, dict[str, Any]],
        payloads: dict[str, dict[str, Any]],
        seed: int,
        recipients: Sequence[tuple[int, int, str]],
        now: datetime,
    ) -> int: ...


def segment_query(segment: Segment, *, rules: Rules, now: datetime) -> SegmentQuery:
    """The SQL terms of a segment: tier names become spend bounds in minor units."""
    extra: dict[str, Any] = {}
    if segment.kind is SegmentKind.TIER:
        ladder = TierLadder.from_rules(rules.bonus, currency=rules.shop.currency)
        names = [tier.name for tier in ladder.tiers]
        position = names.index(segment.tier or "")
        upper = ladder.tiers[position + 1].threshold if position + 1 < len(names) else None
        extra = {
            "spend_from": ladder.tiers[position].threshold,
            "spend_to": upper,
            "spend_since": ladder.window_start(now),
        }
    return SegmentQuery(
        kind=segment.kind.value,
        now=now,
        sleeping_days=rules.segments.sleeping_days,
        lost_days=rules.segments.lost_days,
        point_value=rules.bonus.point_value,
        sku=segment.sku,
        category=segment.category,
        days=segment.days,
        **extra,
    )


async def audience(
    segments: SegmentSource, segment: Segment, *, rules: Rules, clock: Clock
) -> tuple[int, int]:
    """(members in the segment, of them a broadcast can reach now: consent, not blocked, cap)."""
    return await segments.count(
        segment_query(segment, rules=rules, now=clock.now()),
        marketing_per_week=rules.delivery.marketing_per_week,
    )


async def launch(
    segments: SegmentSource,
    store: BroadcastStore,
    *,
    admin_id: int,
    segment: Segment,
    variants: dict[str, Variant],
    rules: Rules,
    clock: Clock,
    seed: int,
) -> tuple[int, int]:
    """Queue the broadcast for everyone reachable in the segment; returns (id, recipients)."""
    if not variants or set(variants) - {"A", "B"} or "A" not in variants:
        raise InvalidBroadcastError("a broadcast has a variant A and optionally B")
    now = clock.now()
    ids = await segments.reachable_ids(
        segment_query(segment, rules=rules, now=now),
        marketing_per_week=rules.delivery.marketing_per_week,
    )
    chats = await store.chats_of(customer_ids=ids)
    split = split_variants([i for i in ids if i in chats], seed=seed, ab="B" in variants)
    broadcast_id = await store.start(
        created_by=admin_id,
        segment=segment.as_json(),
        variants={name: variant.as_json() for name, variant in variants.items()},
        payloads={name: variant.payload() for name, variant in variants.items()},
        seed=seed,
        recipients=[(customer_id, chats[customer_id], v) for customer_id, v in split],
        now=now,
    )
    return broadcast_id, len(split)
