"""A group of orders works out each member's points as an order alone would, from lots the
database sums, and writes them in a few statements for all of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from scenarios.clock import FixedClock
from scenarios.ledger import balance
from scenarios.orders import Points, RawCustomer, RawItem, RawOrder, Reported
from scenarios.rules import Rules
from storage.database import Database
from storage.ledger import (
    EntryKind,
    LedgerIntegrityError,
    LotRecord,
    LotSummary,
    NewCredit,
    NewEntry,
    NewLot,
    SqlLedger,
    summarize_lots,
)
from storage.schema import ledger_entries
from tests.support.reminders import add_member
from tests.support.services import services_for

DAY = timedelta(days=1)
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
RULES = Rules()  # 14 days in the return window, points live 365 days


class TickingClock(FixedClock):
    """Once ticking, each look at the clock finds it a millisecond later, as a real one would."""

    ticking = False

    def now(self) -> datetime:
        if self.ticking:
            self.advance(timedelta(milliseconds=1))
        return super().now()


def order(ref: str, telegram_id: int, price: str = "1000.00") -> RawOrder:
    return RawOrder(
        order_id=ref,
        customer=RawCustomer(telegram_id=telegram_id),
        items=(RawItem(sku="CAT", name="Cat food", quantity=1, price=price),),
        total=price,
        currency="RUB",
    )


async def stories(db: Database, clock: FixedClock, base: int) -> list[int]:
    """Five members, Telegram ids ``base`` + 0..4: one with nothing yet, one with ten orders'
    points of which some are spendable and some pending, one whose points from a year ago
    are past their expiry, one whose pending points are released a moment after "now", and
    one who owes 150 points (spent, then the order that earned them was cancelled)."""
    services = services_for(db, rules=RULES, clock=clock, followers=())
    desk, ledger = services.order_desk, services.points_ledger
    ids = [await add_member(db, base + n, at=T0 - 400 * DAY) for n in range(5)]
    for n in range(10):  # every third day: the last ones are still in the return window
        clock.set(T0 - 30 * DAY + 3 * n * DAY)
        await desk.report(order(f"{base}-many-{n}", base + 1, price=f"{100 * (n + 1)}.00"))
    clock.set(T0 - 366 * DAY)
    await desk.report(order(f"{base}-old", base + 2))
    # Released 1.5 ms after T0: after the first look of a ticking clock set to T0, before
    # the next, so they are pending when a group begins and spendable when they are counted.
    clock.set(T0 - 14 * DAY + timedelta(microseconds=1500))
    await desk.report(order(f"{base}-soon", base + 3))
    clock.set(T0 - 20 * DAY)
    await desk.report(order(f"{base}-spent", base + 4, price="4000.00"))  # 200 points
    clock.set(T0 - 5 * DAY)
    await ledger.redeem(
        customer_id=ids[4], order_id=f"{base}-paid", order_total=100_000, points=150
    )
    await ledger.cancel_order(customer_id=ids[4], order_id=f"{base}-spent", reason="returned")
    return ids


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement the database is sent meanwhile."""
    seen: list[str] = []

    def before(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def receipts(reported: list[Reported | Exception]) -> list[tuple[int, Points]]:
    done = [outcome for outcome in reported if isinstance(outcome, Reported)]
    assert len(done) == len(reported), reported
    return [(r.receipt.points_accrued, r.receipt.balance) for r in done]


async def expiries(db: Database, customer_id: int) -> int:
    async with db.read() as conn:
        return int(
            await conn.scalar(
                select(func.count())
                .select_from(ledger_entries)
                .where(
                    ledger_entries.c.customer_id == customer_id,
                    ledger_entries.c.kind == EntryKind.EXPIRY,
                )
            )
        )


async def test_a_group_s_receipts_count_each_member_s_lots_as_an_order_alone_does(
    db: Database,
) -> None:
    clock = TickingClock(T0)
    together_ids = await stories(db, clock, 1000)
    alone_ids = await stories(db, clock, 2000)
    desk = services_for(db, rules=RULES, clock=clock, followers=()).order_desk

    clock.ticking = True
    clock.set(T0)
    together = receipts(
        await desk.report_many([order(f"g-{n}", 1000 + n, "2000.00") for n in range(5)])
    )
    clock.set(T0)
    alone = receipts([await desk.report(order(f"a-{n}", 2000 + n, "2000.00")) for n in range(5)])

    assert together == alone
    nothing, many, old, soon, owing = together
    assert nothing == (100, Points(available=0, pending=100))  # 5 % of 2000 RUB
    # Ten orders of 100..1000 RUB, one every third day from 30 days ago: those of 15 days ago
    # and more are out of the 14-day return window (5 + 10 + ... + 30 points), the rest wait.
    assert many == (100, Points(available=105, pending=35 + 40 + 45 + 50 + 100))
    assert old == (100, Points(available=0, pending=100))  # last year's 50 points are gone
    assert soon == (100, Points(available=50, pending=100))  # released as the group was written
    assert owing == (100, Points(available=0, pending=0))  # the new points paid 100 of 150
    assert await expiries(db, together_ids[2]) == await expiries(db, alone_ids[2]) == 1
    for customer in [*together_ids, *alone_ids]:
        assert (await SqlLedger(db).reconcile(customer_id=customer)).consistent
    views = [
        await balance(SqlLedger(db), customer_id=customer, clock=clock)
        for customer in (together_ids[4], alone_ids[4])
    ]
    assert [(view.debt, view.total) for view in views] == [(50, -50), (50, -50)]


async def test_a_group_reads_no_lot_of_members_with_nothing_past_its_expiry(
    db: Database,
) -> None:
    clock = FixedClock(T0)
    await stories(db, clock, 1000)
    desk = services_for(db, rules=RULES, clock=clock, followers=()).order_desk
    clock.set(T0)
    with statements(db) as sent:
        outcomes = await desk.report_many([order(f"g-{n}", 1000 + n, "2000.00") for n in (0, 1, 3)])
    assert [r.receipt.points_accrued for r in outcomes if isinstance(r, Reported)] == [100] * 3
    lots_read = [
        statement
        for statement in sent
        if "FROM ledger_lots" in statement
        and "ledger_lots.remaining" in statement
        and "sum(" not in statement
    ]
    assert lots_read == []


async def test_a_group_writes_its_members_points_in_three_statements(db: Database) -> None:
    clock = FixedClock(T0)
    ids = [await add_member(db, 3000 + n, at=T0 - DAY) for n in range(6)]
    desk = services_for(db, rules=RULES, clock=clock, followers=()).order_desk
    with statements(db) as sent:
        outcomes = await desk.report_many([order(f"w-{n}", 3000 + n) for n in range(6)])
    assert [r.receipt.points_accrued for r in outcomes if isinstance(r, Reported)] == [50] * 6
    written = [statement.split("(")[0].strip() for statement in sent if "INSERT" in statement]
    assert sorted(name for name in written if "ledger" in name) == [
        "INSERT INTO ledger_accounts",
        "INSERT INTO ledger_entries",
        "INSERT INTO ledger_lots",
    ]
    # The members are found once; PostgreSQL then locks them, SQLite's writer already has.
    customers_read = [statement for statement in sent if "FROM customers" in statement]
    assert len(customers_read) == (1 if db.engine.dialect.name == "sqlite" else 2)
    for customer in ids:
        assert (await SqlLedger(db).reconcile(customer_id=customer)).consistent


async def test_credits_of_a_group_need_their_customers_locks(db: Database) -> None:
    customer = await add_member(db, 4000, at=T0)
    credit = NewCredit(
        customer_id=customer,
        entry=NewEntry(
            kind=EntryKind.ACCRUAL,
            source="order:X-1",
            amount=10,
            reason="test",
            actor_id=None,
            occurred_at=T0,
        ),
        lots=(NewLot(amount=10, earned_at=T0, available_at=T0, expires_at=T0 + 365 * DAY),),
    )
    ledger = SqlLedger(db)
    with pytest.raises(LedgerIntegrityError, match="locks"):
        await ledger.append_credits([credit])
    async with db.transaction(), ledger.prefetched(sources={customer: []}, since=None, at=T0):
        [appended] = await ledger.append_credits([credit])
        assert (appended.entry.amount, appended.debt_after) == (10, 0)
        with pytest.raises(LedgerIntegrityError, match="already written"):
            await ledger.append_credits([credit])
    assert (await ledger.reconcile(customer_id=customer)).entries_sum == 10


def lot(lot_id: int, remaining: int, *, available: datetime, expires: datetime) -> LotRecord:
    return LotRecord(
        id=lot_id,
        entry_id=lot_id,
        customer_id=1,
        amount=remaining,
        remaining=remaining,
        earned_at=T0 - 30 * DAY,
        available_at=available,
        expires_at=expires,
    )


def test_a_summary_holds_until_the_first_lot_is_released_or_expires() -> None:
    spendable = lot(1, 10, available=T0 - DAY, expires=T0 + 5 * DAY)
    pending = lot(2, 20, available=T0 + 2 * DAY, expires=T0 + 300 * DAY)
    gone = lot(3, 30, available=T0 - 90 * DAY, expires=T0 - DAY)
    summary = summarize_lots([spendable, pending, gone], at=T0)
    assert summary == LotSummary(
        at=T0, available=10, pending=20, overdue=(gone,), steady_until=T0 + 2 * DAY
    )
    assert summary.holds_at(T0 + DAY) and not summary.holds_at(T0 + 2 * DAY)
    assert not summary.holds_at(T0 - timedelta(seconds=1))
    new = lot(4, 5, available=T0 + 14 * DAY, expires=T0 + 365 * DAY)
    assert summary.plus([new]) == LotSummary(
        at=T0, available=10, pending=25, overdue=(), steady_until=T0 + 2 * DAY
    )
    assert summarize_lots([], at=T0).holds_at(T0 + 1000 * DAY)
