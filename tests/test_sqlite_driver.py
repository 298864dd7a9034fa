"""The SQLite driver adapter: one trip to aiosqlite's thread per statement, short reads on none;
the same results as stock.

Everything SQLAlchemy reads from a cursor (rows, RETURNING, rowcount, lastrowid, errors, a
streamed result) is checked on a real SQLite file through the bot's own Database handle.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import aliased

from storage.database import WAL_FOLD_DELAY, Database

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, nullable=False, unique=True),
    Column("amount", Integer, nullable=False),
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'driver.sqlite3'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.close()


@contextmanager
def trips_to_the_thread() -> Iterator[list[str]]:
    """Names of the functions handed to aiosqlite's worker thread meanwhile."""
    handed: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        handed.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield handed
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]


async def open_the_pools_connection(db: Database) -> None:
    """Before counting trips: a new connection's set-up (its PRAGMAs) goes to the thread."""
    async with db.engine.connect() as conn:
        await conn.execute(select(items.c.id))


async def test_a_short_read_runs_without_a_trip_to_the_thread(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items), [{"name": "a", "amount": 1}, {"name": "b", "amount": 2}])
    async with db.read() as conn:
        await conn.execute(select(items.c.id))  # the connection's own set-up is not counted
    with trips_to_the_thread() as handed:
        async with db.read() as conn:
            rows = (await conn.execute(select(items.c.name).order_by(items.c.id))).all()
    assert [row.name for row in rows] == ["a", "b"]
    # The stock adapter makes four trips for the SELECT (cursor, execute, fetch, close) and
    # one for the COMMIT; a read's BEGIN, statement and commit now run where they are asked.
    assert handed == []


async def test_a_transaction_of_one_row_writes_runs_without_a_trip_to_the_thread(
    db: Database,
) -> None:
    await open_the_pools_connection(db)
    with trips_to_the_thread() as handed:
        async with db.transaction() as conn:
            await conn.execute(insert(items).values(name="a", amount=1))
            await conn.execute(update(items).where(items.c.name == "a").values(amount=2))
            count = (await conn.execute(select(func.count()).select_from(items))).scalar_one()
    # BEGIN IMMEDIATE, the INSERT, the UPDATE by a unique key, the SELECT and the COMMIT.
    assert count == 1
    assert handed == [], handed
    async with db.read() as conn:
        assert (await conn.execute(select(items.c.name, items.c.amount))).all() == [("a", 2)]


async def test_a_statement_that_may_write_many_rows_is_one_trip_to_the_thread(
    db: Database,
) -> None:
    await open_the_pools_connection(db)
    with trips_to_the_thread() as handed:
        async with db.transaction() as conn:
            await conn.execute(update(items).where(items.c.amount > 0).values(amount=0))
    # BEGIN IMMEDIATE went with the UPDATE; a transaction that used the thread commits there.
    assert handed == ["_run", "commit"], handed


async def test_a_long_read_is_interrupted_in_place_and_finished_on_the_thread(
    db: Database, tmp_path: Path
) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items), [{"name": f"n{n}", "amount": n} for n in range(300)])
    first, second, third = aliased(items), aliased(items), aliased(items)
    many = first.join(second, true()).join(third, true())  # 27 million rows to count
    async with db.read() as conn:
        before = (await conn.execute(select(func.count()).select_from(items))).scalar_one()
        # Another connection commits a row: this transaction's snapshot must not see it.
        async with aiosqlite.connect(tmp_path / "driver.sqlite3") as other:
            await other.execute("INSERT INTO items (name, amount) VALUES ('late', 0)")
            await other.commit()
        with trips_to_the_thread() as handed:
            counted = await conn.execute(select(func.count()).select_from(many))
        assert counted.scalar_one() == before**3
        # The interruption left the transaction as it was: the same snapshot after it.
        after = (await conn.execute(select(func.count()).select_from(items))).scalar_one()
    assert (before, after) == (300, 300)
    assert handed == ["_run"], handed  # the long count alone went to the thread
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(items))).scalar_one() == 301


async def test_a_read_in_place_does_not_wait_for_another_processs_writer(
    db: Database, tmp_path: Path
) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items).values(name="a", amount=1))
    async with aiosqlite.connect(tmp_path / "driver.sqlite3") as other:
        await other.execute("BEGIN IMMEDIATE")
        await other.execute("UPDATE items SET amount = 2")  # not committed
        with trips_to_the_thread() as handed:
            async with db.read() as conn:
                amount = (await conn.execute(select(items.c.amount))).scalar_one()
        await other.rollback()
    assert (amount, handed) == (1, [])


async def test_an_error_in_a_read_in_place_is_sqlalchemys_and_the_connection_goes_on(
    db: Database,
) -> None:
    missing = Table("missing", MetaData(), Column("id", Integer))
    with pytest.raises(OperationalError, match="no such table"):
        async with db.read() as conn:
            await conn.execute(select(missing.c.id))
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(items))).scalar_one() == 0


async def test_rowcount_lastrowid_and_returning_are_those_of_the_statement(db: Database) -> None:
    async with db.transaction() as conn:
        first = await conn.execute(insert(items).values(name="a", amount=1))
        assert first.inserted_primary_key == (1,)
        many = await conn.execute(
            insert(items), [{"name": "b", "amount": 2}, {"name": "c", "amount": 3}]
        )
        assert many.rowcount == 2
        changed = await conn.execute(update(items).where(items.c.amount >= 2).values(amount=9))
        assert changed.rowcount == 2
        none = await conn.execute(update(items).where(items.c.id == 99).values(amount=0))
        assert none.rowcount == 0
        returned = await conn.execute(
            insert(items).values(name="d", amount=4).returning(items.c.id, items.c.amount)
        )
        assert returned.one() == (4, 4)
    async with db.read() as conn:
        total = await conn.execute(select(items.c.name, items.c.amount).order_by(items.c.id))
        assert total.all() == [("a", 1), ("b", 9), ("c", 9), ("d", 4)]


async def test_a_constraint_error_is_sqlalchemys_and_rolls_back(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(insert(items).values(name="a", amount=1))
            await conn.execute(insert(items).values(name="a", amount=2))
    async with db.read() as conn:
        assert (await conn.execute(select(items))).all() == []


async def test_a_streamed_result_still_comes_in_parts(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items), [{"name": f"n{n}", "amount": n} for n in range(2500)])
    async with db.engine.connect() as conn:
        result = await conn.stream(select(items.c.amount).order_by(items.c.id))
        parts = [len(part) async for part in result.partitions(1000)]
    assert parts == [1000, 1000, 500]


async def test_a_write_transaction_is_its_statements_and_its_commit(db: Database) -> None:
    await open_the_pools_connection(db)
    with trips_to_the_thread() as handed:
        async with db.transaction() as conn:
            await conn.execute(insert(items).values(name="a", amount=1))
            await conn.execute(update(items).values(amount=2))
    # BEGIN IMMEDIATE and the one-row INSERT in place; the UPDATE of every row and the commit
    # on the thread.
    assert handed == ["_run", "commit"], handed
    async with db.read() as conn:
        assert (await conn.execute(select(items.c.amount))).scalar_one() == 2


async def test_the_deferred_begin_still_takes_the_write_lock_and_rolls_back(
    db: Database, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute(insert(items).values(name="a", amount=1))
            # Another connection cannot write meanwhile: BEGIN IMMEDIATE took the lock.
            async with aiosqlite.connect(tmp_path / "driver.sqlite3", timeout=0.05) as other:
                with pytest.raises(aiosqlite.OperationalError, match="locked"):
                    await other.execute("BEGIN IMMEDIATE")
            raise RuntimeError("the handler failed")
    async with db.read() as conn:
        assert (await conn.execute(select(items.c.id))).all() == []


async def test_a_transaction_that_ran_nothing_never_goes_to_the_thread(db: Database) -> None:
    await open_the_pools_connection(db)
    with trips_to_the_thread() as handed:
        async with db.transaction():
            pass
        async with db.read():
            pass
    assert handed == []


async def test_a_streamed_result_begins_its_transaction_first(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items), [{"name": f"n{i}", "amount": i} for i in range(5)])
    async with db.transaction() as conn:
        stream = await conn.stream(select(items.c.amount).order_by(items.c.id))
        amounts = [row.amount async for row in stream]
        await conn.execute(update(items).values(amount=0))
        in_transaction = await conn.exec_driver_sql("SELECT 1")  # still the same transaction
        assert in_transaction.scalar_one() == 1
    assert amounts == [0, 1, 2, 3, 4]


async def test_a_first_statement_that_fails_still_releases_the_write_lock(
    db: Database, tmp_path: Path
) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items).values(name="a", amount=1))
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(insert(items).values(name="a", amount=2))  # BEGIN, then refused
    async with aiosqlite.connect(tmp_path / "driver.sqlite3", timeout=0.05) as other:
        await other.execute("BEGIN IMMEDIATE")  # not "database is locked"
        await other.rollback()
    async with db.transaction() as conn:
        await conn.execute(insert(items).values(name="b", amount=3))
    async with db.read() as conn:
        assert (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all() == [
            "a",
            "b",
        ]


async def test_a_write_behind_another_processs_writer_waits_on_the_thread_not_the_loop(
    db: Database, tmp_path: Path
) -> None:
    await open_the_pools_connection(db)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    other = sqlite3.connect(tmp_path / "driver.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, for 0.3 s
    ticker = asyncio.create_task(tick())
    with trips_to_the_thread() as handed:
        writing = asyncio.create_task(one_insert(db, "a"))
        await asyncio.sleep(0.3)
        assert not writing.done()
        other.rollback()
        await writing
    ticker.cancel()
    other.close()
    # The BEGIN waited on the thread (SQLite's busy timeout there) while the loop went on.
    assert handed == ["_run", "commit"], handed
    assert ticks >= 15
    async with db.engine.connect() as conn:
        timeout = await conn.exec_driver_sql("PRAGMA busy_timeout")
        assert timeout.scalar_one() == 10_000  # set to 0 for the try in place, then back
    async with db.read() as conn:
        assert (await conn.execute(select(items.c.name))).scalars().all() == ["a"]


async def one_insert(db: Database, name: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(insert(items).values(name=name, amount=1))


async def test_a_commit_in_place_leaves_the_wal_and_the_thread_folds_it_soon_after(
    db: Database, tmp_path: Path
) -> None:
    main_file = tmp_path / "driver.sqlite3"
    async with db.transaction() as conn:
        await conn.execute(insert(items).values(name="first", amount=0))
    await asyncio.sleep(WAL_FOLD_DELAY + 0.3)
    size_before = main_file.stat().st_size
    with trips_to_the_thread() as handed:
        for n in range(300):  # each one row in place, each about 1 KB
            async with db.transaction() as conn:
                await conn.execute(insert(items).values(name=f"{n}{'x' * 1000}", amount=n))
        # No commit folded the WAL (SQLite's autocheckpoint would, in the commit, here).
        assert main_file.stat().st_size == size_before
        assert handed == []
        await asyncio.sleep(WAL_FOLD_DELAY + 0.3)
    assert handed == ["_run"]  # one checkpoint, on the thread, for all 300 commits
    assert main_file.stat().st_size > size_before + 300_000
