"""A mapped delivery into the order desk: new orders, status changes and refunds, replay-safe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from scenarios.clock import Clock
from scenarios.orders import FINAL_STATUSES, OrderDesk, RawOrder, Reported
from scenarios.webhooks.model import (
    Ignored,
    Mapped,
    MappingProblem,
    OrderState,
    RefundNotice,
    StoreOrder,
)
from storage.inbox import StoreOrderLink
from storage.orders import StoredOrder


class NotYet(Exception):
    """The delivery depends on one that has not arrived yet (a refund before its order): the
    worker tries it again later."""


class Result(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    note: str  # what was done, or why nothing was


class OrderLookup(Protocol):
    async def by_ref(self, *, order_ref: str, lock: bool = False) -> StoredOrder | None: ...

    async def by_refs(self, *, order_refs: Sequence[str]) -> dict[str, StoredOrder]: ...


class OrderLinks(Protocol):
    async def link_orders(self, links: Sequence[StoreOrderLink], *, now: datetime) -> None: ...

    async def link_order(
        self, *, platform: str, external_id: str, order_ref: str, now: datetime
    ) -> None: ...

    async def order_refs(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]: ...

    async def order_ref(self, *, platform: str, external_id: str) -> str | None: ...


class StoreSync:
    """Applies what a platform said to the desk. Call it inside one transaction with marking
    the delivery done: then each delivery acts once, and any delivery of an order may come
    first (fulfilled before paid, a second copy, a late one after a cancellation)."""

    def __init__(
        self, *, desk: OrderDesk, orders: OrderLookup, links: OrderLinks, clock: Clock
    ) -> None:
        self._desk = desk
        self._orders = orders
        self._links = links
        self._clock = clock

    async def apply(self, mapped: Mapped) -> Outcome:
        if isinstance(mapped, Ignored):
            return Outcome(Result.SKIPPED, mapped.reason)
        if isinstance(mapped, RefundNotice):
            return await self._refund_notice(mapped)
        return await self._order(mapped)

    async def new_orders_together(self, batch: Sequence[Mapped]) -> dict[int, Outcome | Exception]:
        """The batch's new paid or delivered orders, recorded at once through the desk's
        batch path (a few statements for all of them), by their position in the batch: what
        became of each, or the problem that refused it. Only an order's first delivery in
        the batch qualifies, so the others, applied after, see it as before. The rest is
        left to ``apply``, one at a time, in the batch's order."""
        orders = _orders(batch)
        linked = await self._links.order_refs([(o.platform, o.external_id) for o in orders])
        stored = await self._orders.by_refs(order_refs=[order.order_ref for order in orders])
        picked: dict[int, tuple[StoreOrder, RawOrder]] = {}
        seen: set[object] = set()
        for position, delivery in enumerate(batch):
            if isinstance(delivery, StoreOrder):
                key = (delivery.platform, delivery.external_id)
                if (
                    delivery.state in (OrderState.PAID, OrderState.DELIVERED)
                    and delivery.raw is not None
                    and not delivery.refunds
                    and key not in linked
                    and delivery.order_ref not in stored
                    and not {key, delivery.order_ref} & seen
                ):
                    raw = replace(
                        delivery.raw, order_id=delivery.order_ref, status=_status_of(delivery)
                    )
                    picked[position] = (delivery, raw)
                seen |= {key, delivery.order_ref}
            elif isinstance(delivery, RefundNotice):
                seen.add((delivery.platform, delivery.external_order_id))
        if not picked:
            return {}
        reported = await self._desk.report_many([raw for _, raw in picked.values()])
        outcomes: dict[int, Outcome | Exception] = {}
        links: list[StoreOrderLink] = []
        for (position, (order, _)), result in zip(picked.items(), reported, strict=True):
            if isinstance(result, Exception):
                outcomes[position] = result
                continue
            links.append(StoreOrderLink(order.platform, order.external_id, order.order_ref))
            outcomes[position] = Outcome(Result.DONE, _recorded(order, result))
        await self._links.link_orders(links, now=self._clock.now())
        return outcomes

    async def _order(self, order: StoreOrder) -> Outcome:
        ref = order.order_ref
        linked = await self._links.order_ref(platform=order.platform, external_id=order.external_id)
        if linked is not None and linked != ref:
            ref = linked  # the shop renumbered it; the bot keeps the first number
        stored = await self._orders.by_ref(order_ref=ref, lock=True)
        if stored is not None and linked is None:
            raise MappingProblem(
                f"order {ref} is already known from elsewhere (the shop's API, an import or "
                f"another platform); this {order.platform} order was not recorded"
            )
        if stored is None:
            return await self._new(order)
        notes = []
        for refund in order.refunds:
            done = await self._desk.refund_part(
                order_id=ref, refund_key=refund.refund_key, amount=refund.amount
            )
            if not done.replayed:
                notes.append(f"refund {refund.refund_key}: {done.refunded} of {done.total}")
        notes.extend(await self._move(ref, order.state))
        return Outcome(Result.DONE, "; ".join(notes) or f"order {ref}: nothing new")

    async def _new(self, order: StoreOrder) -> Outcome:
        ref = order.order_ref
        if order.state is OrderState.PENDING:
            return Outcome(Result.SKIPPED, f"order {ref} is not paid yet")
        if order.state in (OrderState.CANCELLED, OrderState.REFUNDED):
            return Outcome(Result.SKIPPED, f"order {ref} was {order.state} before it was seen paid")
        if order.raw is None:
            return Outcome(
                Result.SKIPPED, f"order {ref} has no usable phone (customer, billing, shipping)"
            )
        status = _status_of(order)
        await self._links.link_order(
            platform=order.platform,
            external_id=order.external_id,
            order_ref=ref,
            now=self._clock.now(),
        )
        reported = await self._desk.report(replace(order.raw, order_id=ref, status=status))
        notes = [_recorded(order, reported)]
        for refund in order.refunds:
            await self._desk.refund_part(
                order_id=ref, refund_key=refund.refund_key, amount=refund.amount
            )
            notes.append(f"refund {refund.refund_key}")
        return Outcome(Result.DONE, "; ".join(notes))

    async def _move(self, ref: str, state: OrderState) -> list[str]:
        """The status the platform reports now, where it moves the order forward."""
        stored = await self._orders.by_ref(order_ref=ref)
        assert stored is not None
        if stored.status in FINAL_STATUSES:
            return [f"order {ref} is {stored.status}"] if state is not OrderState.PAID else []
        target = {
            OrderState.DELIVERED: "delivered",
            OrderState.CANCELLED: "cancelled",
            OrderState.REFUNDED: "refunded",
        }.get(state)
        if target is None or target == stored.status:
            return []
        await self._desk.change_status(order_id=ref, status=target)
        return [f"order {ref}: {stored.status} → {target}"]

    async def _refund_notice(self, notice: RefundNotice) -> Outcome:
        ref = await self._links.order_ref(
            platform=notice.platform, external_id=notice.external_order_id
        )
        if ref is None:
            raise NotYet(
                f"refund of {notice.platform} order {notice.external_order_id}: order not known yet"
            )
        done = await self._desk.refund_part(
            order_id=ref, refund_key=notice.refund.refund_key, amount=notice.refund.amount
        )
        if done.replayed:
            return Outcome(
                Result.DONE, f"refund {notice.refund.refund_key} of {ref}: known already"
            )
        return Outcome(
            Result.DONE,
            f"refund {notice.refund.refund_key} of {ref}: {done.refunded} of {done.total} refunded",
        )


def _orders(batch: Sequence[Mapped]) -> list[StoreOrder]:
    return [delivery for delivery in batch if isinstance(delivery, StoreOrder)]


def _status_of(order: StoreOrder) -> str:
    """The desk's status for a new order the platform reports paid or delivered."""
    return "delivered" if order.state is OrderState.DELIVERED else "paid"


def _recorded(order: StoreOrder, reported: Reported) -> str:
    note = f"order {order.order_ref} recorded as {_status_of(order)}"
    if reported.receipt.customer_id is None:
        note += "; no member has this phone yet (joining with it claims the order)"
    return note
