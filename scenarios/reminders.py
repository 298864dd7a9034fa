"""Replenishment reminders: planned after each order, swept when due, answered by the customer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from scenarios.clock import Clock
from scenarios.delivery import Category, OutboxWriter, Outgoing, enqueue, next_morning
from scenarios.orders import FINAL_STATUSES, OrderEvent
from scenarios.replenishment import (
    Purchase,
    choose_interval,
    converts,
    learned_for_customer,
    learned_for_product,
    merged_purchases,
    plan,
    snoozed_until,
)
from scenarios.rules import QuietHours, Reminders
from scenarios.transactions import UnitOfWork
from storage.messages import MessageContent
from storage.reminders import (
    WAITING,
    CatalogProduct,
    DueReminder,
    LinePurchase,
    NewReminder,
    ReminderRecord,
    ReminderState,
    ReminderTotals,
)

KIND = "reminder"


class ReminderStore(Protocol):
    async def order_lines(self, *, order_ref: str) -> list[LinePurchase]: ...

    async def order_lines_many(
        self, *, order_refs: Sequence[str]
    ) -> dict[str, list[LinePurchase]]: ...

    async def purchases(self, *, customer_id: int, skus: Sequence[str]) -> list[LinePurchase]: ...

    async def catalog(self, *, skus: Sequence[str]) -> dict[str, CatalogProduct]: ...

    async def customer_zone(self, *, customer_id: int) -> str | None: ...

    async def stopped(self, *, customer_id: int, skus: Sequence[str]) -> set[str]: ...

    async def of_customers(
        self, *, customer_ids: Sequence[int], states: Sequence[str] = ...
    ) -> dict[int, list[ReminderRecord]]: ...

    async def of_customer(
        self, *, customer_id: int, states: Sequence[str] = WAITING
    ) -> list[ReminderRecord]: ...

    async def get(self, *, id: int, lock: bool = False) -> ReminderRecord | None: ...

    async def add(self, reminder: NewReminder, *, now: datetime) -> bool: ...

    async def cancel(
        self, *, ids: Sequence[int], reason: str, now: datetime, by_order: str | None = None
    ) -> int: ...

    async def convert(
        self, *, ids_revenue: Sequence[tuple[int, int]], order_ref: str, now: datetime
    ) -> None: ...

    async def withdraw_order(self, *, customer_id: int, order_ref: str, now: datetime) -> int: ...

    async def sent_to(
        self, *, customer_ids: Sequence[int], skus: Sequence[str], since: datetime
    ) -> dict[int, list[ReminderRecord]]: ...

    async def sent_for(
        self, *, customer_id: int, skus: Sequence[str], since: datetime
    ) -> list[ReminderRecord]: ...

    async def snooze(self, *, id: int, until: datetime, now: datetime) -> None: ...

    async def stop(self, *, customer_id: int, sku: str, now: datetime) -> int: ...


class ReminderQueue(Protocol):
    async def claim_due(self, *, now: datetime, limit: int) -> list[DueReminder]: ...

    async def companions(
        self, *, customer_ids: Sequence[int], until: datetime, exclude: Sequence[int]
    ) -> list[DueReminder]: ...

    async def mark_sent(self, *, sent: Sequence[tuple[int, str]], now: datetime) -> None: ...

    async def postpone(self, *, ids: Sequence[int], until: datetime, now: datetime) -> None: ...

    async def cancel(
        self, *, ids: Sequence[int], reason: str, now: datetime, by_order: str | None = None
    ) -> int: ...


class Composer(Protocol):
    """Builds the message content (template, context, buttons) in the customer's language."""

    def compose(self, items: Sequence[DueReminder]) -> MessageContent: ...


# ---- after an order ------------------------------------------------------------------------


class ReplenishmentFollower:
    """Follows every order in its transaction: converts, replaces and plans reminders."""

    def __init__(
        self,
        *,
        store: ReminderStore,
        rules: Reminders,
        quiet: QuietHours,
        shop_zone: ZoneInfo,
        clock: Clock,
    ) -> None:
        self._store = store
        self._rules = rules
        self._quiet = quiet
        self._shop_zone = shop_zone
        self._clock = clock

    async def after_order(self, event: OrderEvent) -> None:
        if event.customer_id is None:
            return  # reminders are for members
        now = self._clock.now()
        if event.status in FINAL_STATUSES:
            await self._store.withdraw_order(
                customer_id=event.customer_id, order_ref=event.order_id, now=now
            )
            return
        if not event.is_new:
            return
        lines = await self._store.order_lines(order_ref=event.order_id)
        if not lines:
            return
        bought = {line.sku: line for line in lines}
        since = event.ordered_at - timedelta(days=self._rules.conversion_days)
        sent = await self._store.sent_for(
            customer_id=event.customer_id, skus=sorted(bought), since=since
        )
        waiting = await self._store.of_customer(customer_id=event.customer_id)
        catalog = await self._store.catalog(skus=sorted({*bought, *(r.sku for r in waiting)}))
        await self._bought(event, bought, catalog, sent, waiting, now)

    async def after_orders(self, events: Sequence[OrderEvent]) -> None:
        """New orders' lines, their customers' reminders and the products read at once; the
        rest (a guest's order, a status change) one by one."""
        new: list[OrderEvent] = []
        later: list[OrderEvent] = []  # a customer's second order sees what their first did
        customers: set[int] = set()
        for event in events:
            if event.customer_id in customers:
                later.append(event)
            elif (
                event.customer_id is not None
                and event.is_new
                and event.status not in FINAL_STATUSES
            ):
                new.append(event)
                customers.add(event.customer_id)
            else:
                await self.after_order(event)
        await self._after_new(new)
        for event in later:
            await self.after_order(event)

    async def _after_new(self, new: Sequence[OrderEvent]) -> None:
        """New orders of distinct members, their reads made together."""
        lines = await self._store.order_lines_many(order_refs=[event.order_id for event in new])
        bought_by = {
            event.order_id: {line.sku: line for line in lines[event.order_id]}
            for event in new
            if lines[event.order_id]
        }
        buying = [event for event in new if event.order_id in bought_by]
        if not buying:
            return
        now = self._clock.now()
        members = [event.customer_id for event in buying if event.customer_id is not None]
        skus = sorted({sku for bought in bought_by.values() for sku in bought})
        earliest = min(buying, key=lambda event: event.ordered_at).ordered_at
        sent = await self._store.sent_to(
            customer_ids=members,
            skus=skus,
            since=earliest - timedelta(days=self._rules.conversion_days),
        )
        waiting = await self._store.of_customers(customer_ids=members)
        catalog = await self._store.catalog(
            skus=sorted({*skus, *(r.sku for theirs in waiting.values() for r in theirs)})
        )
        for event in buying:
            assert event.customer_id is not None
            bought = bought_by[event.order_id]
            since = event.ordered_at - timedelta(days=self._rules.conversion_days)
            theirs = [
                reminder
                for reminder in sent[event.customer_id]
                if reminder.sku in bought and reminder.sent_at and reminder.sent_at >= since
            ]
            await self._bought(event, bought, catalog, theirs, waiting[event.customer_id], now)

    async def _bought(
        self,
        event: OrderEvent,
        bought: dict[str, LinePurchase],
        catalog: dict[str, CatalogProduct],
        sent: Sequence[ReminderRecord],
        waiting: Sequence[ReminderRecord],
        now: datetime,
    ) -> None:
        """A new order's lines: the reminders it converts and replaces, the ones it plans.
        ``sent``: the customer's reminders of these skus sent within the conversion window;
        ``waiting``: their waiting reminders; ``catalog``: at least those products."""
        converted = await self._convert(event, bought, sent, now)
        # What this order has just converted waits no longer.
        still = [reminder for reminder in waiting if reminder.id not in converted]
        await self._replace(event, bought, catalog, still, now)
        if event.recent:  # older history only teaches the intervals
            await self._plan(event, bought, catalog, now)

    async def _convert(
        self,
        event: OrderEvent,
        bought: dict[str, LinePurchase],
        sent: Sequence[ReminderRecord],
        now: datetime,
    ) -> set[int]:
        """The sent reminders this order converts, converted; returns their ids."""
        converted = [
            (reminder.id, bought[reminder.sku].revenue)
            for reminder in sent
            if converts(
                sent_at=reminder.sent_at,
                ordered_at=event.ordered_at,
                conversion_days=self._rules.conversion_days,
            )
        ]
        if converted:
            await self._store.convert(ids_revenue=converted, order_ref=event.order_id, now=now)
        return {reminder_id for reminder_id, _ in converted}

    async def _replace(
        self,
        event: OrderEvent,
        bought: dict[str, LinePurchase],
        catalog: dict[str, CatalogProduct],
        waiting: Sequence[ReminderRecord],
        now: datetime,
    ) -> None:
        """A newer purchase of the sku or of a listed substitute ends the waiting reminder."""
        ended = [
            reminder.id
            for reminder in waiting
            if reminder.order_ref != event.order_id
            and reminder.ordered_at <= event.ordered_at
            and replaces(reminder.sku, bought=set(bought), catalog=catalog)
        ]
        await self._store.cancel(ids=ended, reason="reordered", now=now, by_order=event.order_id)

    async def _plan(
        self,
        event: OrderEvent,
        bought: dict[str, LinePurchase],
        catalog: dict[str, CatalogProduct],
        now: datetime,
    ) -> None:
        assert event.customer_id is not None
        candidates = sorted(sku for sku in bought if sku in catalog)
        stopped = await self._store.stopped(customer_id=event.customer_id, skus=candidates)
        candidates = [sku for sku in candidates if sku not in stopped]
        if not candidates:
            return
        history: dict[str, list[Purchase]] = defaultdict(list)
        for purchase in await self._store.purchases(customer_id=event.customer_id, skus=candidates):
            if purchase.ordered_at <= event.ordered_at:
                history[purchase.sku].append(Purchase(purchase.ordered_at, purchase.quantity))
        zone_name = await self._store.customer_zone(customer_id=event.customer_id)
        zone = ZoneInfo(zone_name) if zone_name else self._shop_zone
        window = timedelta(days=self._rules.same_purchase_days)
        for sku in candidates:
            product = catalog[sku]
            learned = (
                timedelta(seconds=product.learned_seconds)
                if product.learned_seconds is not None
                else None
            )
            interval = choose_interval(
                own=learned_for_customer(history[sku], window=window),
                catalog_days=product.consumption_days,
                learned=learned,
            )
            if interval is None:
                continue  # not a consumable, or nothing known yet
            # This order may complete a purchase begun shortly before (a split basket): the
            # units of both last from the first one, and its reminder gives way to this one.
            merged = merged_purchases(history[sku], window=window)
            latest = merged[-1] if merged else Purchase(event.ordered_at, bought[sku].quantity)
            lead = product.lead_days if product.lead_days is not None else self._rules.lead_days
            timing = plan(
                ordered_at=latest.at,
                quantity=latest.quantity,
                interval=interval,
                lead_days=lead,
                zone=zone,
                quiet=self._quiet,
            )
            await self._store.add(
                NewReminder(
                    customer_id=event.customer_id,
                    sku=sku,
                    order_ref=event.order_id,
                    ordered_at=event.ordered_at,
                    quantity=latest.quantity,
                    basis=timing.basis.value,
                    runs_out_at=timing.runs_out_at,
                    remind_at=timing.remind_at,
                ),
                now=now,
            )


def replaces(sku: str, *, bought: set[str], catalog: dict[str, CatalogProduct]) -> bool:
    """Whether buying ``bought`` refills ``sku``: the same sku, a substitute listed for it,
    or a product that lists it as its substitute."""
    if sku in bought:
        return True
    product = catalog.get(sku)
    if product is not None and bought & set(product.related):
        return True
    return any(sku in catalog[other].related for other in bought if other in catalog)


# ---- the sweep -----------------------------------------------------------------------------


def message_key(customer_id: int, day: str) -> str:
    """One reminder message per customer per local day: the outbox's unique key says so."""
    return f"reminder:{customer_id}:{day}"


async def sweep(
    *,
    uow: UnitOfWork,
    queue: ReminderQueue,
    outbox: OutboxWriter,
    composer: Composer,
    rules: Reminders,
    quiet: QuietHours,
    shop_zone: ZoneInfo,
    clock: Clock,
) -> int:
    """One round: claim up to ``batch_size`` due reminders and queue one message per customer
    (with their other reminders due within ``group_window_days``). The claim, the outbox rows
    and the new states commit together, so a crash sends nothing twice and loses nothing.
    Returns how many due reminders it handled (a full batch: more may be due)."""
    now = clock.now()
    async with uow.transaction():
        due = await queue.claim_due(now=now, limit=rules.batch_size)
        if not due:
            return 0
        customers = sorted({item.customer_id for item in due})
        extra = await queue.companions(
            customer_ids=customers,
            until=now + timedelta(days=rules.group_window_days),
            exclude=[item.id for item in due],
        )
        grouped: dict[int, list[DueReminder]] = defaultdict(list)
        for item in [*due, *extra]:
            grouped[item.customer_id].append(item)
        unreachable: list[int] = []
        sent: list[tuple[int, str]] = []
        for customer_id, items in grouped.items():
            first = items[0]
            if first.chat_id is None:
                unreachable.extend(item.id for item in items)
                continue
            zone = ZoneInfo(first.timezone) if first.timezone else shop_zone
            key = message_key(customer_id, now.astimezone(zone).date().isoformat())
            ids = [item.id for item in items]
            fresh = await enqueue(
                outbox,
                Outgoing(
                    dedupe_key=key,
                    chat_id=first.chat_id,
                    category=Category.SERVICE,
                    kind=KIND,
                    content=composer.compose(items),
                    customer_id=customer_id,
                ),
                clock=clock,
            )
            if fresh:
                sent.extend((id, key) for id in ids)
            else:  # today's message already went: tomorrow morning, grouped again then
                await queue.postpone(ids=ids, until=next_morning(now, zone, quiet), now=now)
        await queue.mark_sent(sent=sent, now=now)
        await queue.cancel(ids=unreachable, reason="no_chat", now=now)
    return len(due)


# ---- the customer's answers ----------------------------------------------------------------


class Answer(StrEnum):
    DONE = "done"
    NOT_YOURS = "not_yours"  # forged, or someone else's message: nothing changes
    STALE = "stale"  # already answered, cancelled or converted: nothing changes


@dataclass(frozen=True, slots=True)
class Outcome:
    answer: Answer
    reminder: ReminderRecord | None = None
    until: datetime | None = None


async def _own(
    store: ReminderStore, *, reminder_id: int, customer_id: int
) -> ReminderRecord | None:
    reminder = await store.get(id=reminder_id, lock=True)
    if reminder is None or reminder.customer_id != customer_id:
        return None
    return reminder


async def snooze(
    store: ReminderStore,
    *,
    reminder_id: int,
    customer_id: int,
    days: int,
    rules: Reminders,
    zone: ZoneInfo,
    quiet: QuietHours,
    clock: Clock,
) -> Outcome:
    """ "Remind me in N days" on a reminder that went out (only the presets are accepted)."""
    reminder = await _own(store, reminder_id=reminder_id, customer_id=customer_id)
    if reminder is None or days not in rules.snooze_days:
        return Outcome(Answer.NOT_YOURS)
    if reminder.state != ReminderState.SENT:
        return Outcome(Answer.STALE, reminder)
    now = clock.now()
    until = snoozed_until(now, days=days, zone=zone, quiet=quiet)
    await store.snooze(id=reminder.id, until=until, now=now)
    return Outcome(Answer.DONE, reminder, until)


async def stop_sku(
    store: ReminderStore, *, reminder_id: int, customer_id: int, clock: Clock
) -> Outcome:
    """ "I don't need this": no more reminders of this product for this customer."""
    reminder = await _own(store, reminder_id=reminder_id, customer_id=customer_id)
    if reminder is None:
        return Outcome(Answer.NOT_YOURS)
    stopped = await store.stopped(customer_id=customer_id, skus=[reminder.sku])
    if stopped:
        return Outcome(Answer.STALE, reminder)
    await store.stop(customer_id=customer_id, sku=reminder.sku, now=clock.now())
    return Outcome(Answer.DONE, reminder)


async def cancel_one(
    store: ReminderStore, *, reminder_id: int, customer_id: int, clock: Clock
) -> Outcome:
    """/reminders: the customer cancels one waiting reminder (the next order plans anew)."""
    reminder = await _own(store, reminder_id=reminder_id, customer_id=customer_id)
    if reminder is None:
        return Outcome(Answer.NOT_YOURS)
    if reminder.state not in WAITING:
        return Outcome(Answer.STALE, reminder)
    await store.cancel(ids=[reminder.id], reason="customer", now=clock.now())
    return Outcome(Answer.DONE, reminder)


def reorder_key(reminder_id: int) -> str:
    """The staff chat's reorder request for one reminder (once per reminder)."""
    return f"reorder-request:{reminder_id}"


async def reorder_request(
    store: ReminderStore,
    outbox: OutboxWriter,
    *,
    reminder_id: int,
    customer_id: int,
    staff_chat_id: int | None,
    render: Callable[[ReminderRecord], str],
    clock: Clock,
) -> Outcome:
    """Reorder without a product link: a request reaches staff (once per reminder).

    ``render(reminder)`` returns the staff message's text."""
    reminder = await _own(store, reminder_id=reminder_id, customer_id=customer_id)
    if reminder is None or staff_chat_id is None:
        return Outcome(Answer.NOT_YOURS, reminder)
    if reminder.sent_at is None:
        return Outcome(Answer.STALE, reminder)
    fresh = await enqueue(
        outbox,
        Outgoing(
            dedupe_key=reorder_key(reminder.id),
            chat_id=staff_chat_id,
            category=Category.TRANSACTIONAL,
            kind="reorder_request",
            content={"text": render(reminder)},
        ),
        clock=clock,
    )
    return Outcome(Answer.DONE if fresh else Answer.STALE, reminder)


# ---- figures and learning ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReminderStats:
    sent: int
    converted: int
    revenue: int  # minor units

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.sent if self.sent else 0.0


class TotalsReader(Protocol):
    async def totals(self) -> ReminderTotals: ...


async def reminder_stats(reader: TotalsReader) -> ReminderStats:
    """For /stats: reminders that went out, how many converted, and the revenue attributed."""
    totals = await reader.totals()
    return ReminderStats(sent=totals.sent, converted=totals.converted, revenue=totals.revenue)


class IntervalLearner(Protocol):
    async def uncatalogued_histories(self) -> list[tuple[str, int, datetime, int]]: ...

    async def replace_intervals(
        self, *, learned: dict[str, tuple[int, int]], now: datetime
    ) -> None: ...


async def refresh_learned_intervals(
    store: IntervalLearner,
    *,
    min_purchases: int,
    clock: Clock,
    same_purchase: timedelta = timedelta(0),
) -> int:
    """The daily refresh: per catalog product without consumption_days, the median interval of
    customers who bought it at least ``min_purchases`` times (orders ``same_purchase`` apart
    or closer are one purchase). Returns how many were learned."""
    histories: dict[str, dict[int, list[Purchase]]] = defaultdict(lambda: defaultdict(list))
    for sku, customer_id, at, quantity in await store.uncatalogued_histories():
        histories[sku][customer_id].append(Purchase(at, quantity))
    learned: dict[str, tuple[int, int]] = {}
    for sku, per_customer in histories.items():
        found = learned_for_product(per_customer, min_purchases=min_purchases, window=same_purchase)
        if found is not None:
            interval, customers = found
            learned[sku] = (int(interval.total_seconds()), customers)
    await store.replace_intervals(learned=learned, now=clock.now())
    return len(learned)
