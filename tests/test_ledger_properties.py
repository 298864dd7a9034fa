"""Property tests: any sequence of ledger operations keeps the books straight, on every store.

Operations: accrue, redeem, cancel/refund, gifts, admin adjustments, expiry runs, time passing,
and replays of earlier calls. After every step: the cached balance equals the sum of the
entries and the lots' remaining points less the debt; no lot gives more than it holds; a
redemption never takes more than was available; a refusal writes nothing; a replay changes
nothing. On SQLite and PostgreSQL the same steps also run on the in-memory model, and both
must answer alike.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from scenarios.clock import FixedClock
from scenarios.ledger import (
    GIFT_KINDS,
    Accrual,
    BalanceView,
    Cancellation,
    LedgerRefusal,
    PointsLedger,
    Posted,
    Redemption,
    RefusalCode,
    balance,
    history,
)
from scenarios.rules import Bonus
from scenarios.tiers import TierLadder
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import EntryKind, SqlLedger
from storage.schema import ledger_entries
from tests.support.databases import postgres_database, sqlite_database
from tests.test_ledger_fake import MemoryLedger

START = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
RUB = 100


@dataclass(frozen=True)
class Checkout:
    """The usual purchase of a new order: points pay part of it (if asked and possible), then
    the rest earns cashback."""

    total: int
    points: int


@dataclass(frozen=True)
class Redeem:
    """Points reserved on a new order that is not paid yet."""

    total: int
    points: int


@dataclass(frozen=True)
class Pay:
    """An order placed earlier is paid (accrual)."""

    pick: int
    total: int


@dataclass(frozen=True)
class Cancel:
    """An order placed earlier is cancelled or refunded."""

    pick: int


@dataclass(frozen=True)
class Grant:
    kind: EntryKind
    n: int
    points: int


@dataclass(frozen=True)
class Adjust:
    n: int
    points: int


@dataclass(frozen=True)
class Expire:
    pass


@dataclass(frozen=True)
class Wait:
    delta: timedelta


@dataclass(frozen=True)
class Replay:
    pick: int  # which earlier successful call to send again


Op = Checkout | Redeem | Pay | Cancel | Grant | Adjust | Expire | Wait | Replay

picks = st.integers(0, 20)
totals = st.one_of(st.integers(1, 3000 * RUB), st.integers(3000 * RUB, 40_000 * RUB))
points = st.one_of(st.integers(1, 100), st.integers(1, 2000))
operations = st.one_of(
    st.builds(Checkout, totals, st.one_of(st.just(0), points)),
    st.builds(Checkout, totals, points),
    st.builds(Redeem, totals, points),
    st.builds(Pay, picks, totals),
    st.builds(Cancel, picks),
    st.builds(Cancel, picks),
    st.builds(Grant, st.sampled_from(sorted(GIFT_KINDS)), st.integers(0, 3), points),
    st.builds(Adjust, st.integers(0, 3), st.integers(-300, 600).filter(bool)),
    st.just(Expire()),
    st.builds(Wait, st.integers(1, 72).map(lambda hours: timedelta(hours=hours))),
    st.builds(Wait, st.integers(1, 45).map(lambda days: timedelta(days=days))),
    st.builds(Replay, picks),
)
# Short lives and holds so that expiry, pending points and refunds meet within a sequence.
rule_sets = st.sampled_from(
    [
        Bonus(hold_days=0, points_ttl_days=30, welcome_ttl_days=10, expiry_warning_days=0),
        Bonus(hold_days=3, points_ttl_days=45, compensation_ttl_days=15, tier_window="12 months"),
        Bonus(hold_days=14, points_ttl_days=90, max_redeem_share=100),
    ]
)


class Books:
    """One store under test: a customer of its own per example, and its use cases."""

    def __init__(self, store: MemoryLedger | SqlLedger, db: Database | None) -> None:
        self.store = store
        self.db = db

    async def customer(self, telegram_id: int) -> int:
        if isinstance(self.store, MemoryLedger):
            self.store.customer_ids.add(telegram_id)
            return telegram_id
        assert self.db is not None
        record = await SqlCustomers(self.db).seen(
            telegram_id=telegram_id,
            first_name=None,
            username=None,
            language_code=None,
            now=START,
            refresh_after=timedelta(minutes=10),
        )
        return record.id

    async def entry_count(self) -> int:
        if isinstance(self.store, MemoryLedger):
            return len(self.store.state.entries)
        assert self.db is not None
        async with self.db.read() as conn:
            found = await conn.execute(select(func.count()).select_from(ledger_entries))
            return int(found.scalar_one())


async def call(ledger: PointsLedger, customer: int, op: Op, order: str) -> Any:
    """Run one operation (on ``order`` if it concerns one); a refusal is an answer too."""
    try:
        match op:
            case Checkout(total=total, points=points):
                # Points the customer cannot use are simply paid in money.
                with contextlib.suppress(LedgerRefusal):
                    if points:
                        await ledger.redeem(
                            customer_id=customer, order_id=order, order_total=total, points=points
                        )
                return await ledger.accrue(customer_id=customer, order_id=order, total=total)
            case Redeem(total=total, points=points):
                return await ledger.redeem(
                    customer_id=customer, order_id=order, order_total=total, points=points
                )
            case Pay(total=total):
                return await ledger.accrue(customer_id=customer, order_id=order, total=total)
            case Cancel():
                return await ledger.cancel_order(
                    customer_id=customer, order_id=order, reason="refunded"
                )
            case Grant(kind=kind, n=n, points=points):
                return await ledger.grant(
                    customer_id=customer,
                    kind=kind,
                    source=f"gift:{customer}:{n}",
                    points=points,
                    reason="a gift",
                )
            case Adjust(n=n, points=points):
                return await ledger.adjust(
                    customer_id=customer,
                    key=f"{customer}-k{n}",
                    points=points,
                    reason="by hand",
                    admin_id=7,
                )
            case Expire():
                return await ledger.expire_due()
    except LedgerRefusal as refusal:
        return refusal
    raise AssertionError(f"not a call: {op}")


def outcome(result: Any) -> tuple[Any, ...]:
    """What a caller learns from a result, without the store's own ids."""
    match result:
        case LedgerRefusal():
            return ("refused", result.code, result.message)
        case Accrual():
            return (result.points, result.paid_amount, result.available_at, result.tier_change)
        case Redemption():
            return ("redeemed", result.points)
        case Cancellation():
            return (
                result.reversed_points,
                result.restored_points,
                result.corrected_points,
                result.owed_points,
                result.tier_change,
                [(entry.kind, entry.amount) for entry in result.entries],
            )
        case Posted():
            return (result.entry.kind, result.entry.amount, result.entry.actor_id)
    return ("expired",)  # counts differ: a shared database holds other examples' customers


def entry_ids(result: Any) -> list[int]:
    if isinstance(result, Cancellation):
        return [entry.id for entry in result.entries]
    return [result.entry.id]


async def check_books(
    books: Books, customer: int, clock: FixedClock, *, after_expiry: bool
) -> BalanceView:
    """The invariants that hold after every step."""
    check = await books.store.reconcile(customer_id=customer)
    assert check.consistent, check
    assert not check.inconsistent_lots  # no lot gave more than it held
    view = await balance(books.store, customer_id=customer, clock=clock)
    assert view.available >= 0 and view.pending >= 0 and view.debt >= 0
    if view.debt:  # a debt exists only while no points are left to pay it
        assert view.available == view.pending == 0
    if after_expiry:
        assert view.total == check.entries_sum
    return view


async def run_sequence(
    books: Books, telegram_id: int, bonus: Bonus, ops: list[Op], model: Books | None = None
) -> None:
    clock = FixedClock(START)
    ladder = TierLadder.from_rules(bonus, currency="RUB")
    ledger = PointsLedger(books.store, bonus=bonus, ladder=ladder, clock=clock)
    customer = await books.customer(telegram_id)
    twin = None
    if model is not None:
        model_ledger = PointsLedger(model.store, bonus=bonus, ladder=ladder, clock=clock)
        twin = (model_ledger, await model.customer(customer), model.store)
    done: list[tuple[Op, str, Any]] = []  # successful calls, for replays
    placed: list[str] = []  # the customer's orders so far

    def order_for(op: Op) -> str:
        if isinstance(op, Pay | Cancel) and placed:
            return placed[op.pick % len(placed)]
        placed.append(f"{customer}-O{len(placed)}")
        return placed[-1]

    await check_books(books, customer, clock, after_expiry=True)
    for op in ops:
        if isinstance(op, Wait):
            clock.advance(op.delta)
            continue
        if isinstance(op, Replay):
            if not done:
                continue
            original_op, order, original = done[op.pick % len(done)]
            count_before = await books.entry_count()
            before = await books.store.reconcile(customer_id=customer)
            again = await call(ledger, customer, original_op, order)
            assert not isinstance(again, LedgerRefusal), (original_op, again)
            assert again.replayed and entry_ids(again) == entry_ids(original), original_op
            assert await books.entry_count() == count_before
            assert await books.store.reconcile(customer_id=customer) == before
            continue
        view = await balance(books.store, customer_id=customer, clock=clock)  # as the op sees it
        count_before = await books.entry_count()
        order = order_for(op) if isinstance(op, Checkout | Redeem | Pay | Cancel) else ""
        result = await call(ledger, customer, op, order)
        if twin is not None:
            model_result = await call(twin[0], twin[1], op, order)
            assert outcome(result) == outcome(model_result), op
        if isinstance(result, LedgerRefusal):
            # A checkout's redemption may stand when its accrual is refused; anything else
            # refused must have written nothing.
            if not isinstance(op, Checkout):
                assert await books.entry_count() == count_before, f"{op} refused but wrote"
        elif not isinstance(op, Expire):
            done.append((op, order, result))
        after = await check_books(books, customer, clock, after_expiry=isinstance(op, Expire))
        if isinstance(result, Cancellation) and not result.replayed:
            await check_cancellation(books, customer, order, result)
        if isinstance(op, Redeem):
            if isinstance(result, Redemption) and not result.replayed:
                assert op.points <= view.available
                assert after.available == view.available - op.points
            elif isinstance(result, LedgerRefusal) and result.code is RefusalCode.NOT_ENOUGH_POINTS:
                assert op.points > view.available
        if twin is not None:
            assert after == await balance(twin[2], customer_id=twin[1], clock=clock), op
    if twin is not None:
        assert model is not None
        ours = await history(books.store, customer_id=customer, limit=1000)
        theirs = await history(model.store, customer_id=twin[1], limit=1000)
        assert [_comparable(entry) for entry in ours.entries] == [
            _comparable(entry) for entry in theirs.entries
        ]


async def check_cancellation(books: Books, customer: int, order: str, result: Any) -> None:
    """A cancelled order gives back exactly the points that paid for it, and takes back exactly
    the points it earned (from its own lot, or charged/owed for those used elsewhere), except
    what had already expired: as written in the ledger, and as reported."""
    async with books.store.book(customer_id=customer) as book:
        entries = {entry.kind: entry for entry in await book.entries_for(source=f"order:{order}")}
        expired = 0
        if EntryKind.ACCRUAL in entries:
            for lot in await book.lots_of(entry_id=entries[EntryKind.ACCRUAL].id):
                uses = await book.lot_uses(lot_id=lot.id)
                expired += sum(use.amount for use in uses if use.kind is EntryKind.EXPIRY)

    def points(kind: EntryKind) -> int:
        return abs(entries[kind].amount) if kind in entries else 0

    assert points(EntryKind.RESTORATION) == points(EntryKind.REDEMPTION)
    taken_back = points(EntryKind.REVERSAL) + points(EntryKind.CORRECTION)
    assert taken_back == points(EntryKind.ACCRUAL) - expired
    assert (result.restored_points, result.reversed_points + result.corrected_points) == (
        points(EntryKind.RESTORATION),
        taken_back,
    )


def _comparable(entry: Any) -> tuple[Any, ...]:
    # Expiry sources name lot ids, which each store numbers its own way.
    source = None if entry.kind is EntryKind.EXPIRY else entry.source
    return (entry.kind, entry.amount, entry.paid_amount, entry.reason, source, entry.occurred_at)


@pytest.fixture
async def sqlite_books(tmp_path: Path) -> AsyncIterator[Books]:
    async with sqlite_database(tmp_path / "ledger.sqlite3") as db:
        yield Books(SqlLedger(db), db)


@pytest.fixture
async def postgres_books() -> AsyncIterator[Books]:
    async with postgres_database() as db:
        yield Books(SqlLedger(db), db)


SHARED_DATABASE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
sequences = st.lists(operations, min_size=8, max_size=40)


@settings(max_examples=200, deadline=None)
@given(bonus=rule_sets, ops=sequences)
async def test_any_sequence_keeps_the_in_memory_books_straight(bonus: Bonus, ops: list[Op]) -> None:
    await run_sequence(Books(MemoryLedger(), None), 1, bonus, ops)


_telegram_ids = itertools.count(10_000)


@settings(max_examples=40, deadline=None, suppress_health_check=SHARED_DATABASE)
@given(bonus=rule_sets, ops=sequences)
async def test_any_sequence_keeps_sqlite_straight_and_agrees_with_the_model(
    sqlite_books: Books, bonus: Bonus, ops: list[Op]
) -> None:
    # One database per test, one new customer per example: examples cannot see each other.
    model = Books(MemoryLedger(), None)
    await run_sequence(sqlite_books, next(_telegram_ids), bonus, ops, model)


@pytest.mark.postgres
@settings(max_examples=20, deadline=None, suppress_health_check=SHARED_DATABASE)
@given(bonus=rule_sets, ops=sequences)
async def test_any_sequence_keeps_postgresql_straight_and_agrees_with_the_model(
    postgres_books: Books, bonus: Bonus, ops: list[Op]
) -> None:
    model = Books(MemoryLedger(), None)
    await run_sequence(postgres_books, next(_telegram_ids), bonus, ops, model)
