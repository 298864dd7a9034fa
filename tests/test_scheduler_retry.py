"""A periodic job that meets the database locked or away waits and retries within its tick."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from aiogram import Bot
from sqlalchemy import insert, select

from bot.broadcast_progress import BroadcastProgress
from bot.scheduler import create_scheduler
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import SystemClock
from scenarios.rules import Rules
from storage.availability import Availability
from storage.broadcasts import SqlBroadcasts
from storage.customers import SqlCustomers
from storage.outbox import OutboxState, SqlOutbox
from storage.schema import outbox
from tests.support.databases import sqlite_database
from tests.support.recording_session import RecordingSession


async def test_i17_6_a_job_that_meets_database_is_locked_waits_and_finishes_its_tick(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, i18n: CatalogI18n, renderer: Renderer
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "bot.sqlite3"
    async with sqlite_database(path) as setup:
        now = SystemClock().now()
        async with setup.transaction() as conn:
            await conn.execute(
                insert(outbox).values(
                    dedupe_key="left-claimed",
                    chat_id=1,
                    category="transactional",
                    kind="test",
                    priority=0,
                    payload={"text": "x"},
                    not_before=now,
                    state=OutboxState.CLAIMED,
                    claimed_by="dead-process",
                    claimed_until=now,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
    # Another process (an import, a second bot) holds the write lock longer than we wait.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    async with sqlite_database(path, migrated=False) as db:
        db_short = type(db)(f"sqlite:///{path}", busy_timeout_ms=50)
        db_short.availability = Availability(settle=0.1)
        rules, clock = Rules(), SystemClock()
        scheduler = create_scheduler(
            rules=rules,
            clock=clock,
            fsm_states=None,
            outbox=SqlOutbox(db_short),
            broadcast_progress=BroadcastProgress(
                broadcasts=SqlBroadcasts(db_short),
                customers=SqlCustomers(db_short),
                bot=Bot("123456:TEST", session=RecordingSession()),
                renderer=renderer,
                i18n=i18n,
                rules=rules,
                clock=clock,
            ),
            availability=db_short.availability,
        )
        job = scheduler.get_job("recover-lapsed-claims")
        assert job is not None
        tick = asyncio.create_task(job.func())
        await asyncio.sleep(1.0)
        assert not tick.done(), "it waits for the lock instead of failing its tick"
        other.rollback()
        other.close()
        await asyncio.wait_for(tick, 10)
        await asyncio.sleep(0.3)
        await db_short.close()
        async with db.read() as conn:
            state = (await conn.execute(select(outbox.c.state))).scalar_one()
    assert state == "pending"
    said = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in said if m.startswith("database")] == [
        "database unavailable",
        "database is back",
    ]
    assert "job recover-lapsed-claims: OperationalError: database is locked" in said[0]
