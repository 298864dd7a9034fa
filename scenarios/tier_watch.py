"""Tier changes announced to the customer: after an order or a refund, and as a window rolls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import LedgerReader, tier_status
from scenarios.orders import OrderEvent
from scenarios.tiers import Downgrade, Tier, TierChange, TierLadder, TierWindow, compare_tiers
from scenarios.transactions import UnitOfWork
from storage.account import Standing
from storage.customers import CustomerRecord

TIER_CHANGE = "tier_change"


class SpendReader(LedgerReader, Protocol):
    async def paid_spends(
        self, *, customer_ids: Sequence[int], since: datetime | None
    ) -> dict[int, int]: ...


# A rolling window demotes customers as days pass; a full pass over them starts this often.
SWEEP_EVERY = timedelta(hours=1)


class StandingStore(Protocol):
    async def customer(self, *, customer_id: int) -> CustomerRecord | None: ...

    async def standing(self, *, customer_id: int) -> Standing | None: ...

    async def standings(self, *, customer_ids: Sequence[int]) -> dict[int, Standing]: ...

    async def save_standing(
        self, *, customer_id: int, tier: str, changes: int, now: datetime
    ) -> bool: ...

    async def standings_above(
        self, *, lowest: str, after_customer_id: int, limit: int
    ) -> list[int]: ...


def tier_change_message(
    customer: CustomerRecord,
    change: TierChange,
    *,
    number: int,
    window: TierWindow = TierWindow.LIFETIME,
) -> Outgoing | None:
    """The announcement of the ``number``-th tier change of this customer (its outbox key)."""
    if change is None or customer.telegram_id is None:
        return None
    return Outgoing(
        dedupe_key=f"tier-change:{customer.id}:{number}",
        chat_id=customer.telegram_id,
        category=Category.TRANSACTIONAL,
        kind=TIER_CHANGE,
        content={
            "template": "tier_change.html",
            "context": {
                "direction": "down" if isinstance(change, Downgrade) else "up",
                "tier": change.after.name,
                "previous": change.before.name,
                "cashback_bp": change.after.cashback_bp,
                # What the text says moved the tier down: the window rolling, or a refund.
                "window": window.value,
            },
        },
        customer_id=customer.id,
    )


class TierWatch:
    """Compares a customer's tier with the one they were last told about; a difference is
    recorded and announced once (the standing's change counter is the message's key).

    It is an order follower, so it runs inside the order's transaction: the points, the new
    standing and the announcement are committed together.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        store: StandingStore,
        reader: SpendReader,
        ladder: TierLadder,
        outbox: OutboxWriter,
        clock: Clock,
        page: int = 200,
    ) -> None:
        self._uow = uow
        self._store = store
        self._reader = reader
        self._ladder = ladder
        self._outbox = outbox
        self._clock = clock
        self._page = page
        self._cursor = 0
        self._next_sweep: datetime | None = None

    async def after_order(self, event: OrderEvent) -> None:
        if event.customer_id is not None:
            # Imported history moves the standing quietly: "you are gold now" about a year-old
            # order would be news to nobody.
            await self.check(customer_id=event.customer_id, announce=event.recent)

    async def after_orders(self, events: Sequence[OrderEvent]) -> None:
        """The spends and standings of these orders' customers read at once."""
        # A customer's tier follows their spend, not the order: one check each, announced
        # when any of their orders is recent (as ``after_order`` decides for one).
        announce: dict[int, bool] = {}
        for event in events:
            if event.customer_id is not None:
                announce[event.customer_id] = announce.get(event.customer_id, False) or event.recent
        if not announce:
            return
        since = self._ladder.window_start(self._clock.now())
        spends = await self._reader.paid_spends(customer_ids=list(announce), since=since)
        standings = await self._store.standings(customer_ids=list(announce))
        for customer_id, recent in announce.items():
            await self._settle(
                customer_id,
                self._ladder.tier_for(spends[customer_id]),
                standings.get(customer_id),
                announce=recent,
            )

    async def check(self, *, customer_id: int, announce: bool = True) -> TierChange:
        status = await tier_status(
            self._reader, customer_id=customer_id, ladder=self._ladder, clock=self._clock
        )
        standing = await self._store.standing(customer_id=customer_id)
        return await self._settle(customer_id, status.tier, standing, announce=announce)

    async def _settle(
        self, customer_id: int, tier: Tier, standing: Standing | None, *, announce: bool
    ) -> TierChange:
        """Record and announce the move from the standing last told to ``tier``, if any."""
        known = self._ladder.tiers[0]
        if standing is not None:
            # A tier renamed or removed in config.toml counts from the lowest one.
            known = next((t for t in self._ladder.tiers if t.name == standing.tier), known)
        change = compare_tiers(known, tier)
        if change is None:
            return None
        number = (standing.changes if standing is not None else 0) + 1
        saved = await self._store.save_standing(
            customer_id=customer_id, tier=tier.name, changes=number, now=self._clock.now()
        )
        if not saved:  # another writer recorded (and announced) this change
            return None
        customer = await self._store.customer(customer_id=customer_id) if announce else None
        if customer is not None:
            message = tier_change_message(
                customer, change, number=number, window=self._ladder.window
            )
            if message is not None:
                await enqueue(self._outbox, message, clock=self._clock)
        return change

    async def sweep_page(self) -> int:
        """One page of the customers a rolling window may demote; returns the changes found.
        With a lifetime window only refunds demote, and the order follower sees those."""
        if self._ladder.window is not TierWindow.ROLLING_12_MONTHS:
            return 0
        now = self._clock.now()
        if self._cursor == 0 and self._next_sweep is not None and now < self._next_sweep:
            return 0
        ids = await self._store.standings_above(
            lowest=self._ladder.tiers[0].name, after_customer_id=self._cursor, limit=self._page
        )
        if len(ids) == self._page:
            self._cursor = ids[-1]
        else:
            self._cursor = 0
            self._next_sweep = now + SWEEP_EVERY
        changed = 0
        for customer_id in ids:
            async with self._uow.transaction():  # one customer's change and its announcement
                changed += await self.check(customer_id=customer_id) is not None
        return changed
