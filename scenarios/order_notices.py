"""Balance changes an order causes, told to the customer: points earned, spent, taken back, owed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import Any, Protocol

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import LedgerReader, balance_view, order_source, refund_source
from scenarios.orders import OrderEvent
from storage.customers import CustomerRecord
from storage.ledger import EntryKind, EntryRecord, LedgerSnapshot

ORDER_POINTS = "order_points"
# An order causes at most an accrual and a redemption, then (cancelled or refunded) a reversal,
# a restoration and a correction, and a partial refund a reversal and a restoration; they are
# the customer's newest entries while the order's transaction holds the customer's lock, so
# this many newest entries always contain them.
_RECENT_ENTRIES = 20
_CANCELLING = frozenset({"cancelled", "refunded"})


class CustomerLookup(Protocol):
    async def customer(self, *, customer_id: int) -> CustomerRecord | None: ...

    async def customers(self, *, customer_ids: Sequence[int]) -> dict[int, CustomerRecord]: ...


class NoticeReader(LedgerReader, Protocol):
    async def snapshots(self, *, customer_ids: Sequence[int]) -> dict[int, LedgerSnapshot]: ...

    async def entries_of(self, *, sources: Sequence[str]) -> dict[str, list[EntryRecord]]: ...


class OrderPointsNotices:
    """An order follower: after an order is recorded, cancelled, refunded or partly refunded,
    one transactional message tells the member what their points did
    (``order-points:<order>:<event>`` is its key, the event of a partial refund being
    ``refund:<refund id>``, so an event is told once, whatever the retries). It reads the
    ledger rather than trusting the caller's figures, so the message says what was written.
    Imported history is told nothing."""

    def __init__(
        self,
        *,
        customers: CustomerLookup,
        reader: NoticeReader,
        outbox: OutboxWriter,
        clock: Clock,
        zone: tzinfo,
    ) -> None:
        self._customers = customers
        self._reader = reader
        self._outbox = outbox
        self._clock = clock
        self._zone = zone

    async def after_order(self, event: OrderEvent) -> None:
        name = _event_name(event)
        if name is None:
            return
        assert event.customer_id is not None
        source = _source(event)
        entries = [
            entry
            for entry in await self._reader.history(
                customer_id=event.customer_id, limit=_RECENT_ENTRIES
            )
            if entry.source == source
        ]
        snapshot = await self._reader.snapshot(customer_id=event.customer_id)
        context = self._context(event, name, entries, snapshot)
        if context is None:
            return
        customer = await self._customers.customer(customer_id=event.customer_id)
        await self._tell(event, name, customer, context)

    async def after_orders(self, events: Sequence[OrderEvent]) -> None:
        """The entries, balances and chats of these orders' customers read at once."""
        told = [(event, name) for event in events if (name := _event_name(event)) is not None]
        if not told:
            return
        members = [event.customer_id for event, _ in told if event.customer_id is not None]
        entries = await self._reader.entries_of(sources=[_source(event) for event, _ in told])
        snapshots = await self._reader.snapshots(customer_ids=members)
        contexts = []
        for event, name in told:
            assert event.customer_id is not None
            theirs = [e for e in entries[_source(event)] if e.customer_id == event.customer_id]
            context = self._context(event, name, theirs, snapshots[event.customer_id])
            if context is not None:
                contexts.append((event, name, context))
        if not contexts:
            return
        people = await self._customers.customers(
            customer_ids=[event.customer_id for event, _, _ in contexts if event.customer_id]
        )
        for event, name, context in contexts:
            assert event.customer_id is not None
            await self._tell(event, name, people.get(event.customer_id), context)

    async def _tell(
        self,
        event: OrderEvent,
        name: str,
        customer: CustomerRecord | None,
        context: dict[str, Any],
    ) -> None:
        if customer is None or customer.telegram_id is None:
            return
        await enqueue(
            self._outbox,
            Outgoing(
                dedupe_key=f"order-points:{event.order_id}:{_event_key(event, name)}",
                chat_id=customer.telegram_id,
                category=Category.TRANSACTIONAL,
                kind=ORDER_POINTS,
                content={"template": "order_points.html", "context": context},
                customer_id=customer.id,
            ),
            clock=self._clock,
        )

    def _context(
        self,
        event: OrderEvent,
        name: str,
        entries: Sequence[EntryRecord],
        snapshot: LedgerSnapshot,
    ) -> dict[str, Any] | None:
        """What the message says, from the order's entries and the balance after them
        (None: the points did not move)."""
        amounts = {kind: 0 for kind in EntryKind}
        for entry in entries:
            amounts[entry.kind] += entry.amount
        now = self._clock.now()
        available = balance_view(snapshot, at=now, zone=self._zone).available
        context: dict[str, Any] = {
            "event": name,
            "order_id": event.order_id,
            "available": available,
            "debt": snapshot.account.debt,
        }
        if name == "new":
            earned = amounts[EntryKind.ACCRUAL]
            spent = -amounts[EntryKind.REDEMPTION]
            if earned <= 0 and spent <= 0:
                return None
            accrual = next((e for e in entries if e.kind is EntryKind.ACCRUAL), None)
            lot = next(
                (lot for lot in snapshot.open_lots if accrual and lot.entry_id == accrual.id),
                None,
            )
            # What the lot lacks right after it was written went to pay off a debt.
            debt_paid = earned - (lot.remaining if lot is not None else 0)
            pending_day = None
            if lot is not None and lot.available_at > now:
                pending_day = lot.available_at.astimezone(self._zone).date().isoformat()
            context.update(earned=earned, spent=spent, debt_paid=debt_paid, day=pending_day)
            return context
        reversed_points = -amounts[EntryKind.REVERSAL]
        restored = amounts[EntryKind.RESTORATION]
        corrected = -amounts[EntryKind.CORRECTION]
        if reversed_points <= 0 and restored <= 0 and corrected <= 0:
            return None
        context.update(reversed=reversed_points, restored=restored, corrected=corrected)
        if name == "partial":
            # A partial refund takes nothing from the points it gives back, so what its lots
            # lack right after they were written paid off a debt (a full refund's correction
            # may take from them, so it says only what is still owed).
            restoration = next((e for e in entries if e.kind is EntryKind.RESTORATION), None)
            left = sum(
                lot.remaining
                for lot in snapshot.open_lots
                if restoration is not None and lot.entry_id == restoration.id
            )
            context.update(debt_paid=restored - left)
        return context


def _event_name(event: OrderEvent) -> str | None:
    """Which event of its order's points this is; None when nothing is told (a guest's
    order, imported history, a delivery: its points were settled when the order came in)."""
    if event.customer_id is None or not event.recent:
        return None
    if event.refund_key is not None:
        return "partial"
    if event.is_new:
        return "new"
    if event.status in _CANCELLING:
        return event.status
    return None


def _source(event: OrderEvent) -> str:
    """The ledger source of what this event wrote."""
    if event.refund_key is not None:
        return refund_source(event.order_id, event.refund_key)
    return order_source(event.order_id)


def _event_key(event: OrderEvent, name: str) -> str:
    """The order event's part of the message's key: one message per refund id."""
    return f"refund:{event.refund_key}" if event.refund_key is not None else name
