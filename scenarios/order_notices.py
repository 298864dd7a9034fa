"""Balance changes an order causes, told to the customer: points earned, spent, taken back, owed."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, Protocol

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue
from scenarios.ledger import LedgerReader, balance_view, order_source, refund_source
from scenarios.orders import OrderEvent
from storage.customers import CustomerRecord
from storage.ledger import EntryKind

ORDER_POINTS = "order_points"
# An order causes at most an accrual and a redemption, then (cancelled or refunded) a reversal,
# a restoration and a correction, and a partial refund a reversal and a restoration; they are
# the customer's newest entries while the order's transaction holds the customer's lock, so
# this many newest entries always contain them.
_RECENT_ENTRIES = 20
_CANCELLING = frozenset({"cancelled", "refunded"})


class CustomerLookup(Protocol):
    async def customer(self, *, customer_id: int) -> CustomerRecord | None: ...


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
        reader: LedgerReader,
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
        if event.customer_id is None or not event.recent:
            return
        if event.refund_key is not None:
            name = "partial"
        elif event.is_new:
            name = "new"
        elif event.status in _CANCELLING:
            name = event.status
        else:  # delivered: the points were settled when the order came in
            return
        context = await self._context(event, name)
        if context is None:
            return
        customer = await self._customers.customer(customer_id=event.customer_id)
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

    async def _context(self, event: OrderEvent, name: str) -> dict[str, Any] | None:
        assert event.customer_id is not None
        source = (
            refund_source(event.order_id, event.refund_key)
            if event.refund_key is not None
            else order_source(event.order_id)
        )
        entries = [
            entry
            for entry in await self._reader.history(
                customer_id=event.customer_id, limit=_RECENT_ENTRIES
            )
            if entry.source == source
        ]
        amounts = {kind: 0 for kind in EntryKind}
        for entry in entries:
            amounts[entry.kind] += entry.amount
        snapshot = await self._reader.snapshot(customer_id=event.customer_id)
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


def _event_key(event: OrderEvent, name: str) -> str:
    """The order event's part of the message's key: one message per refund id."""
    return f"refund:{event.refund_key}" if event.refund_key is not None else name
