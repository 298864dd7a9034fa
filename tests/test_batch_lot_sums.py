"""A group of orders has the database sum its members' open lots, and comes to what each
order alone comes to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select

from scenarios.clock import FixedClock
from scenarios.orders import Points, RawCustomer, RawItem, RawOrder, Reported
from scenarios.rules import Rules
from storage.database import Database
from storage.ledger import EntryKind, LotRecord, LotSummary, summarize_lots
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
    """Four members, Telegram ids ``base`` + 0..3: one with nothing yet, one with ten orders'
    points of which some are spendable and some pending, one whose points from a year ago
    are past their expiry, one whose pending points are released a moment after "now"."""
    desk = services_for(db, rules=RULES, clock=clock, followers=()).order_desk
    ids = [await add_member(db, base + n, at=T0 - 400 * DAY) for n in range(4)]
    for n in range(10):  # every third day: the last ones are still in the return window
        clock.set(T0 - 30 * DAY + 3 * n * DAY)
        await desk.report(order(f"{base}-many-{n}", base + 1, price=f"{100 * (n + 1)}.00"))
    clock.set(T0 - 366 * DAY)
    await desk.report(order(f"{base}-old", base + 2))
    # Released 1.5 ms after T0: after the first look of a ticking clock set to T0, before
    # the next, so they are pending when a group begins and spendable when they are counted.
    clock.set(T0 - 14 * DAY + timedelta(microseconds=1500))
    await desk.report(order(f"{base}-soon", base + 3))
    return ids


@contextmanager
def lot_rows_read(db: Database) -> Iterator[list[str]]:
    """The statements that read lots row by row (not summed by the database)."""
    seen: list[str] = []

    def before(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        reads_lots = "ledger_lots.remaining" in statement and "FROM ledger_lots" in statement
        if reads_lots and "sum(" not in statement:
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
        await desk.report_many([order(f"g-{n}", 1000 + n, "2000.00") for n in range(4)])
    )
    clock.set(T0)
    alone = receipts([await desk.report(order(f"a-{n}", 2000 + n, "2000.00")) for n in range(4)])

    assert together == alone
    nothing, many, old, soon = together
    assert nothing == (100, Points(available=0, pending=100))  # 5 % of 2000 RUB
    # Ten orders of 100..1000 RUB, one every third day from 30 days ago: those of 15 days ago
    # and more are out of the 14-day return window (5 + 10 + ... + 30 points), the rest wait.
    assert many == (100, Points(available=105, pending=35 + 40 + 45 + 50 + 100))
    assert old == (100, Points(available=0, pending=100))  # last year's 50 points are gone
    assert soon == (100, Points(available=50, pending=100))  # released as the group was written
    assert await expiries(db, together_ids[2]) == await expiries(db, alone_ids[2]) == 1


async def test_a_group_reads_no_lot_of_members_with_nothing_past_its_expiry(
    db: Database,
) -> None:
    clock = FixedClock(T0)
    await stories(db, clock, 1000)
    desk = services_for(db, rules=RULES, clock=clock, followers=()).order_desk
    clock.set(T0)
    with lot_rows_read(db) as read:
        outcomes = await desk.report_many([order(f"g-{n}", 1000 + n, "2000.00") for n in (0, 1, 3)])
    assert [r.receipt.points_accrued for r in outcomes if isinstance(r, Reported)] == [100] * 3
    assert read == []


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
