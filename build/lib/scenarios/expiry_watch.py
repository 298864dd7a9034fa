"""Points expiry: write the expiries that are due, and warn customers before their points go."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import PointsLedger, expiry_warning_window
from scenarios.rules import Bonus
from storage.account import ExpiringLot

EXPIRY_WARNING = "expiry_warning"  # the outbox kind; /settings can switch it off
# A full pass over the customers to warn starts at most this often; dedupe keys keep it once.
SWEEP_EVERY = timedelta(hours=1)


class ExpiringLots(Protocol):
    async def expiring_lots(
        self, *, start: datetime, end: datetime, after_customer_id: int, limit: int
    ) -> list[ExpiringLot]: ...


@dataclass(frozen=True, slots=True)
class Warning:
    customer_id: int
    chat_id: int
    day: date  # in the customer's zone
    points: int


def warning_key(customer_id: int, day: date) -> str:
    """Once per customer and expiry date, however often the sweep sees those points."""
    return f"expiry-warning:{customer_id}:{day.isoformat()}"


def zone_of(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return fallback


def warnings_for(lots: list[ExpiringLot], *, shop_zone: ZoneInfo) -> list[Warning]:
    """One warning per customer and local expiry date, with all the points that go that day."""
    totals: dict[tuple[int, int, date], int] = defaultdict(int)
    for lot in lots:
        if lot.telegram_id is None:  # erased or never linked: nobody to tell
            continue
        day = lot.expires_at.astimezone(zone_of(lot.timezone, shop_zone)).date()
        totals[(lot.customer_id, lot.telegram_id, day)] += lot.amount
    return [
        Warning(customer_id=customer, chat_id=chat, day=day, points=points)
        for (customer, chat, day), points in sorted(totals.items())
    ]


def warning_message(warning: Warning) -> Outgoing:
    return Outgoing(
        dedupe_key=warning_key(warning.customer_id, warning.day),
        chat_id=warning.chat_id,
        category=Category.SERVICE,
        kind=EXPIRY_WARNING,
        content={
            "template": "expiry_warning.html",
            "context": {"points": warning.points, "day": warning.day.isoformat()},
        },
        customer_id=warning.customer_id,
    )


@dataclass(frozen=True, slots=True)
class ExpiryTick:
    expired: int  # expiry entries written
    warned: int  # warnings newly queued

    def __bool__(self) -> bool:
        # False when the tick did nothing, so the job that runs it every few seconds stays
        # quiet then (a dataclass instance would otherwise always count as something done).
        return bool(self.expired or self.warned)


class ExpiryWatch:
    """One tick: the due expiries, then one page of warnings. A pass over every customer with
    points in the warning window runs a page per tick and starts again ``SWEEP_EVERY``."""

    def __init__(
        self,
        *,
        ledger: PointsLedger,
        lots: ExpiringLots,
        outbox: OutboxWriter,
        bonus: Bonus,
        clock: Clock,
        shop_zone: ZoneInfo,
        page: int = 500,
    ) -> None:
        self._ledger = ledger
        self._lots = lots
        self._outbox = outbox
        self._bonus = bonus
        self._clock = clock
        self._zone = shop_zone
        self._page = page
        self._cursor = 0
        self._next_sweep: datetime | None = None

    async def tick(self) -> ExpiryTick:
        expired = await self._ledger.expire_due(batch=self._page)
        return ExpiryTick(expired=expired, warned=await self.warn_page())

    async def warn_page(self) -> int:
        now = self._clock.now()
        if self._bonus.expiry_warning_days == 0:
            return 0
        if self._cursor == 0 and self._next_sweep is not None and now < self._next_sweep:
            return 0
        start, end = expiry_warning_window(now, self._bonus)
        lots = await self._lots.expiring_lots(
            start=start, end=end, after_customer_id=self._cursor, limit=self._page
        )
        queued = 0
        for warning in warnings_for(lots, shop_zone=self._zone):
            queued += await enqueue(self._outbox, warning_message(warning), clock=self._clock)
        customers = {lot.customer_id for lot in lots}
        if len(customers) < self._page:
            self._cursor = 0
            self._next_sweep = now + SWEEP_EVERY
        else:
            self._cursor = max(customers)
        return queued
