"""Broadcasts: content and variants, the A/B split, progress with an ETA, and the report."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlparse

from scenarios.clock import Clock
from scenarios.delivery import MAX_TEXT
from scenarios.rules import Rules
from scenarios.segments import Segment, SegmentKind
from scenarios.tiers import TierLadder
from storage.broadcasts import BroadcastRecord
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


# An A/B difference is called significant below this two-sided p-value.
SIGNIFICANCE = 0.05


def fisher_exact_p(a_converted: int, a_delivered: int, b_converted: int, b_delivered: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2×2 table converted / not per variant.

    Exact for any size (a broadcast to 40 people is too small for the z-test's normal
    approximation): the probability, with the margins fixed, of a split at least as uneven
    as the one seen. Summed over the hypergeometric distribution in log space.
    """
    converted = a_converted + b_converted
    total = a_delivered + b_delivered
    if not 0 < converted < total:
        return 1.0

    def log_comb(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    def log_p(x: int) -> float:
        return (
            log_comb(converted, x)
            + log_comb(total - converted, a_delivered - x)
            - log_comb(total, a_delivered)
        )

    seen = log_p(a_converted)
    low, high = max(0, converted - b_delivered), min(converted, a_delivered)
    # A relative tolerance keeps tables exactly as likely as the seen one (ties) in the sum.
    p = sum(math.exp(log_p(x)) for x in range(low, high + 1) if log_p(x) <= seen + 1e-7 * abs(seen))
    return min(1.0, p)


@dataclass(frozen=True, slots=True)
class AbVerdict:
    """Which variant converted better, and whether chance alone could explain it."""

    leader: str | None  # None: both converted at the same rate
    other: str | None
    p_value: float  # Fisher's exact test, two-sided

    p_floor = Decimal("0.001")  # smaller p-values are shown as "< 0.001"

    @property
    def significant(self) -> bool:
        return self.leader is not None and self.p_value < SIGNIFICANCE

    @property
    def p_rounded(self) -> Decimal:
        return Decimal(self.p_value).quantize(self.p_floor, rounding=ROUND_HALF_UP)


def ab_verdict(results: Sequence[VariantResult]) -> AbVerdict | None:
    """The A/B result, when there are two variants and both reached someone."""
    if len(results) != 2 or not all(result.delivered for result in results):
        return None
    a, b = results
    p_value = fisher_exact_p(a.converted, a.delivered, b.converted, b.delivered)
    # Compare a.converted / a.delivered with b's without floats: cross-multiplied.
    left, right = a.converted * b.delivered, b.converted * a.delivered
    if left == right:
        return AbVerdict(None, None, p_value)
    leader, other = (a, b) if left > right else (b, a)
    return AbVerdict(leader.variant, other.variant, p_value)


@dataclass(frozen=True, slots=True)
class BroadcastReport:
    """A broadcast's figures: final once the conversion window after its end has closed."""

    broadcast_id: int
    results: list[VariantResult]
    days: int
    closes_at: datetime | None  # None while it is still being sent
    final: bool
    verdict: AbVerdict | None


class ReportSource(Protocol):
    async def get(self, *, broadcast_id: int) -> BroadcastRecord | None: ...

    async def results(
        self, *, broadcast_id: int, conversion_days: int
    ) -> list[tuple[str, int, int, int, int]]: ...


def report_due_at(record: BroadcastRecord, *, days: int) -> datetime | None:
    """When the conversion window of the last delivery closes: the final report's moment."""
    return record.finished_at + timedelta(days=days) if record.finished_at else None


async def broadcast_report(
    store: ReportSource, *, broadcast_id: int, days: int, clock: Clock
) -> BroadcastReport | None:
    """The figures now: deliveries, and the orders each recipient placed within ``days`` after
    their message went out (so far, until the window closes)."""
    record = await store.get(broadcast_id=broadcast_id)
    if record is None:
        return None
    results = [
        VariantResult(*row)
        for row in await store.results(broadcast_id=broadcast_id, conversion_days=days)
    ]
    closes_at = report_due_at(record, days=days)
    return BroadcastReport(
        broadcast_id=broadcast_id,
        results=results,
        days=days,
        closes_at=closes_at,
        final=closes_at is not None and clock.now() >= closes_at,
        verdict=ab_verdict(results),
    )


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
        new_days=rules.segments.new_days,
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
