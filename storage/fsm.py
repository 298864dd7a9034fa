"""Rows behind aiogram's FSM: a wizard's state and data per chat/user key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.schema import fsm_states
from storage.sql import insert

_CACHE = "fsm_states"  # this module's part of a unit of work's cache
_ABSENT: tuple[None, dict[str, Any]] = (None, {})  # no row: neither state nor data


Row = tuple[str | None, dict[str, Any]]


class SqlFsmStates:
    """State and data per key; a key with neither is deleted rather than kept empty.

    Within one update's unit of work the row is read once and then served from the unit's
    cache, written through by every change (and forgotten on any rollback). That is safe
    because the row's only writer while the update runs is the update itself: aiogram's event
    isolation holds the user's lock for the whole unit of work. The rule that follows: every
    process that writes these rows for a user shares that lock. One bot process per database
    does (polling allows no second one); several processes on one PostgreSQL must use
    ``REDIS_URL``, which gives them one lock (and keeps the FSM in Redis, not here).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, *, key: str) -> Row:
        cache = self._db.unit_cache()
        if cache is not None and (_CACHE, key) in cache:
            state, data = cache[(_CACHE, key)]
            return state, dict(data)
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(fsm_states.c.state, fsm_states.c.data).where(fsm_states.c.key == key)
                )
            ).one_or_none()
        found: Row = _ABSENT if row is None else (row.state, dict(row.data))
        self.remember(key=key, row=found)
        return found[0], dict(found[1])

    def remember(self, *, key: str, row: Row) -> None:
        """What the update's unit of work now knows the row to be (read alongside something
        else, e.g. with the customer), so ``get`` needs no statement of its own."""
        cache = self._db.unit_cache()
        if cache is not None:
            cache[(_CACHE, key)] = (row[0], dict(row[1]))

    async def set_state(self, *, key: str, state: str | None, now: datetime) -> None:
        await self._change(key=key, change=lambda old: (state, old[1]), now=now)

    async def set_data(self, *, key: str, data: dict[str, Any], now: datetime) -> None:
        await self._change(key=key, change=lambda old: (old[0], data), now=now)

    async def set(
        self, *, key: str, state: str | None, data: dict[str, Any], now: datetime
    ) -> None:
        """Both at once: one statement where set_state and set_data would run two."""
        await self._change(key=key, change=lambda _: (state, data), now=now)

    async def _change(self, *, key: str, change: Callable[[Row], Row], now: datetime) -> None:
        cache = self._db.unit_cache()
        known: Row | None = cache.get((_CACHE, key)) if cache is not None else None
        if known is not None and known == _ABSENT and change(known) == _ABSENT:
            return  # clearing a wizard that is not there (state.clear() after every rating)
        async with self._db.transaction() as conn:
            state, data = change(await self.get(key=key))
            await self._write(conn, key=key, state=state, data=data, now=now)
        self.remember(key=key, row=(state, data))

    @staticmethod
    async def _write(
        conn: AsyncConnection,
        *,
        key: str,
        state: str | None,
        data: dict[str, Any],
        now: datetime,
    ) -> None:
        if state is None and not data:
            await conn.execute(delete(fsm_states).where(fsm_states.c.key == key))
            return
        values = {"state": state, "data": data, "updated_at": now}
        await conn.execute(
            insert(conn, fsm_states)
            .values(key=key, **values)
            .on_conflict_do_update(index_elements=["key"], set_=values)
        )

    async def purge_idle(self, *, idle_since: datetime) -> int:
        """Forget wizards nobody touched since ``idle_since``; returns how many."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(fsm_states).where(fsm_states.c.updated_at < idle_since)
            )
        return int(result.rowcount)
