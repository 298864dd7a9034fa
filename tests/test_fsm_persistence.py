"""A wizard's FSM state survives a restart: in the database by default, in Redis when set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event

from bot.app import build_application, shutdown
from bot.fsm_storage import DatabaseFsmStorage
from bot.settings import Settings
from scenarios.clock import FixedClock
from scenarios.rules import Rules
from storage.database import Database
from storage.fsm import SqlFsmStates
from tests.support.databases import ON_CI, sqlite_database

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class Signup(StatesGroup):
    phone = State()


def key(bot_id: int = 42) -> StorageKey:
    return StorageKey(bot_id=bot_id, chat_id=1001, user_id=1001)


async def test_database_fsm_state_survives_a_restart(tmp_path: Path, clock: FixedClock) -> None:
    path = tmp_path / "bot.sqlite3"
    async with sqlite_database(path) as db:
        before = FSMContext(DatabaseFsmStorage(SqlFsmStates(db), clock), key())
        await before.set_state(Signup.phone)
        await before.update_data(consent=True, marketing=False)
    async with sqlite_database(path, migrated=False) as reopened:
        after = FSMContext(DatabaseFsmStorage(SqlFsmStates(reopened), clock), key())
        assert await after.get_state() == "Signup:phone"
        assert await after.get_data() == {"consent": True, "marketing": False}
        await after.clear()
        assert await after.get_state() is None
        assert await after.get_data() == {}


async def test_fsm_keys_keep_bots_and_users_apart(tmp_path: Path, clock: FixedClock) -> None:
    async with sqlite_database(tmp_path / "bot.sqlite3") as db:
        storage = DatabaseFsmStorage(SqlFsmStates(db), clock)
        await FSMContext(storage, key(bot_id=1)).set_state(Signup.phone)
        assert await FSMContext(storage, key(bot_id=2)).get_state() is None


async def redis_or_skip() -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        if ON_CI:
            pytest.fail(f"CI=true but Redis at {REDIS_URL} is not reachable: {error!r}")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {error!r}")
    finally:
        await client.aclose()


async def test_redis_url_moves_fsm_state_to_redis_and_it_survives_a_restart(
    tmp_path: Path,
) -> None:
    await redis_or_skip()
    settings = Settings(
        _env_file=None,
        bot_token="123456:TEST-TOKEN",
        database_url=f"sqlite:///{tmp_path}/bot.sqlite3",
        redis_url=REDIS_URL,
    )
    bot_id = int(uuid.uuid4().int % 10**9)  # a key space no other run shares
    first = build_application(settings, Rules())
    assert isinstance(first.fsm_storage, RedisStorage)
    await FSMContext(first.fsm_storage, key(bot_id)).set_state(Signup.phone)
    await shutdown(first)

    second = build_application(settings, Rules())
    try:
        context = FSMContext(second.fsm_storage, key(bot_id))
        assert await context.get_state() == "Signup:phone"
        await context.clear()
    finally:
        await shutdown(second)


async def test_an_update_reads_its_fsm_row_once_and_a_rollback_forgets_what_it_knew(
    db: Database, clock: FixedClock
) -> None:
    states = SqlFsmStates(db)
    reads: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "fsm_states" in statement:
            reads.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.unit_of_work():
            context = FSMContext(DatabaseFsmStorage(states, clock), key())
            assert await context.get_state() is None
            await context.clear()  # nothing there: nothing to write
            await context.set_state(Signup.phone)
            await context.update_data(consent=True)
            assert await context.get_state() == "Signup:phone"
            assert await context.get_data() == {"consent": True}
            assert len(reads) == 1
            with pytest.raises(RuntimeError):
                async with db.savepoint():
                    await context.set_state(None)
                    await context.set_data({})
                    raise RuntimeError("this part fails alone")
            # The savepoint undid the clearing: what the update knew is read again.
            assert await context.get_state() == "Signup:phone"
            assert len(reads) == 2
        async with db.unit_of_work():
            again = FSMContext(DatabaseFsmStorage(states, clock), key())
            assert await again.get_data() == {"consent": True}
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
