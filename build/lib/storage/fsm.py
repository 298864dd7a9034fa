"""Rows behind aiogram's FSM: a wizard's state and data per chat/user key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database
from storage.schema import fsm_states
from storage.sql import insert


class SqlFsmStates:
    """State and data per key; a key with neither is deleted rather than kept empty."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, *, key: str) -> tuple[str | None, dict[str, Any]]:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(fsm_states.c.state, fsm_states.c.data).where(fsm_states.c.key == key)
                )
            ).one_or_none()
        if row is None:
            return None, {}
        return row.state, dict(row.data)

    async def set_state(self, *, key: str, state: str | None, now: datetime) -> None:
        async with self._db.transaction() as conn:
            _, data = await self.get(key=key)
            await self._write(conn, key=key, state=state, data=data, now=now)

    async def set_data(self, *, key: str, data: dict[str, Any], now: datetime) -> None:
        async with self._db.transaction() as conn:
            state, _ = await self.get(key=key)
            await self._write(conn, key=key, state=state, data=data, now=now)

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
