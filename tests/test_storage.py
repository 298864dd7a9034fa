"""Storage contract: the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, text

from scenarios.clock import FixedClock
from storage.customers import SqlCustomers
from storage.database import Database, DatabaseUrlError, normalize_database_url
from storage.fsm import SqlFsmStates
from storage.migrate import current_revision, head_revision, migrate
from storage.schema import customers, fsm_states, metadata
from tests.support.databases import sqlite_database


class Boom(Exception):
    pass


async def count_customers(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(customers))).scalar_one())


async def test_migrations_reach_head_and_rerun_as_a_no_op(db: Database) -> None:
    assert await current_revision(db) == head_revision()
    assert await migrate(db) == head_revision()
    assert await count_customers(db) == 0


async def test_a_failed_unit_of_work_leaves_nothing_behind(db: Database, clock: FixedClock) -> None:
    repo = SqlCustomers(db)
    with pytest.raises(Boom):
        async with db.transaction():
            await repo.seen(
                telegram_id=1,
                first_name="A",
                username=None,
                language_code="ru",
                now=clock.now(),
                refresh_after=timedelta(minutes=10),
            )
            await SqlFsmStates(db).set_state(key="k", state="S:x", now=clock.now())
            raise Boom
    assert await count_customers(db) == 0
    assert await SqlFsmStates(db).get(key="k") == (None, {})


async def test_nested_transactions_join_the_outer_one(db: Database, clock: FixedClock) -> None:
    repo = SqlCustomers(db)
    with pytest.raises(Boom):
        async with db.transaction():
            async with db.transaction():  # would commit on its own if it did not join
                await repo.seen(
                    telegram_id=2,
                    first_name="B",
                    username=None,
                    language_code=None,
                    now=clock.now(),
                    refresh_after=timedelta(minutes=10),
                )
            assert await repo.by_telegram_id(telegram_id=2) is not None
            raise Boom
    assert await repo.by_telegram_id(telegram_id=2) is None


async def test_a_committed_unit_of_work_is_visible_to_a_new_connection(
    db: Database, clock: FixedClock
) -> None:
    async with db.transaction():
        await SqlCustomers(db).seen(
            telegram_id=3,
            first_name="C",
            username="c",
            language_code="uk",
            now=clock.now(),
            refresh_after=timedelta(minutes=10),
        )
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(customers).where(customers.c.telegram_id == 3))).one()
    assert (row.first_name, row.username, row.language_code) == ("C", "c", "uk")


async def test_a_user_becomes_one_customer_even_when_updates_race(
    db: Database, clock: FixedClock
) -> None:
    repo = SqlCustomers(db)

    async def first_contact() -> int:
        record = await repo.seen(
            telegram_id=42,
            first_name="Anna",
            username=None,
            language_code="ru",
            now=clock.now(),
            refresh_after=timedelta(minutes=10),
        )
        return record.id

    ids = await asyncio.gather(*(first_contact() for _ in range(8)))
    assert len(set(ids)) == 1
    assert await count_customers(db) == 1


async def test_profile_changes_are_saved_and_last_seen_refreshes_only_when_stale(
    db: Database, clock: FixedClock
) -> None:
    repo = SqlCustomers(db)
    refresh = timedelta(minutes=10)
    created = await repo.seen(
        telegram_id=7,
        first_name="Ann",
        username=None,
        language_code="ru",
        now=clock.now(),
        refresh_after=refresh,
    )
    clock.advance(timedelta(minutes=5))
    same = await repo.seen(
        telegram_id=7,
        first_name="Ann",
        username=None,
        language_code="ru",
        now=clock.now(),
        refresh_after=refresh,
    )
    assert same.last_seen_at == created.last_seen_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    renamed = await repo.seen(
        telegram_id=7,
        first_name="Anna",
        username="anna",
        language_code="uk",
        now=clock.now(),
        refresh_after=refresh,
    )
    assert (renamed.first_name, renamed.username, renamed.language_code) == ("Anna", "anna", "uk")
    assert renamed.last_seen_at == clock.now()
    assert renamed.id == created.id
    clock.advance(timedelta(minutes=11))
    later = await repo.seen(
        telegram_id=7,
        first_name="Anna",
        username="anna",
        language_code="uk",
        now=clock.now(),
        refresh_after=refresh,
    )
    assert later.last_seen_at == clock.now()
    assert later.created_at == created.created_at


async def test_a_chosen_locale_is_stored(db: Database, clock: FixedClock) -> None:
    repo = SqlCustomers(db)
    record = await repo.seen(
        telegram_id=9,
        first_name=None,
        username=None,
        language_code="en",
        now=clock.now(),
        refresh_after=timedelta(minutes=10),
    )
    assert record.locale is None
    await repo.set_locale(customer_id=record.id, locale="uk")
    stored = await repo.by_telegram_id(telegram_id=9)
    assert stored is not None and stored.locale == "uk"


async def test_times_come_back_aware_utc_and_naive_times_are_refused(
    db: Database, clock: FixedClock
) -> None:
    kyiv = datetime(2026, 11, 1, 12, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Kyiv"))
    record = await SqlCustomers(db).seen(
        telegram_id=11,
        first_name=None,
        username=None,
        language_code=None,
        now=kyiv,
        refresh_after=timedelta(minutes=10),
    )
    assert record.created_at == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert record.created_at.tzinfo == UTC
    with pytest.raises(Exception, match="naive datetime"):
        async with db.transaction() as conn:
            await conn.execute(
                insert(customers).values(
                    telegram_id=12, created_at=datetime(2026, 1, 1), last_seen_at=clock.now()
                )
            )


async def test_fsm_state_and_data_round_trip_and_empty_keys_vanish(
    db: Database, clock: FixedClock
) -> None:
    states = SqlFsmStates(db)
    await states.set_state(key="bot:1:1", state="Signup:phone", now=clock.now())
    await states.set_data(key="bot:1:1", data={"consent": True, "n": 3}, now=clock.now())
    assert await states.get(key="bot:1:1") == ("Signup:phone", {"consent": True, "n": 3})
    await states.set_state(key="bot:1:1", state=None, now=clock.now())
    assert await states.get(key="bot:1:1") == (None, {"consent": True, "n": 3})
    await states.set_data(key="bot:1:1", data={}, now=clock.now())
    async with db.read() as conn:
        rows = (await conn.execute(select(func.count()).select_from(fsm_states))).scalar_one()
    assert rows == 0


async def test_idle_wizards_are_purged_and_active_ones_kept(
    db: Database, clock: FixedClock
) -> None:
    states = SqlFsmStates(db)
    await states.set_state(key="old", state="A:a", now=clock.now())
    clock.advance(timedelta(days=8))
    await states.set_state(key="fresh", state="A:a", now=clock.now())
    assert await states.purge_idle(idle_since=clock.now() - timedelta(days=7)) == 1
    assert await states.get(key="old") == (None, {})
    assert await states.get(key="fresh") == ("A:a", {})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./data/bot.sqlite3", "sqlite+aiosqlite:///./data/bot.sqlite3"),
        ("sqlite+aiosqlite:////var/lib/bot.db", "sqlite+aiosqlite:////var/lib/bot.db"),
        ("postgresql://u:p@db:5432/shop", "postgresql+asyncpg://u:p@db:5432/shop"),
        ("postgres://u@db/shop", "postgresql+asyncpg://u@db/shop"),
        ("postgresql+asyncpg://u@db/shop", "postgresql+asyncpg://u@db/shop"),
    ],
)
def test_database_urls_are_normalised_to_the_async_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "bot.sqlite3", "sqlite://relative.db"])
def test_unknown_database_urls_are_refused(bad: str) -> None:
    with pytest.raises(DatabaseUrlError):
        normalize_database_url(bad)


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(sqlite_db: Database) -> None:
    async with sqlite_db.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == 10_000


async def test_sqlite_read_then_write_transactions_from_two_handles_never_hit_locked(
    tmp_path: Path, clock: FixedClock
) -> None:
    """Two handles (as two processes would) race read-then-write transactions on one file.

    With deferred BEGIN the second writer's lock upgrade fails at once with "database is
    locked", busy_timeout or not; BEGIN IMMEDIATE makes it wait its turn instead.
    """
    path = tmp_path / "shared.sqlite3"
    async with sqlite_database(path) as first, sqlite_database(path, migrated=False) as second:

        async def bump(db: Database, n: int) -> None:
            async with db.transaction() as conn:
                await conn.execute(select(func.count()).select_from(customers))
                await asyncio.sleep(0.005)  # keep the read open while the other handle writes
                await conn.execute(
                    insert(customers).values(
                        telegram_id=n, created_at=clock.now(), last_seen_at=clock.now()
                    )
                )

        await asyncio.gather(*(bump(first if n % 2 else second, n) for n in range(40)))
        assert await count_customers(first) == 40


async def test_the_migrations_build_exactly_the_schema_the_code_declares(db: Database) -> None:
    """schema.py and the migration chain must never drift apart (on either backend)."""

    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(
            connection,  # type: ignore[arg-type]
            opts={"compare_type": True, "compare_server_default": False},
        )
        return [
            change
            for change in compare_metadata(context, metadata)
            if not (
                isinstance(change, tuple)
                and change[0] == "remove_table"
                and change[1].name == "alembic_version"
            )
        ]

    async with db.engine.connect() as connection:
        changes = await connection.run_sync(diff)
    assert changes == []


async def test_upgrading_a_database_with_data_keeps_every_row(db: Database) -> None:
    """Migrations run on live shops: rows referring to altered tables must survive."""
    async with db.engine.begin() as conn:  # start again from an empty schema at 0002
        await conn.run_sync(metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await migrate(db, "0002")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        await conn.execute(
            text(
                "INSERT INTO customers (id, telegram_id, created_at, last_seen_at) "
                "VALUES (1, 501, :now, :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
        await conn.execute(
            text(
                "INSERT INTO notification_mutes (customer_id, kind, muted_at) "
                "VALUES (1, 'reminder', :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
    await migrate(db)
    async with db.read() as conn:
        mutes = (await conn.execute(text("SELECT customer_id, kind FROM notification_mutes"))).all()
        phone = (await conn.execute(text("SELECT phone FROM customers WHERE id = 1"))).scalar_one()
    assert [tuple(row) for row in mutes] == [(1, "reminder")]
    assert phone is None
