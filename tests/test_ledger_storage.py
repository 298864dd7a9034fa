"""Ledger storage contract on SQLite and PostgreSQL: keys, guards, locks, and the migration."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, inspect, select, update
from sqlalchemy.exc import IntegrityError

from scenarios.clock import FixedClock
from scenarios.ledger import LedgerRefusal, PointsLedger, welcome_source
from scenarios.rules import Bonus
from scenarios.tiers import TierLadder
from storage.customers import SqlCustomers
from storage.database import Database
from storage.ledger import (
    Allocation,
    EntryKind,
    LedgerIntegrityError,
    NewEntry,
    NewLot,
    SqlLedger,
    SqlLedgerBook,
)
from storage.schema import customers, ledger_entries, ledger_lots, metadata, outbox
from tests.support.databases import postgres_database, sqlite_database

DAY = timedelta(days=1)
RUB = 100


async def new_customer(db: Database, clock: FixedClock, telegram_id: int = 1) -> int:
    record = await SqlCustomers(db).seen(
        telegram_id=telegram_id,
        first_name=None,
        username=None,
        language_code=None,
        now=clock.now(),
        refresh_after=timedelta(minutes=10),
    )
    return record.id


def points_ledger(db: Database, clock: FixedClock, **rules: Any) -> PointsLedger:
    bonus = Bonus(**rules)
    ladder = TierLadder.from_rules(bonus, currency="RUB")
    return PointsLedger(SqlLedger(db), bonus=bonus, ladder=ladder, clock=clock)


def gift(clock: FixedClock, source: str, amount: int) -> tuple[NewEntry, NewLot]:
    now = clock.now()
    entry = NewEntry(
        kind=EntryKind.WELCOME,
        source=source,
        amount=amount,
        reason="welcome",
        actor_id=None,
        occurred_at=now,
    )
    return entry, NewLot(amount=amount, earned_at=now, available_at=now, expires_at=now + 365 * DAY)


async def count(db: Database, table: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_an_effect_is_written_once_because_of_a_unique_index(
    db: Database, clock: FixedClock
) -> None:
    customer = await new_customer(db, clock)
    store = SqlLedger(db)
    entry, lot = gift(clock, "customer:1", 100)
    async with store.book(customer_id=customer) as book:
        assert await book.append(entry=entry, lots=[lot]) is not None
        assert await book.append(entry=entry, lots=[lot]) is None  # the index said no
    assert (await store.reconcile(customer_id=customer)).cached_balance == 100
    with pytest.raises(IntegrityError):  # no if in the way: the database itself refuses
        async with db.transaction() as conn:
            await conn.execute(
                ledger_entries.insert().values(
                    customer_id=customer,
                    kind="welcome",
                    source="customer:1",
                    amount=5,
                    reason="again",
                    occurred_at=clock.now(),
                )
            )
    assert await count(db, ledger_entries) == 1


async def test_a_lot_never_gives_more_than_it_holds_and_a_failed_write_leaves_nothing(
    db: Database, clock: FixedClock
) -> None:
    customer = await new_customer(db, clock)
    store = SqlLedger(db)
    entry, lot = gift(clock, "customer:1", 100)
    async with store.book(customer_id=customer) as book:
        appended = await book.append(entry=entry, lots=[lot])
    assert appended is not None
    lot_id = appended.lots[0].id
    spend = NewEntry(
        kind=EntryKind.REDEMPTION,
        source="order:X",
        amount=-101,
        reason="too much",
        actor_id=None,
        occurred_at=clock.now(),
    )
    with pytest.raises(LedgerIntegrityError, match=f"lot {lot_id} cannot give 101 points"):
        async with store.book(customer_id=customer) as book:
            await book.append(entry=spend, spend=[Allocation(lot_id=lot_id, amount=101)])
    assert await count(db, ledger_entries) == 1
    check = await store.reconcile(customer_id=customer)
    assert check.consistent and check.entries_sum == 100
    with pytest.raises(IntegrityError, match="remaining_within_amount"):
        async with db.transaction() as conn:
            await conn.execute(update(ledger_lots).values(remaining=ledger_lots.c.remaining + 1))


async def test_entries_that_do_not_add_up_are_refused(db: Database, clock: FixedClock) -> None:
    customer = await new_customer(db, clock)
    entry, lot = gift(clock, "customer:1", 100)
    with pytest.raises(LedgerIntegrityError, match="lots do not add up"):
        async with SqlLedger(db).book(customer_id=customer) as book:
            await book.append(entry=entry, lots=[replace(lot, amount=99)])
    debit = NewEntry(
        kind=EntryKind.ADJUSTMENT,
        source="adjustment:x",
        amount=-10,
        reason="x",
        actor_id=1,
        occurred_at=clock.now(),
    )
    with pytest.raises(LedgerIntegrityError, match="allocations do not add up"):
        async with SqlLedger(db).book(customer_id=customer) as book:
            await book.append(entry=debit, owed=9)
    assert await count(db, ledger_entries) == 0


async def test_concurrent_redemptions_for_one_customer_never_overspend(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six checkouts race for 100 points, 30 each: three get them, three are told why not.

    Each redemption dawdles after reading the lots, so without the customer's lock every one
    of them would have planned its spend from the same 100 points.
    """
    customer = await new_customer(db, clock)
    ledger = points_ledger(db, clock)
    await ledger.grant(
        customer_id=customer,
        kind=EntryKind.WELCOME,
        source=welcome_source(customer),
        points=100,
        reason="welcome",
    )
    reading = SqlLedgerBook.open_lots

    async def slow_open_lots(self: SqlLedgerBook) -> Any:
        lots = await reading(self)
        await asyncio.sleep(0.02)
        return lots

    monkeypatch.setattr(SqlLedgerBook, "open_lots", slow_open_lots)

    async def checkout(n: int) -> str:
        try:
            await ledger.redeem(
                customer_id=customer, order_id=f"A-{n}", order_total=1000 * RUB, points=30
            )
        except LedgerRefusal as refusal:
            return refusal.code
        return "paid"

    outcomes = await asyncio.gather(*(checkout(n) for n in range(6)))
    assert sorted(outcomes) == ["not_enough_points"] * 3 + ["paid"] * 3
    store = SqlLedger(db)
    check = await store.reconcile(customer_id=customer)
    assert check.consistent and check.entries_sum == 10


async def test_the_same_order_sent_concurrently_is_recorded_once(
    db: Database, clock: FixedClock
) -> None:
    customer = await new_customer(db, clock)
    ledger = points_ledger(db, clock)
    results = await asyncio.gather(
        *(ledger.accrue(customer_id=customer, order_id="A-1", total=1000 * RUB) for _ in range(5))
    )
    assert len({result.entry.id for result in results}) == 1
    assert [result.replayed for result in results].count(False) == 1
    assert await count(db, ledger_entries) == 1


async def test_two_customers_racing_for_one_order_id_never_get_each_others_points(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Different customers hold different locks, so both may look before either writes; the
    unique index then decides, and the loser is refused rather than handed the winner's entry.
    """
    anna, boris = await new_customer(db, clock, 1), await new_customer(db, clock, 2)
    ledger = points_ledger(db, clock)
    looking = SqlLedgerBook.entries_for

    async def slow_entries_for(self: SqlLedgerBook, *, source: str) -> Any:
        entries = await looking(self, source=source)
        await asyncio.sleep(0.02)
        return entries

    monkeypatch.setattr(SqlLedgerBook, "entries_for", slow_entries_for)

    async def claim(customer: int) -> str:
        try:
            accrual = await ledger.accrue(customer_id=customer, order_id="A-1", total=1000 * RUB)
        except LedgerRefusal as refusal:
            return refusal.code
        return f"earned {accrual.points} for {accrual.entry.customer_id == customer}"

    outcomes = await asyncio.gather(claim(anna), claim(boris))
    assert sorted(outcomes) == ["earned 50 for True", "key_of_another_customer"]
    assert await count(db, ledger_entries) == 1


async def test_paid_spend_leaves_out_cancelled_orders_and_those_before_the_window(
    db: Database, clock: FixedClock
) -> None:
    customer = await new_customer(db, clock)
    ledger = points_ledger(db, clock)
    start = clock.now()
    await ledger.accrue(customer_id=customer, order_id="A-1", total=1000 * RUB)
    clock.advance(30 * DAY)
    await ledger.accrue(customer_id=customer, order_id="A-2", total=500 * RUB)
    await ledger.accrue(customer_id=customer, order_id="A-3", total=200 * RUB)
    await ledger.cancel_order(customer_id=customer, order_id="A-3", reason="cancelled")
    store = SqlLedger(db)
    assert await store.paid_spend(customer_id=customer, since=None) == 1500 * RUB
    assert await store.paid_spend(customer_id=customer, since=start + DAY) == 500 * RUB


async def test_expiry_runs_find_only_customers_with_unspent_points_past_expiry(
    db: Database, clock: FixedClock
) -> None:
    anna, boris = await new_customer(db, clock, 1), await new_customer(db, clock, 2)
    ledger = points_ledger(db, clock, hold_days=0)
    await ledger.accrue(customer_id=anna, order_id="A-1", total=1000 * RUB)
    await ledger.accrue(customer_id=boris, order_id="B-1", total=1000 * RUB)
    await ledger.redeem(customer_id=boris, order_id="B-2", order_total=1000 * RUB, points=50)
    store = SqlLedger(db)
    assert await store.customers_with_due_lots(now=clock.now() + 364 * DAY, limit=10) == []
    assert await store.customers_with_due_lots(now=clock.now() + 365 * DAY, limit=10) == [anna]


async def test_a_customer_with_a_ledger_cannot_be_deleted(db: Database, clock: FixedClock) -> None:
    customer = await new_customer(db, clock)
    await points_ledger(db, clock).accrue(customer_id=customer, order_id="A-1", total=1000)
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(delete(customers).where(customers.c.id == customer))


@pytest.mark.postgres
async def test_the_customer_lock_does_not_hold_up_messages_to_that_customer(
    clock: FixedClock,
) -> None:
    """FOR NO KEY UPDATE, not FOR UPDATE: an outbox row that references the customer is not
    kept waiting by a ledger change in progress (a plain FOR UPDATE would block it)."""
    async with postgres_database() as db:
        customer = await new_customer(db, clock)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def ledger_work() -> None:
            async with SqlLedger(db).book(customer_id=customer):
                inside.set()
                await release.wait()

        async def queue_message() -> None:
            async with db.transaction() as conn:
                await conn.execute(
                    outbox.insert().values(
                        dedupe_key="k",
                        chat_id=1,
                        customer_id=customer,
                        category="service",
                        kind="x",
                        priority=1,
                        payload={},
                        not_before=clock.now(),
                        state="pending",
                        created_at=clock.now(),
                        updated_at=clock.now(),
                    )
                )

        holder = asyncio.create_task(ledger_work())
        await inside.wait()
        await asyncio.wait_for(queue_message(), timeout=5)
        release.set()
        await holder
        assert await count(db, outbox) == 1


def _ledger_shape(connection: Any) -> dict[str, Any]:
    """What Alembic's compare leaves out: check constraints and partial index conditions."""
    inspector = inspect(connection)
    shape: dict[str, Any] = {}
    for table in ("ledger_entries", "ledger_lots", "ledger_allocations", "ledger_accounts"):
        checks = inspector.get_check_constraints(table)
        shape[f"{table} checks"] = sorted(
            (check["name"], " ".join(str(check["sqltext"]).split()).strip("()")) for check in checks
        )
        shape[f"{table} indexes"] = sorted(
            (
                index["name"],
                tuple(index["column_names"]),
                index.get("unique"),
                " ".join(
                    str(value)
                    for key, value in index.get("dialect_options", {}).items()
                    if key.endswith("_where")
                ),
            )
            for index in inspector.get_indexes(table)
        )
    return shape


async def test_the_migration_builds_the_checks_and_partial_index_schema_py_declares(
    db: Database, tmp_path: Path
) -> None:
    async def shape_of(database: Database) -> dict[str, Any]:
        async with database.engine.connect() as connection:
            return await connection.run_sync(_ledger_shape)

    migrated = await shape_of(db)
    if db.is_sqlite:
        declared_db_context = sqlite_database(tmp_path / "declared.sqlite3", migrated=False)
    else:
        declared_db_context = postgres_database(migrated=False)
    async with declared_db_context as declared_db:
        async with declared_db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        declared = await shape_of(declared_db)
    assert migrated == declared
    assert tuple(name for name, _ in migrated["ledger_lots checks"]) == (
        "ck_ledger_lots_remaining_within_amount",
    )
    partial = [index for index in migrated["ledger_lots indexes"] if index[3]]
    assert [(name, where) for name, _, _, where in partial] == [
        ("ix_ledger_lots_open_expiry", "(remaining > 0)" if not db.is_sqlite else "remaining > 0")
    ]
