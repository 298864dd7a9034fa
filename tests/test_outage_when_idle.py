"""Parts that poll the database say it is back after an outage even when they find nothing to do.

Found by the end-to-end outage test: the webhook inbox worker (and the outbox sender) marked
the database away when a poll failed, but marked it answering only after they had processed
something, so a shop with nothing queued never read "database is back" in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.sender import OutboxSender
from locales import CatalogI18n
from locales.rendering import Renderer
from scenarios.clock import FixedClock, SystemClock
from scenarios.rules import Delivery, Rules
from storage.database import Database
from storage.migrate import migrate
from tests.fake_telegram import FakeTelegram
from tests.support.outage import locked_out, postgres_role_database
from tests.test_webhooks import make_hooks

AWAY = "database unavailable"
BACK = "database is back"


@pytest.fixture
async def role_db() -> AsyncIterator[tuple[str, Database]]:
    async with postgres_role_database() as (url, db):
        await migrate(db)
        yield url.partition("://")[2].partition("@")[0], db


def said(caplog: pytest.LogCaptureFixture, start: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == "storage.database" and r.getMessage().startswith(start)
    )


async def until_said(caplog: pytest.LogCaptureFixture, start: str, *, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not said(caplog, start):
            await asyncio.sleep(0.05)


async def outage_with_nothing_queued(
    caplog: pytest.LogCaptureFixture, role: str, run: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Lock the role out while ``run`` polls an empty queue, then let it back in."""
    caplog.set_level(logging.WARNING)
    running = asyncio.create_task(run())
    try:
        async with locked_out(role):
            await until_said(caplog, AWAY, timeout=10)
        await until_said(caplog, BACK, timeout=10)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert (said(caplog, AWAY), said(caplog, BACK)) == (1, 1)


async def test_the_webhook_worker_says_back_with_an_empty_inbox(
    role_db: tuple[str, Database], caplog: pytest.LogCaptureFixture
) -> None:
    role, db = role_db
    _, hooks = make_hooks(db, FixedClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC)))
    await outage_with_nothing_queued(caplog, role, hooks.worker.run)


async def test_the_outbox_sender_says_back_with_an_empty_outbox(
    role_db: tuple[str, Database],
    caplog: pytest.LogCaptureFixture,
    renderer: Renderer,
    i18n: CatalogI18n,
) -> None:
    role, db = role_db
    async with FakeTelegram() as tg:
        bot = tg.bot()
        sender = OutboxSender(
            db=db,
            bot=bot,
            renderer=renderer,
            i18n=i18n,
            rules=Rules(delivery=Delivery(idle_poll_seconds=0.1)),
            clock=SystemClock(),
            shop_zone=ZoneInfo("UTC"),
            worker_id="idle",
        )
        try:
            await outage_with_nothing_queued(caplog, role, sender.run)
        finally:
            await bot.session.close()
