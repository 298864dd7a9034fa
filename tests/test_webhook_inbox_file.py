"""The inbox in a file of its own, and deliveries applied in batches, on SQLite and PostgreSQL.

A platform's 200 must not wait for the main database's writer; the worker applies what is due
in one transaction, new orders together; a crash between the main commit and the inbox's mark
applies nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select, text

from scenarios.clock import FixedClock
from storage.customers import SqlCustomers
from storage.database import Database
from storage.inbox import InboxState, Settled, SqlInbox
from storage.inbox_file import inbox_database, prepare_inbox
from storage.schema import orders, webhook_inbox
from tests.support.services import services_for
from tests.support.webhooks import shopify_order
from tests.test_webhooks import (
    EARNED,
    PHONE,
    Shop,
    add_member,
    count,
    entries,
    inbox_states,
    serving,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # the deliveries' own time


@pytest.fixture
async def shop(db: Database, clock: FixedClock) -> AsyncIterator[Shop]:
    async with serving(db, clock) as served:
        yield served


def statements(db: Database) -> Counter[str]:
    """Statements the database runs from now on, by their first words (INSERT INTO orders)."""
    seen: Counter[str] = Counter()

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen[" ".join(statement.split()[:3])] += 1

    return seen


async def test_a_delivery_is_acknowledged_while_the_main_database_writer_is_held(
    shop: Shop,
) -> None:
    await add_member(shop.db)
    async with shop.db.transaction() as conn:
        await conn.execute(orders.delete().where(orders.c.order_ref == "nothing"))  # a writer
        # The platform's 200 comes while this write transaction is still open: on SQLite the
        # inbox's row goes to its own file, which has a writer of its own.
        answer = await asyncio.wait_for(
            shop.shopify(shopify_order(), topic="orders/paid", webhook_id="held"), 30
        )
        assert answer == (200, {"status": "accepted"})
    assert await count(shop.inbox_db, webhook_inbox) == 1
    assert await shop.process() == 1
    assert await count(shop.db, orders) == 1


def batch_order(n: int, **changes: Any) -> dict[str, Any]:
    """Order #200n of its own customer (n = 0: the member's phone, the others nobody's yet)."""
    phone = PHONE if n == 0 else f"+7999555{n:04d}"
    return shopify_order(
        id=820_000 + n,
        name=f"#{2000 + n}",
        order_number=2000 + n,
        customer={"first_name": "Анна", "phone": phone},
        **changes,
    )


async def test_new_orders_due_together_are_written_in_one_statement(shop: Shop) -> None:
    member = await add_member(shop.db)
    for n in range(20):
        answer = await shop.shopify(batch_order(n), topic="orders/paid", webhook_id=f"b-{n}")
        assert answer[0] == 200
    # The first order again, and the fulfilment of the last one: applied after the batch's
    # new orders, they find those orders recorded.
    await shop.shopify(batch_order(0), topic="orders/create", webhook_id="b-again")
    fulfilled = batch_order(19, fulfillment_status="fulfilled")
    await shop.shopify(fulfilled, topic="orders/fulfilled", webhook_id="b-sent")
    seen = statements(shop.db)
    assert await shop.hooks.worker.process_batch() == 22
    assert seen["INSERT INTO orders"] == 1, seen
    nobody = "; no member has this phone yet (joining with it claims the order)"
    assert await inbox_states(shop.inbox_db) == [
        ("shopify", "done", "order #2000 recorded as paid"),
        *[("shopify", "done", f"order #{2000 + n} recorded as paid{nobody}") for n in range(1, 20)],
        ("shopify", "done", "order #2000: nothing new"),
        ("shopify", "done", "order #2019: paid → delivered"),
    ]
    accruals = [entry for entry in await entries(shop.db, member) if entry[0] == "accrual"]
    assert [(source, amount) for _, source, amount, _ in accruals] == [("order:#2000", EARNED)]
    assert await count(shop.db, orders) == 20


async def test_a_crash_after_the_orders_commit_and_before_the_mark_applies_nothing_twice(
    sqlite_db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(sqlite_db, clock) as shop:
        assert shop.inbox_db is not shop.db, "on SQLite the inbox has a file of its own"
        member = await add_member(shop.db)
        await shop.shopify(shopify_order(), topic="orders/paid", webhook_id="c-1")
        cancelled = shopify_order(cancelled_at="2026-12-01T12:00:00+03:00")
        await shop.shopify(cancelled, topic="orders/cancelled", webhook_id="c-2")

        async def killed(*_: object, **__: object) -> None:
            raise KeyboardInterrupt  # the process dies here: the main file has committed

        monkeypatch.setattr(shop.hooks.inbox, "settle", killed)
        with pytest.raises(KeyboardInterrupt):
            await shop.process()
        monkeypatch.undo()
        assert [state for _, state, _ in await inbox_states(shop.inbox_db)] == ["pending"] * 2
        applied = await entries(shop.db, member)
        assert [kind for kind, *_ in applied] == ["accrual", "reversal"]
        # The restarted worker takes both again: the order is known, its cancellation done.
        assert await shop.process() == 2
        assert await inbox_states(shop.inbox_db) == [
            ("shopify", "done", "order #1001: nothing new"),
            ("shopify", "done", "order #1001 is cancelled"),
        ]
        assert await entries(shop.db, member) == applied
        assert await count(shop.db, orders) == 1


async def test_finished_deliveries_keep_no_body_and_an_erasure_empties_the_waiting_ones(
    shop: Shop,
) -> None:
    await add_member(shop.db)
    other = "+79995550042"
    await shop.shopify(shopify_order(), topic="orders/paid", webhook_id="e-done")
    dollars = shopify_order(id=830_001, name="#3001", order_number=3001, currency="USD")
    await shop.shopify(dollars, topic="orders/paid", webhook_id="e-failed")
    someone_else = shopify_order(
        id=830_002,
        name="#3002",
        order_number=3002,
        currency="USD",
        customer={"first_name": "Олег", "phone": other},
        billing_address={"phone": other},
        shipping_address={"phone": other},
    )
    await shop.shopify(someone_else, topic="orders/paid", webhook_id="e-other")
    await shop.process()
    assert [state for _, state, _ in await inbox_states(shop.inbox_db)] == [
        "done",
        "failed",
        "failed",
    ]
    assert await bodies(shop.inbox_db) == ["", "kept", "kept"]

    services = services_for(
        shop.db,
        clock=shop.clock,
        zone=ZoneInfo("UTC"),
        staff_redactor=False,
        inbox_db=shop.inbox_db,
    )
    record = await SqlCustomers(shop.db).by_telegram_id(telegram_id=5001)
    assert record is not None
    async with shop.db.transaction():
        await services.signup.erase(record)
    await shop.inbox_db.settle()  # the WAL checkpoint the erasure asked for
    states = await inbox_states(shop.inbox_db)
    assert states[1] == ("shopify", "skipped", "the customer erased their data")
    assert states[2][1] == "failed", "another customer's delivery stays for a retry"
    assert await bodies(shop.inbox_db) == ["", "", "kept"]
    if (path := shop.inbox_db.sqlite_path) is not None:
        kept = b"".join(
            file.read_bytes() for file in path.parent.glob(f"{path.name}*") if file.is_file()
        )
        assert b"9991234567" not in kept
        assert b"9995550042" in kept  # the search does find a phone that is still there


async def test_deliveries_kept_in_the_main_file_move_with_their_ids_and_no_finished_body(
    sqlite_db: Database, clock: FixedClock
) -> None:
    old = SqlInbox(sqlite_db)  # where an older version kept the inbox
    for delivery_id in ("done", "failed"):
        await old.add(
            platform="shopify",
            delivery_id=delivery_id,
            topic="orders/paid",
            body='{"phone": "+79991234567"}',
            now=clock.now(),
        )
    done, failed = await old.listed(state=InboxState.PENDING)
    await old.settle(
        [Settled(done.id, InboxState.DONE, "recorded"), Settled(failed.id, InboxState.FAILED, "x")],
        now=clock.now(),
    )
    # settle() empties a finished body: put it back, as an older version left it.
    async with sqlite_db.transaction() as conn:
        await conn.execute(webhook_inbox.update().values(body='{"phone": "+79991234567"}'))
    inbox_db = inbox_database(sqlite_db)
    try:
        await prepare_inbox(inbox_db, sqlite_db)
        await prepare_inbox(inbox_db, sqlite_db)  # a second start moves nothing more
        assert await old.counts() == {}
        moved = SqlInbox(inbox_db)
        assert await moved.counts() == {"done": 1, "failed": 1}
        assert [row.id for row in await moved.listed(state=InboxState.DONE)] == [done.id]
        assert [row.id for row in await moved.listed(state=InboxState.FAILED)] == [failed.id]
        assert await bodies(inbox_db) == ["", "kept"]
    finally:
        await inbox_db.close()


async def bodies(db: Database) -> list[str]:
    """Each delivery's body, in order: "" when emptied, else "kept"."""
    async with db.read() as conn:
        rows = await conn.execute(select(webhook_inbox.c.body).order_by(webhook_inbox.c.id))
        return ["kept" if body else "" for body in rows.scalars()]


async def due_plan(db: Database) -> str:
    """How SQLite reads the worker's batch of due deliveries (EXPLAIN QUERY PLAN)."""
    captured: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "webhook_inbox" in statement:
            captured.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await SqlInbox(db).due(now=datetime(2026, 12, 1, 10, 0, tzinfo=UTC), limit=50)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    [statement] = captured
    async with db.read() as conn:
        raw = await conn.get_raw_connection()
        cursor = await raw.driver_connection.execute(
            f"EXPLAIN QUERY PLAN {statement}",
            (InboxState.PENDING, "2026-12-01 10:00:00.000000", 50, 0),
        )
        return " / ".join(str(row[-1]) for row in await cursor.fetchall())


async def test_the_workers_batch_is_read_in_id_order_from_an_index_whatever_the_backlog(
    sqlite_db: Database,
) -> None:
    """It was read by (state, not_before) and sorted: every pending row on every batch."""
    inbox_db = inbox_database(sqlite_db)
    try:
        await prepare_inbox(inbox_db, sqlite_db)
        plan = await due_plan(inbox_db)
        assert "ix_webhook_inbox_state_id" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    finally:
        await inbox_db.close()


async def test_an_inbox_file_made_by_an_earlier_version_gets_the_new_index(
    sqlite_db: Database,
) -> None:
    inbox_db = inbox_database(sqlite_db)
    try:
        async with inbox_db.transaction() as conn:  # as the file was before 0025
            await conn.execute(
                text(
                    "CREATE TABLE webhook_inbox (id INTEGER PRIMARY KEY, platform VARCHAR(16),"
                    " delivery_id VARCHAR(128), topic VARCHAR(64), body TEXT, state VARCHAR(12),"
                    " reason TEXT, attempts INTEGER DEFAULT 0, not_before DATETIME,"
                    " received_at DATETIME, updated_at DATETIME, UNIQUE (platform, delivery_id))"
                )
            )
            await conn.execute(
                text("CREATE INDEX ix_webhook_inbox_state_due ON webhook_inbox (state, not_before)")
            )
        await prepare_inbox(inbox_db, sqlite_db)
        async with inbox_db.read() as conn:
            names = set(
                (
                    await conn.execute(
                        text(
                            "SELECT name FROM sqlite_master"
                            " WHERE type = 'index' AND name LIKE 'ix_%'"
                        )
                    )
                ).scalars()
            )
        assert names == {"ix_webhook_inbox_state_id"}
        plan = await due_plan(inbox_db)
        assert "ix_webhook_inbox_state_id" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        await inbox_db.close()
