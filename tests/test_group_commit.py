"""Group commit of the API's orders: concurrent orders share a transaction, each answered alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select

from bot.api import create_api_app
from bot.order_desk import create_order_desk
from scenarios.clock import FixedClock
from scenarios.group_commit import GroupCommit
from scenarios.orders import (
    OrderDesk,
    OrderEvent,
    OrderFollower,
    OrderProblem,
    RawCustomer,
    RawItem,
    RawOrder,
    Reported,
)
from scenarios.problems import ProblemKind
from scenarios.rules import Rules
from storage.database import Database
from storage.ledger import SqlLedger
from storage.schema import customers, order_items, orders
from tests.support.services import services_for

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def add_members(db: Database, count: int) -> list[int]:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        rows = await conn.execute(
            insert(customers).returning(customers.c.id),
            [
                {
                    "telegram_id": 500 + n,
                    "phone": f"+7999000{n:04d}",
                    "created_at": at,
                    "last_seen_at": at,
                    "joined_at": at,
                }
                for n in range(count)
            ],
        )
        return [int(customer_id) for customer_id in rows.scalars()]


def raw_order(order_id: str, n: int, *, total: str = "1000.00") -> RawOrder:
    return RawOrder(
        order_id=order_id,
        customer=RawCustomer(telegram_id=500 + n),
        items=[RawItem(sku="CAT", name="Cat food", quantity=1, price=total)],
        total=total,
        currency="RUB",
    )


def grouping_desk(
    db: Database, clock: FixedClock, followers: Sequence[OrderFollower] = ()
) -> OrderDesk:
    """The API's desk as bot/services.py builds it, with group commit on either database."""
    services = services_for(db, rules=Rules(), clock=clock, followers=())
    return create_order_desk(
        uow=db,
        orders=services.order_store,
        points=services.points_ledger,
        reader=services.ledger_reader,
        ladder=services.tier_ladder,
        redeem_codes=services.redeem_codes,
        zones=services.preferences,
        rules=services.rules,
        clock=clock,
        followers=followers,
        group_commit=True,
    )


async def stored_refs(db: Database) -> list[str]:
    async with db.read() as conn:
        return sorted((await conn.execute(select(orders.c.order_ref))).scalars())


class Refusing:
    """A follower that fails on one order (a defect, a lost connection...)."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.seen: list[str] = []

    async def after_order(self, event: OrderEvent) -> None:
        self.seen.append(event.order_id)
        if event.order_id == self.order_id:
            raise RuntimeError(f"follower broke on {event.order_id}")


async def test_concurrent_orders_commit_together_and_a_conflict_is_refused_alone(
    db: Database, clock: FixedClock
) -> None:
    members = await add_members(db, 6)
    desk = grouping_desk(db, clock)
    first = await desk.submit(raw_order("G-0", 0))
    assert first.created
    # Five new orders and one reusing G-0's id with another body arrive at once.
    results = await asyncio.gather(
        *(desk.submit(raw_order(f"G-{n}", n)) for n in range(1, 6)),
        desk.submit(raw_order("G-0", 0, total="999.00")),
        return_exceptions=True,
    )
    *fresh, conflict = results
    assert isinstance(conflict, OrderProblem)
    assert (conflict.kind, conflict.code) == (ProblemKind.CONFLICT, "order_conflict")
    assert all(isinstance(result, Reported) and result.created for result in fresh)
    receipts = [result.receipt for result in fresh if isinstance(result, Reported)]
    assert [receipt.customer_id for receipt in receipts] == members[1:6]
    # 5 % cashback on 1000.00, pending for the return window, each member's own balance.
    assert [(r.points_accrued, r.balance.pending) for r in receipts] == [(50, 50)] * 5
    assert await stored_refs(db) == ["G-0", "G-1", "G-2", "G-3", "G-4", "G-5"]
    ledger = SqlLedger(db)
    for member in members:
        assert (await ledger.reconcile(customer_id=member)).consistent
    # The conflicting body changed nothing of G-0.
    async with db.read() as conn:
        total = (
            await conn.execute(select(orders.c.total).where(orders.c.order_ref == "G-0"))
        ).scalar_one()
        lines = (await conn.execute(select(func.count()).select_from(order_items))).scalar_one()
    assert (total, lines) == (100_000, 6)


async def test_an_order_that_fails_mid_batch_is_not_stored_and_the_others_are(
    db: Database, clock: FixedClock
) -> None:
    await add_members(db, 4)
    follower = Refusing("F-2")
    desk = grouping_desk(db, clock, followers=[follower])
    results = await asyncio.gather(
        *(desk.submit(raw_order(f"F-{n}", n)) for n in range(4)), return_exceptions=True
    )
    assert [type(result).__name__ for result in results] == [
        "Reported",
        "Reported",
        "RuntimeError",
        "Reported",
    ]
    # Nothing of F-2 stays (its savepoint was undone); every order answered 2xx is stored.
    assert await stored_refs(db) == ["F-0", "F-1", "F-3"]
    # Retried once the defect is gone, F-2 is recorded like any new order.
    follower.order_id = "none"
    again = await desk.submit(raw_order("F-2", 2))
    assert again.created
    assert again.receipt.points_accrued == 50


async def test_the_same_customer_twice_in_a_batch_earns_on_both_orders_in_sequence(
    db: Database, clock: FixedClock
) -> None:
    (member,) = await add_members(db, 1)
    desk = grouping_desk(db, clock)
    one, two = await asyncio.gather(
        desk.submit(raw_order("S-1", 0)), desk.submit(raw_order("S-2", 0))
    )
    assert (one.receipt.balance.pending, two.receipt.balance.pending) == (50, 100)
    assert (await SqlLedger(db).reconcile(customer_id=member)).consistent


async def test_replays_in_a_batch_answer_the_first_receipt(db: Database, clock: FixedClock) -> None:
    await add_members(db, 3)
    desk = grouping_desk(db, clock)
    firsts = [await desk.submit(raw_order(f"R-{n}", n)) for n in range(3)]
    replays = await asyncio.gather(*(desk.submit(raw_order(f"R-{n}", n)) for n in range(3)))
    assert [replay.created for replay in replays] == [False] * 3
    assert [replay.receipt for replay in replays] == [first.receipt for first in firsts]


async def test_http_orders_at_once_on_sqlite_get_201_and_the_conflict_409(
    sqlite_db: Database, clock: FixedClock
) -> None:
    await add_members(sqlite_db, 8)
    app = create_api_app(services_for(sqlite_db, rules=Rules(), clock=clock), api_token=TOKEN)

    def body(order_id: str, n: int, total: str = "1000.00") -> dict[str, Any]:
        return {
            "order_id": order_id,
            "customer": {"telegram_id": 500 + n},
            "items": [{"sku": "CAT", "name": "Cat food", "quantity": 1, "price": total}],
            "total": total,
            "currency": "RUB",
        }

    async with TestClient(TestServer(app)) as client:
        first = await client.post("/api/v1/orders", json=body("H-0", 0), headers=AUTH)
        assert first.status == 201
        answers = await asyncio.gather(
            *(
                client.post("/api/v1/orders", json=body(f"H-{n}", n), headers=AUTH)
                for n in range(1, 8)
            ),
            client.post("/api/v1/orders", json=body("H-0", 0, "10.00"), headers=AUTH),
        )
        statuses = [answer.status for answer in answers]
        conflict = await answers[-1].json()
    assert statuses == [201] * 7 + [409]
    assert conflict["error"]["code"] == "order_conflict"
    assert await stored_refs(sqlite_db) == [f"H-{n}" for n in range(8)]


# ---- the coalescing itself, over a fake batch call --------------------------------------


class RecordingBatch:
    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.gate = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await self.gate.wait()  # a transaction in progress
        if self.fail:
            raise ConnectionError("the commit failed")
        return [ValueError(item) if item < 0 else item * 10 for item in items]


async def test_calls_arriving_during_a_batch_go_together_as_the_next_one() -> None:
    batch = RecordingBatch()
    group: GroupCommit[int, int] = GroupCommit(batch)
    lone = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(group.submit(n)) for n in (2, -3, 4)]
    await asyncio.sleep(0)
    assert batch.batches == [[1]]  # the first call did not wait for company
    batch.gate.set()
    assert await lone == 10
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert batch.batches == [[1], [2, -3, 4]]
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError)  # only its own caller hears of it


async def test_when_a_batch_fails_every_caller_in_it_gets_the_error() -> None:
    batch = RecordingBatch(fail=True)
    group: GroupCommit[int, int] = GroupCommit(batch)
    calls = [asyncio.create_task(group.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    batch.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    batch = RecordingBatch()
    group: GroupCommit[int, int] = GroupCommit(batch)
    calls = [asyncio.create_task(group.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    calls[0].cancel()
    batch.gate.set()
    assert await calls[1] == 20
    with pytest.raises(asyncio.CancelledError):
        await calls[0]
